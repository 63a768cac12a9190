//! The per-core run loop: one glommio `LocalExecutor` per data-plane CPU, pinned, owning its
//! sockets and its routers (`Shard`).
//!
//! The executor runs one task, `core_loop`: it applies waiting command batches, drains every
//! ready socket with `recvmmsg` — forwarding each receive batch and sending every output with
//! `sendmmsg`, grouped by egress socket — polling the command ring between receive batches, and
//! then waits in one `epoll_wait` on all its sockets and the doorbell. Nothing here is shared
//! with other cores but the rings and the published statistics (stored between batches, never
//! per packet).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use crossbeam::queue::ArrayQueue;
use shardcast_core::command::{BatchReply, CommandBatch, CommandError, ErrorKind, Outcome, SocketId};
use shardcast_core::drop_reason::DropReason;
use shardcast_core::shard::{Datagram, Output, OutputSink, PayloadRef, Shard, Verdict};

use crate::io::{RecvBatch, SendBatch, SendResult};
use crate::plane::{
    CoreBatch, CoreEvent, CoreHandle, CoreMessage, CoreOp, CoreStats, DataPlaneConfig, HopPacket,
    RouterExport, HOP_MTU,
};
use crate::ring::Doorbell;
use crate::socket::bind_udp;
use crate::steering::{KernelSteering, KernelSteeringStats};

/// Outputs one receive batch may produce before they are flushed early.
const OUTPUT_CAPACITY: usize = 8192;
/// Largest datagram a receive slot holds (bigger ones are truncated and counted malformed).
const SLOT_SIZE: usize = 2048;
/// Times a datagram may be carried between cores while its router keeps moving.
const MAX_HOPS: u8 = 8;
/// How long the core waits before re-checking a pending handoff barrier.
const BARRIER_POLL: Duration = Duration::from_millis(1);
/// The longest a handoff barrier is waited for before it is lifted (and counted).
const BARRIER_DEADLINE: Duration = Duration::from_millis(200);
/// The longest idle wait (the doorbell and sockets wake it earlier).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How often a busy core publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Outputs of one receive batch; refuses to grow (a full buffer is flushed by the caller).
struct OutputBuffer {
    items: Box<heapless::Vec<Output, OUTPUT_CAPACITY>>,
    /// Scratch for `send_outputs`: output indexes grouped by egress socket.
    order: Box<heapless::Vec<u32, OUTPUT_CAPACITY>>,
}

impl OutputSink for OutputBuffer {
    fn push(&mut self, output: Output) -> bool {
        self.items.push(output).is_ok()
    }
}

/// Where the payload an output references lives.
trait Datagrams {
    fn datagram(&self, index: u32) -> &[u8];
}

impl Datagrams for RecvBatch {
    fn datagram(&self, index: u32) -> &[u8] {
        self.get(index as usize).0
    }
}

impl Datagrams for HopPacket {
    fn datagram(&self, _index: u32) -> &[u8] {
        &self.data[..usize::from(self.len).min(HOP_MTU)]
    }
}

/// Another core's inbound packet ring and doorbell.
struct Peer {
    hops: Arc<ArrayQueue<HopPacket>>,
    imports: Arc<ArrayQueue<RouterExport>>,
    doorbell: Arc<Doorbell>,
}

struct SocketEntry {
    fd: RawFd,
    /// The socket itself: closed when detached, moved whole when its router is handed over.
    socket: UdpSocket,
}

/// Everything one core owns. Lives in an `Rc<RefCell<_>>` (the run loop and the helpers it
/// calls each borrow it briefly; nothing is held across a batch).
struct CoreState {
    index: usize,
    shard: Shard,
    ring: Arc<ArrayQueue<CoreBatch>>,
    doorbell: Arc<Doorbell>,
    replies: Sender<CoreMessage>,
    events: Sender<CoreEvent>,
    stats: Arc<CoreStats>,
    recv: RecvBatch,
    hops: Arc<ArrayQueue<HopPacket>>,
    imports: Arc<ArrayQueue<RouterExport>>,
    handoffs_in: u64,
    freeze_ns_total: u64,
    freeze_ns_max: u64,
    hop_scratch: Box<HopPacket>,
    peers: Vec<Peer>,
    outputs: OutputBuffer,
    send: SendBatch,
    sockets: HashMap<SocketId, SocketEntry>,
    origin: Instant,
    last_publish: Instant,
    allow_test_hooks: bool,
    events_dropped: u64,
    socket_errors: u64,
    busy_ns: u64,
    wakeups: u64,
    batches_applied: u64,
    apply_ns_total: u64,
    apply_ns_max: u64,
    stopping: bool,
    /// True while batches, imports or carried datagrams are being applied (re-entrancy guard).
    applying: bool,
    /// Datagrams one `recvmmsg` can return.
    recv_slots: usize,
    /// The readiness set: every attached socket and the doorbell.
    epoll: crate::io::Epoll,
    /// The doorbell alone: what a core behind a handoff barrier waits on.
    barrier_epoll: crate::io::Epoll,
    /// Handoff barriers pending: while non-zero, sockets are not read (see `poll_imports`).
    barriers: u32,
    /// When the first pending barrier was raised (`BARRIER_DEADLINE`).
    barrier_since: Instant,
    /// Barrier markers that could not be sent (ordering not guaranteed for that handoff).
    barrier_failures: u64,
    /// Kernel steering of the shared port, when loaded (shared by the cores; see `steering`).
    kernel: Option<Arc<KernelSteering>>,
    /// Flows of routers handed away whose kernel steering still points here.
    pending_switch: Vec<PendingSwitch>,
}

