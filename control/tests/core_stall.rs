//! A core that stops replying turns API calls that need it into deadline errors naming the core;
//! the daemon and the other core keep working; when the core answers again it is usable again.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use shardcast::{Config, ErrorKind, Request, Shardcast};

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
    let err = sc.call(Request::StallCore { core: 1, millis: 1500 }).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CoreUnavailable);
    assert!(err.message.contains("core 1"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1000), "waited {:?}", started.elapsed());

    // Calls on core 1's routers fail fast, naming the core; core 0 keeps working.
    let started = Instant::now();
    let err = sc.create_plain_transport(r1, ip, false, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CoreUnavailable);
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
            Err(e) if e.kind == ErrorKind::CoreUnavailable && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("core 1 did not recover: {e}"),
        }
    }
    assert!(sc.metrics().deadline_misses[1].load(std::sync::atomic::Ordering::Relaxed) >= 1);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
