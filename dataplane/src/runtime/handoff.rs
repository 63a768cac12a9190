//! The live handoff of a router from one core to another, in the order it happens:
//!
//! 1. **Export** (`hand_off`, on the old owner, for `CoreOp::HandOff`): between two packet
//!    batches the router leaves the `Shard`, its dedicated sockets leave the epoll set whole (the
//!    kernel keeps queueing what arrives), its shared-port flows are steered to the target in the
//!    software table, and the router is pushed into the target's import ring.
//! 2. **Import** (`poll_imports`, on the target, before any command or carried datagram): the
//!    router joins the target's `Shard`, a barrier is raised — the target reads no socket — and a
//!    barrier marker goes into the old owner's hop ring. `CoreOp::ConfirmImport` answers
//!    `Applied` once the router is here.
//! 3. **Marker at the old owner** (`on_marker`): everything it carried to the target before the
//!    marker is ahead of it in the target's ring. With kernel steering, a settled move's flows
//!    are switched to the target here (`switch_kernel_steering`); then the marker goes back.
//! 4. **Marker back at the target** (`on_marker`): the barrier lifts and the target reads its
//!    sockets. Nothing it reads can overtake a datagram the old owner was still carrying.
//! 5. **Deadline** (`lift_expired_barrier`): a marker not back within `BARRIER_DEADLINE` lifts the
//!    barrier, counted in `barrier_failures` (only that handoff's ordering guarantee is lost).

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use shardcast_core::command::{CommandError, ErrorKind, Outcome, SocketId, SteerKey};
use shardcast_core::ids::RouterId;
use shardcast_core::router::Router;

use super::hop::{HopPacket, Peer};
use super::state::CoreState;
use crate::io::Epoll;

/// How long a core behind a barrier waits before re-checking it.
pub(super) const BARRIER_POLL: Duration = Duration::from_millis(1);
/// The longest a handoff barrier is waited for before it is lifted (and counted).
pub(super) const BARRIER_DEADLINE: Duration = Duration::from_millis(200);

/// A router and the sockets it owns, in transit from one core to another (through the target's
/// import ring).
#[derive(Debug)]
pub(crate) struct RouterExport {
    id: RouterId,
    router: Router,
    /// Its dedicated sockets, moved whole: the kernel sockets, and the datagrams queued on them
    /// during the move, are the same.
    sockets: Vec<(SocketId, UdpSocket)>,
    /// When the owner froze it (for the freeze-time figure).
    frozen_at: Instant,
    /// The core it comes from.
    from: u16,
}

/// A flow whose kernel steering moves to `to` once `to` has imported `router`.
#[derive(Clone, Copy)]
struct PendingSwitch {
    key: SteerKey,
    router: RouterId,
    to: u16,
}

/// One core's side of the handoffs it takes part in.
pub(super) struct Handoff {
    /// Routers handed to this core, waiting to be imported.
    pub(super) imports: Arc<ArrayQueue<RouterExport>>,
    /// While raised, sockets are not read.
    pub(super) barrier: Barrier,
    /// The doorbell alone: what a core behind a barrier waits on.
    pub(super) barrier_epoll: Epoll,
    /// Flows of routers handed away whose kernel steering still points here.
    pending_switch: Vec<PendingSwitch>,
    /// Barriers given up (a marker not sent, or not back in time), the barrier's own included.
    pub(super) barrier_failures: u64,
    /// Routers imported, and how long they were frozen (export → import).
    pub(super) handoffs_in: u64,
    pub(super) freeze_ns_total: u64,
    pub(super) freeze_ns_max: u64,
}

impl Handoff {
    pub(super) fn new(imports: Arc<ArrayQueue<RouterExport>>, barrier_epoll: Epoll, now: Instant) -> Handoff {
        Handoff {
            imports,
            barrier: Barrier::new(now),
            barrier_epoll,
            pending_switch: Vec::new(),
            barrier_failures: 0,
            handoffs_in: 0,
            freeze_ns_total: 0,
            freeze_ns_max: 0,
        }
    }

    /// True while this core reads no socket.
    #[inline]
    pub(super) fn behind_barrier(&self) -> bool {
        self.barrier.is_up()
    }

    /// Step 5: a marker that never comes back (its ring stayed full) must not leave this core
    /// deaf: past the deadline the barrier lifts, counted.
    pub(super) fn lift_expired_barrier(&mut self) {
        if self.barrier.lift_expired(Instant::now()) {
            self.barrier_failures += 1;
        }
    }
}

/// The import barrier of one core: raised once per router imported, lowered when that import's
/// marker comes home (or could not be sent), lifted whole when the oldest pending one is past
/// `BARRIER_DEADLINE`. Model-checked with the marker's round trip in `loom_models::barrier`.
#[derive(Debug)]
pub(super) struct Barrier {
    /// Markers out: while non-zero, the core reads no socket.
    pending: u32,
    /// When the first pending marker was sent.
    since: Instant,
}