/// A flow whose kernel steering moves to `to` once `to` has imported `router`.
#[derive(Clone, Copy)]
struct PendingSwitch {
    key: shardcast_core::command::SteerKey,
    router: shardcast_core::ids::RouterId,
    to: u16,
}

type State = Rc<RefCell<CoreState>>;

impl CoreState {
    /// Applies every batch waiting in the ring, in order, each whole, each with one reply.
    fn poll_commands(state: &State) {
        // Not re-entrant: applying a batch can lead back here (`ConfirmImport` polls imports);
        // the next batch must never be applied in the middle of this one.
        if state.borrow().applying {
            return;
        }
        state.borrow_mut().applying = true;
        Self::poll_commands_inner(state);
        state.borrow_mut().applying = false;
    }

    fn poll_commands_inner(state: &State) {
        // Outputs point into the receive slots and name sockets a command may move or close:
        // they leave first.
        state.borrow_mut().flush_outputs();
        Self::poll_imports(state);
        loop {
            let Some(batch) = state.borrow().ring.pop() else { break };
            Self::apply_batch(state, batch);
        }
        Self::poll_hops(state);
    }

    /// Forwards datagrams other cores carried here, one at a time, in arrival order.
    fn poll_hops(state: &State) {
        let started = Instant::now();
        let mut any = false;
        loop {
            // A router handed here is always in the import ring before any datagram its old
            // owner carried here after the handoff: take it first, or such a datagram would be
            // carried back and forth while the import waits.
            if !state.borrow().imports.is_empty() {
                Self::poll_imports(state);
            }
            let Some(packet) = state.borrow().hops.pop() else { break };
            any = true;
            let mut st = state.borrow_mut();
            let st = &mut *st;
            if let Some(origin) = packet.marker {
                if usize::from(origin) == st.index {
                    st.barriers = st.barriers.saturating_sub(1);
                    continue;
                }
                // Core `origin` has imported a router from here: switch the kernel steering of
                // its flows to it, carrying it first everything steered here before the switch;
                // then send the marker back (see `steering`).
                st.switch_kernel_steering(origin);
                if !Self::push_marker(&st.peers, origin, packet) {
                    st.barrier_failures += 1;
                }
                continue;
            }
            *st.hop_scratch = packet;
            st.shard.count_hopped_in();
            let now_us = started.duration_since(st.origin).as_micros() as u64;
            let h = &*st.hop_scratch;
            let data = &h.data[..usize::from(h.len).min(HOP_MTU)];
            let dgram = Datagram { socket: SocketId::SHARED, source: h.source, data };
            if let Verdict::Hop { core } = st.shard.forward(0, &dgram, now_us, &mut st.outputs) {
                // The owner moved again while this datagram was in flight: carry it once more.
                let mut again = (*st.hop_scratch).clone();
                again.hops += 1;
                if again.hops > MAX_HOPS {
                    st.shard.counters_mut().hopped_out -= 1;
                    st.shard.counters_mut().drop(DropReason::UnknownTransport);
                } else {
                    Self::hop_packet(&mut st.shard, &st.peers, core, again);
                }
            }
            Self::send_outputs(&mut st.shard, &mut st.send, &*st.hop_scratch, &mut st.outputs, &st.sockets);
        }
        if any {
            let mut st = state.borrow_mut();
            st.busy_ns += started.elapsed().as_nanos() as u64;
            st.publish();
        }
    }

    /// Pushes a barrier marker to `core`; markers are never dropped while the ring has room soon.
    fn push_marker(peers: &[Peer], core: u16, mut marker: HopPacket) -> bool {
        let Some(peer) = peers.get(usize::from(core)) else { return false };
        // The ring drains in microseconds; a bounded wait keeps the barrier (and no packet is
        // lost if it fails: only the ordering guarantee is weakened, and counted).
        for _ in 0..100_000 {
            match peer.hops.push(marker) {
                Ok(()) => {
                    peer.doorbell.ring();
                    return true;
                }
                Err(m) => {
                    marker = m;
                    std::hint::spin_loop();
                }
            }
        }
        false
    }

    /// Carries a datagram to the core that owns its router.
    fn hop_packet(shard: &mut Shard, peers: &[Peer], core: u16, packet: HopPacket) {
        let counters = shard.counters_mut();
        let Some(peer) = peers.get(usize::from(core)) else {
            counters.hopped_out -= 1;
            counters.drop(DropReason::UnknownTransport);
            return;
        };
        if usize::from(packet.len) > HOP_MTU {
            counters.hopped_out -= 1;
            counters.drop(DropReason::Malformed);
            return;
        }
        if peer.hops.push(packet).is_err() {
            counters.hopped_out -= 1;
            counters.drop(DropReason::RingFull);
        } else {
            peer.doorbell.ring();
        }
    }

