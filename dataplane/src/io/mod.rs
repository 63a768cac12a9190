//! The data plane's system calls, and all of its `unsafe` (every block says why it is sound):
//! batched UDP I/O (`mmsg`: `recvmmsg` into buffers allocated once, `sendmmsg` with iovecs pointing
//! at a rewritten header and the original payload), the core's readiness wait (`epoll`), socket
//! options (`sockopt`), thread pinning and limits (`thread`), the shared port's kernel steering
//! (`reuseport_bpf`) and the io_uring relay the floor uses to measure io_uring against mmsg
//! (`uring`).
//!
//! Why recvmmsg/sendmmsg rather than io_uring batches: measured side by side on this machine
//! (`benches/compare.sh io`), io_uring was 5–10 % dearer per packet for one stream and within 3 %
//! with ten ingress sockets; see ARCHITECTURE.md and BENCHMARKS.md.

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
pub use thread::raise_nofile;
pub use thread::{
    allowed_cpus, current_thread_policy, memlock_limit, nofile_limit, pin_current_thread, poll_readable,
    raise_memlock, set_current_thread_policy, stop_on_signals, SchedPolicy,
};
pub use uring::{UringCounts, UringRelay};
