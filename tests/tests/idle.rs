//! Idle cores wait without spinning: with no traffic, the data-plane cores use almost no CPU
//! (each blocks in its own `epoll_wait` on its sockets and its doorbell), yet wake at once for a
//! batch.

use std::time::{Duration, Instant};

use shardcast_core::command::Command;
use shardcast_core::ids::RouterId;
use shardcast_tests::Plane;

/// Run time (ns) of this process's data-plane core threads.
fn core_threads_ns() -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir("/proc/self/task").expect("procfs").flatten() {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !name.starts_with("shardcast-core") {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

#[test]
fn idle_cores_do_not_spin_and_still_answer_promptly() {
    let mut plane = Plane::start(2);
    std::thread::sleep(Duration::from_millis(200));
    let before = core_threads_ns();
    std::thread::sleep(Duration::from_secs(1));
    let used = core_threads_ns() - before;
    // Two waiting cores: far below 5 % of one CPU over the second (a spinning one would use ~100 %).
    assert!(used < 50_000_000, "idle cores used {} ms of CPU in 1 s", used / 1_000_000);
    // A waiting core still applies a batch right away (the doorbell wakes its `epoll_wait`).
    let started = Instant::now();
    plane.route(1, vec![Command::CreateRouter { router: RouterId(1) }]);
    assert!(started.elapsed() < Duration::from_secs(1), "batch took {:?}", started.elapsed());
    plane.plane.shutdown(Duration::from_secs(10)).expect("cores stop");
}
