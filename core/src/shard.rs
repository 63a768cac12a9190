//! `Shard`: the routers one core owns, the indexes that find them from a packet, and the two
//! entry points a core calls: [`Shard::apply_batch`] between packet batches and
//! [`Shard::forward`] per received datagram.
//!
//! Forwarding is a pure function of (datagram, tables, `now_us`): it writes outputs — a rewritten
//! header plus a reference to the payload inside the received datagram, never a copy — into a
//! caller-owned [`OutputSink`], and counts every packet it does not forward under a
//! [`DropReason`]. It allocates nothing and takes no lock.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::command::{BatchReply, Command, CommandBatch, CommandError, Event, Outcome, SocketId, SteerKey};
use crate::demux::{classify, PacketClass};
use crate::drop_reason::{Counters, DropReason};
use crate::ids::{MediaKind, ProducerId, SeqNo};
use crate::ids::{RouterId, Ssrc, TransportId};
use crate::queue::{LeakyQueue, Overflow};
use crate::router::Router;
use crate::rtcp::{FirRepr, NackRepr, PliRepr, RtcpCompound, RtcpPacket, SenderReportRepr};
use crate::rtp::{RtpPacket, FIXED_HEADER_LEN};
use crate::rtp_store::RtpStore;

/// Keyframe requests (PLI/FIR) forwarded to one producer at most this often.
pub const KEYFRAME_REQUEST_INTERVAL_US: u64 = 500_000;
use crate::transport::{Remote, Transport};

/// A received datagram, borrowed from the caller's receive buffers.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub socket: SocketId,
    pub source: SocketAddr,
    pub data: &'a [u8],
}

/// Largest header an [`Output`] carries inline.
pub const OUTPUT_HEADER_MAX: usize = 28;

/// Where an output's bytes after its inline header come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadRef {
    /// Nothing: the header is the whole packet (generated RTCP).
    None,
    /// `datagrams[index][offset..]` of the batch being forwarded (zero-copy).
    Datagram { index: u32, offset: u16 },
    /// A retransmission: the payload of the packet `seq` kept in a producer's store (after its
    /// fixed header); see [`Shard::stored_payload`].
    Stored { router: RouterId, producer: ProducerId, seq: u16 },
}

/// One datagram to send: `header[..header_len]` followed by the referenced payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub socket: SocketId,
    pub dest: SocketAddr,
    pub header: [u8; OUTPUT_HEADER_MAX],
    pub header_len: u8,
    pub payload: PayloadRef,
}

impl Output {
    /// The inline header bytes.
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }
}

/// Where [`Shard::forward`] writes outputs; `push` returns `false` when full (counted as a drop).
pub trait OutputSink {
    fn push(&mut self, output: Output) -> bool;
}

impl<const N: usize> OutputSink for heapless::Vec<Output, N> {
    fn push(&mut self, output: Output) -> bool {
        heapless::Vec::push(self, output).is_ok()
    }
}

type TransportKey = (RouterId, TransportId);

/// Capacity of the per-shard event queue (leaky: oldest events are dropped and counted).
pub const EVENT_QUEUE_LEN: usize = 256;

/// The routing tables of one core.
#[derive(Debug)]
pub struct Shard {
    routers: HashMap<RouterId, Router>,
    /// Dedicated sockets → their transport. Keys are chosen by the control plane.
    by_socket: HashMap<SocketId, TransportKey>,
    /// Shared-port transports with a known remote, by remote address. Keys come from the network:
    /// std's SipHash with a per-map random key resists collision flooding.
    by_remote: HashMap<SocketAddr, TransportKey>,
    /// Shared-port comedia transports waiting to latch, by the SSRCs of their producers.
    by_comedia_ssrc: HashMap<Ssrc, TransportKey>,
    /// Shared-port flows owned by routers on other cores: where to carry them.
    steering: HashMap<SteerKey, (RouterId, u16)>,
    events: LeakyQueue<Event, EVENT_QUEUE_LEN>,
    counters: Counters,
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
    pub fn new() -> Self {
        Self {
            routers: HashMap::new(),
            by_socket: HashMap::new(),
            by_remote: HashMap::new(),
            by_comedia_ssrc: HashMap::new(),
            steering: HashMap::new(),
            events: LeakyQueue::new(Overflow::DropOldest),
            counters: Counters::default(),
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
                            self.unindex_router(id, &current);
                        }
                        if let Some(r) = snapshot {
                            self.index_router(id, &r);
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
            self.unindex_router(*router, &r);
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
                if !options.socket.is_shared() && self.by_socket.contains_key(&options.socket) {
                    return Err(CommandError::state("socket already used by another transport"));
                }
                if options.socket.is_shared() {
                    if let Some(remote) = options.remote {
                        if self.by_remote.contains_key(&remote) {
                            return Err(CommandError::state(
                                "remote address already used on the shared port",
                            ));
                        }
                    }
                }
                let created = router.create_transport(*transport, options)?;
                if let Some(t) = router.transports.get(transport) {
                    self.index_transport((rid, *transport), t);
                }
                Ok(created)
            }
            Command::ConnectTransport { transport, remote, .. } => {
                let Some(t) = router.transports.get_mut(transport) else { return Ok(false) };
                if let Remote::Known(_) = t.remote {
                    return Err(CommandError::state("transport is already connected"));
                }
                if t.socket.is_shared() && self.by_remote.contains_key(remote) {
                    return Err(CommandError::state("remote address already used on the shared port"));
                }
                let key = (rid, *transport);
                Self::unindex_transport_in(
                    &mut self.by_socket,
                    &mut self.by_remote,
                    &mut self.by_comedia_ssrc,
                    key,
                    t,
                );
                t.remote = Remote::Known(*remote);
                self.index_transport(key, t);
                Ok(true)
            }
            Command::CloseTransport { transport, .. } => {
                let Some(t) = router.close_transport(*transport) else { return Ok(false) };
                self.unindex_transport((rid, *transport), &t);
                Ok(true)
            }
            Command::CreateProducer { transport, producer, options, .. } => {
                if let Some(t) = router.transports.get(transport) {
                    if t.socket.is_shared()
                        && t.remote == Remote::Comedia
                        && self.by_comedia_ssrc.contains_key(&options.ssrc)
                    {
                        return Err(CommandError::state(
                            "ssrc already awaited by another comedia transport on the shared port",
                        ));
                    }
                }
                let created = router.create_producer(*transport, *producer, options)?;
                if created {
                    if let Some(t) = router.transports.get(transport) {
                        self.index_transport((rid, *transport), t);
                    }
                }
                Ok(created)
            }
            Command::CloseProducer { producer, .. } => {
                let Some(tid) = router.producers.get(producer).map(|p| p.transport) else { return Ok(false) };
                if let Some(t) = router.transports.get(&tid) {
                    self.unindex_transport((rid, tid), t);
                }
                let closed = router.close_producer(*producer);
                if let Some(t) = router.transports.get(&tid) {
                    self.index_transport((rid, tid), t);
                }
                Ok(closed)
            }
            Command::PauseProducer { producer, .. } => Ok(router.set_producer_paused(*producer, true)),
            Command::ResumeProducer { producer, .. } => Ok(router.set_producer_paused(*producer, false)),
            Command::CreateConsumer { transport, consumer, options, .. } => {
                router.create_consumer(*transport, *consumer, options)
            }
            Command::CloseConsumer { consumer, .. } => Ok(router.close_consumer(*consumer)),
            Command::PauseConsumer { consumer, .. } => Ok(router.set_consumer_paused(*consumer, true)),
            Command::ResumeConsumer { consumer, .. } => Ok(router.set_consumer_paused(*consumer, false)),
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
        self.unindex_router(id, &r);
        Some(r)
    }

