//! Inter-core hops: a shared-port datagram that landed on a core not owning its router is copied
//! into a fixed-size slot of the owner's bounded inbound ring (`Hops::carry`), and the owner
//! forwards what it finds there one datagram at a time, in arrival order (`poll_hops`). A full
//! ring drops, counted `ring_full`; the ring also carries the handoff's barrier markers (see
//! `handoff`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::queue::ArrayQueue;
use shardcast_core::command::SocketId;
use shardcast_core::drop_reason::DropReason;
use shardcast_core::shard::{Datagram, Shard, Verdict};

use super::egress::Datagrams;
use super::handoff::RouterExport;
use super::pipe::{PipeBatch, PipeTo};
use super::state::CoreState;
use crate::ring::Doorbell;

/// Largest datagram carried between cores.
pub(crate) const HOP_MTU: usize = 2048;
/// Times a datagram may be carried between cores while its router keeps moving.
const MAX_HOPS: u8 = 8;

/// A shared-port datagram that arrived on a core that does not own its router, copied into a
/// fixed-size slot of the owner's inbound ring (the ring's storage is allocated once).
#[derive(Debug, Clone)]
pub(crate) struct HopPacket {
    pub(crate) source: SocketAddr,
    /// Times this datagram was carried (a handoff in flight can add hops; bounded).
    pub(crate) hops: u8,
    /// `Some(origin)`: not a datagram but a handoff barrier marker from core `origin`, which
    /// the receiving core sends back once everything queued before it has been carried on.
    pub(crate) marker: Option<u16>,
    /// `Some`: a pipe's packet for a producer of this core (`pipe.rs`), not a datagram.
    pub(crate) pipe: Option<PipeTo>,
    pub(crate) len: u16,
    pub(crate) data: [u8; HOP_MTU],
}

impl HopPacket {
    /// The first carry of `data`, received from `source` (`len` keeps the true length: a
    /// datagram longer than `HOP_MTU` is refused by `carry`).
    #[inline]
    pub(super) fn new(source: SocketAddr, data: &[u8]) -> HopPacket {
        let mut packet = HopPacket {
            source,
            hops: 1,
            marker: None,
            pipe: None,
            len: data.len().min(u16::MAX as usize) as u16,
            data: [0; HOP_MTU],
        };
        let len = data.len().min(HOP_MTU);
        packet.data[..len].copy_from_slice(&data[..len]);
        packet
    }

    /// A pipe's packet `data` (at most `HOP_MTU` bytes, checked by the caller) for `to`.
    #[inline]
    pub(super) fn piped(to: PipeTo, data: &[u8]) -> HopPacket {
        let mut packet = HopPacket::new(SocketAddr::from(([0, 0, 0, 0], 0)), data);
        packet.pipe = Some(to);
        packet
    }

    /// A barrier marker from core `origin`.
    pub(super) fn marker(origin: u16) -> HopPacket {
        HopPacket { marker: Some(origin), ..HopPacket::empty() }
    }

    pub(super) fn empty() -> HopPacket {
        HopPacket {
            source: SocketAddr::from(([0, 0, 0, 0], 0)),
            hops: 0,
            marker: None,
            pipe: None,
            len: 0,
            data: [0; HOP_MTU],
        }
    }
}

/// Another core's inbound rings and doorbell.
pub(super) struct Peer {
    pub(super) hops: Arc<ArrayQueue<HopPacket>>,
    pub(super) imports: Arc<ArrayQueue<RouterExport>>,
    pub(super) doorbell: Arc<Doorbell>,
}

/// This core's inbound hop ring and every core's, to carry datagrams to.
pub(super) struct Hops {
    inbound: Arc<ArrayQueue<HopPacket>>,
    /// Where a carried datagram is kept while it is forwarded (its outputs point into it).
    pub(super) scratch: Box<HopPacket>,
    /// Every core's rings, this one's included (indexed by core).
    pub(super) peers: Vec<Peer>,
    /// Pipes' packets taken from the ring, kept until their outputs are sent together.
    pub(super) pipe_batch: PipeBatch,
}

impl Hops {
    pub(super) fn new(inbound: Arc<ArrayQueue<HopPacket>>, peers: Vec<Peer>) -> Hops {
        Hops { inbound, scratch: Box::new(HopPacket::empty()), peers, pipe_batch: PipeBatch::new() }
    }

    /// Carries a datagram to `core`, which owns its router, and counts it in `shard` as hopped
    /// out once it is in that core's ring — or as a drop if it cannot be carried.
    #[inline]
    pub(super) fn carry(&self, shard: &mut Shard, core: u16, packet: HopPacket) {
        let reason = match self.peers.get(usize::from(core)) {
            None => DropReason::UnknownTransport,
            Some(_) if usize::from(packet.len) > HOP_MTU => DropReason::Malformed,
            Some(peer) => match peer.hops.push(packet) {
                Ok(()) => {
                    peer.doorbell.ring();
                    shard.count_hopped_out();
                    return;
                }
                Err(_) => DropReason::RingFull,
            },
        };
        shard.counters_mut().drop(reason);
    }
}

impl CoreState {
    /// Forwards datagrams other cores carried here, one at a time, in arrival order, and handles
    /// the barrier markers among them.
    pub(super) fn poll_hops(&mut self) {
        let started = Instant::now();
        let mut any = false;
        loop {
            // A router handed here is always in the import ring before any datagram its old
            // owner carried here after the handoff: take it first, or such a datagram would be
            // carried back and forth while the import waits.
            if !self.handoff.imports.is_empty() {
                self.poll_imports();
            }
            let Some(packet) = self.hops.inbound.pop() else { break };
            any = true;
            // An export pushed before this packet (its old owner pushes the router, then what it
            // carries on) is visible now even if it was not at the check above.
            if !self.handoff.imports.is_empty() {
                self.poll_imports();
            }
            let now_us = started.duration_since(self.origin).as_micros() as u64;
            if let Some(to) = packet.pipe {
                // Batched: their outputs leave together (`pipe.rs`).
                self.on_piped(packet, to, now_us);
                continue;
            }
            // Anything else sends its own outputs: the pipes' go first.
            self.flush_piped();
            if let Some(origin) = packet.marker {
                self.on_marker(origin, packet);
                continue;
            }
            *self.hops.scratch = packet;
            self.shard.count_hopped_in();
            let h = &*self.hops.scratch;
            let dgram = Datagram { socket: SocketId::SHARED, source: h.source, data: h.datagram(0) };
            if let Verdict::Hop { core } = self.shard.forward(0, &dgram, now_us, &mut self.egress.outputs) {
                // The owner moved again while this datagram was in flight: carry it once more.
                let mut again = (*self.hops.scratch).clone();
                again.hops += 1;
                if again.hops > MAX_HOPS {
                    self.shard.counters_mut().drop(DropReason::UnknownTransport);
                } else {
                    self.hops.carry(&mut self.shard, core, again);
                }
            }
            self.hops.carry_pipes(&mut self.shard, h.datagram(0));
            self.egress.send(&mut self.shard, &*self.hops.scratch, &self.sockets);
        }
        self.flush_piped();
        if any {
            // A carried datagram may have latched a comedia transport here.
            self.report_events();
            self.report.busy_ns += started.elapsed().as_nanos() as u64;
            self.publish();
        }
    }
}
