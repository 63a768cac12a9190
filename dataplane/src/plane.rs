//! The data plane as the control plane sees it: start the cores, submit batches, read replies,
//! events and load. This is the whole interface between `control` and the cores.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use shardcast_core::command::{BatchReply, Command, Event, SocketId};
use shardcast_core::drop_reason::{Counters, DropReason};
use shardcast_core::ids::RouterId;
use shardcast_core::shard::RtcpLimits;

use crate::runtime::{HopPacket, RouterExport};
use crate::socket::SocketOptions;

/// How to start the data plane.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// One entry per core: the CPU to pin its executor to (`None`: not pinned).
    pub cpus: Vec<Option<usize>>,
    /// The shared media port, bound with SO_REUSEPORT on every core (port 0: pick one).
    pub shared_addr: SocketAddr,
    /// Socket buffer sizes for every media socket.
    pub socket_options: SocketOptions,
    /// Capacity of each control → core ring, in batches.
    pub ring_capacity: usize,
    /// Datagrams received per `recvmmsg`.
    pub recv_batch: usize,
    /// Capacity of each core's inbound inter-core packet ring (leaky: full drops, counted).
    pub hop_capacity: usize,
    /// Capacity of the core → control event channel (leaky).
    pub event_capacity: usize,
    /// Accept the test hooks `CoreOp::Stall` and `CoreOp::Panic` (tests only).
    pub allow_test_hooks: bool,
    /// Steer shared-port flows to their owner core in the kernel (a reuseport eBPF program; needs
    /// CAP_BPF, falls back to software hops with a warning). Only with more than one core.
    pub kernel_steering: bool,
    /// Scheduling policy of every core's thread, set at its start (SCHED_FIFO needs CAP_SYS_NICE).
    pub sched_policy: crate::io::SchedPolicy,
    /// What peers' RTCP may make each core send (NACK retransmissions, SR fan-out).
    pub rtcp_limits: RtcpLimits,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            cpus: vec![None],
            shared_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            socket_options: SocketOptions::default(),
            ring_capacity: 256,
            recv_batch: 64,
            hop_capacity: 1024,
            event_capacity: 4096,
            allow_test_hooks: false,
            kernel_steering: true,
            sched_policy: crate::io::SchedPolicy::Other,
            rtcp_limits: RtcpLimits::default(),
        }
    }
}

/// What a core panicked by [`CoreOp::Panic`] says.
pub const PANIC_HOOK_MESSAGE: &str = "test hook: CoreOp::Panic";

/// One operation inside a [`CoreBatch`].
#[derive(Debug)]
pub enum CoreOp {
    /// A routing command, applied by the core's `Shard`.
    Route(Command),
    /// Take ownership of a bound, non-blocking UDP socket and start receiving on it.
    AttachSocket { id: SocketId, socket: UdpSocket },
    /// Stop receiving on a socket and close it.
    DetachSocket { id: SocketId },
    /// Test hook: block the core for this long (only with `allow_test_hooks`).
    Stall(Duration),
    /// Test hook: panic the core (only with `allow_test_hooks`), to exercise the panic policy —
    /// the process aborts, logging the core and the message ([`PANIC_HOOK_MESSAGE`]).
    Panic,
    /// Live handoff, on the owner: freeze the router between two packet batches, take it and its
    /// sockets out, steer its shared-port flows to core `to`, and pass it to `to` directly
    /// through that core's import ring (ahead of any datagram carried after it). Travels alone
    /// in its batch (a router handed over cannot be taken back by a later refusal).
    HandOff { router: RouterId, to: u16 },
    /// Live handoff, on the new owner: `Applied` once the router has been imported here.
    /// Travels alone in its batch.
    ConfirmImport { router: RouterId },
}

/// An ordered group of operations for one core, applied whole or not at all, between packet
/// batches, with one [`CoreReply`]. Every socket operation and test hook is checked first against
/// the core's sockets as the batch would leave them, then the routing commands are applied as one
/// `Shard` batch (itself whole or nothing), and only then the socket operations; a refusal at any
/// step leaves the core as it was. `HandOff` and `ConfirmImport` travel alone.
#[derive(Debug)]
pub struct CoreBatch {
    /// Per-core sequence number, consecutive from 1.
    pub seq: u64,
    pub ops: Vec<CoreOp>,
}

/// The single reply of core `core` to its batch `reply.seq()`.
#[derive(Debug)]
pub struct CoreReply {
    pub core: usize,
    pub reply: BatchReply,
    /// How long the core took to apply the batch.
    pub apply_ns: u64,
}

