//! Pipes across cores: what a source producer routes for a piped producer on another core
//! (`Shard::pop_pipe_hop`) is copied into that core's hop ring — the same bounded,
//! single-producer-per-sender `ArrayQueue` and doorbell that carry shared-port datagrams, so no
//! lock, no syscall per packet and a doorbell only when the core may sleep — as a [`HopPacket`]
//! naming the piped producer instead of a source address. The ring is leaky: when it is full the
//! newest copy is dropped and counted `pipe_ring_full` on the sending core, which never waits.
//! RTCP feedback for the source travels back the same way, and the source's sender reports
//! forward. The receiving core hands media to
//! `Shard::forward_piped`, feedback to `Shard::pipe_feedback`: its own state (the piped
//! producer's `paused`, whether it still exists) decides what happens to a packet that was in
//! flight when a command was applied.

use shardcast_core::ids::{ProducerId, RouterId};
use shardcast_core::shard::{PipeCargo, Shard};

use super::egress::{Datagrams, OUTPUT_CAPACITY, OUTPUT_HEADROOM};
use super::hop::{HopPacket, Hops, HOP_MTU};
use super::state::CoreState;

/// Pipes' packets a core takes from its ring before it sends their outputs (one `sendmmsg` run
/// per egress socket for all of them, not one per packet).
const PIPE_BATCH: usize = 32;

/// Where pipes' packets taken from the ring are kept until their outputs are sent (allocated
/// once).
pub(super) struct PipeBatch {
    slots: Vec<HopPacket>,
    len: usize,
}

impl PipeBatch {
    pub(super) fn new() -> PipeBatch {
        PipeBatch { slots: (0..PIPE_BATCH).map(|_| HopPacket::empty()).collect(), len: 0 }
    }
}

impl Datagrams for PipeBatch {
    #[inline]
    fn datagram(&self, index: u32) -> &[u8] {
        let h = &self.slots[index as usize];
        &h.data[..usize::from(h.len).min(HOP_MTU)]
    }
}

/// What a [`HopPacket`] carries for a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PipeTo {
    pub(crate) router: RouterId,
    pub(crate) producer: ProducerId,
    pub(crate) kind: PipeKind,
}

/// Which [`PipeCargo`] a [`HopPacket`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeKind {
    /// Media for a piped producer.
    Media,
    /// RTCP feedback for a source producer.
    Feedback,
    /// A source's sender report for a piped producer.
    SenderReport,
}

impl Hops {
    /// Carries what the last `forward` left for pipes to other cores; `data` is the datagram it
    /// forwarded (the media a `PipeCargo::Media` hop refers to).
    #[inline]
    pub(super) fn carry_pipes(&self, shard: &mut Shard, data: &[u8]) {
        while let Some(hop) = shard.pop_pipe_hop() {
            let (bytes, kind) = match hop.cargo {
                PipeCargo::Media { .. } => (data, PipeKind::Media),
                PipeCargo::Feedback { .. } => (hop.cargo.rtcp().unwrap_or_default(), PipeKind::Feedback),
                PipeCargo::SenderReport { .. } => {
                    (hop.cargo.rtcp().unwrap_or_default(), PipeKind::SenderReport)
                }
            };
            let to = PipeTo { router: hop.router, producer: hop.producer, kind };
            let pushed = match self.peers.get(usize::from(hop.core)) {
                Some(peer) if bytes.len() <= HOP_MTU => {
                    let ok = peer.hops.push(HopPacket::piped(to, bytes)).is_ok();
                    if ok {
                        peer.doorbell.ring();
                    }
                    ok
                }
                _ => false,
            };
            match (pushed, hop.cargo) {
                (true, PipeCargo::Media { .. }) if !hop.carried_on => shard.count_piped_out(),
                (true, _) => {}
                (false, _) => shard.count_pipe_hop_lost(&hop),
            }
        }
    }
}

impl CoreState {
    /// A pipe's packet carried here: media for a piped producer here, feedback or a sender
    /// report for a producer here — or, if its router moved on, carried on. Kept in the batch
    /// until [`CoreState::flush_piped`] sends the outputs (when the batch or the output buffer is
    /// full, and before anything else in the ring is handled).
    pub(super) fn on_piped(&mut self, packet: HopPacket, to: PipeTo, now_us: u64) {
        let full = self.hops.pipe_batch.len == PIPE_BATCH;
        if full || self.egress.outputs.len() + OUTPUT_HEADROOM > OUTPUT_CAPACITY {
            self.flush_piped();
        }
        let i = self.hops.pipe_batch.len;
        self.hops.pipe_batch.slots[i] = packet;
        self.hops.pipe_batch.len += 1;
        let data = self.hops.pipe_batch.datagram(i as u32);
        let out = &mut self.egress.outputs;
        match to.kind {
            PipeKind::Media => self.shard.forward_piped(i as u32, to.router, to.producer, data, now_us, out),
            PipeKind::Feedback => self.shard.pipe_feedback(to.router, to.producer, data, now_us, out),
            PipeKind::SenderReport => {
                self.shard.pipe_sender_report(to.router, to.producer, data, now_us, out)
            }
        }
        self.hops.carry_pipes(&mut self.shard, self.hops.pipe_batch.datagram(i as u32));
    }

    /// Sends the outputs of the pipes' packets in the batch.
    pub(super) fn flush_piped(&mut self) {
        if self.hops.pipe_batch.len > 0 {
            self.egress.send(&mut self.shard, &self.hops.pipe_batch, &self.sockets);
            self.hops.pipe_batch.len = 0;
        }
    }
}