    fn apply_batch(state: &State, batch: CoreBatch) {
        let started = Instant::now();
        let seq = batch.seq;
        let mut outcomes = Vec::with_capacity(batch.ops.len());
        let mut exported = None;
        let mut rejected = None;
        // Routing commands are grouped so the shard applies consecutive ones as one all-or-nothing
        // batch; socket operations between them are applied in order.
        let mut pending: Vec<shardcast_core::command::Command> = Vec::new();
        let mut base_index = 0usize;
        let flush_routes = |state: &State,
                            pending: &mut Vec<shardcast_core::command::Command>,
                            outcomes: &mut Vec<Outcome>,
                            base: usize|
         -> Option<(usize, CommandError)> {
            if pending.is_empty() {
                return None;
            }
            let cb = CommandBatch { seq, commands: std::mem::take(pending) };
            let mut st = state.borrow_mut();
            match st.shard.apply_batch(&cb) {
                BatchReply::Applied { outcomes: o, .. } => {
                    outcomes.extend(o);
                    // The kernel map follows the tables once they changed (see `steering`).
                    if let Some(k) = &st.kernel {
                        for c in &cb.commands {
                            if let shardcast_core::command::Command::SetSteering { key, core, .. } = c {
                                // New flows only: a moving flow is switched by the handoff.
                                k.steer_new(key, *core);
                            }
                        }
                    }
                    None
                }
                BatchReply::Rejected { index, error, .. } => Some((base + index, error)),
            }
        };
        for (i, op) in batch.ops.into_iter().enumerate() {
            if rejected.is_some() {
                break;
            }
            match op {
                CoreOp::Route(c) => {
                    if pending.is_empty() {
                        base_index = i;
                    }
                    pending.push(c);
                }
                other => {
                    rejected = flush_routes(state, &mut pending, &mut outcomes, base_index);
                    if rejected.is_some() {
                        break;
                    }
                    match Self::apply_op(state, other) {
                        Ok((o, e)) => {
                            outcomes.push(o);
                            if e.is_some() {
                                exported = e;
                            }
                        }
                        Err(err) => rejected = Some((i, err)),
                    }
                }
            }
        }
        if rejected.is_none() {
            rejected = flush_routes(state, &mut pending, &mut outcomes, base_index);
        }
        let reply = match rejected {
            None => BatchReply::Applied { seq, outcomes },
            Some((index, error)) => BatchReply::Rejected { seq, index, error },
        };
        let apply_ns = started.elapsed().as_nanos() as u64;
        let mut st = state.borrow_mut();
        st.batches_applied += 1;
        st.apply_ns_total += apply_ns;
        st.apply_ns_max = st.apply_ns_max.max(apply_ns);
        let core = st.index;
        // The reply channel is sized for every batch the ring can hold; a send can only fail if
        // the control plane is gone, and then there is nobody to answer.
        let _ = st.replies.try_send(CoreMessage::Reply { core, reply, exported, apply_ns });
        st.publish();
    }

