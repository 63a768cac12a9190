//! `Shard`: the routers one core owns, the indexes that find them from a packet, and the two
//! entry points a core calls: [`Shard::apply_batch`] between packet batches and
//! [`Shard::forward`] per received datagram.
//!
//! Forwarding is a pure function of (datagram, tables, `now_us`): it writes outputs — a rewritten
//! header plus a reference to the payload inside the received datagram, never a copy — into a
//! caller-owned [`OutputSink`], and counts every packet it does not forward under a
//! [`DropReason`]. It allocates nothing and takes no lock.
//!
//! Files: this one holds the shard, its commands, the handoff (take/insert) and the steering
//! table; `output.rs` what goes in and out; `index.rs` the transport lookup maps; `rtp.rs` the
//! RTP path; `rtcp/` the RTCP path, one file per packet kind (`rtcp/nack.rs` answers NACKs);
//! `pipe.rs` pipes between routers (same core in the same pass, other cores through `PipeHop`s);
//! `switch_tests.rs` tests a consumer's source switch end to end through both entry points.

mod index;
mod output;
mod pipe;
mod rtcp;
mod rtp;
#[cfg(test)]
mod switch_tests;
#[cfg(test)]
mod tests;

pub use output::{Datagram, Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
pub use pipe::{PipeCargo, PipeHop, MAX_PIPES, PIPE_TRANSPORT};
pub use rtcp::{RtcpLimits, KEYFRAME_REQUEST_INTERVAL_US};

use std::collections::HashMap;

use crate::command::{BatchReply, Command, CommandBatch, CommandError, Event, Outcome, SteerKey};
use crate::demux::{classify, PacketClass};
use crate::drop_reason::{Counters, DropReason};
use crate::ids::{ProducerId, RouterId, SeqNo, Ssrc};
use crate::queue::{LeakyQueue, Overflow};
use crate::router::Router;
use crate::rtp::FIXED_HEADER_LEN;
use crate::transport::Remote;
use index::TransportIndex;

/// Capacity of the per-shard event queue (leaky: oldest events are dropped and counted).
pub const EVENT_QUEUE_LEN: usize = 256;

/// The routing tables of one core.
#[derive(Debug)]
pub struct Shard {
    routers: HashMap<RouterId, Router>,
    /// The routers' transports by socket, remote address and comedia SSRC.
    index: TransportIndex,
    /// Shared-port flows owned by routers on other cores: where to carry them.
    steering: HashMap<SteerKey, (RouterId, u16)>,
    events: LeakyQueue<Event, EVENT_QUEUE_LEN>,
    counters: Counters,
    /// What peers' RTCP may make this core send.
    limits: RtcpLimits,
    /// What the last `forward` left for pipes to other cores (`pipe.rs`).
    pipe_hops: pipe::PipeHops,
    /// Routers handed from here to another core, and which: a pipe's packet for one of them
    /// that was in flight at the move is carried on there (`pipe.rs`).
    moved: HashMap<RouterId, u16>,
}

/// What [`Shard::forward`] decided about a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded, terminated or dropped (counted) here.
    Done,
    /// It belongs to a router on core `core`: carry it there unchanged, then count it with
    /// [`Shard::count_hopped_out`] (or, if it cannot be carried, as a drop).
    Hop { core: u16 },
}

impl Default for Shard {
    fn default() -> Self {
        Self::new()
    }
}

impl Shard {
    /// A shard with the default [`RtcpLimits`].
    pub fn new() -> Self {
        Self::with_limits(RtcpLimits::default())
    }

    /// A shard whose peers' RTCP is bounded by `limits`.
    pub fn with_limits(limits: RtcpLimits) -> Self {
        Self {
            routers: HashMap::new(),
            index: TransportIndex::default(),
            steering: HashMap::new(),
            events: LeakyQueue::new(Overflow::DropOldest),
            counters: Counters::default(),
            limits,
            pipe_hops: pipe::PipeHops::new(),
            moved: HashMap::new(),
        }
    }