/// Per-core figures, published by the core between batches (never per packet).
#[derive(Debug, Default)]
pub struct CoreStats {
    pub(crate) packets_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) packets_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) routed: AtomicU64,
    pub(crate) outputs: AtomicU64,
    pub(crate) rtcp_terminated: AtomicU64,
    pub(crate) drops: [AtomicU64; DropReason::COUNT],
    pub(crate) batches_applied: AtomicU64,
    pub(crate) apply_ns_total: AtomicU64,
    pub(crate) apply_ns_max: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) hopped_out: AtomicU64,
    pub(crate) hopped_in: AtomicU64,
    pub(crate) piped_out: AtomicU64,
    pub(crate) piped_in: AtomicU64,
    pub(crate) retransmitted: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) socket_errors: AtomicU64,
    pub(crate) routers: AtomicU64,
    pub(crate) handoffs_in: AtomicU64,
    pub(crate) freeze_ns_max: AtomicU64,
    pub(crate) freeze_ns_total: AtomicU64,
    pub(crate) barrier_failures: AtomicU64,
}

/// A copy of [`CoreStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStatsSnapshot {
    pub counters: Counters,
    pub batches_applied: u64,
    pub apply_ns_total: u64,
    pub apply_ns_max: u64,
    /// Nanoseconds spent processing packets and batches (not waiting in `epoll_wait`).
    pub busy_ns: u64,
    pub wakeups: u64,
    pub events_dropped: u64,
    pub socket_errors: u64,
    pub routers: u64,
    /// Routers imported by a handoff, and how long they were frozen (export → import).
    pub handoffs_in: u64,
    pub freeze_ns_max: u64,
    pub freeze_ns_total: u64,
    /// Handoff barriers given up (a marker not sent, or not back within the deadline): the
    /// ordering guarantee of those handoffs was weakened, nothing was lost.
    pub barrier_failures: u64,
    /// Batches waiting in the control → core ring.
    pub ring_depth: u64,
}

impl CoreStats {
    pub(crate) fn publish(&self, c: &Counters) {
        let r = Ordering::Relaxed;
        self.packets_in.store(c.packets_in, r);
        self.bytes_in.store(c.bytes_in, r);
        self.packets_out.store(c.packets_out, r);
        self.bytes_out.store(c.bytes_out, r);
        self.routed.store(c.routed, r);
        self.outputs.store(c.outputs, r);
        self.rtcp_terminated.store(c.rtcp_terminated, r);
        self.hopped_out.store(c.hopped_out, r);
        self.hopped_in.store(c.hopped_in, r);
        self.piped_out.store(c.piped_out, r);
        self.piped_in.store(c.piped_in, r);
        self.retransmitted.store(c.retransmitted, r);
        for (a, v) in self.drops.iter().zip(c.drops.iter()) {
            a.store(*v, r);
        }
    }

    pub(crate) fn snapshot(&self, ring_depth: usize) -> CoreStatsSnapshot {
        let r = Ordering::Relaxed;
        let mut counters = Counters {
            packets_in: self.packets_in.load(r),
            bytes_in: self.bytes_in.load(r),
            routed: self.routed.load(r),
            rtcp_terminated: self.rtcp_terminated.load(r),
            packets_out: self.packets_out.load(r),
            bytes_out: self.bytes_out.load(r),
            outputs: self.outputs.load(r),
            hopped_out: self.hopped_out.load(r),
            hopped_in: self.hopped_in.load(r),
            piped_out: self.piped_out.load(r),
            piped_in: self.piped_in.load(r),
            retransmitted: self.retransmitted.load(r),
            drops: [0; DropReason::COUNT],
        };
        for (v, a) in counters.drops.iter_mut().zip(self.drops.iter()) {
            *v = a.load(r);
        }
        CoreStatsSnapshot {
            counters,
            batches_applied: self.batches_applied.load(r),
            apply_ns_total: self.apply_ns_total.load(r),
            apply_ns_max: self.apply_ns_max.load(r),
            busy_ns: self.busy_ns.load(r),
            wakeups: self.wakeups.load(r),
            events_dropped: self.events_dropped.load(r),
            socket_errors: self.socket_errors.load(r),
            routers: self.routers.load(r),
            handoffs_in: self.handoffs_in.load(r),
            freeze_ns_max: self.freeze_ns_max.load(r),
            freeze_ns_total: self.freeze_ns_total.load(r),
            barrier_failures: self.barrier_failures.load(r),
            ring_depth: ring_depth as u64,
        }
    }
}

/// The control plane's handle on one core.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    pub(crate) index: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) ring: Arc<ArrayQueue<CoreBatch>>,
    pub(crate) hops: Arc<ArrayQueue<HopPacket>>,
    pub(crate) imports: Arc<ArrayQueue<RouterExport>>,
    pub(crate) doorbell: Arc<crate::ring::Doorbell>,
    pub(crate) stats: Arc<CoreStats>,
}

impl CoreHandle {
    /// The core's index (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The CPU it is pinned to.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// Queues a batch and rings the doorbell (a core waiting in `epoll_wait` wakes). Never blocks: a full ring
    /// gives the batch back ("core busy").
    pub fn submit(&self, batch: CoreBatch) -> Result<(), CoreBatch> {
        self.ring.push(batch)?;
        self.doorbell.ring();
        Ok(())
    }

    /// The core's published figures.
    pub fn stats(&self) -> CoreStatsSnapshot {
        self.stats.snapshot(self.ring.len())
    }
}

/// Identifies a (core, event) pair on the event channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreEvent {
    pub core: usize,
    pub event: Event,
}