    fn apply_op(state: &State, op: CoreOp) -> Result<(Outcome, Option<RouterExport>), CommandError> {
        match op {
            CoreOp::Route(_) => Ok((Outcome::Applied, None)),
            CoreOp::AttachSocket { id, socket } => {
                if id.is_shared() || state.borrow().sockets.contains_key(&id) {
                    return Err(CommandError {
                        kind: ErrorKind::InvalidState,
                        message: "socket id already attached",
                    });
                }
                attach_socket(state, id, socket);
                Ok((Outcome::Applied, None))
            }
            CoreOp::DetachSocket { id } => {
                if id.is_shared() {
                    return Err(CommandError {
                        kind: ErrorKind::InvalidArgument,
                        message: "the shared port cannot be detached",
                    });
                }
                let mut st = state.borrow_mut();
                match st.sockets.remove(&id) {
                    Some(e) => {
                        st.epoll.remove(e.fd);
                        drop(e.socket);
                        Ok((Outcome::Applied, None))
                    }
                    None => Ok((Outcome::NotFound, None)),
                }
            }
            CoreOp::Stall(d) => {
                if !state.borrow().allow_test_hooks {
                    return Err(CommandError {
                        kind: ErrorKind::InvalidArgument,
                        message: "test hooks are disabled",
                    });
                }
                std::thread::sleep(d);
                Ok((Outcome::Applied, None))
            }
            CoreOp::HandOff { router, to } => {
                let mut st = state.borrow_mut();
                if usize::from(to) >= st.peers.len() || usize::from(to) == st.index {
                    return Err(CommandError {
                        kind: ErrorKind::InvalidArgument,
                        message: "handoff target core does not exist or is this core",
                    });
                }
                let Some(r) = st.shard.take_router(router) else {
                    return Ok((Outcome::NotFound, None));
                };
                // From now on this core carries the router's shared-port datagrams to `to`; the
                // kernel is switched to `to` once `to` has the router (its marker comes back).
                for key in r.shared_port_keys() {
                    st.shard.set_steering(key, router, Some(to));
                    if st.kernel.is_some() {
                        // A newer move of the same flow replaces an older one.
                        st.pending_switch.retain(|p| p.key != key);
                        st.pending_switch.push(PendingSwitch { key, router, to });
                    }
                }
                let ids: Vec<SocketId> =
                    r.transports().map(|(_, t)| t.socket()).filter(|s| !s.is_shared()).collect();
                let mut sockets = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(e) = st.sockets.remove(&id) {
                        // The socket itself moves: every datagram queued on it while the router
                        // moves is read by the new owner.
                        st.epoll.remove(e.fd);
                        sockets.push((id, e.socket));
                    }
                }
                let export = RouterExport {
                    id: router,
                    router: r,
                    sockets,
                    frozen_at: Instant::now(),
                    from: st.index as u16,
                };
                let peer = &st.peers[usize::from(to)];
                if let Err(export) = peer.imports.push(export) {
                    // The target's import ring is full: take the router back; nothing was lost.
                    let RouterExport { router: r, sockets, .. } = export;
                    for key in r.shared_port_keys() {
                        st.shard.set_steering(key, router, None);
                    }
                    st.pending_switch.retain(|p| p.router != router || p.to != to);
                    let restored = st.shard.insert_router(router, r);
                    drop(st);
                    for (id, socket) in sockets {
                        attach_socket(state, id, socket);
                    }
                    restored?;
                    return Err(CommandError {
                        kind: ErrorKind::InvalidState,
                        message: "target core busy (import ring full)",
                    });
                }
                peer.doorbell.ring();
                Ok((Outcome::Applied, None))
            }
            CoreOp::ConfirmImport { router } => {
                CoreState::poll_imports(state);
                let present = state.borrow().shard.router(router).is_some();
                Ok((if present { Outcome::Applied } else { Outcome::NotFound }, None))
            }
        }
    }

    /// Takes over routers handed to this core, before any command or carried datagram is looked at.
    fn poll_imports(state: &State) {
        loop {
            let Some(export) = state.borrow().imports.pop() else { return };
            let RouterExport { id, router, sockets, frozen_at, from } = export;
            let mut st = state.borrow_mut();
            // Barrier (see below), raised before the moved sockets join the epoll set: the run
            // loop must not read them before it lifts.
            if st.barriers == 0 {
                st.barrier_since = Instant::now();
            }
            st.barriers += 1;
            for key in router.shared_port_keys() {
                // This core owns the flow now: no steering for it here. The kernel keeps
                // steering it to the old owner until that core switches it (see `steering`).
                st.shard.set_steering(key, id, None);
            }
            if st.shard.insert_router(id, router).is_err() {
                // Cannot happen: router ids are unique process-wide; counted if it does.
                st.socket_errors += 1;
            }
            let freeze = frozen_at.elapsed().as_nanos() as u64;
            st.handoffs_in += 1;
            st.freeze_ns_total += freeze;
            st.freeze_ns_max = st.freeze_ns_max.max(freeze);
            drop(st);
            for (sid, socket) in sockets {
                attach_socket(state, sid, socket);
            }
            // Barrier: datagrams of this router that this core carried to the old owner before
            // the router arrived may still sit in the old owner's ring. Until a marker sent now
            // comes back through it, this core reads no socket, so nothing overtakes them.
            let mut st = state.borrow_mut();
            let marker = HopPacket {
                source: SocketAddr::from(([0, 0, 0, 0], 0)),
                hops: 0,
                marker: Some(st.index as u16),
                len: 0,
                data: [0; HOP_MTU],
            };
            if !Self::push_marker(&st.peers, from, marker) {
                st.barriers = st.barriers.saturating_sub(1);
                st.barrier_failures += 1;
            }
            st.publish();
        }
    }

    /// Switches the kernel steering of a router handed from here to `origin`, once `origin`'s
    /// barrier marker comes back through this core (it has the router): the shared socket is
    /// drained before and after the switch, so `origin` is carried every datagram that landed
    /// here first. Only a settled move is switched — this core behind no barrier of its own, the
    /// router not moved again since; otherwise the flows keep landing here and are carried in
    /// software (one hop, in order). Switching in those nested cases reordered datagrams under
    /// thousands of moves per second (BENCHMARKS.md), so it is not done.
    fn switch_kernel_steering(&mut self, origin: u16) {
        let Some(kernel) = self.kernel.clone() else { return };
        if !self.pending_switch.iter().any(|p| p.to == origin) {
            return;
        }
        let me = self.index as u16;
        let due: Vec<PendingSwitch> = {
            let (shard, barriers) = (&self.shard, self.barriers);
            let mut due = Vec::new();
            self.pending_switch.retain(|p| {
                if p.to != origin {
                    return true;
                }
                // Settled: no barrier here, the router not moved on since, and the kernel steers
                // the flow here now — so this core's socket is where its backlog is.
                let settled = barriers == 0
                    && shard.steering_of(&p.key) == Some((p.router, origin))
                    && kernel.lookup(&p.key) == Some(me);
                if settled {
                    due.push(*p);
                }
                false
            });
            due
        };
        if due.is_empty() {
            return;
        }
        self.drain_shared();
        for p in &due {
            kernel.steer(&p.key, Some(p.to));
        }
        self.drain_shared();
    }

    /// Reads the shared socket until it is empty (bounded), forwarding or carrying every datagram.
    fn drain_shared(&mut self) {
        let Some(fd) = self.sockets.get(&SocketId::SHARED).map(|e| e.fd) else { return };
        for _ in 0..64 {
            match self.receive_and_forward(SocketId::SHARED, fd) {
                Ok(n) if n < self.recv_slots => break,
                Ok(_) => {}
                Err(_) => {
                    self.socket_errors += 1;
                    break;
                }
            }
        }
        // Before the next carried datagram reuses the output buffer.
        self.flush_outputs();
    }

    /// Receives up to one `recvmmsg` batch from `fd` into the free slots of the core's receive
    /// batch and forwards it. The outputs wait in `outputs` until `flush_outputs` — which runs
    /// before any command, carried datagram or wait, and when the slots run out — so what every
    /// socket ready in one pass received leaves in one `sendmmsg` per egress socket. Returns the
    /// datagrams read.
    fn receive_and_forward(&mut self, socket: SocketId, fd: RawFd) -> std::io::Result<usize> {
        let started = Instant::now();
        if self.recv.free_slots() < self.recv_slots {
            self.flush_outputs();
        }
        let first = self.recv.len();
        let n = self.recv.recv_append(fd, self.recv_slots)?;
        if n == 0 {
            return Ok(0);
        }
        let now_us = started.duration_since(self.origin).as_micros() as u64;
        for i in first..first + n {
            let (data, source) = self.recv.get(i);
            if self.outputs.items.len() + 1024 > OUTPUT_CAPACITY {
                Self::send_outputs(
                    &mut self.shard,
                    &mut self.send,
                    &self.recv,
                    &mut self.outputs,
                    &self.sockets,
                );
            }
            let verdict =
                self.shard.forward(i as u32, &Datagram { socket, source, data }, now_us, &mut self.outputs);
            if let Verdict::Hop { core } = verdict {
                let mut packet = HopPacket {
                    source,
                    hops: 1,
                    marker: None,
                    len: data.len().min(u16::MAX as usize) as u16,
                    data: [0; HOP_MTU],
                };
                let len = data.len().min(HOP_MTU);
                packet.data[..len].copy_from_slice(&data[..len]);
                Self::hop_packet(&mut self.shard, &self.peers, core, packet);
            }
        }
        while let Some(event) = self.shard.pop_event() {
            if self.events.try_send(CoreEvent { core: self.index, event }).is_err() {
                self.events_dropped += 1;
            }
        }
        self.busy_ns += started.elapsed().as_nanos() as u64;
        if started.duration_since(self.last_publish) >= PUBLISH_EVERY {
            self.publish();
        }
        Ok(n)
    }

    /// Sends the outputs waiting since the last flush and frees the receive slots they point into.
    fn flush_outputs(&mut self) {
        if !self.outputs.items.is_empty() {
            let started = Instant::now();
            Self::send_outputs(&mut self.shard, &mut self.send, &self.recv, &mut self.outputs, &self.sockets);
            self.busy_ns += started.elapsed().as_nanos() as u64;
        }
        self.recv.clear();
    }

    /// Sends every buffered output, one `sendmmsg` run per egress socket, in output order per
    /// socket (so each destination sees packets in forwarding order).
    fn send_outputs(
        shard: &mut Shard,
        send: &mut SendBatch,
        recv: &impl Datagrams,
        outputs: &mut OutputBuffer,
        sockets: &HashMap<SocketId, SocketEntry>,
    ) {
        let OutputBuffer { items, order } = outputs;
        // Group by egress socket, keeping output order within each socket: sort the indexes by
        // (socket, index) — in place, no allocation, n log n however many sockets.
        order.clear();
        for i in 0..items.len() {
            let _ = order.push(i as u32);
        }
        order.sort_unstable_by_key(|&i| (items[i as usize].socket, i));
        let mut k = 0usize;
        while k < order.len() {
            let socket = items[order[k] as usize].socket;
            let fd = sockets.get(&socket).map(|e| e.fd);
            // Counted locally: the stored payloads borrow the shard while the batch is built.
            let mut counts = shardcast_core::drop_reason::Counters::default();
            let store: &Shard = shard;
            let mut scope = send.scope();
            while k < order.len() && items[order[k] as usize].socket == socket {
                let o = &items[order[k] as usize];
                k += 1;
                let Some(fd) = fd else {
                    counts.drop(DropReason::SendError);
                    continue;
                };
                let payload: &[u8] = match o.payload {
                    PayloadRef::None => &[],
                    PayloadRef::Datagram { index, offset } => {
                        recv.datagram(index).get(usize::from(offset)..).unwrap_or(&[])
                    }
                    PayloadRef::Stored { router, producer, seq } => {
                        let p = store.stored_payload(router, producer, seq);
                        if p.is_empty() {
                            // Overwritten in the store since the NACK was answered: never send
                            // a header without its payload.
                            counts.drop(DropReason::RetransmissionEvicted);
                            continue;
                        }
                        p
                    }
                };
                if !scope.push(o.dest, o.header(), payload) {
                    Self::count_send(&mut counts, scope.flush(fd));
                    if !scope.push(o.dest, o.header(), payload) {
                        // Only a header over 64 bytes can be refused by an empty batch.
                        counts.drop(DropReason::SendError);
                    }
                }
            }
            if let Some(fd) = fd {
                if !scope.is_empty() {
                    Self::count_send(&mut counts, scope.flush(fd));
                }
            }
            drop(scope);
            shard.counters_mut().add(&counts);
        }
        items.clear();
    }

    fn count_send(counters: &mut shardcast_core::drop_reason::Counters, r: SendResult) {
        counters.packets_out += r.sent as u64;
        counters.bytes_out += r.sent_bytes as u64;
        counters.drops[DropReason::SendError as usize] += r.failed as u64;
        counters.drops[DropReason::SendWouldBlock as usize] += r.would_block as u64;
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        let s = &self.stats;
        s.publish(self.shard.counters());
        let r = Ordering::Relaxed;
        s.batches_applied.store(self.batches_applied, r);
        s.apply_ns_total.store(self.apply_ns_total, r);
        s.apply_ns_max.store(self.apply_ns_max, r);
        s.busy_ns.store(self.busy_ns, r);
        s.wakeups.store(self.wakeups, r);
        s.events_dropped.store(self.events_dropped + self.shard.events_dropped(), r);
        s.socket_errors.store(self.socket_errors, r);
        s.routers.store(self.shard.routers().count() as u64, r);
        s.handoffs_in.store(self.handoffs_in, r);
        s.freeze_ns_total.store(self.freeze_ns_total, r);
        s.barrier_failures.store(self.barrier_failures, r);
        s.freeze_ns_max.store(self.freeze_ns_max, r);
    }
}