    /// Applies a whole batch, or nothing of it, and returns its single reply.
    pub fn apply_batch(&mut self, batch: &CommandBatch) -> BatchReply {
        // A single command validates before it mutates; longer batches keep a snapshot of every
        // router they touch so a refusal at command `i` can undo commands `0..i`.
        let mut snapshots: Vec<(RouterId, Option<Router>)> = Vec::new();
        // Steering entries live outside the routers: kept too, as they were before the batch.
        let mut steering: Vec<(SteerKey, Option<(RouterId, u16)>)> = Vec::new();
        if batch.commands.len() > 1 {
            for c in &batch.commands {
                let id = c.router();
                if !snapshots.iter().any(|(r, _)| *r == id) {
                    snapshots.push((id, self.routers.get(&id).cloned()));
                }
                if let Command::SetSteering { key, .. } = c {
                    if !steering.iter().any(|(k, _)| k == key) {
                        steering.push((*key, self.steering.get(key).copied()));
                    }
                }
            }
        }
        let mut outcomes = Vec::with_capacity(batch.commands.len());
        for (index, command) in batch.commands.iter().enumerate() {
            match self.apply(command) {
                Ok(o) => outcomes.push(o),
                Err(error) => {
                    for (key, entry) in steering {
                        match entry {
                            Some(e) => self.steering.insert(key, e),
                            None => self.steering.remove(&key),
                        };
                    }
                    for (id, snapshot) in snapshots {
                        if let Some(current) = self.routers.remove(&id) {
                            self.index.remove_router(id, &current);
                        }
                        if let Some(r) = snapshot {
                            self.index.insert_router(id, &r);
                            self.routers.insert(id, r);
                        }
                    }
                    return BatchReply::Rejected { seq: batch.seq, index, error };
                }
            }
        }
        BatchReply::Applied { seq: batch.seq, outcomes }
    }

    /// Applies one command; validates before mutating.
    pub fn apply(&mut self, command: &Command) -> Result<Outcome, CommandError> {
        let outcome = |found: bool| if found { Outcome::Applied } else { Outcome::NotFound };
        let rid = command.router();
        if let Command::CreateRouter { router } = command {
            if self.routers.contains_key(router) {
                return Err(CommandError::state("router id already exists"));
            }
            self.routers.insert(*router, Router::new());
            return Ok(Outcome::Applied);
        }
        if let Command::CloseRouter { router } = command {
            let Some(r) = self.routers.remove(router) else { return Ok(Outcome::NotFound) };
            self.index.remove_router(*router, &r);
            return Ok(Outcome::Applied);
        }
        if let Command::SetSteering { router, key, core } = command {
            let found = match core {
                Some(c) => {
                    self.steering.insert(*key, (*router, *c));
                    true
                }
                None => self.steering.remove(key).is_some(),
            };
            return Ok(outcome(found));
        }
        let Some(mut router) = self.routers.remove(&rid) else { return Ok(Outcome::NotFound) };
        let result = self.apply_to_router(rid, &mut router, command).map(outcome);
        self.routers.insert(rid, router);
        result
    }

