//! How a NACK (RFC 4585 §6.2.1) from a consumer is answered.
//!
//! Each lost sequence number is one the consumer saw, in the consumer's numbering; it is mapped
//! back to the producer's (`RtpRewriter::output_to_input`). What the producer's store still holds
//! is retransmitted at once to the consumer, renumbered as the consumer first received it (the
//! header from [`write_header`], the payload referenced in the store, [`PayloadRef::Stored`]).
//! The rest is asked of the producer, in the producer's numbering, as NACKs of at most four FCI
//! entries each (what fits one output's inline header).

use crate::consumer::Rewritten;
use crate::drop_reason::DropReason;
use crate::ids::SeqNo;
use crate::rtcp::{Nack, NackRepr};
use crate::rtp::{RtpPacket, FIXED_HEADER_LEN};
use crate::shard::output::{Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
use crate::shard::rtcp::{feedback_target, FeedbackTarget, RtcpContext};
use crate::shard::rtp::write_header;

/// FCI entries (PID + BLP, 4 bytes each) of one NACK sent upstream: 12 + 4 × 4 bytes fit
/// [`OUTPUT_HEADER_MAX`].
const UPSTREAM_NACK_PAIRS: usize = 4;

impl<O: OutputSink> RtcpContext<'_, O> {
    /// Acted on when the NACK is about a consumer (its media SSRC) whose producer can be reached.
    pub(super) fn nack(&mut self, nack: &Nack<'_>) -> bool {
        let Some(FeedbackTarget { consumer, producer, upstream, downstream }) =
            feedback_target(self.router, self.tid, nack.media_ssrc())
        else {
            return false;
        };
        let pid = consumer.producer;
        let producer_ssrc = producer.options.ssrc.0;
        let mut lost: heapless::Vec<u16, 64> = heapless::Vec::new();
        for seq in nack.lost_sequence_numbers() {
            let input = consumer.rewriter.output_to_input(SeqNo(seq));
            let stored = producer.store.0.as_ref().and_then(|s| s.get(input));
            match (stored, downstream) {
                (Some(p), Some((socket, dest))) if p.len() >= FIXED_HEADER_LEN => {
                    let original = RtpPacket::new_unchecked(p);
                    let rewritten = Rewritten {
                        ssrc: consumer.ssrc(),
                        payload_type: consumer.rewriter.payload_type(),
                        seq: SeqNo(seq),
                        timestamp: original.timestamp().wrapping_add(consumer.rewriter.ts_offset()),
                    };
                    let output = Output {
                        socket,
                        dest,
                        // Checked just above: at least FIXED_HEADER_LEN bytes.
                        header: write_header(p, &rewritten),
                        header_len: FIXED_HEADER_LEN as u8,
                        payload: PayloadRef::Stored { router: self.rid, producer: pid, seq: input.0 },
                    };
                    if self.out.push(output) {
                        self.counters.outputs += 1;
                        self.counters.retransmitted += 1;
                    } else {
                        self.counters.drop(DropReason::OutputFull);
                    }
                }
                _ => {
                    if lost.push(input.0).is_err() {
                        // More than one NACK output can carry: the rest are not retransmitted
                        // (counted).
                        self.counters.drop(DropReason::RetransmissionMissing);
                    }
                }
            }
        }
        let repr = NackRepr::from_lost(nack.sender_ssrc(), producer_ssrc, &lost);
        for chunk in repr.pairs.chunks(UPSTREAM_NACK_PAIRS) {
            let part = NackRepr {
                sender_ssrc: repr.sender_ssrc,
                media_ssrc: producer_ssrc,
                pairs: heapless::Vec::from_slice(chunk).unwrap_or_default(),
            };
            let mut header = [0u8; OUTPUT_HEADER_MAX];
            let len = part.emit(&mut header);
            Self::emit(self.counters, self.out, upstream, header, len);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, SocketId};
    use crate::ids::ConsumerId;
    use crate::rtcp::{Nack, NackRepr};
    use crate::shard::tests::{addr, batch, rtcp_out, send, setup, R};
    use crate::shard::PayloadRef;
    use crate::testutil::rtp;

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
        let nack_repr = NackRepr::from_lost(9, 5000, &[101, 102, 103]);
        let mut nack = [0u8; 16];
        nack_repr.emit(&mut nack);
        let out = rtcp_out(&mut s, 100, addr(6000), &nack, 0);
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
        let n = Nack::new_checked(out[2].header()).unwrap();
        assert_eq!(n.media_ssrc(), 1111);
        assert_eq!(n.lost_sequence_numbers().collect::<Vec<_>>(), vec![112]);
        assert_eq!(s.counters().retransmitted, 2);
    }
}
