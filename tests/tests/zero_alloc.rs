//! Forwarding a batch performs zero heap allocations (a counting global allocator).
//!
//! Only the forwarding thread's allocations are counted: the test harness's own threads (output
//! capture, the timeout watcher) may allocate at any moment and are not the forwarding path.

use std::net::SocketAddr;

use shardcast_core::command::SocketId;
use shardcast_core::shard::{Datagram, Output, Shard};
use shardcast_core::testutil::{fanout_setup, rtp};
use shardcast_tests::alloc::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn forwarding_allocates_nothing() {
    CountingAlloc::count_this_thread();
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mut shard = Shard::new();
    shard.apply_batch(&fanout_setup(SocketId(1), addr(5000), 10, |i| addr(6000 + i as u16)));
    let packets: Vec<Vec<u8>> =
        (0..64u16).map(|i| rtp(1111, i, u32::from(i) * 3000, 96, &[7u8; 1000])).collect();
    let mut out: Box<heapless::Vec<Output, 1024>> = Box::default();
    // Warm up (first packet per consumer initialises state).
    for (i, p) in packets.iter().enumerate() {
        shard.forward(i as u32, &Datagram { socket: SocketId(1), source: addr(5000), data: p }, 0, &mut *out);
    }
    let before = CountingAlloc::this_thread();
    assert!(before > 0, "the counter sees this thread's allocations (the setup's)");
    let mut forwarded = 0usize;
    for round in 0..200u64 {
        out.clear();
        for (i, p) in packets.iter().enumerate() {
            shard.forward(
                i as u32,
                &Datagram { socket: SocketId(1), source: addr(5000), data: p },
                round * 1000,
                &mut *out,
            );
        }
        forwarded += out.len();
    }
    let after = CountingAlloc::this_thread();
    assert_eq!(forwarded, 200 * 64 * 10);
    assert_eq!(after - before, 0, "allocations on the forwarding path");
}