    fn apply_to_router(
        &mut self,
        rid: RouterId,
        router: &mut Router,
        command: &Command,
    ) -> Result<bool, CommandError> {
        match command {
            Command::CreateRouter { .. } | Command::CloseRouter { .. } | Command::SetSteering { .. } => {
                Ok(true)
            }
            Command::CreatePlainTransport { transport, options, .. } => {
                if !options.socket.is_shared() && self.index.has_socket(options.socket) {
                    return Err(CommandError::state("socket already used by another transport"));
                }
                if options.comedia_source.is_some() && !(options.comedia && options.remote.is_none()) {
                    return Err(CommandError::argument("comedia_source needs a comedia transport"));
                }
                if options.socket.is_shared() {
                    if let Some(remote) = options.remote {
                        if self.index.has_remote(remote) {
                            return Err(CommandError::state(
                                "remote address already used on the shared port",
                            ));
                        }
                    }
                }
                let created = router.create_transport(*transport, options)?;
                if let Some(t) = router.transports.get(transport) {
                    self.index.insert(&(rid, *transport), t);
                }
                Ok(created)
            }
            Command::ConnectTransport { transport, remote, .. } => {
                let Some(t) = router.transports.get_mut(transport) else { return Ok(false) };
                if let Remote::Known(_) = t.remote {
                    return Err(CommandError::state("transport is already connected"));
                }
                if t.socket.is_shared() && self.index.has_remote(*remote) {
                    return Err(CommandError::state("remote address already used on the shared port"));
                }
                self.index.set_remote(&(rid, *transport), t, *remote);
                Ok(true)
            }
            Command::CloseTransport { transport, .. } => {
                // Closing cascades to consumers on other transports: re-index the router.
                self.index.remove_router(rid, router);
                let closed = router.close_transport(*transport).is_some();
                self.index.insert_router(rid, router);
                Ok(closed)
            }
            Command::CreateProducer { transport, producer, options, .. } => {
                if let Some(t) = router.transports.get(transport).filter(|t| t.socket.is_shared()) {
                    if t.remote == Remote::Comedia && self.index.has_comedia_ssrc(options.ssrc) {
                        return Err(CommandError::state(
                            "ssrc already awaited by another comedia transport on the shared port",
                        ));
                    }
                    if let Remote::Known(remote) = t.remote {
                        if !self.index.flow_free(&(rid, *transport), remote, options.ssrc, true) {
                            return Err(CommandError::state(
                                "ssrc already used from this remote address on the shared port",
                            ));
                        }
                    }
                }
                let created = router.create_producer(*transport, *producer, options)?;
                if created {
                    if let Some(t) = router.transports.get(transport) {
                        self.index.insert(&(rid, *transport), t);
                    }
                }
                Ok(created)
            }
            Command::CloseProducer { producer, .. } => {
                // Closing cascades to its consumers on other transports: re-index the router.
                self.index.remove_router(rid, router);
                let closed = router.close_producer(*producer);
                self.index.insert_router(rid, router);
                Ok(closed)
            }
            Command::PauseProducer { producer, .. } => Ok(router.set_producer_paused(*producer, true)),
            Command::ResumeProducer { producer, .. } => Ok(router.set_producer_paused(*producer, false)),
            Command::CreateConsumer { transport, consumer, options, .. } => {
                let key = (rid, *transport);
                let Some(t) = router.transports.get(transport) else { return Ok(false) };
                if let (true, Remote::Known(remote)) = (t.socket.is_shared(), t.remote) {
                    if !self.index.flow_free(&key, remote, options.ssrc, false) {
                        return Err(CommandError::state(
                            "consumer ssrc already used towards this remote address on the shared port",
                        ));
                    }
                }
                self.index.remove(&key, t);
                let created = router.create_consumer(*transport, *consumer, options);
                if let Some(t) = router.transports.get(transport) {
                    self.index.insert(&key, t);
                }
                created
            }
            Command::CloseConsumer { consumer, .. } => {
                let Some(tid) = router.consumers.get(consumer).map(|c| c.transport()) else {
                    return Ok(false);
                };
                if let Some(t) = router.transports.get(&tid) {
                    self.index.remove(&(rid, tid), t);
                }
                let closed = router.close_consumer(*consumer);
                if let Some(t) = router.transports.get(&tid) {
                    self.index.insert(&(rid, tid), t);
                }
                Ok(closed)
            }
            Command::PauseConsumer { consumer, .. } => Ok(router.set_consumer_paused(*consumer, true)),
            Command::ResumeConsumer { consumer, .. } => Ok(router.set_consumer_paused(*consumer, false)),
            Command::CreatePipedProducer { producer, options, source, .. } => {
                router.create_piped_producer(*producer, options, *source)
            }
            Command::AddPipe { producer, target, .. } => router.add_pipe(*producer, *target),
            Command::RemovePipe { producer, target, .. } => Ok(router.remove_pipe(*producer, *target)),
            Command::RetargetPipes { moved, core, .. } => Ok(router.retarget_pipes(*moved, *core)),
            // The consumer's SSRC stays on its transport: no index changes. The keyframe request
            // leaves with the new producer's next packet (`rtp.rs`): a command has no output.
            Command::SwitchConsumerProducer { consumer, producer, .. } => {
                router.switch_consumer_producer(*consumer, *producer)
            }
        }
    }

    /// The payload (after the 12-byte fixed header) of a stored packet; empty if it is gone.
    pub fn stored_payload(&self, router: RouterId, producer: ProducerId, seq: u16) -> &[u8] {
        self.routers
            .get(&router)
            .and_then(|r| r.producers.get(&producer))
            .and_then(|p| p.store.0.as_ref())
            .and_then(|s| s.get(SeqNo(seq)))
            .and_then(|p| p.get(FIXED_HEADER_LEN..))
            .unwrap_or(&[])
    }

