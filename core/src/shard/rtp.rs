//! The RTP path: find the transport and producer of a datagram, latch a comedia transport, keep
//! a video packet for NACKs, and write one [`Output`] per consumer — the consumer's header (see
//! [`write_header`], also used by retransmissions) plus a reference to the payload in place.

use crate::command::Event;
use crate::consumer::Rewritten;
use crate::drop_reason::DropReason;
use crate::ids::MediaKind;
use crate::router::Router;
use crate::rtp::{RtpPacket, FIXED_HEADER_LEN};
use crate::rtp_store::RtpStore;
use crate::shard::output::{Datagram, Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
use crate::shard::{Shard, Verdict};
use crate::transport::Remote;

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
        let Some(key) = self.index.lookup(dgram.socket, dgram.source, Some(ssrc)) else {
            if let Some(v) = self.steer(dgram, Some(ssrc)) {
                return Some(v);
            }
            return self.drop(DropReason::UnknownTransport);
        };
        let (rid, tid) = key;
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
            return self.drop(reason);
        };
        match transport.remote {
            Remote::Known(addr) if addr == dgram.source => {}
            Remote::Known(_) => return self.drop(DropReason::SourceMismatch),
            Remote::Unset => return self.drop(DropReason::NotConnected),
            Remote::Comedia => {
                // Latch once, on a valid packet of one of this transport's producers; the
                // address can never change afterwards (no re-latching: RTP Bleed).
                if dgram.socket.is_shared() && self.index.has_remote(dgram.source) {
                    return self.drop(DropReason::SourceMismatch);
                }
                self.index.set_remote(&key, transport, dgram.source);
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
        for cid in &producer.consumers {
            let Some(consumer) = consumers.get_mut(cid) else { continue };
            if consumer.paused || consumer.producer_paused {
                self.counters.drop(DropReason::ConsumerPaused);
                continue;
            }
            let Some((socket, dest)) = transports.get(&consumer.transport).and_then(|t| t.egress()) else {
                self.counters.drop(DropReason::ConsumerNotConnected);
                continue;
            };
            let Some(rewritten) = consumer.rewriter.rewrite(seq, ts, clock_rate, now_us) else {
                self.counters.drop(DropReason::StaleSequence);
                continue;
            };
            let output = Output {
                socket,
                dest,
                // `new_checked` guaranteed at least FIXED_HEADER_LEN bytes.
                header: write_header(dgram.data, &rewritten),
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
}
