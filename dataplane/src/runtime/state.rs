//! What one core owns: [`CoreState`], made of the parts the other files of `runtime` own (each
//! a plain field, so the packet path reaches them without an indirection), the socket table
//! they share, and the figures the core publishes.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::Sender;
use shardcast_core::command::SocketId;
use shardcast_core::drop_reason::DropReason;
use shardcast_core::shard::{RtcpLimits, Shard};

use super::apply::Commands;
use super::egress::Egress;
use super::handoff::Handoff;
use super::hop::{Hops, Peer};
use super::run_loop::{Ingress, DOORBELL_TOKEN};
use crate::io::{Epoll, RecvBatch};
use crate::plane::{CoreEvent, CoreHandle, CoreReply, CoreStats};
use crate::steering::KernelSteering;

/// Largest datagram a receive slot holds (a bigger one is cut by the kernel, flagged `MSG_TRUNC`,
/// and dropped whole, counted `truncated`).
const SLOT_SIZE: usize = 2048;

/// Everything one core owns. Only the core's thread touches it: the run loop holds it by
/// `&mut`, and the helpers it calls borrow the parts they need.
pub(super) struct CoreState {
    pub(super) index: usize,
    pub(super) shard: Shard,
    /// The clock's zero for `Shard::forward`'s `now_us`.
    pub(super) origin: Instant,
    pub(super) sockets: Sockets,
    pub(super) ingress: Ingress,
    pub(super) egress: Egress,
    pub(super) commands: Commands,
    pub(super) hops: Hops,
    pub(super) handoff: Handoff,
    /// Kernel steering of the shared port, when loaded (shared by the cores; see `steering`).
    pub(super) kernel: Option<Arc<KernelSteering>>,
    pub(super) report: Report,
}

/// How a core is connected to the rest of the data plane (everything `DataPlane::start` hands
/// the core's thread).
pub(super) struct Wiring {
    pub(super) handle: CoreHandle,
    /// Every core's inbound rings, this one's included (indexed by core).
    pub(super) peers: Vec<Peer>,
    pub(super) replies: Sender<CoreReply>,
    pub(super) events: Sender<CoreEvent>,
    pub(super) kernel: Option<Arc<KernelSteering>>,
    /// Datagrams received per `recvmmsg`.
    pub(super) recv_batch: usize,
    pub(super) allow_test_hooks: bool,
    pub(super) rtcp_limits: RtcpLimits,
    /// This core's socket of the shared port.
    pub(super) shared: UdpSocket,
    /// Datagrams that reached `shared` during the steering probe (counted as dropped).
    pub(super) stray: u64,
}

/// The core's sockets, by id, and the readiness set they are in.
pub(super) struct Sockets {
    map: HashMap<SocketId, SocketEntry>,
    /// The readiness set: every attached socket and the doorbell.
    pub(super) epoll: Epoll,
}

struct SocketEntry {
    fd: RawFd,
    /// The socket itself: closed when detached, moved whole when its router is handed over.
    socket: UdpSocket,
}

/// The figures the core publishes to its [`CoreStats`] (between batches, never per packet), and
/// its event channel.
pub(super) struct Report {
    pub(super) stats: Arc<CoreStats>,
    pub(super) last_publish: Instant,
    pub(super) events: Sender<CoreEvent>,
    pub(super) events_dropped: u64,
    pub(super) socket_errors: u64,
    pub(super) busy_ns: u64,
    pub(super) wakeups: u64,
}