fn attach_socket(state: &State, id: SocketId, socket: UdpSocket) {
    let fd = socket.as_raw_fd();
    let mut st = state.borrow_mut();
    if st.epoll.add(fd, u64::from(id.0)).is_err() {
        st.socket_errors += 1;
    }
    st.sockets.insert(id, SocketEntry { fd, socket });
}

/// Token of the doorbell in the core's epoll set (socket ids are `u32`).
const DOORBELL_TOKEN: u64 = u64::MAX;
/// Receive batches one ready socket gets per pass before the next ready socket's turn: a
/// flooded socket cannot starve the others of the same core.
const BATCHES_PER_TURN: usize = 4;

/// The core's run loop: apply batches, read every ready socket in `recvmmsg` batches (applying
/// batches between them, taking turns between sockets), then wait in one `epoll_wait` for a
/// datagram or the doorbell.
///
/// It runs as the only task of the core's pinned glommio executor and blocks in `epoll_wait`
/// itself rather than awaiting glommio's reactor: glommio's park costs a process-wide
/// `membarrier` and several `io_uring_enter` per wake-up (BENCHMARKS.md), where this costs one
/// `epoll_wait`.
fn core_loop(state: &State, doorbell_rx: &std::os::unix::net::UnixStream, stop: &AtomicBool) {
    // Sockets with data to read; `still` those that filled their last batch (more is queued).
    let mut ready: Vec<SocketId> = Vec::with_capacity(1024);
    let mut still: Vec<SocketId> = Vec::with_capacity(1024);
    let mut buf = [0u8; 64];
    let doorbell = state.borrow().doorbell.clone();
    loop {
        doorbell.rearm();
        CoreState::poll_commands(state);
        if stop.load(Ordering::Acquire) {
            state.borrow_mut().stopping = true;
            return;
        }
        if state.borrow().barriers == 0 {
            for id in ready.drain(..) {
                let mut turns = 0;
                loop {
                    let (fd, slots) = {
                        let st = state.borrow();
                        if st.barriers > 0 {
                            // Read again once the barrier lifts.
                            still.push(id);
                            break;
                        }
                        match st.sockets.get(&id) {
                            Some(e) => (e.fd, st.recv_slots),
                            None => break,
                        }
                    };
                    let result = state.borrow_mut().receive_and_forward(id, fd);
                    match result {
                        // A short batch drained the socket; level-triggered epoll reports it
                        // again if more arrives.
                        Ok(n) if n < slots => break,
                        Ok(_) => {
                            CoreState::poll_commands(state);
                            turns += 1;
                            if turns == BATCHES_PER_TURN {
                                still.push(id);
                                break;
                            }
                        }
                        Err(_) => {
                            // Pending ICMP errors surface here once each; counted, never fatal.
                            state.borrow_mut().socket_errors += 1;
                            break;
                        }
                    }
                }
            }
            std::mem::swap(&mut ready, &mut still);
        }
        let mut st = state.borrow_mut();
        st.flush_outputs();
        st.publish();
        // Behind a handoff barrier only the doorbell matters (the returning marker rings it):
        // the sockets stay unread, and would keep a level-triggered wait returning at once.
        // With sockets still holding data, only look for newly ready ones (no wait).
        let st = &mut *st;
        if st.barriers > 0 && st.barrier_since.elapsed() > BARRIER_DEADLINE {
            // A marker that never comes back (its ring stayed full) must not leave this core deaf:
            // lift the barrier, counted; only the ordering guarantee of that handoff is lost.
            st.barriers = 0;
            st.barrier_failures += 1;
        }
        let behind = st.barriers > 0;
        let timeout = if behind {
            BARRIER_POLL
        } else if !ready.is_empty() {
            Duration::ZERO
        } else {
            IDLE_WAIT
        };
        let set = if behind { &mut st.barrier_epoll } else { &mut st.epoll };
        let n = set.wait(timeout);
        if timeout > Duration::ZERO {
            st.wakeups += 1;
        }
        for i in 0..n {
            match set.token(i) {
                Some(DOORBELL_TOKEN) => {
                    // Drain the wake-up bytes; EAGAIN ends it.
                    while let Ok(k) = (&*doorbell_rx).read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                    }
                }
                Some(token) => {
                    let id = SocketId(token as u32);
                    if !ready.contains(&id) {
                        ready.push(id);
                    }
                }
                None => {}
            }
        }
    }
}