impl Barrier {
    pub(super) fn new(now: Instant) -> Barrier {
        Barrier { pending: 0, since: now }
    }

    #[inline]
    pub(super) fn is_up(&self) -> bool {
        self.pending > 0
    }

    /// An import: one marker more to wait for.
    pub(super) fn raise(&mut self, now: Instant) {
        if self.pending == 0 {
            self.since = now;
        }
        self.pending += 1;
    }

    /// A marker came home, or could not be sent: one fewer.
    pub(super) fn lower(&mut self) {
        self.pending = self.pending.saturating_sub(1);
    }

    /// Lifts the barrier if it has been up longer than `BARRIER_DEADLINE` at `now`: true if it
    /// did (the caller counts it; markers still out are then ignored when they come home).
    pub(super) fn lift_expired(&mut self, now: Instant) -> bool {
        if self.pending > 0 && now.saturating_duration_since(self.since) > BARRIER_DEADLINE {
            self.pending = 0;
            return true;
        }
        false
    }
}

/// Tries to push `item` up to `tries` times, spinning between tries on a full ring; gives it
/// back if the ring stayed full.
pub(super) fn push_bounded<T>(
    mut item: T,
    tries: usize,
    mut push: impl FnMut(T) -> Result<(), T>,
) -> Result<(), T> {
    for _ in 0..tries {
        match push(item) {
            Ok(()) => return Ok(()),
            Err(back) => {
                item = back;
                std::hint::spin_loop();
            }
        }
    }
    Err(item)
}

/// Pushes a barrier marker to `core`; markers are never dropped while the ring has room soon.
// The ring gives a refused packet back by value (`ArrayQueue::push`); nothing is boxed per push.
#[allow(clippy::result_large_err)]
fn push_marker(peers: &[Peer], core: u16, marker: HopPacket) -> bool {
    let Some(peer) = peers.get(usize::from(core)) else { return false };
    // The ring drains in microseconds; a bounded wait keeps the barrier (and no packet is lost
    // if it fails: only the ordering guarantee is weakened, and counted).
    if push_bounded(marker, 100_000, |m| peer.hops.push(m)).is_err() {
        return false;
    }
    peer.doorbell.ring();
    true
}

impl CoreState {
    /// Step 1, `CoreOp::HandOff` on the owner: freezes `router` and passes it, with its sockets,
    /// to core `to`. `NotFound` if it is not here; refused, with nothing changed, if `to` is not
    /// another core or its import ring is full.
    pub(super) fn hand_off(&mut self, router: RouterId, to: u16) -> Result<Outcome, CommandError> {
        if usize::from(to) >= self.hops.peers.len() || usize::from(to) == self.index {
            return Err(CommandError {
                kind: ErrorKind::InvalidArgument,
                message: "handoff target core does not exist or is this core",
            });
        }
        let Some(r) = self.shard.take_router(router) else { return Ok(Outcome::NotFound) };
        // Pipes to and from it go to `to` from now on (`runtime/pipe.rs`).
        self.shard.note_moved(router, to);
        // From now on this core carries the router's shared-port datagrams to `to`; the kernel
        // is switched to `to` once `to` has the router (its marker comes back).
        for key in r.shared_port_keys() {
            self.shard.set_steering(key, router, Some(to));
            if self.kernel.is_some() {
                // A newer move of the same flow replaces an older one.
                self.handoff.pending_switch.retain(|p| p.key != key);
                self.handoff.pending_switch.push(PendingSwitch { key, router, to });
            }
        }
        // The sockets themselves move: every datagram queued on them while the router moves is
        // read by the new owner.
        let ids: Vec<SocketId> = r.transports().map(|(_, t)| t.socket()).filter(|s| !s.is_shared()).collect();
        let sockets =
            ids.into_iter().filter_map(|id| self.sockets.remove(id).map(|socket| (id, socket))).collect();
        let export = RouterExport {
            id: router,
            router: r,
            sockets,
            frozen_at: Instant::now(),
            from: self.index as u16,
        };
        let peer = &self.hops.peers[usize::from(to)];
        let Err(export) = peer.imports.push(export) else {
            peer.doorbell.ring();
            return Ok(Outcome::Applied);
        };
        // The target's import ring is full: take the router back; nothing was lost.
        let RouterExport { router: r, sockets, .. } = export;
        for key in r.shared_port_keys() {
            self.shard.set_steering(key, router, None);
        }
        self.handoff.pending_switch.retain(|p| p.router != router || p.to != to);
        let restored = self.shard.insert_router(router, r);
        for (id, socket) in sockets {
            self.attach_socket(id, socket);
        }
        restored?;
        Err(CommandError { kind: ErrorKind::InvalidState, message: "target core busy (import ring full)" })
    }

