//! A short smoke run of the load generator against shardcast (driven through its real HTTP API)
//! and against the floor relay binary: delivery and accounting, not speed.

use std::time::Duration;

use shardcast::http::HttpServer;
use shardcast::{Config, Shardcast};
use shardcast_benches::loadgen::{run, Profile, RunConfig, Target};

fn config(target: Target, profile: Profile, rate: f64) -> RunConfig {
    RunConfig {
        target,
        profile,
        rate,
        size: 200,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
        seed: 3,
        cpu: None,
        progress: false,
        during: None,
    }
}

#[test]
fn loadgen_against_shardcast_over_its_api() {
    let sc = Shardcast::start(Config::for_tests(1)).unwrap();
    let server = HttpServer::start(sc.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let target = Target::Shardcast { api: format!("http://{}", server.addr()), token: None };
    let r = run(&config(target.clone(), Profile::Fanout { streams: 2, consumers: 3 }, 6000.0)).unwrap();
    assert!(r.expected_out > 4000, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 0), "{r:?}");
    assert!(r.relay_ns_per_pkt.is_some_and(|ns| ns > 0.0), "{r:?}");
    let r = run(&config(target, Profile::Conference { participants: 3 }, 0.0)).unwrap();
    assert!(r.expected_out > 800, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    // Every room was closed again by the generator.
    let stats = sc.call(shardcast::Request::Stats).unwrap();
    assert_eq!(serde_json::to_value(&stats).unwrap()["routers"], serde_json::json!(0));
    server.stop(Duration::from_secs(2));
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn loadgen_against_the_floor_relay() {
    floor_relay(false);
}

/// The floor's io_uring path relays as completely as its mmsg path.
#[test]
fn loadgen_against_the_floor_relay_on_io_uring() {
    floor_relay(true);
}

fn floor_relay(uring: bool) {
    let target = Target::Floor { bin: env!("CARGO_BIN_EXE_shardcast-floor").into(), cpu: None, uring };
    let r = run(&config(target, Profile::Fanout { streams: 2, consumers: 2 }, 4000.0)).unwrap();
    assert!(r.expected_out > 3000, "{r:?}");
    assert_eq!((r.lost, r.duplicated), (0, 0), "{r:?}");
    assert!(r.relay_cpu_pct.is_some());
}
