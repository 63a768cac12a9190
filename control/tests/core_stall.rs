//! A core that stops replying turns API calls that need it into deadline errors naming the core;
//! the daemon and the other core keep working; when the core answers again it is usable again.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use shardcast::{ApiErrorKind, Config, Request, Shardcast};

#[test]
fn a_stuck_core_is_reported_never_waited_on() {
    let mut config = Config::for_tests(2);
    config.api.core_deadline_ms = 200;
    let sc = Shardcast::start(config).unwrap();
    let ip = IpAddr::from([127, 0, 0, 1]);
    let (r0, c0) = sc.create_router(Some(0)).unwrap();
    let (r1, c1) = sc.create_router(Some(1)).unwrap();
    assert_eq!((c0, c1), (0, 1));

    // Core 1 blocks for 1.5 s: the stall call itself misses the 200 ms deadline.
    let started = Instant::now();
    let err = sc.call(Request::StallCore { core: 1, millis: 1500, wait: true }).unwrap_err();
    assert_eq!(err.kind, ApiErrorKind::CoreUnavailable);
    assert!(err.message.contains("core 1"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1000), "waited {:?}", started.elapsed());

    // Calls on core 1's routers fail fast, naming the core; core 0 keeps working.
    let started = Instant::now();
    let err = sc.create_plain_transport(r1, ip, false, false).unwrap_err();
    assert_eq!(err.kind, ApiErrorKind::CoreUnavailable);
    assert!(err.message.contains("core 1"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(100));
    let t = sc.create_plain_transport(r0, ip, false, false).unwrap();
    assert!(t.local.port() > 0);
    // New routers are placed away from the stalled core.
    let (_, placed) = sc.create_router(None).unwrap();
    assert_eq!(placed, 0);
    assert_eq!(sc.metrics().stalled[1].load(std::sync::atomic::Ordering::Relaxed), 1);

    // Once core 1 answers again it is usable again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sc.create_plain_transport(r1, ip, false, false) {
            Ok(_) => break,
            Err(e) if e.kind == ApiErrorKind::CoreUnavailable && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("core 1 did not recover: {e}"),
        }
    }
    assert!(sc.metrics().deadline_misses[1].load(std::sync::atomic::Ordering::Relaxed) >= 1);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_call_that_missed_its_deadline_reaches_the_model_when_its_core_applies_it() {
    let mut config = Config::for_tests(2);
    config.api.core_deadline_ms = 200;
    let sc = Shardcast::start(config).unwrap();
    let routers = |sc: &Shardcast| match sc.call(Request::Stats).unwrap() {
        shardcast::Response::Stats(s) => s.routers,
        other => panic!("{other:?}"),
    };
    let (r0, _) = sc.create_router(Some(0)).unwrap();

    // Core 1 is blocked for 800 ms; a router created on it misses the 200 ms deadline.
    sc.call(Request::StallCore { core: 1, millis: 800, wait: false }).unwrap();
    let err = sc.create_router(Some(1)).unwrap_err();
    assert_eq!(err.kind, ApiErrorKind::CoreUnavailable);
    assert!(err.message.contains("core 1"), "{err}");
    // The model does not claim what no core holds yet.
    assert_eq!(routers(&sc), 1);
    let late = shardcast_core::ids::RouterId(r0.0 + 1);
    assert_eq!(sc.dump_router(late).unwrap_err().kind, ApiErrorKind::NotFound);

    // Once core 1 applies the queued batch, its late reply commits the router to the model.
    let deadline = Instant::now() + Duration::from_secs(10);
    while routers(&sc) < 2 {
        assert!(Instant::now() < deadline, "the late reply never reached the model");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dump = sc.dump_router(late).unwrap();
    assert_eq!(dump.core, 1);
    assert_eq!(sc.cores()[1].stats().routers, 1, "the core holds what the model says");
    // And the router is usable.
    let t = sc.create_plain_transport(late, IpAddr::from([127, 0, 0, 1]), false, false).unwrap();
    assert!(t.local.port() > 0);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_core_index_that_does_not_exist_is_an_invalid_argument_not_a_crash() {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    for request in
        [Request::CreateRouter { core: Some(7) }, Request::StallCore { core: 9, millis: 1, wait: true }]
    {
        let err = sc.call(request).unwrap_err();
        assert_eq!(err.kind, ApiErrorKind::InvalidArgument, "{err}");
        assert!(err.message.contains("does not exist"), "{err}");
    }
    // The control thread is alive and well.
    assert_eq!(sc.create_router(None).unwrap().1, 0);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