    /// Step 2, on the target: takes over every router handed here, before any command or
    /// carried datagram is looked at, each behind a barrier.
    pub(super) fn poll_imports(&mut self) {
        while let Some(export) = self.handoff.imports.pop() {
            let RouterExport { id, router, sockets, frozen_at, from } = export;
            // Raised before the moved sockets join the epoll set: the run loop must not read
            // them before it lifts.
            self.handoff.barrier.raise(Instant::now());
            for key in router.shared_port_keys() {
                // This core owns the flow now: no steering for it here. The kernel keeps
                // steering it to the old owner until that core switches it (step 3).
                self.shard.set_steering(key, id, None);
            }
            if self.shard.insert_router(id, router).is_err() {
                // Cannot happen: router ids are unique process-wide; counted if it does.
                self.report.socket_errors += 1;
            }
            let freeze = frozen_at.elapsed().as_nanos() as u64;
            let h = &mut self.handoff;
            h.handoffs_in += 1;
            h.freeze_ns_total += freeze;
            h.freeze_ns_max = h.freeze_ns_max.max(freeze);
            for (sid, socket) in sockets {
                self.attach_socket(sid, socket);
            }
            // Datagrams of this router that this core carried to the old owner before the router
            // arrived may still sit in the old owner's ring: until the marker sent now comes back
            // through it, this core reads no socket, so nothing overtakes them.
            if !push_marker(&self.hops.peers, from, HopPacket::marker(self.index as u16)) {
                self.handoff.barrier.lower();
                self.handoff.barrier_failures += 1;
            }
            self.publish();
        }
    }

    /// `CoreOp::ConfirmImport` on the target: `Applied` once `router` has been imported here.
    pub(super) fn confirm_import(&mut self, router: RouterId) -> Outcome {
        self.poll_imports();
        if self.shard.router(router).is_some() {
            Outcome::Applied
        } else {
            Outcome::NotFound
        }
    }

    /// Steps 3 and 4: a barrier marker from core `origin` came out of this core's hop ring.
    pub(super) fn on_marker(&mut self, origin: u16, marker: HopPacket) {
        if usize::from(origin) == self.index {
            // Back home (step 4): one barrier fewer.
            self.handoff.barrier.lower();
            return;
        }
        // Core `origin` has imported a router from here (step 3): switch the kernel steering of
        // its flows to it, carrying it first everything steered here before the switch; then
        // send the marker back.
        self.switch_kernel_steering(origin);
        if !push_marker(&self.hops.peers, origin, marker) {
            self.handoff.barrier_failures += 1;
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
        if !self.handoff.pending_switch.iter().any(|p| p.to == origin) {
            return;
        }
        let me = self.index as u16;
        let (shard, behind) = (&self.shard, self.handoff.barrier.is_up());
        let mut due = Vec::new();
        self.handoff.pending_switch.retain(|p| {
            if p.to != origin {
                return true;
            }
            // Settled: no barrier here, the router not moved on since, and the kernel steers the
            // flow here now — so this core's socket is where its backlog is.
            let settled = !behind
                && shard.steering_of(&p.key) == Some((p.router, origin))
                && kernel.lookup(&p.key) == Some(me);
            if settled {
                due.push(*p);
            }
            false
        });
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
        let Some(fd) = self.sockets.fd(SocketId::SHARED) else { return };
        for _ in 0..64 {
            match self.receive_and_forward(SocketId::SHARED, fd) {
                Ok(n) if n < self.ingress.slots => break,
                Ok(_) => {}
                Err(_) => {
                    self.report.socket_errors += 1;
                    break;
                }
            }
        }
        // Before the next carried datagram reuses the output buffer.
        self.flush_outputs();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raised per import, lowered per marker home; the deadline runs from the first pending
    /// marker and lifts every one of them at once, reported once.
    #[test]
    fn barrier_counts_markers_and_lifts_past_its_deadline() {
        let t0 = Instant::now();
        let mut b = Barrier::new(t0);
        assert!(!b.is_up());
        b.raise(t0);
        b.raise(t0 + Duration::from_millis(150));
        b.lower();
        assert!(b.is_up(), "one marker still out");
        assert!(!b.lift_expired(t0 + BARRIER_DEADLINE), "not past the deadline of the first");
        assert!(b.lift_expired(t0 + BARRIER_DEADLINE + Duration::from_millis(1)));
        assert!(!b.is_up());
        assert!(!b.lift_expired(t0 + BARRIER_DEADLINE * 10), "lifted once");
        b.lower();
        assert!(!b.is_up(), "a late marker after the lift changes nothing");
        let mut ok = 0;
        assert!(push_bounded(7, 3, |v| if ok < 2 {
            ok += 1;
            Err(v)
        } else {
            Ok(())
        })
        .is_ok());
        assert_eq!(push_bounded(7, 2, Err), Err(7), "a ring that stays full gives it back");
    }
}
