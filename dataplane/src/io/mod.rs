//! Batched UDP I/O: `recvmmsg` into buffers allocated once, `sendmmsg` with iovecs pointing at a
//! rewritten header and the original payload. Together with `sockopt`, this module holds all the
//! data plane's `unsafe`; every block says why it is sound.
//!
//! Why recvmmsg/sendmmsg rather than io_uring batches: the reference measurements on this machine
//! (`shared/reference/`) show the two within ±6 % for 1 KB UDP except with many ingress sockets,
//! and glommio offers no public API to submit our own batched SQEs; see ARCHITECTURE.md.

mod epoll;
mod mmsg;
mod reuseport_bpf;
mod sockopt;
mod thread;
mod uring;

pub use epoll::Epoll;
pub use mmsg::{RecvBatch, SendBatch, SendResult, SendScope};
pub use reuseport_bpf::{KernelKey, ReuseportSteering};
pub use sockopt::set_buffer_forced;
pub use thread::{
    memlock_limit, pin_current_thread, pin_thread, poll_readable, raise_memlock, stop_on_signals,
};
pub use uring::{UringCounts, UringRelay};
