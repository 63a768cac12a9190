//! The real run loop does not allocate per packet: over ≥ 10,000 copies forwarded through a
//! running core, a counting global allocator sees at most 8 allocations per wake-up of the core
//! (plus 8), and fewer than one per 100 copies. This bounds allocations rather than showing there
//! are none (the counter is process-wide); the loop itself waits in its own `epoll_wait`, which
//! allocates nothing, and the zero-allocation claim for forwarding is `tests/tests/zero_alloc.rs`'s.

use std::time::Duration;

use shardcast_core::ids::RouterId;
use shardcast_core::testutil::Room;
use shardcast_tests::alloc::CountingAlloc;
use shardcast_tests::{rtp, Peer, Plane, DEADLINE};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const R: RouterId = RouterId(1);
const CONSUMERS: u32 = 10;
const PACKETS: usize = 2_000;

#[test]
fn forwarding_through_a_running_core_allocates_nothing_per_packet() {
    let mut plane = Plane::start(1);
    let sender = Peer::new();
    let receivers: Vec<Peer> = (0..CONSUMERS).map(|_| Peer::new()).collect();
    let (in_sock, in_addr) = plane.socket(0);
    let mut room = Room::new(R).producer(1, in_sock, sender.addr(), 1, 96);
    for (i, r) in receivers.iter().enumerate() {
        let (sock, _) = plane.socket(0);
        room = room.consumer(10 + i as u32, sock, r.addr(), 1, 100 + i as u32, 96);
    }
    plane.route(0, room.commands());
    let packets: Vec<Vec<u8>> =
        (0..PACKETS).map(|i| rtp(1, i as u16, i as u32 * 3000, 96, &[9; 400])).collect();
    // Warm up: first packets initialise per-consumer state.
    for p in &packets[..50] {
        sender.send(in_addr, p);
    }
    for r in &receivers {
        assert_eq!(r.recv_n(50, DEADLINE).len(), 50);
    }
    let before_stats = plane.plane.cores()[0].stats();
    let before = CountingAlloc::total();
    // The window: this thread only sends pre-built packets (no allocation); receivers read later.
    for p in &packets[50..] {
        sender.send(in_addr, p);
    }
    // Wait (without allocating) until the core has forwarded everything.
    let want = before_stats.counters.outputs + (PACKETS as u64 - 50) * u64::from(CONSUMERS);
    let deadline = std::time::Instant::now() + DEADLINE;
    while plane.plane.cores()[0].stats().counters.outputs < want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = CountingAlloc::total();
    let after_stats = plane.plane.cores()[0].stats();
    let forwarded = after_stats.counters.packets_out - before_stats.counters.packets_out;
    let wakeups = after_stats.wakeups - before_stats.wakeups;
    let allocations = after - before;
    eprintln!("run loop: {forwarded} copies forwarded, {allocations} allocations, {wakeups} wake-ups");
    assert!(forwarded >= 10_000, "forwarded {forwarded}");
    // A few per wake-up at most, and nowhere near one per copy.
    assert!(allocations <= 8 * (wakeups + 1), "{allocations} allocations for {wakeups} wake-ups");
    assert!(allocations * 100 < forwarded, "{allocations} allocations for {forwarded} copies");
    for r in &receivers {
        assert_eq!(r.recv_n(PACKETS - 50, DEADLINE).len(), PACKETS - 50);
    }
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