    /// Points shared-port datagrams matching `key` to `router` on core `core` (`None`: remove).
    pub fn set_steering(&mut self, key: SteerKey, router: RouterId, core: Option<u16>) {
        match core {
            Some(c) => {
                self.steering.insert(key, (router, c));
            }
            None => {
                self.steering.remove(&key);
            }
        }
    }

    /// Where shared-port datagrams matching `key` are carried (router, core), if anywhere.
    pub fn steering_of(&self, key: &SteerKey) -> Option<(RouterId, u16)> {
        self.steering.get(key).copied()
    }

    /// Removes a router and its indexes (first half of a handoff: export).
    pub fn take_router(&mut self, id: RouterId) -> Option<Router> {
        let r = self.routers.remove(&id)?;
        self.index.remove_router(id, &r);
        Some(r)
    }

    /// Inserts a router handed over from another core (second half of a handoff: import).
    pub fn insert_router(&mut self, id: RouterId, router: Router) -> Result<(), CommandError> {
        if self.routers.contains_key(&id) {
            return Err(CommandError::state("router id already exists"));
        }
        self.index.insert_router(id, &router);
        self.routers.insert(id, router);
        self.moved.remove(&id);
        Ok(())
    }

    pub fn router(&self, id: RouterId) -> Option<&Router> {
        self.routers.get(&id)
    }
    pub fn routers(&self) -> impl Iterator<Item = (RouterId, &Router)> {
        self.routers.iter().map(|(k, v)| (*k, v))
    }
    /// How many routers this shard holds (O(1): published every loop pass).
    pub fn router_count(&self) -> usize {
        self.routers.len()
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn limits(&self) -> &RtcpLimits {
        &self.limits
    }
    /// Counters the caller updates (send results, ring drops).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }
    /// Next event for the control plane.
    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop()
    }
    /// Events dropped because nobody collected them in time.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Forwards one datagram: outputs go to `out`, everything else is counted. What is for a
    /// pipe to another core is left for [`Shard::pop_pipe_hop`].
    pub fn forward(
        &mut self,
        index: u32,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut impl OutputSink,
    ) -> Verdict {
        self.clear_pipe_hops();
        self.counters.packets_in += 1;
        self.counters.bytes_in += dgram.data.len() as u64;
        let data = dgram.data;
        match classify(data) {
            PacketClass::Rtcp => self.route_rtcp(dgram, now_us, out).unwrap_or(Verdict::Done),
            PacketClass::Rtp => self.route_rtp(index, dgram, now_us, out).unwrap_or(Verdict::Done),
            // STUN/DTLS arrive here only once a WebRTC transport exists; until then, counted.
            PacketClass::Stun | PacketClass::Dtls | PacketClass::Unknown => {
                self.counters.drop(DropReason::NotRtp);
                Verdict::Done
            }
        }
    }

    /// A shared-port datagram nobody here owns: does another core own it?
    fn steer(&mut self, dgram: &Datagram<'_>, ssrc: Option<Ssrc>) -> Option<Verdict> {
        if !dgram.socket.is_shared() || self.steering.is_empty() {
            return None;
        }
        let hit = self
            .steering
            .get(&SteerKey::Remote(dgram.source))
            .or_else(|| ssrc.and_then(|s| self.steering.get(&SteerKey::Ssrc(s))));
        let (_, core) = hit?;
        Some(Verdict::Hop { core: *core })
    }

    /// Counts a datagram this shard returned as `Verdict::Hop` once it was carried to its owner
    /// (one that could not be carried is counted as a drop instead).
    pub fn count_hopped_out(&mut self) {
        self.counters.hopped_out += 1;
    }

    /// Counts a datagram carried here from another core (after it was counted there as hopped).
    pub fn count_hopped_in(&mut self) {
        self.counters.hopped_in += 1;
    }

    /// Counts a drop; `None` so callers can `return self.drop(..)`.
    fn drop(&mut self, reason: DropReason) -> Option<Verdict> {
        self.counters.drop(reason);
        None
    }
}