impl CoreState {
    /// A core with nothing but its shared socket, its doorbell (`doorbell_rx`) in both of its
    /// readiness sets, and no router.
    pub(super) fn new(w: Wiring, doorbell_rx: RawFd) -> Result<CoreState, String> {
        let index = w.handle.index;
        let epoll = |max| Epoll::new(max).map_err(|e| format!("core {index}: epoll: {e}"));
        let (epoll, barrier_epoll) = (epoll(256)?, epoll(4)?);
        let now = Instant::now();
        let mut state = CoreState {
            index,
            shard: Shard::with_limits(w.rtcp_limits),
            origin: now,
            sockets: Sockets { map: HashMap::new(), epoll },
            ingress: Ingress {
                // Room for several sockets' batches, sent together (`flush_outputs`).
                recv: RecvBatch::new(w.recv_batch.max(1) * 4, SLOT_SIZE),
                slots: w.recv_batch.clamp(1, 1024),
            },
            egress: Egress::new(),
            commands: Commands::new(&w.handle, w.replies, w.allow_test_hooks),
            hops: Hops::new(w.handle.hops.clone(), w.peers),
            handoff: Handoff::new(w.handle.imports.clone(), barrier_epoll, now),
            kernel: w.kernel,
            report: Report {
                stats: w.handle.stats.clone(),
                last_publish: now,
                events: w.events,
                events_dropped: 0,
                socket_errors: 0,
                busy_ns: 0,
                wakeups: 0,
            },
        };
        let c = state.shard.counters_mut();
        c.packets_in += w.stray;
        c.drops[DropReason::UnknownTransport as usize] += w.stray;
        state.attach_socket(SocketId::SHARED, w.shared);
        let watched = state.sockets.epoll.add(doorbell_rx, DOORBELL_TOKEN).is_ok()
            && state.handoff.barrier_epoll.add(doorbell_rx, DOORBELL_TOKEN).is_ok();
        if !watched {
            return Err(format!("core {index}: cannot watch the doorbell"));
        }
        Ok(state)
    }

    /// Takes ownership of `socket` as `id` and starts watching it (a failure to watch it is
    /// counted in `socket_errors`).
    pub(super) fn attach_socket(&mut self, id: SocketId, socket: UdpSocket) {
        if self.sockets.insert(id, socket).is_err() {
            self.report.socket_errors += 1;
        }
    }

    /// Stores every figure in the core's `CoreStats`.
    pub(super) fn publish(&mut self) {
        let rp = &mut self.report;
        rp.last_publish = Instant::now();
        let s = &rp.stats;
        s.publish(self.shard.counters());
        let r = Ordering::Relaxed;
        s.batches_applied.store(self.commands.batches_applied, r);
        s.apply_ns_total.store(self.commands.apply_ns_total, r);
        s.apply_ns_max.store(self.commands.apply_ns_max, r);
        s.busy_ns.store(rp.busy_ns, r);
        s.wakeups.store(rp.wakeups, r);
        s.events_dropped.store(rp.events_dropped + self.shard.events_dropped(), r);
        s.socket_errors.store(rp.socket_errors, r);
        s.routers.store(self.shard.router_count() as u64, r);
        s.handoffs_in.store(self.handoff.handoffs_in, r);
        s.freeze_ns_total.store(self.handoff.freeze_ns_total, r);
        s.freeze_ns_max.store(self.handoff.freeze_ns_max, r);
        s.barrier_failures.store(self.handoff.barrier_failures, r);
    }
}

impl Sockets {
    /// The descriptor of socket `id`, if attached.
    #[inline]
    pub(super) fn fd(&self, id: SocketId) -> Option<RawFd> {
        self.map.get(&id).map(|e| e.fd)
    }

    pub(super) fn contains(&self, id: SocketId) -> bool {
        self.map.contains_key(&id)
    }

    /// Adds `socket` as `id` (replacing nothing: the caller checked `id` is free); `Err` if the
    /// readiness set refused it (it is kept, and closed with the others).
    fn insert(&mut self, id: SocketId, socket: UdpSocket) -> std::io::Result<()> {
        let fd = socket.as_raw_fd();
        let watched = self.epoll.add(fd, u64::from(id.0));
        self.map.insert(id, SocketEntry { fd, socket });
        watched
    }

    /// Stops watching socket `id` and gives it back (dropping it closes it).
    pub(super) fn remove(&mut self, id: SocketId) -> Option<UdpSocket> {
        let e = self.map.remove(&id)?;
        self.epoll.remove(e.fd);
        Some(e.socket)
    }

    /// Closes every socket.
    pub(super) fn clear(&mut self) {
        self.map.clear();
    }
}