    /// Inserts a router handed over from another core (second half of a handoff: import).
    pub fn insert_router(&mut self, id: RouterId, router: Router) -> Result<(), CommandError> {
        if self.routers.contains_key(&id) {
            return Err(CommandError::state("router id already exists"));
        }
        self.index_router(id, &router);
        self.routers.insert(id, router);
        Ok(())
    }

    pub fn router(&self, id: RouterId) -> Option<&Router> {
        self.routers.get(&id)
    }
    pub fn routers(&self) -> impl Iterator<Item = (RouterId, &Router)> {
        self.routers.iter().map(|(k, v)| (*k, v))
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
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

    /// Forwards one datagram: outputs go to `out`, everything else is counted.
    pub fn forward(
        &mut self,
        index: u32,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut impl OutputSink,
    ) -> Verdict {
        self.counters.packets_in += 1;
        self.counters.bytes_in += dgram.data.len() as u64;
        let data = dgram.data;
        match classify(data) {
            PacketClass::Rtcp => self.forward_rtcp(dgram, now_us, out),
            PacketClass::Rtp => self.forward_rtp(index, dgram, now_us, out),
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

    fn forward_rtp(
        &mut self,
        index: u32,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut impl OutputSink,
    ) -> Verdict {
        self.route_rtp(index, dgram, now_us, out).unwrap_or(Verdict::Done)
    }

    /// `None` when the packet was dropped (and counted).
    fn route_rtp(
        &mut self,
        index: u32,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut impl OutputSink,
    ) -> Option<Verdict> {
        let Ok(packet) = RtpPacket::new_checked(dgram.data) else {
            return self.drop(DropReason::Malformed);
        };
        let ssrc = packet.ssrc();
        let key = if dgram.socket.is_shared() {
            match self.by_remote.get(&dgram.source) {
                Some(k) => Some(*k),
                None => self.by_comedia_ssrc.get(&ssrc).copied(),
            }
        } else {
            self.by_socket.get(&dgram.socket).copied()
        };
        let Some((rid, tid)) = key else {
            if let Some(v) = self.steer(dgram, Some(ssrc)) {
                return Some(v);
            }
            return self.drop(DropReason::UnknownTransport);
        };
        let Some(router) = self.routers.get_mut(&rid) else {
            return self.drop(DropReason::UnknownTransport);
        };
        let Router { transports, producers, consumers } = router;
        let Some(transport) = transports.get_mut(&tid) else {
            return self.drop(DropReason::UnknownTransport);
        };
        let Some(pid) = transport.producers_by_ssrc.get(&ssrc).copied() else {
            // Also covers comedia: an unknown SSRC never latches a transport.
            let reason = if transport.remote == Remote::Unset {
                DropReason::NotConnected
            } else {
                DropReason::UnknownSsrc
            };
            self.counters.drop(reason);
            return None;
        };
        match transport.remote {
            Remote::Known(addr) if addr == dgram.source => {}
            Remote::Known(_) => return self.drop(DropReason::SourceMismatch),
            Remote::Unset => return self.drop(DropReason::NotConnected),
            Remote::Comedia => {
                // Latch once, on a valid packet of one of this transport's producers; the
                // address can never change afterwards (no re-latching: RTP Bleed).
                if dgram.socket.is_shared() && self.by_remote.contains_key(&dgram.source) {
                    return self.drop(DropReason::SourceMismatch);
                }
                Self::unindex_transport_in(
                    &mut self.by_socket,
                    &mut self.by_remote,
                    &mut self.by_comedia_ssrc,
                    (rid, tid),
                    transport,
                );
                transport.remote = Remote::Known(dgram.source);
                Self::index_transport_in(
                    &mut self.by_socket,
                    &mut self.by_remote,
                    &mut self.by_comedia_ssrc,
                    (rid, tid),
                    transport,
                );
                self.events.push(Event::TransportLatched {
                    router: rid,
                    transport: tid,
                    remote: dgram.source,
                });
            }
        }
        let Some(producer) = producers.get_mut(&pid) else {
            return self.drop(DropReason::UnknownSsrc);
        };
        if packet.payload_type() != producer.options.payload_type {
            return self.drop(DropReason::UnknownPayloadType);
        }
        producer.stats.packets += 1;
        producer.stats.bytes += dgram.data.len() as u64;
        if producer.options.kind == MediaKind::Video {
            // Allocated once, at the first packet; then one copy per packet, for NACKs.
            producer
                .store
                .0
                .get_or_insert_with(|| Box::new(RtpStore::new()))
                .insert(packet.sequence_number(), dgram.data);
        }
        producer.stats.last_seq = packet.sequence_number().0;
        producer.stats.last_timestamp = packet.timestamp();
        if producer.paused {
            return self.drop(DropReason::ProducerPaused);
        }
        if producer.consumers.is_empty() {
            return self.drop(DropReason::NoConsumers);
        }
        self.counters.routed += 1;
        let clock_rate = producer.options.clock_rate;
        let seq = packet.sequence_number();
        let ts = packet.timestamp();
        let marker = packet.marker();
        for cid in &producer.consumers {
            let Some(consumer) = consumers.get_mut(cid) else { continue };
            if consumer.paused || consumer.producer_paused {
                self.counters.drop(DropReason::ConsumerPaused);
                continue;
            }
            let Some((socket, dest)) =
                transports.get(&consumer.transport).and_then(|t| Some((t.socket, t.remote_addr()?)))
            else {
                self.counters.drop(DropReason::ConsumerNotConnected);
                continue;
            };
            let Some(rw) = consumer.rewriter.rewrite(seq, ts, clock_rate, now_us) else {
                self.counters.drop(DropReason::StaleSequence);
                continue;
            };
            let mut header = [0u8; OUTPUT_HEADER_MAX];
            // `new_checked` guaranteed at least FIXED_HEADER_LEN bytes.
            header[..FIXED_HEADER_LEN].copy_from_slice(&dgram.data[..FIXED_HEADER_LEN]);
            header[1] = (u8::from(marker) << 7) | (rw.payload_type.0 & 0x7f);
            header[2..4].copy_from_slice(&rw.seq.0.to_be_bytes());
            header[4..8].copy_from_slice(&rw.timestamp.to_be_bytes());
            header[8..12].copy_from_slice(&rw.ssrc.0.to_be_bytes());
            let output = Output {
                socket,
                dest,
                header,
                header_len: FIXED_HEADER_LEN as u8,
                payload: PayloadRef::Datagram { index, offset: FIXED_HEADER_LEN as u16 },
            };
            if out.push(output) {
                self.counters.outputs += 1;
                consumer.stats.packets += 1;
                consumer.stats.bytes += dgram.data.len() as u64;
            } else {
                self.counters.drop(DropReason::OutputFull);
            }
        }
        Some(Verdict::Done)
    }

    fn forward_rtcp(&mut self, dgram: &Datagram<'_>, now_us: u64, out: &mut impl OutputSink) -> Verdict {
        self.route_rtcp(dgram, now_us, out).unwrap_or(Verdict::Done)
    }

    /// RTCP, as a forwarding SFU handles it (mediasoup's model): a producer's SR is rewritten
    /// per consumer (its SSRC, timestamp offset and counts); a consumer's RR is consumed, never
    /// forwarded blindly; a consumer's PLI/FIR goes to the producer (throttled), and a NACK is
    /// mapped back to the producer's sequence numbers and sent upstream.
    fn route_rtcp(
        &mut self,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut impl OutputSink,
    ) -> Option<Verdict> {
        let Ok(compound) = RtcpCompound::new_checked(dgram.data) else {
            return self.drop(DropReason::Malformed);
        };
        let key = if dgram.socket.is_shared() {
            self.by_remote.get(&dgram.source).copied()
        } else {
            self.by_socket.get(&dgram.socket).copied()
        };
        let Some((rid, tid)) = key else {
            if let Some(v) = self.steer(dgram, None) {
                return Some(v);
            }
            return self.drop(DropReason::UnknownTransport);
        };
        let Some(router) = self.routers.get_mut(&rid) else {
            return self.drop(DropReason::UnknownTransport);
        };
        let Some(transport) = router.transports.get(&tid) else {
            return self.drop(DropReason::UnknownTransport);
        };
        match transport.remote {
            Remote::Known(addr) if addr == dgram.source => {}
            Remote::Known(_) => return self.drop(DropReason::SourceMismatch),
            // RTCP never latches a comedia transport: only valid RTP of a known SSRC does.
            Remote::Comedia | Remote::Unset => return self.drop(DropReason::NotConnected),
        }
        let mut acted = false;
        let Router { transports, producers, consumers } = router;
        for packet in compound.iter() {
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    let Some(t) = transports.get(&tid) else { continue };
                    let Some(pid) = t.producers_by_ssrc.get(&Ssrc(sr.ssrc())) else { continue };
                    let Some(producer) = producers.get(pid) else { continue };
                    acted = true;
                    for cid in &producer.consumers {
                        let Some(c) = consumers.get(cid) else { continue };
                        if c.paused || c.producer_paused {
                            continue;
                        }
                        let Some((socket, dest)) =
                            transports.get(&c.transport).and_then(|t| Some((t.socket, t.remote_addr()?)))
                        else {
                            continue;
                        };
                        let repr = SenderReportRepr {
                            ssrc: c.ssrc().0,
                            ntp: sr.ntp(),
                            rtp_timestamp: sr.rtp_timestamp().wrapping_add(c.rewriter.ts_offset()),
                            packet_count: c.stats.packets as u32,
                            octet_count: c.stats.bytes as u32,
                            reports: heapless::Vec::new(),
                        };
                        let mut header = [0u8; OUTPUT_HEADER_MAX];
                        let len = repr.emit(&mut header);
                        Self::push_generated(&mut self.counters, out, socket, dest, header, len);
                    }
                }
                RtcpPacket::ReceiverReport(rr) => {
                    let Some(t) = transports.get(&tid) else { continue };
                    for block in rr.report_blocks() {
                        if let Some(c) =
                            t.consumers_by_ssrc.get(&Ssrc(block.ssrc())).and_then(|c| consumers.get_mut(c))
                        {
                            c.stats.fraction_lost = block.fraction_lost();
                            c.stats.jitter = block.jitter();
                            acted = true;
                        }
                    }
                }
                RtcpPacket::Pli(_) | RtcpPacket::Fir(_) | RtcpPacket::Nack(_) => {
                    let media = match packet {
                        RtcpPacket::Pli(p) => p.media_ssrc(),
                        RtcpPacket::Nack(n) => n.media_ssrc(),
                        RtcpPacket::Fir(f) => f.entries().next().map_or(0, |e| e.0),
                        _ => 0,
                    };
                    let Some(t) = transports.get(&tid) else { continue };
                    let Some(c) = t.consumers_by_ssrc.get(&Ssrc(media)).and_then(|c| consumers.get(c)) else {
                        continue;
                    };
                    let Some(producer) = producers.get_mut(&c.producer) else { continue };
                    let Some((socket, dest)) =
                        transports.get(&producer.transport).and_then(|t| Some((t.socket, t.remote_addr()?)))
                    else {
                        continue;
                    };
                    acted = true;
                    let producer_ssrc = producer.options.ssrc.0;
                    let mut header = [0u8; OUTPUT_HEADER_MAX];
                    match packet {
                        RtcpPacket::Nack(n) => {
                            // Answer from the producer's store what it still holds, as the
                            // consumer numbered it; ask the producer for the rest, in its own
                            // numbering (at most 4 FCI entries fit one inline output).
                            let pid = c.producer;
                            let consumer_out =
                                transports.get(&c.transport).and_then(|t| Some((t.socket, t.remote_addr()?)));
                            let mut lost: heapless::Vec<u16, 64> = heapless::Vec::new();
                            for seq in n.lost_sequence_numbers() {
                                let input = c.rewriter.output_to_input(SeqNo(seq));
                                let stored = producer.store.0.as_ref().and_then(|s| s.get(input));
                                match (stored, consumer_out) {
                                    (Some(p), Some((csock, cdest))) if p.len() >= FIXED_HEADER_LEN => {
                                        let mut h = [0u8; OUTPUT_HEADER_MAX];
                                        h[..FIXED_HEADER_LEN].copy_from_slice(&p[..FIXED_HEADER_LEN]);
                                        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                                        h[1] = (p[1] & 0x80) | (c.rewriter.payload_type().0 & 0x7f);
                                        h[2..4].copy_from_slice(&seq.to_be_bytes());
                                        h[4..8].copy_from_slice(
                                            &ts.wrapping_add(c.rewriter.ts_offset()).to_be_bytes(),
                                        );
                                        h[8..12].copy_from_slice(&c.ssrc().0.to_be_bytes());
                                        let output = Output {
                                            socket: csock,
                                            dest: cdest,
                                            header: h,
                                            header_len: FIXED_HEADER_LEN as u8,
                                            payload: PayloadRef::Stored {
                                                router: rid,
                                                producer: pid,
                                                seq: input.0,
                                            },
                                        };
                                        if out.push(output) {
                                            self.counters.outputs += 1;
                                            self.counters.retransmitted += 1;
                                        } else {
                                            self.counters.drop(DropReason::OutputFull);
                                        }
                                    }
                                    _ => {
                                        if lost.push(input.0).is_err() {
                                            // More than one NACK output can carry: the rest
                                            // are not retransmitted (counted).
                                            self.counters.drop(DropReason::RetransmissionMissing);
                                        }
                                    }
                                }
                            }
                            let repr = NackRepr::from_lost(n.sender_ssrc(), producer_ssrc, &lost);
                            for chunk in repr.pairs.chunks(4) {
                                let part = NackRepr {
                                    sender_ssrc: repr.sender_ssrc,
                                    media_ssrc: producer_ssrc,
                                    pairs: heapless::Vec::from_slice(chunk).unwrap_or_default(),
                                };
                                let len = part.emit(&mut header);
                                Self::push_generated(&mut self.counters, out, socket, dest, header, len);
                            }
                        }
                        _ => {
                            // Keyframe requests: at most one per producer per interval.
                            if producer
                                .last_keyframe_request_us
                                .is_some_and(|t| now_us.saturating_sub(t) < KEYFRAME_REQUEST_INTERVAL_US)
                            {
                                self.counters.drop(DropReason::KeyframeRequestThrottled);
                                continue;
                            }
                            producer.last_keyframe_request_us = Some(now_us);
                            producer.fir_seq = producer.fir_seq.wrapping_add(1);
                            let len = match packet {
                                RtcpPacket::Fir(f) => {
                                    let mut entries = heapless::Vec::new();
                                    let _ = entries.push((producer_ssrc, producer.fir_seq));
                                    FirRepr { sender_ssrc: f.sender_ssrc(), entries }.emit(&mut header)
                                }
                                RtcpPacket::Pli(p) => {
                                    PliRepr { sender_ssrc: p.sender_ssrc(), media_ssrc: producer_ssrc }
                                        .emit(&mut header)
                                }
                                _ => 0,
                            };
                            Self::push_generated(&mut self.counters, out, socket, dest, header, len);
                        }
                    }
                }
                RtcpPacket::Sdes(_) | RtcpPacket::Bye(_) | RtcpPacket::Other { .. } => {}
            }
        }
        if acted {
            self.counters.rtcp_terminated += 1;
            Some(Verdict::Done)
        } else {
            self.drop(DropReason::RtcpIgnored)
        }
    }

    fn push_generated(
        counters: &mut Counters,
        out: &mut impl OutputSink,
        socket: SocketId,
        dest: SocketAddr,
        header: [u8; OUTPUT_HEADER_MAX],
        len: usize,
    ) {
        let output = Output { socket, dest, header, header_len: len as u8, payload: PayloadRef::None };
        if out.push(output) {
            counters.outputs += 1;
        } else {
            counters.drop(DropReason::OutputFull);
        }
    }

    /// Counts a drop; `None` so callers can `return self.drop(..)`.
    fn drop(&mut self, reason: DropReason) -> Option<Verdict> {
        self.counters.drop(reason);
        None
    }

    fn index_router(&mut self, id: RouterId, router: &Router) {
        for (tid, t) in router.transports() {
            self.index_transport((id, tid), t);
        }
    }

    fn unindex_router(&mut self, id: RouterId, router: &Router) {
        for (tid, t) in router.transports() {
            self.unindex_transport((id, tid), t);
        }
    }

    fn index_transport(&mut self, key: TransportKey, t: &Transport) {
        Self::index_transport_in(&mut self.by_socket, &mut self.by_remote, &mut self.by_comedia_ssrc, key, t);
    }

    fn unindex_transport(&mut self, key: TransportKey, t: &Transport) {
        Self::unindex_transport_in(
            &mut self.by_socket,
            &mut self.by_remote,
            &mut self.by_comedia_ssrc,
            key,
            t,
        );
    }

    fn index_transport_in(
        by_socket: &mut HashMap<SocketId, TransportKey>,
        by_remote: &mut HashMap<SocketAddr, TransportKey>,
        by_comedia_ssrc: &mut HashMap<Ssrc, TransportKey>,
        key: TransportKey,
        t: &Transport,
    ) {
        if !t.socket.is_shared() {
            by_socket.insert(t.socket, key);
            return;
        }
        match t.remote {
            Remote::Known(addr) => {
                by_remote.insert(addr, key);
            }
            Remote::Comedia => {
                for ssrc in t.producers_by_ssrc.keys() {
                    by_comedia_ssrc.insert(*ssrc, key);
                }
            }
            Remote::Unset => {}
        }
    }

    fn unindex_transport_in(
        by_socket: &mut HashMap<SocketId, TransportKey>,
        by_remote: &mut HashMap<SocketAddr, TransportKey>,
        by_comedia_ssrc: &mut HashMap<Ssrc, TransportKey>,
        key: TransportKey,
        t: &Transport,
    ) {
        if !t.socket.is_shared() {
            if by_socket.get(&t.socket) == Some(&key) {
                by_socket.remove(&t.socket);
            }
            return;
        }
        match t.remote {
            Remote::Known(addr) => {
                if by_remote.get(&addr) == Some(&key) {
                    by_remote.remove(&addr);
                }
            }
            Remote::Comedia => {
                for ssrc in t.producers_by_ssrc.keys() {
                    if by_comedia_ssrc.get(ssrc) == Some(&key) {
                        by_comedia_ssrc.remove(ssrc);
                    }
                }
            }
            Remote::Unset => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{ConsumerOptions, ErrorKind, PlainTransportOptions, ProducerOptions};
    use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, TransportId};
    use crate::testutil::{fanout_setup, rtp};

    const R: RouterId = RouterId(1);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn setup(consumers: u32) -> Shard {
        let mut s = Shard::new();
        let reply =
            s.apply_batch(&fanout_setup(SocketId(1), addr(5000), consumers, |i| addr(6000 + i as u16)));
        assert!(matches!(reply, BatchReply::Applied { seq: 1, .. }), "{reply:?}");
        s
    }

    fn send(s: &mut Shard, socket: u32, from: SocketAddr, pkt: &[u8]) -> heapless::Vec<Output, 64> {
        let mut out = heapless::Vec::new();
        s.forward(0, &Datagram { socket: SocketId(socket), source: from, data: pkt }, 0, &mut out);
        out
    }

    fn batch(seq: u64, commands: Vec<Command>) -> CommandBatch {
        CommandBatch { seq, commands }
    }

    #[test]
    fn fanout_rewrites_each_consumer_without_copying_payload() {
        let mut s = setup(3);
        let pkt = rtp(1111, 7, 1000, 96, b"hello");
        let out = send(&mut s, 1, addr(5000), &pkt);
        assert_eq!(out.len(), 3);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.socket, SocketId(100 + i as u32));
            assert_eq!(o.dest, addr(6000 + i as u16));
            assert_eq!(o.payload, PayloadRef::Datagram { index: 0, offset: 12 });
            let h = o.header();
            assert_eq!(h.len(), 12);
            assert_eq!(u32::from_be_bytes(h[8..12].try_into().unwrap()), 5000 + i as u32);
            assert_eq!(u16::from_be_bytes([h[2], h[3]]), 7);
            assert_eq!(h[1] & 0x7f, 96);
        }
        assert_eq!(s.counters().routed, 1);
        assert_eq!(s.counters().outputs, 3);
    }

