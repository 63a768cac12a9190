//! A counting global allocator, shared by the zero-allocation tests. Each test binary that uses it
//! declares `#[global_allocator] static GLOBAL: CountingAlloc = CountingAlloc;`.
//!
//! It forwards every call to the system allocator unchanged and counts `alloc`/`realloc` calls
//! twice: process-wide ([`CountingAlloc::total`]) and, on threads that opted in with
//! [`CountingAlloc::count_this_thread`], per thread ([`CountingAlloc::this_thread`]), so a test can
//! ignore the harness's own threads (output capture, the timeout watcher).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The allocator. Stateless: the counters are statics.
#[derive(Debug)]
pub struct CountingAlloc;

static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// `Some(n)`: this thread counts its own allocations (const-initialised and without a
    /// destructor, so reading it from inside the allocator allocates nothing).
    static THIS_THREAD: Cell<Option<u64>> = const { Cell::new(None) };
}

impl CountingAlloc {
    /// Allocations (and reallocations) by every thread since the process started.
    pub fn total() -> u64 {
        TOTAL.load(Ordering::Relaxed)
    }

    /// From now on, count this thread's allocations too (from zero).
    pub fn count_this_thread() {
        THIS_THREAD.with(|c| c.set(Some(0)));
    }

    /// This thread's allocations since [`CountingAlloc::count_this_thread`] (0 before it).
    pub fn this_thread() -> u64 {
        THIS_THREAD.with(Cell::get).unwrap_or(0)
    }

    fn count() {
        TOTAL.fetch_add(1, Ordering::Relaxed);
        THIS_THREAD.with(|c| {
            if let Some(n) = c.get() {
                c.set(Some(n + 1));
            }
        });
    }
}

// SAFETY: every call is forwarded to the system allocator with the caller's arguments, unchanged;
// counting touches only an atomic and a const-initialised thread-local (no allocation, no
// re-entrancy).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
