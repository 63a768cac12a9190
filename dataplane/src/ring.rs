//! The doorbell that wakes a waiting core when the control thread queues a batch.
//!
//! The control → core ring itself is a `crossbeam::queue::ArrayQueue` (bounded, lock-free); a busy
//! core finds batches by polling it between packet batches and needs no wake-up. An idle core
//! waits on the read end of a Unix stream pair in its `epoll_wait`; `ring` writes one byte, at most
//! one outstanding at a time (`pending`), so a flood of batches costs one wake-up, not one each.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// Control-side end of a core's doorbell.
#[derive(Debug)]
pub struct Doorbell {
    pending: AtomicBool,
    tx: UnixStream,
}

impl Doorbell {
    /// A doorbell and the stream the core reads.
    pub fn pair() -> std::io::Result<(Doorbell, UnixStream)> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok((Doorbell { pending: AtomicBool::new(false), tx }, rx))
    }

    /// Wakes the core if no wake-up is already pending. Never blocks.
    pub fn ring(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A full socket buffer (EAGAIN) means a wake-up is already queued: nothing to do.
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// Called by the core after it drained the doorbell stream and before it polls the ring, so
    /// a batch queued after this point rings again.
    pub fn rearm(&self) {
        self.pending.store(false, Ordering::Release);
    }
}
