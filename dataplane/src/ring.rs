//! The doorbell that wakes a waiting core when the control thread (or another core) queues work
//! for it.
//!
//! The control → core ring itself is a `crossbeam::queue::ArrayQueue` (bounded, lock-free); a busy
//! core finds batches by polling it between packet batches and needs no wake-up. An idle core
//! waits on the read end of a Unix stream pair in its `epoll_wait`; `ring` writes one byte, at most
//! one per re-arm of the core ([`WakeFlag`]; the core drains them all each wait), so a flood of
//! batches costs one wake-up, not one each.

use std::io::Write;
use std::os::unix::net::UnixStream;

use crate::sync::{AtomicBool, Ordering};

/// The doorbell's pending/re-arm protocol, apart from the byte it writes (model-checked by loom
/// in `runtime::loom_models`).
///
/// The queuer pushes its item, then calls [`WakeFlag::should_signal`], and signals only when it
/// says so; the core calls [`WakeFlag::rearm`] and then polls its queues. Both write the flag
/// with a read-modify-write, so their writes are totally ordered: either the core's re-arm comes
/// after the queuer's swap and acquires it — the core's poll then sees the item — or before,
/// and the queuer's swap reads the re-armed flag and signals. A wake-up is never lost, whatever
/// the queue itself guarantees beyond release/acquire of its items. (With a plain store for the
/// re-arm it is the store-buffer race: the queuer's swap can miss the re-arm while the core's
/// poll misses the item; loom finds that schedule.)
#[derive(Debug, Default)]
pub(crate) struct WakeFlag {
    pending: AtomicBool,
}

impl WakeFlag {
    pub(crate) fn new() -> WakeFlag {
        WakeFlag { pending: AtomicBool::new(false) }
    }

    /// After the item is queued: true if the caller must signal (no wake-up is pending since the
    /// core's last [`WakeFlag::rearm`]).
    #[inline]
    pub(crate) fn should_signal(&self) -> bool {
        !self.pending.swap(true, Ordering::AcqRel)
    }

    /// The core, after it drained the signals and before it polls its queues: what is queued
    /// from now on signals again.
    #[inline]
    pub(crate) fn rearm(&self) {
        self.pending.swap(false, Ordering::AcqRel);
    }
}

/// Control-side end of a core's doorbell.
#[derive(Debug)]
pub struct Doorbell {
    flag: WakeFlag,
    tx: UnixStream,
}

impl Doorbell {
    /// A doorbell and the stream the core reads.
    pub fn pair() -> std::io::Result<(Doorbell, UnixStream)> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok((Doorbell { flag: WakeFlag::new(), tx }, rx))
    }

    /// Wakes the core if no wake-up is already pending. Never blocks. Call it after the work is
    /// queued.
    pub fn ring(&self) {
        if self.flag.should_signal() {
            // A full socket buffer (EAGAIN) means a wake-up is already queued: nothing to do.
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// Called by the core after it drained the doorbell stream and before it polls the ring, so
    /// a batch queued after this point rings again.
    pub fn rearm(&self) {
        self.flag.rearm();
    }
}
