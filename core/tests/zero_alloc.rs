//! Forwarding a batch performs zero heap allocations (a counting global allocator).
//!
//! Only the forwarding thread's allocations are counted: the test harness's own threads (output
//! capture, the timeout watcher) may allocate at any moment and are not the forwarding path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use shardcast_core::command::SocketId;
use shardcast_core::shard::{Datagram, Output, Shard};
use shardcast_core::testutil::{fanout_setup, rtp};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread whose allocations are counted (const-initialised: reading it allocates
    /// nothing, so the allocator may).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn forwarding_allocates_nothing() {
    COUNTED.with(|c| c.set(true));
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
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
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(forwarded, 200 * 64 * 10);
    assert_eq!(after - before, 0, "allocations on the forwarding path");
}