/// The running data plane: one pinned executor thread per core.
#[derive(Debug)]
pub struct DataPlane {
    cores: Vec<CoreHandle>,
    replies: Receiver<CoreMessage>,
    events: Receiver<CoreEvent>,
    shared_addr: SocketAddr,
    kernel: Option<Arc<KernelSteering>>,
    stop: Arc<AtomicBool>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl DataPlane {
    /// Binds the shared port on every core and starts the cores; returns once each is running.
    pub fn start(config: DataPlaneConfig) -> std::io::Result<DataPlane> {
        let n = config.cpus.len().max(1);
        let mut opts = config.socket_options.clone();
        opts.reuse_port = true;
        let (first, _) = bind_udp(config.shared_addr, &opts)?;
        let shared_addr = first.local_addr()?;
        let mut shared = vec![first];
        // One after the other, in core order: socket `i` of the reuseport group is core `i`'s,
        // which the kernel steering relies on.
        for _ in 1..n {
            shared.push(bind_udp(shared_addr, &opts)?.0);
        }
        let mut stray = vec![0u64; n];
        let kernel = if config.kernel_steering && n > 1 {
            match KernelSteering::start(&shared, &mut stray) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    tracing::warn!(
                        "shared port {shared_addr}: no kernel steering ({e}); datagrams landing on \
                         the wrong core are carried to their owner in software"
                    );
                    None
                }
            }
        } else {
            None
        };
        let (reply_tx, replies) = crossbeam::channel::bounded(n * (config.ring_capacity + 1));
        let (event_tx, events) = crossbeam::channel::bounded(config.event_capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = crossbeam::channel::bounded::<Result<(), String>>(n);
        let mut cores = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        let mut doorbell_rxs = Vec::with_capacity(n);
        for index in 0..n {
            let (doorbell, doorbell_rx) = Doorbell::pair()?;
            doorbell_rxs.push(doorbell_rx);
            cores.push(CoreHandle {
                index,
                cpu: config.cpus.get(index).copied().flatten(),
                ring: Arc::new(ArrayQueue::new(config.ring_capacity.max(1))),
                hops: Arc::new(ArrayQueue::new(config.hop_capacity.max(1))),
                imports: Arc::new(ArrayQueue::new(64)),
                doorbell: Arc::new(doorbell),
                stats: Arc::new(CoreStats::default()),
            });
        }
        for ((index, shared_socket), doorbell_rx) in shared.into_iter().enumerate().zip(doorbell_rxs) {
            let handle = &cores[index];
            let cpu = handle.cpu;
            let ring = handle.ring.clone();
            let hops = handle.hops.clone();
            let imports = handle.imports.clone();
            let doorbell = handle.doorbell.clone();
            let stats = handle.stats.clone();
            let peers_of: Vec<Peer> = cores
                .iter()
                .map(|c| Peer {
                    hops: c.hops.clone(),
                    imports: c.imports.clone(),
                    doorbell: c.doorbell.clone(),
                })
                .collect();
            let placement = match cpu {
                Some(c) => glommio::Placement::Fixed(c),
                None => glommio::Placement::Unbound,
            };
            let replies = reply_tx.clone();
            let events = event_tx.clone();
            let stop = stop.clone();
            let ready = ready_tx.clone();
            let recv_batch = config.recv_batch.max(1);
            let allow_test_hooks = config.allow_test_hooks;
            let core_kernel = kernel.clone();
            let stray_here = stray[index];
            let sched_policy = config.sched_policy;
            let handle = glommio::LocalExecutorBuilder::new(placement)
                .name(&format!("shardcast-core-{index}"))
                .io_memory(1 << 20)
                .spawn(move || async move {
                    if let Err(e) = crate::io::set_current_thread_policy(sched_policy) {
                        let _ = ready.send(Err(format!("core {index}: cores.data_plane_policy: {e}")));
                        return;
                    }
                    let now = Instant::now();
                    let (epoll, barrier_epoll) = match (crate::io::Epoll::new(256), crate::io::Epoll::new(4))
                    {
                        (Ok(a), Ok(b)) => (a, b),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = ready.send(Err(format!("core {index}: epoll: {e}")));
                            return;
                        }
                    };
                    let state = Rc::new(RefCell::new(CoreState {
                        index,
                        shard: Shard::new(),
                        ring,
                        doorbell,
                        replies,
                        events,
                        stats,
                        // Room for several sockets' batches, sent together (`flush_outputs`).
                        recv: RecvBatch::new(recv_batch * 4, SLOT_SIZE),
                        hops,
                        hop_scratch: Box::new(HopPacket {
                            source: SocketAddr::from(([0, 0, 0, 0], 0)),
                            hops: 0,
                            marker: None,
                            len: 0,
                            data: [0; HOP_MTU],
                        }),
                        peers: peers_of,
                        imports,
                        handoffs_in: 0,
                        freeze_ns_total: 0,
                        freeze_ns_max: 0,
                        outputs: OutputBuffer { items: Box::default(), order: Box::default() },
                        send: SendBatch::new(1024),
                        sockets: HashMap::new(),
                        origin: now,
                        last_publish: now,
                        allow_test_hooks,
                        events_dropped: 0,
                        socket_errors: 0,
                        busy_ns: 0,
                        wakeups: 0,
                        batches_applied: 0,
                        apply_ns_total: 0,
                        apply_ns_max: 0,
                        stopping: false,
                        applying: false,
                        recv_slots: recv_batch.clamp(1, 1024),
                        epoll,
                        barrier_epoll,
                        barriers: 0,
                        barrier_since: now,
                        barrier_failures: 0,
                        kernel: core_kernel,
                        pending_switch: Vec::new(),
                    }));
                    {
                        // Datagrams that reached this core's socket during the steering probe.
                        let mut st = state.borrow_mut();
                        let c = st.shard.counters_mut();
                        c.packets_in += stray_here;
                        c.drops[DropReason::UnknownTransport as usize] += stray_here;
                    }
                    attach_socket(&state, SocketId::SHARED, shared_socket);
                    let watched = {
                        let st = state.borrow();
                        st.epoll.add(doorbell_rx.as_raw_fd(), DOORBELL_TOKEN).is_ok()
                            && st.barrier_epoll.add(doorbell_rx.as_raw_fd(), DOORBELL_TOKEN).is_ok()
                    };
                    if !watched {
                        let _ = ready.send(Err(format!("core {index}: cannot watch the doorbell")));
                        return;
                    }
                    let _ = ready.send(Ok(()));
                    core_loop(&state, &doorbell_rx, &stop);
                    state.borrow_mut().sockets.clear();
                })
                .map_err(|e| std::io::Error::other(format!("core {index}: cannot start executor: {e}")))?;
            threads.push(handle);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            match ready_rx.recv_timeout(left) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Err(std::io::Error::other("a core did not start within 10 s")),
            }
        }
        Ok(DataPlane { cores, replies, events, shared_addr, kernel, stop, threads })
    }

    pub fn cores(&self) -> &[CoreHandle] {
        &self.cores
    }
    pub fn shared_addr(&self) -> SocketAddr {
        self.shared_addr
    }
    /// The kernel steering of the shared port: `None` when it is off (one core, disabled, or the
    /// program could not be loaded — the start-up log says why).
    pub fn kernel_steering(&self) -> Option<KernelSteeringStats> {
        self.kernel.as_ref().map(|k| k.stats())
    }
    /// A handle on the kernel steering that outlives the data plane's owner (for metrics).
    pub fn kernel_steering_handle(&self) -> Option<Arc<KernelSteering>> {
        self.kernel.clone()
    }
    /// The core the kernel steers `key`'s datagrams to, if it steers them (tests, diagnostics).
    pub fn kernel_steered_to(&self, key: &shardcast_core::command::SteerKey) -> Option<u16> {
        self.kernel.as_ref().and_then(|k| k.lookup(key))
    }
    /// One reply per submitted batch, from every core.
    pub fn replies(&self) -> &Receiver<CoreMessage> {
        &self.replies
    }
    /// Events from every core (leaky: a full channel drops, counted per core).
    pub fn events(&self) -> &Receiver<CoreEvent> {
        &self.events
    }

    /// Stops every core; `Err` lists the cores that did not stop before the deadline (their
    /// threads are left behind, never waited on forever).
    pub fn shutdown(self, deadline: Duration) -> Result<(), Vec<usize>> {
        self.stop.store(true, Ordering::Release);
        for c in &self.cores {
            c.doorbell.ring();
        }
        let until = Instant::now() + deadline;
        let (done_tx, done_rx) = crossbeam::channel::bounded(self.threads.len());
        for (i, t) in self.threads.into_iter().enumerate() {
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let _ = t.join();
                let _ = done_tx.send(i);
            });
        }
        let mut stopped = vec![false; self.cores.len()];
        for _ in 0..self.cores.len() {
            match done_rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(i) => stopped[i] = true,
                Err(_) => break,
            }
        }
        let stuck: Vec<usize> = stopped.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i).collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(stuck)
        }
    }
}
