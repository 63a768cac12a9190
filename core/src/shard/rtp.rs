//! The RTP path: find the transport and producer of a datagram (on the shared port by address,
//! then by (address, SSRC) when several transports share it), validate it, latch a comedia
//! transport (trust on first use), check its sequence number, keep a video packet for NACKs,
//! send the keyframe request a source switch left on the producer, and write one [`Output`] per consumer — the consumer's header (see
//! [`write_header`], also used by retransmissions) plus a reference to the payload in place.

use std::collections::HashMap;

use crate::command::{Event, SteerKey};
use crate::consumer::{Consumer, Rewritten};
use crate::drop_reason::{Counters, DropReason};
use crate::ids::{ConsumerId, MediaKind, TransportId};
use crate::producer::Producer;
use crate::router::Router;
use crate::rtp::{RtpPacket, FIXED_HEADER_LEN};
use crate::rtp_store::RtpStore;
use crate::rtp_stream::SeqCheck;
use crate::shard::index::TransportKey;
use crate::shard::output::{Datagram, Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
use crate::shard::pipe::pipe_targets;
use crate::shard::rtcp::request_wanted_keyframe;
use crate::shard::{Shard, Verdict};
use crate::transport::{Remote, Transport};

/// The header a consumer receives: `original`'s fixed header (V, P, X, CC and the marker kept)
/// with the consumer's payload type, sequence number, timestamp and SSRC. `original` holds at
/// least [`FIXED_HEADER_LEN`] bytes (a checked packet, or a stored one checked for it); what
/// follows the fixed header (CSRCs, extension, payload) is sent from where it lies.
pub(super) fn write_header(original: &[u8], rewritten: &Rewritten) -> [u8; OUTPUT_HEADER_MAX] {
    let mut header = [0u8; OUTPUT_HEADER_MAX];
    header[..FIXED_HEADER_LEN].copy_from_slice(&original[..FIXED_HEADER_LEN]);
    let mut fixed = RtpPacket::new_unchecked(&mut header[..FIXED_HEADER_LEN]);
    fixed.set_payload_type(rewritten.payload_type);
    fixed.set_sequence_number(rewritten.seq);
    fixed.set_timestamp(rewritten.timestamp);
    fixed.set_ssrc(rewritten.ssrc);
    header
}

impl Shard {
    /// `None` when the packet was dropped (and counted).
    pub(super) fn route_rtp(
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
        let Some(key) = self.index.lookup(dgram.socket, dgram.source, ssrc) else {
            if let Some(v) = self.steer(dgram, Some(ssrc)) {
                return Some(v);
            }
            return self.drop(DropReason::UnknownTransport);
        };
        let reason = match self.route_rtp_on(key, &packet, index, dgram, now_us, out) {
            Ok(verdict) => return verdict,
            Err(reason) => reason,
        };
        // The transport at this address has no producer with this SSRC. On the shared port one
        // address may carry several transports' streams (a gateway sending many from one
        // socket): a comedia transport here waiting for the SSRC takes it, or a transport on
        // another core does (its SSRC steering key: the address's key is ambiguous now).
        if dgram.socket.is_shared() {
            if let Some(other) = self.index.awaiting(ssrc).filter(|k| *k != key) {
                return self
                    .route_rtp_on(other, &packet, index, dgram, now_us, out)
                    .unwrap_or_else(|r| self.drop(r));
            }
            if let Some(&(_, core)) = self.steering.get(&SteerKey::Ssrc(ssrc)) {
                // Counted by the caller once carried (`Shard::count_hopped_out`), like every hop.
                return Some(Verdict::Hop { core });
            }
        }
        self.drop(reason)
    }

    /// Routes `packet` on transport `key`. `Err(reason)`: the transport has no producer with the
    /// packet's SSRC (nothing counted yet; `reason` is the drop if no other transport takes it).
    fn route_rtp_on(
        &mut self,
        key: TransportKey,
        packet: &RtpPacket<&[u8]>,
        index: u32,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut impl OutputSink,
    ) -> Result<Option<Verdict>, DropReason> {
        let (rid, tid) = key;
        let Some(router) = self.routers.get_mut(&rid) else {
            return Ok(self.drop(DropReason::UnknownTransport));
        };
        let Router { transports, producers, consumers } = router;
        let Some(transport) = transports.get_mut(&tid) else {
            return Ok(self.drop(DropReason::UnknownTransport));
        };
        let Some(pid) = transport.producers_by_ssrc.get(&packet.ssrc()).copied() else {
            // Also covers comedia: an unknown SSRC never latches a transport.
            return Err(if transport.remote == Remote::Unset {
                DropReason::NotConnected
            } else {
                DropReason::UnknownSsrc
            });
        };
        let Some(producer) = producers.get_mut(&pid) else {
            return Ok(self.drop(DropReason::UnknownSsrc));
        };
        // Whatever does not depend on the source is checked before it (and before a comedia
        // latch): the header (`new_checked`: RFC 3550 §5.1 version, CSRCs, extension, padding)
        // and the payload type the producer declared.
        if packet.payload_type() != producer.options.payload_type {
            return Ok(self.drop(DropReason::UnknownPayloadType));
        }
        match transport.remote {
            Remote::Known(addr) if addr == dgram.source => {}
            Remote::Known(_) => return Ok(self.drop(DropReason::SourceMismatch)),
            Remote::Unset => return Ok(self.drop(DropReason::NotConnected)),
            Remote::Comedia => {
                // Trust on first use: the first plausible packet of one of this transport's
                // producers becomes the remote, once; the address can never change afterwards
                // (no re-latching: RTP Bleed). Plausible: checked as above, carrying media, from
                // the allowed prefix, and on the shared port not claiming a flow (address, SSRC)
                // another transport has.
                if packet.payload().is_empty() {
                    return Ok(self.drop(DropReason::NotConnected));
                }
                if transport.comedia_source.is_some_and(|p| !p.contains(dgram.source.ip())) {
                    return Ok(self.drop(DropReason::ComediaSourceRefused));
                }
                if dgram.socket.is_shared() && !self.index.flows_free(&key, transport, dgram.source) {
                    return Ok(self.drop(DropReason::SourceMismatch));
                }
                self.index.set_remote(&key, transport, dgram.source);
                self.events.push(Event::TransportLatched {
                    router: rid,
                    transport: tid,
                    remote: dgram.source,
                });
            }
        }
        let routed = deliver(&mut self.counters, producer, consumers, transports, packet, index, now_us, out);
        if routed && !producer.pipes.is_empty() {
            let pipes = pipe_targets(&producer.pipes);
            self.feed_pipes(&pipes, packet, index, now_us, out);
        }
        Ok(Some(Verdict::Done))
    }
}

/// A packet's path once its producer is known and its source validated — from a transport or
/// from a pipe: the sequence check, the producer's figures and NACK store, its pause, and one
/// [`Output`] per consumer. `true` when it was routed (then its pipes get it too).
#[allow(clippy::too_many_arguments)]
pub(super) fn deliver(
    counters: &mut Counters,
    producer: &mut Producer,
    consumers: &mut HashMap<ConsumerId, Consumer>,
    transports: &HashMap<TransportId, Transport>,
    packet: &RtpPacket<&[u8]>,
    index: u32,
    now_us: u64,
    out: &mut impl OutputSink,
) -> bool {
    let data: &[u8] = packet.as_bytes();
    // The sequence number only now, from the validated source: a lone far jump is dropped
    // without moving the stream (RFC 3550 A.1), two in a row re-sync it.
    match producer.stream.update_seq(packet.sequence_number()) {
        SeqCheck::Accepted => {}
        SeqCheck::Resynced => {
            // The sender restarted its numbering: every consumer continues its own, and
            // what was stored or asked upstream under the old numbers is forgotten.
            if let Some(store) = producer.store.0.as_mut() {
                store.clear();
            }
            producer.nack_asked = None;
            for cid in &producer.consumers {
                if let Some(c) = consumers.get_mut(cid) {
                    c.rewriter.switch_source();
                }
            }
        }
        SeqCheck::Outlier => {
            counters.drop(DropReason::SequenceOutlier);
            return false;
        }
    }
    producer.stats.packets += 1;
    producer.stats.bytes += data.len() as u64;
    if producer.options.kind == MediaKind::Video {
        // Allocated once, at the first packet; then one copy per packet, for NACKs.
        producer
            .store
            .0
            .get_or_insert_with(|| Box::new(RtpStore::new()))
            .insert(packet.sequence_number(), data);
    }
    producer.stats.last_seq = packet.sequence_number().0;
    producer.stats.last_timestamp = packet.timestamp();
    if producer.paused {
        counters.drop(DropReason::ProducerPaused);
        return false;
    }
    if producer.consumers.is_empty() && producer.pipes.is_empty() {
        counters.drop(DropReason::NoConsumers);
        return false;
    }
    counters.routed += 1;
    if producer.keyframe_wanted {
        // A consumer was switched to this producer: its PLI leaves with this packet (a piped
        // producer's goes through its pipe to the source: `Shard::deliver_piped`).
        if let Some(upstream) = transports.get(&producer.transport).and_then(|t| t.egress()) {
            request_wanted_keyframe(producer, upstream, now_us, counters, out);
        }
    }
    let clock_rate = producer.options.clock_rate;
    let seq = packet.sequence_number();
    let ts = packet.timestamp();
    for cid in &producer.consumers {
        let Some(consumer) = consumers.get_mut(cid) else { continue };
        if consumer.paused || consumer.producer_paused {
            counters.drop(DropReason::ConsumerPaused);
            continue;
        }
        let Some((socket, dest)) = transports.get(&consumer.transport).and_then(|t| t.egress()) else {
            counters.drop(DropReason::ConsumerNotConnected);
            continue;
        };
        let Some(rewritten) = consumer.rewriter.rewrite(seq, ts, clock_rate, now_us) else {
            counters.drop(DropReason::StaleSequence);
            continue;
        };
        let output = Output {
            socket,
            dest,
            // `new_checked` guaranteed at least FIXED_HEADER_LEN bytes.
            header: write_header(data, &rewritten),
            header_len: FIXED_HEADER_LEN as u8,
            payload: PayloadRef::Datagram { index, offset: FIXED_HEADER_LEN as u16 },
        };
        if out.push(output) {
            counters.outputs += 1;
            consumer.stats.packets += 1;
            consumer.stats.bytes += data.len() as u64;
        } else {
            counters.drop(DropReason::OutputFull);
        }
    }
    true
}