    #[test]
    fn wrong_source_unknown_ssrc_bad_pt_and_garbage_are_counted() {
        let mut s = setup(1);
        assert!(send(&mut s, 1, addr(5001), &rtp(1111, 1, 0, 96, b"x")).is_empty());
        assert!(send(&mut s, 1, addr(5000), &rtp(2222, 1, 0, 96, b"x")).is_empty());
        assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 97, b"x")).is_empty());
        assert!(send(&mut s, 1, addr(5000), &[0x00, 1, 2]).is_empty());
        assert!(send(&mut s, 1, addr(5000), &[0x80, 96, 0]).is_empty());
        assert!(send(&mut s, 9, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
        let c = s.counters();
        assert_eq!(c.drops_of(DropReason::SourceMismatch), 1);
        assert_eq!(c.drops_of(DropReason::UnknownSsrc), 1);
        assert_eq!(c.drops_of(DropReason::UnknownPayloadType), 1);
        assert_eq!(c.drops_of(DropReason::NotRtp), 1);
        assert_eq!(c.drops_of(DropReason::Malformed), 1);
        assert_eq!(c.drops_of(DropReason::UnknownTransport), 1);
        assert_eq!(c.packets_in, c.routed + c.ingress_drops());
    }

    #[test]
    fn producer_pause_stops_all_consumer_pause_stops_one_and_seq_stays_contiguous() {
        let mut s = setup(2);
        let p = |seq| rtp(1111, seq, u32::from(seq) * 3000, 96, b"p");
        assert_eq!(send(&mut s, 1, addr(5000), &p(1)).len(), 2);
        s.apply_batch(&batch(2, vec![Command::PauseConsumer { router: R, consumer: ConsumerId(100) }]));
        let out = send(&mut s, 1, addr(5000), &p(2));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].socket, SocketId(101));
        s.apply_batch(&batch(3, vec![Command::PauseProducer { router: R, producer: ProducerId(1) }]));
        assert!(send(&mut s, 1, addr(5000), &p(3)).is_empty());
        let consumer = s.router(R).unwrap().consumer(ConsumerId(101)).unwrap();
        assert!(consumer.producer_paused());
        s.apply_batch(&batch(
            4,
            vec![
                Command::ResumeProducer { router: R, producer: ProducerId(1) },
                Command::ResumeConsumer { router: R, consumer: ConsumerId(100) },
            ],
        ));
        let out = send(&mut s, 1, addr(5000), &p(10));
        assert_eq!(out.len(), 2);
        let seq = |o: &Output| u16::from_be_bytes([o.header[2], o.header[3]]);
        assert_eq!(seq(&out[0]), 2, "consumer 100 sent 1 before its pause");
        assert_eq!(seq(&out[1]), 3, "consumer 101 sent 1 and 2");
        assert_eq!(s.counters().drops_of(DropReason::ProducerPaused), 1);
        assert_eq!(s.counters().drops_of(DropReason::ConsumerPaused), 1);
    }

    #[test]
    fn close_cascade_router_transport_producer() {
        let mut s = setup(2);
        // Closing the consumer transport 100 closes consumer 100 only.
        s.apply_batch(&batch(2, vec![Command::CloseTransport { router: R, transport: TransportId(100) }]));
        let r = s.router(R).unwrap();
        assert!(r.consumer(ConsumerId(100)).is_none());
        assert!(r.consumer(ConsumerId(101)).is_some());
        assert_eq!(r.producer(ProducerId(1)).unwrap().consumers(), &[ConsumerId(101)]);
        // Closing the producer closes its consumers on other transports.
        s.apply_batch(&batch(3, vec![Command::CloseProducer { router: R, producer: ProducerId(1) }]));
        let r = s.router(R).unwrap();
        assert!(r.consumer(ConsumerId(101)).is_none());
        assert!(r.transport(TransportId(101)).is_some());
        assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
        // Closing the router closes everything and frees its sockets for reuse.
        let reply = s.apply_batch(&batch(4, vec![Command::CloseRouter { router: R }]));
        assert_eq!(reply, BatchReply::Applied { seq: 4, outcomes: vec![Outcome::Applied] });
        assert!(s.router(R).is_none());
        assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 1);
        let again = s.apply_batch(&fanout_setup(SocketId(1), addr(5000), 1, |_| addr(7000)));
        assert!(matches!(again, BatchReply::Applied { .. }));
    }

    #[test]
    fn commands_on_missing_targets_are_harmless_not_found() {
        let mut s = setup(1);
        let reply = s.apply_batch(&batch(
            2,
            vec![
                Command::CloseConsumer { router: R, consumer: ConsumerId(999) },
                Command::PauseProducer { router: RouterId(42), producer: ProducerId(1) },
                Command::PauseConsumer { router: R, consumer: ConsumerId(100) },
            ],
        ));
        assert_eq!(
            reply,
            BatchReply::Applied {
                seq: 2,
                outcomes: vec![Outcome::NotFound, Outcome::NotFound, Outcome::Applied]
            }
        );
    }

    #[test]
    fn rejected_batch_changes_nothing() {
        let mut s = setup(1);
        let reply = s.apply_batch(&batch(
            2,
            vec![
                Command::PauseConsumer { router: R, consumer: ConsumerId(100) },
                Command::CloseTransport { router: R, transport: TransportId(100) },
                // Duplicate producer id: refused, so the two commands above are undone.
                Command::CreateProducer {
                    router: R,
                    transport: TransportId(1),
                    producer: ProducerId(1),
                    options: ProducerOptions {
                        kind: MediaKind::Audio,
                        ssrc: Ssrc(3),
                        payload_type: PayloadType(111),
                        clock_rate: 48000,
                        paused: false,
                    },
                },
            ],
        ));
        match reply {
            BatchReply::Rejected { seq: 2, index: 2, error } => {
                assert_eq!(error.kind, ErrorKind::InvalidState)
            }
            other => panic!("{other:?}"),
        }
        let c = s.router(R).unwrap().consumer(ConsumerId(100)).unwrap();
        assert!(!c.paused());
        assert_eq!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).len(), 1);
    }

    #[test]
    fn rejected_batch_restores_steering() {
        let mut s = setup(0);
        let (moved, added) = (SteerKey::Remote(addr(7000)), SteerKey::Remote(addr(7001)));
        s.set_steering(moved, RouterId(9), Some(1));
        let reply = s.apply_batch(&batch(
            2,
            vec![
                Command::SetSteering { router: RouterId(9), key: moved, core: Some(2) },
                Command::SetSteering { router: RouterId(9), key: added, core: Some(2) },
                // Duplicate router id: refused, so both steering changes are undone.
                Command::CreateRouter { router: R },
            ],
        ));
        assert!(matches!(reply, BatchReply::Rejected { index: 2, .. }), "{reply:?}");
        assert_eq!(s.steering_of(&moved), Some((RouterId(9), 1)));
        assert_eq!(s.steering_of(&added), None);
    }

    #[test]
    fn invalid_arguments_are_distinguished_from_state_errors() {
        let mut s = setup(0);
        let bad_pt = s.apply(&Command::CreateConsumer {
            router: R,
            transport: TransportId(1),
            consumer: ConsumerId(5),
            options: ConsumerOptions {
                producer: ProducerId(1),
                ssrc: Ssrc(9),
                payload_type: PayloadType(200),
                paused: false,
            },
        });
        assert_eq!(bad_pt.unwrap_err().kind, ErrorKind::InvalidArgument);
        let dup_router = s.apply(&Command::CreateRouter { router: R });
        assert_eq!(dup_router.unwrap_err().kind, ErrorKind::InvalidState);
        let dup_socket = s.apply(&Command::CreatePlainTransport {
            router: R,
            transport: TransportId(7),
            options: PlainTransportOptions { socket: SocketId(1), remote: None, comedia: true },
        });
        assert_eq!(dup_socket.unwrap_err().kind, ErrorKind::InvalidState);
    }

    #[test]
    fn comedia_latches_once_on_valid_packet_and_never_relatches() {
        let mut s = Shard::new();
        let setup = vec![
            Command::CreateRouter { router: R },
            Command::CreatePlainTransport {
                router: R,
                transport: TransportId(1),
                options: PlainTransportOptions { socket: SocketId::SHARED, remote: None, comedia: true },
            },
            Command::CreateProducer {
                router: R,
                transport: TransportId(1),
                producer: ProducerId(1),
                options: ProducerOptions {
                    kind: MediaKind::Audio,
                    ssrc: Ssrc(77),
                    payload_type: PayloadType(111),
                    clock_rate: 48000,
                    paused: false,
                },
            },
            Command::CreatePlainTransport {
                router: R,
                transport: TransportId(2),
                options: PlainTransportOptions {
                    socket: SocketId::SHARED,
                    remote: Some(addr(9000)),
                    comedia: false,
                },
            },
            Command::CreateConsumer {
                router: R,
                transport: TransportId(2),
                consumer: ConsumerId(1),
                options: ConsumerOptions {
                    producer: ProducerId(1),
                    ssrc: Ssrc(88),
                    payload_type: PayloadType(111),
                    paused: false,
                },
            },
        ];
        assert!(matches!(s.apply_batch(&batch(1, setup)), BatchReply::Applied { .. }));
        // Unknown SSRC from an attacker does not latch.
        assert!(send(&mut s, 0, addr(6666), &rtp(1, 1, 0, 111, b"x")).is_empty());
        // Garbage does not latch.
        assert!(send(&mut s, 0, addr(6666), &[0x80, 111]).is_empty());
        // The first valid packet latches.
        assert_eq!(send(&mut s, 0, addr(5555), &rtp(77, 1, 0, 111, b"x")).len(), 1);
        assert_eq!(
            s.pop_event(),
            Some(Event::TransportLatched { router: R, transport: TransportId(1), remote: addr(5555) })
        );
        // The same SSRC from another address is refused: no re-latching.
        assert!(send(&mut s, 0, addr(6666), &rtp(77, 2, 0, 111, b"x")).is_empty());
        assert_eq!(send(&mut s, 0, addr(5555), &rtp(77, 3, 0, 111, b"x")).len(), 1);
        assert_eq!(
            s.router(R).unwrap().transport(TransportId(1)).unwrap().remote(),
            Remote::Known(addr(5555))
        );
        assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 2);
    }

    #[test]
    fn full_output_sink_counts_drops() {
        let mut s = setup(3);
        let mut out: heapless::Vec<Output, 2> = heapless::Vec::new();
        let pkt = rtp(1111, 1, 0, 96, b"x");
        s.forward(0, &Datagram { socket: SocketId(1), source: addr(5000), data: &pkt }, 0, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(s.counters().drops_of(DropReason::OutputFull), 1);
        assert_eq!(s.counters().outputs + s.counters().egress_drops(), 3);
    }

    #[test]
    fn take_and_insert_router_moves_state() {
        let mut a = setup(1);
        let pkt = rtp(1111, 40, 0, 96, b"x");
        assert_eq!(send(&mut a, 1, addr(5000), &pkt).len(), 1);
        let router = a.take_router(R).unwrap();
        assert!(send(&mut a, 1, addr(5000), &pkt).is_empty());
        let mut b = Shard::new();
        b.insert_router(R, router).unwrap();
        let out = send(&mut b, 1, addr(5000), &rtp(1111, 41, 0, 96, b"x"));
        assert_eq!(u16::from_be_bytes([out[0].header[2], out[0].header[3]]), 41);
    }

    fn rtcp_out(
        s: &mut Shard,
        socket: u32,
        from: SocketAddr,
        pkt: &[u8],
        now_us: u64,
    ) -> heapless::Vec<Output, 64> {
        let mut out = heapless::Vec::new();
        s.forward(0, &Datagram { socket: SocketId(socket), source: from, data: pkt }, now_us, &mut out);
        out
    }

    #[test]
    fn producer_sender_report_is_rewritten_per_consumer() {
        let mut s = setup(2);
        send(&mut s, 1, addr(5000), &rtp(1111, 1, 1000, 96, b"x"));
        let mut sr = [0u8; 28];
        crate::rtcp::SenderReportRepr {
            ssrc: 1111,
            ntp: 77,
            rtp_timestamp: 5000,
            packet_count: 9,
            octet_count: 99,
            reports: heapless::Vec::new(),
        }
        .emit(&mut sr);
        let out = rtcp_out(&mut s, 1, addr(5000), &sr, 0);
        assert_eq!(out.len(), 2);
        let v = crate::rtcp::SenderReport::new_checked(out[0].header()).unwrap();
        assert_eq!((v.ssrc(), v.ntp(), v.rtp_timestamp(), v.packet_count()), (5000, 77, 5000, 1));
        assert_eq!(out[1].dest, addr(6001));
        assert_eq!(s.counters().rtcp_terminated, 1);
    }

    #[test]
    fn consumer_rr_is_consumed_and_pli_goes_upstream_throttled() {
        let mut s = setup(2);
        send(&mut s, 1, addr(5000), &rtp(1111, 1, 1000, 96, b"x"));
        // RR from consumer 0's receiver about its SSRC 5000: consumed, not forwarded.
        let mut rr = [0u8; 32];
        let mut reports = heapless::Vec::new();
        reports
            .push(crate::rtcp::ReportBlockRepr { ssrc: 5000, fraction_lost: 12, ..Default::default() })
            .unwrap();
        crate::rtcp::ReceiverReportRepr { ssrc: 42, reports }.emit(&mut rr);
        assert!(rtcp_out(&mut s, 100, addr(6000), &rr, 0).is_empty());
        assert_eq!(s.router(R).unwrap().consumer(ConsumerId(100)).unwrap().stats().fraction_lost, 12);
        // PLI about consumer 1's SSRC: forwarded to the producer with the producer's SSRC.
        let mut pli = [0u8; 12];
        crate::rtcp::PliRepr { sender_ssrc: 42, media_ssrc: 5001 }.emit(&mut pli);
        let out = rtcp_out(&mut s, 101, addr(6001), &pli, 1_000_000);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].socket, out[0].dest), (SocketId(1), addr(5000)));
        let p = crate::rtcp::Pli::new_checked(out[0].header()).unwrap();
        assert_eq!((p.sender_ssrc(), p.media_ssrc()), (42, 1111));
        // A second one within the interval is throttled, a later one passes.
        assert!(rtcp_out(&mut s, 101, addr(6001), &pli, 1_100_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::KeyframeRequestThrottled), 1);
        assert_eq!(rtcp_out(&mut s, 101, addr(6001), &pli, 1_600_001).len(), 1);
        // RTCP from the wrong source is refused.
        assert!(rtcp_out(&mut s, 101, addr(6999), &pli, 9_000_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::SourceMismatch), 1);
        assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
    }

    #[test]
    fn nack_is_answered_from_the_store_or_mapped_back_upstream() {
        let mut s = setup(1);
        let p = |seq| rtp(1111, seq, u32::from(seq) * 10, 96, &[seq as u8; 4]);
        send(&mut s, 1, addr(5000), &p(100));
        s.apply_batch(&batch(2, vec![Command::PauseConsumer { router: R, consumer: ConsumerId(100) }]));
        send(&mut s, 1, addr(5000), &p(101));
        s.apply_batch(&batch(3, vec![Command::ResumeConsumer { router: R, consumer: ConsumerId(100) }]));
        // Consumer saw 100 -> 100, then 110 -> 101, 111 -> 102.
        send(&mut s, 1, addr(5000), &p(110));
        send(&mut s, 1, addr(5000), &p(111));
        // 101 and 102 (producer's 110, 111) are in the store: retransmitted as the consumer
        // numbered them; 103 (producer's 112) never arrived: asked of the producer as 112.
        let nack_repr = crate::rtcp::NackRepr::from_lost(9, 5000, &[101, 102, 103]);
        let mut nack = [0u8; 16];
        nack_repr.emit(&mut nack);
        let mut out: heapless::Vec<Output, 64> = heapless::Vec::new();
        s.forward(0, &Datagram { socket: SocketId(100), source: addr(6000), data: &nack }, 0, &mut out);
        assert_eq!(out.len(), 3);
        for (o, (seq, input)) in out[..2].iter().zip([(101u16, 110u16), (102, 111)]) {
            assert_eq!((o.socket, o.dest), (SocketId(100), addr(6000)));
            assert_eq!(u16::from_be_bytes([o.header[2], o.header[3]]), seq);
            assert_eq!(u32::from_be_bytes(o.header[8..12].try_into().unwrap()), 5000);
            assert_eq!(u32::from_be_bytes(o.header[4..8].try_into().unwrap()), u32::from(input) * 10);
            let PayloadRef::Stored { router, producer, seq: stored } = o.payload else { panic!("{o:?}") };
            assert_eq!(stored, input);
            assert_eq!(s.stored_payload(router, producer, stored), &[input as u8; 4]);
        }
        assert_eq!((out[2].socket, out[2].dest), (SocketId(1), addr(5000)));
        let n = crate::rtcp::Nack::new_checked(out[2].header()).unwrap();
        assert_eq!(n.media_ssrc(), 1111);
        assert_eq!(n.lost_sequence_numbers().collect::<Vec<_>>(), vec![112]);
        assert_eq!(s.counters().retransmitted, 2);
    }
}
