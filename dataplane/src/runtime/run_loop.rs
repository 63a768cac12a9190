//! The core's run loop: apply waiting batches, read every ready socket in `recvmmsg` batches
//! (applying batches between them, taking turns between sockets), send the outputs, then wait in
//! one `epoll_wait` for a datagram or the doorbell.
//!
//! It runs as the only task of the core's pinned glommio executor and blocks in `epoll_wait`
//! itself rather than awaiting glommio's reactor: glommio's park costs a process-wide
//! `membarrier` and several `io_uring_enter` per wake-up (BENCHMARKS.md), where this costs one
//! `epoll_wait`.

use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shardcast_core::command::SocketId;
use shardcast_core::drop_reason::DropReason;
use shardcast_core::shard::{Datagram, Verdict};

use super::egress::{OUTPUT_CAPACITY, OUTPUT_HEADROOM};
use super::handoff::BARRIER_POLL;
use super::hop::HopPacket;
use super::state::CoreState;
use crate::io::RecvBatch;
use crate::plane::CoreEvent;

/// Token of the doorbell in the core's epoll sets (socket ids are `u32`).
pub(super) const DOORBELL_TOKEN: u64 = u64::MAX;
/// Receive batches one ready socket gets per pass before the next ready socket's turn: a
/// flooded socket cannot starve the others of the same core.
const BATCHES_PER_TURN: usize = 4;
/// The longest idle wait (the doorbell and sockets wake it earlier).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How often a busy core publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Where received datagrams wait until their outputs are sent.
pub(super) struct Ingress {
    /// Receive slots for several sockets' batches (their outputs leave together).
    pub(super) recv: RecvBatch,
    /// Datagrams one `recvmmsg` can return.
    pub(super) slots: usize,
}

impl CoreState {
    /// Runs until `stop` is set (and the doorbell rung). `doorbell_rx` is the doorbell's read end.
    pub(super) fn run(&mut self, doorbell_rx: &UnixStream, stop: &AtomicBool) {
        // Sockets with data to read; `still` those that filled their last batch (more is queued).
        let mut ready: Vec<SocketId> = Vec::with_capacity(1024);
        let mut still: Vec<SocketId> = Vec::with_capacity(1024);
        loop {
            self.commands.doorbell.rearm();
            self.poll_commands();
            if stop.load(Ordering::Acquire) {
                return;
            }
            if !self.handoff.behind_barrier() {
                for id in ready.drain(..) {
                    self.read_socket(id, &mut still);
                }
                std::mem::swap(&mut ready, &mut still);
            }
            self.flush_outputs();
            self.publish();
            self.wait(doorbell_rx, &mut ready);
        }
    }

    /// Reads socket `id` in batches until it is drained or its turn is over (then it goes into
    /// `still`, as it does when a barrier is raised meanwhile: it is read again once it lifts).
    fn read_socket(&mut self, id: SocketId, still: &mut Vec<SocketId>) {
        let mut turns = 0;
        loop {
            if self.handoff.behind_barrier() {
                still.push(id);
                return;
            }
            let Some(fd) = self.sockets.fd(id) else { return };
            match self.receive_and_forward(id, fd) {
                // A short batch drained the socket; level-triggered epoll reports it again if
                // more arrives.
                Ok(n) if n < self.ingress.slots => return,
                Ok(_) => {
                    self.poll_commands();
                    turns += 1;
                    if turns == BATCHES_PER_TURN {
                        still.push(id);
                        return;
                    }
                }
                Err(_) => {
                    // Pending ICMP errors surface here once each; counted, never fatal.
                    self.report.socket_errors += 1;
                    return;
                }
            }
        }
    }

    /// Receives up to one `recvmmsg` batch from `fd` into the free slots of the core's receive
    /// batch and forwards it. The outputs wait in the egress buffer until `flush_outputs` — which
    /// runs before any command, carried datagram or wait, and when the slots run out — so what
    /// every socket ready in one pass received leaves in one `sendmmsg` per egress socket.
    /// Returns the datagrams read.
    pub(super) fn receive_and_forward(&mut self, socket: SocketId, fd: RawFd) -> std::io::Result<usize> {
        let started = Instant::now();
        if self.ingress.recv.free_slots() < self.ingress.slots {
            self.flush_outputs();
        }
        let first = self.ingress.recv.len();
        let n = self.ingress.recv.recv_append(fd, self.ingress.slots)?;
        if n == 0 {
            return Ok(0);
        }
        let now_us = started.duration_since(self.origin).as_micros() as u64;
        for i in first..first + n {
            let (data, source) = self.ingress.recv.get(i);
            if self.ingress.recv.is_truncated(i) {
                // Larger than a slot: the kernel cut it. Received and dropped whole, never
                // forwarded cut (it counts in `packets_in`, so ingress stays balanced).
                let c = self.shard.counters_mut();
                c.packets_in += 1;
                c.bytes_in += data.len() as u64;
                c.drop(DropReason::Truncated);
                continue;
            }
            if self.egress.outputs.len() + OUTPUT_HEADROOM > OUTPUT_CAPACITY {
                self.egress.send(&mut self.shard, &self.ingress.recv, &self.sockets);
            }
            let dgram = Datagram { socket, source, data };
            if let Verdict::Hop { core } =
                self.shard.forward(i as u32, &dgram, now_us, &mut self.egress.outputs)
            {
                self.hops.carry(&mut self.shard, core, HopPacket::new(source, data));
            }
            self.hops.carry_pipes(&mut self.shard, data);
        }
        self.report_events();
        self.report.busy_ns += started.elapsed().as_nanos() as u64;
        if started.duration_since(self.report.last_publish) >= PUBLISH_EVERY {
            self.publish();
        }
        Ok(n)
    }

    /// Hands the shard's events (a comedia latch) to the control plane, after every pass that
    /// forwarded datagrams: read from a socket or carried here from another core.
    pub(super) fn report_events(&mut self) {
        while let Some(event) = self.shard.pop_event() {
            if self.report.events.try_send(CoreEvent { core: self.index, event }).is_err() {
                self.report.events_dropped += 1;
            }
        }
    }

    /// Waits in one `epoll_wait` and adds the sockets it reports to `ready`. Behind a handoff
    /// barrier only the doorbell matters (the returning marker rings it): the sockets stay
    /// unread, and would keep a level-triggered wait returning at once. With sockets still
    /// holding data, it only looks for newly ready ones (no wait).
    fn wait(&mut self, doorbell_rx: &UnixStream, ready: &mut Vec<SocketId>) {
        self.handoff.lift_expired_barrier();
        let behind = self.handoff.behind_barrier();
        let timeout = if behind {
            BARRIER_POLL
        } else if !ready.is_empty() {
            Duration::ZERO
        } else {
            IDLE_WAIT
        };
        let set = if behind { &mut self.handoff.barrier_epoll } else { &mut self.sockets.epoll };
        let n = set.wait(timeout);
        if timeout > Duration::ZERO {
            self.report.wakeups += 1;
        }
        for i in 0..n {
            match set.token(i) {
                Some(DOORBELL_TOKEN) => {
                    // Drain the wake-up bytes; EAGAIN ends it.
                    let mut buf = [0u8; 64];
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
