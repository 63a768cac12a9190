//! How a NACK (RFC 4585 §6.2.1) from a consumer is answered.
//!
//! Each lost sequence number is one the consumer saw, in the consumer's numbering; it is mapped
//! back to the producer's (`RtpRewriter::output_to_input`; a number it did not send from the
//! producer it follows now — before a source switch — is not answered). What the producer's store still holds
//! is retransmitted at once to the consumer, renumbered as the consumer first received it (the
//! header from [`write_header`], the payload referenced in the store, [`PayloadRef::Stored`]).
//! The rest is asked of the producer, in the producer's numbering, in one NACK of at most four
//! FCI entries (what fits one output's inline header).
//!
//! A NACK costs little to send and asks for up to 17 packets per FCI entry, so what it may draw
//! is bounded ([`RtcpLimits`](super::RtcpLimits)), each excess counted:
//! - a packet retransmitted to this consumer within the NACK interval (or its RTT, if longer) is
//!   not sent again
//!   ([`DropReason::RetransmissionTooSoon`]): repeated FCIs and overlapping bitmasks in one NACK
//!   are repeats too;
//! - a retransmission costs its bytes from the consumer's budget, earned as a share of the media
//!   forwarded to it ([`DropReason::RetransmissionOverBudget`]);
//! - one datagram draws at most a fixed number of retransmissions
//!   ([`DropReason::RetransmissionOverNackCap`]);
//! - a sequence number asked of the producer within the interval — by any of its consumers — is
//!   not asked again, nor twice in one NACK ([`DropReason::NackUpstreamThrottled`]), and one
//!   datagram sends at most one NACK upstream (what does not fit:
//!   [`DropReason::RetransmissionMissing`]).

use crate::consumer::Rewritten;
use crate::drop_reason::DropReason;
use crate::ids::SeqNo;
use crate::rtcp::{Nack, NackRepr};
use crate::rtp::{RtpPacket, FIXED_HEADER_LEN};
use crate::rtp_store::SeqTimes;
use crate::shard::output::{Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
use crate::shard::rtcp::{feedback_target, FeedbackTarget, RtcpContext};
use crate::shard::rtp::write_header;

/// FCI entries (PID + BLP, 4 bytes each) of one NACK sent upstream: 12 + 4 × 4 bytes fit
/// [`OUTPUT_HEADER_MAX`].
const UPSTREAM_NACK_PAIRS: usize = 4;

/// The longest a measured RTT spaces a consumer's retransmissions.
const MAX_RESEND_INTERVAL_US: u64 = 1_000_000;

/// The FCI entries of the NACK being built for the producer.
type UpstreamPairs = heapless::Vec<(u16, u16), UPSTREAM_NACK_PAIRS>;

/// What [`cover`] did with a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// An entry already asks for it.
    Already,
    /// Now asked for.
    Added,
    /// No entry can take it and there is no room for another.
    Full,
}

/// Puts `seq` in the first entry whose PID..=PID+16 holds it, or in a new entry.
fn cover(pairs: &mut UpstreamPairs, seq: u16) -> Cover {
    for (pid, blp) in pairs.iter_mut() {
        match seq.wrapping_sub(*pid) {
            0 => return Cover::Already,
            d @ 1..=16 => {
                let bit = 1 << (d - 1);
                if *blp & bit != 0 {
                    return Cover::Already;
                }
                *blp |= bit;
                return Cover::Added;
            }
            _ => {}
        }
    }
    if pairs.push((seq, 0)).is_ok() {
        Cover::Added
    } else {
        Cover::Full
    }
}

impl<O: OutputSink> RtcpContext<'_, O> {
    /// Acted on when the NACK is about a consumer (its media SSRC) whose producer can be reached.
    pub(super) fn nack(&mut self, nack: &Nack<'_>) -> bool {
        let (now_us, limits) = (self.now_us, *self.limits);
        let Some(FeedbackTarget { consumer, producer, upstream, downstream }) =
            feedback_target(self.router, self.tid, nack.media_ssrc())
        else {
            return false;
        };
        let pid = consumer.producer;
        // mediasoup resends once per RTT; the configured interval is the floor, so what a peer's
        // reports claim can only space its own retransmissions further (up to 1 s).
        let resend_us = consumer
            .rtt_us
            .unwrap_or(0)
            .clamp(limits.nack_interval_us, MAX_RESEND_INTERVAL_US.max(limits.nack_interval_us));
        let producer_ssrc = producer.options.ssrc.0;
        let budget = &mut consumer.retransmissions;
        budget.earn(
            consumer.stats.bytes,
            limits.retransmission_share_permille,
            u64::from(limits.retransmission_burst_bytes),
        );
        let mut pairs = UpstreamPairs::new();
        for seq in nack.lost_sequence_numbers() {
            let Some(input) = consumer.rewriter.output_to_input(SeqNo(seq)) else {
                // Never sent, or sent from the producer it followed before a source switch:
                // neither its store nor its numbering is this producer's.
                self.counters.drop(DropReason::RetransmissionMissing);
                continue;
            };
            let stored = producer.store.0.as_ref().and_then(|s| s.get(input));
            match (stored, downstream) {
                (Some(p), Some((socket, dest))) if p.len() >= FIXED_HEADER_LEN => {
                    let resent = budget.resent.as_ref();
                    if resent.is_some_and(|r| r.is_recent(input, now_us, resend_us)) {
                        self.counters.drop(DropReason::RetransmissionTooSoon);
                        continue;
                    }
                    if self.retransmissions_left == 0 {
                        self.counters.drop(DropReason::RetransmissionOverNackCap);
                        continue;
                    }
                    if !budget.spend(p.len() as u64) {
                        self.counters.drop(DropReason::RetransmissionOverBudget);
                        continue;
                    }
                    let original = RtpPacket::new_unchecked(p);
                    let rewritten = Rewritten {
                        ssrc: consumer.rewriter.ssrc(),
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
                        self.retransmissions_left -= 1;
                        // The consumer's first retransmission allocates its table, never the
                        // media path.
                        budget.resent.get_or_insert_with(SeqTimes::new).record(input, now_us);
                    } else {
                        self.counters.drop(DropReason::OutputFull);
                    }
                }
                _ => {
                    let asked = producer.nack_asked.as_ref();
                    if asked.is_some_and(|a| a.is_recent(input, now_us, limits.nack_interval_us)) {
                        self.counters.drop(DropReason::NackUpstreamThrottled);
                        continue;
                    }
                    if self.upstream_nack_sent {
                        // This datagram already sent its one NACK upstream.
                        self.counters.drop(DropReason::RetransmissionMissing);
                        continue;
                    }
                    match cover(&mut pairs, input.0) {
                        Cover::Added => {}
                        Cover::Already => self.counters.drop(DropReason::NackUpstreamThrottled),
                        // More than one NACK output can carry: not retransmitted (counted).
                        Cover::Full => self.counters.drop(DropReason::RetransmissionMissing),
                    }
                }
            }
        }
        if pairs.is_empty() {
            return true;
        }
        let repr = NackRepr {
            sender_ssrc: nack.sender_ssrc(),
            media_ssrc: producer_ssrc,
            // UPSTREAM_NACK_PAIRS ≤ the repr's 64 entries: cannot fail.
            pairs: heapless::Vec::from_slice(&pairs).unwrap_or_default(),
        };
        let mut header = [0u8; OUTPUT_HEADER_MAX];
        let len = repr.emit(&mut header);
        if Self::upstream(self.counters, self.out, &mut self.to_pipes, upstream, header, len) {
            self.upstream_nack_sent = true;
            // The first NACK upstream allocates the producer's table.
            let asked = producer.nack_asked.get_or_insert_with(SeqTimes::new);
            for (pid, blp) in &pairs {
                asked.record(SeqNo(*pid), now_us);
                for bit in (0..16u16).filter(|b| blp & (1 << b) != 0) {
                    asked.record(SeqNo(pid.wrapping_add(bit + 1)), now_us);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, SocketId};
    use crate::drop_reason::DropReason;
    use crate::ids::ConsumerId;
    use crate::rtcp::{Nack, NackRepr, ReceiverReportRepr, ReportBlockRepr, SenderReportRepr};
    use crate::shard::tests::{addr, batch, rtcp_out, send, setup, R};
    use crate::shard::{BatchReply, Output, PayloadRef, RtcpLimits, Shard};
    use crate::testutil::{fanout_setup, rtp};

    /// `setup` with other limits.
    fn setup_with(consumers: u32, limits: RtcpLimits) -> Shard {
        let mut s = Shard::with_limits(limits);
        let reply =
            s.apply_batch(&fanout_setup(SocketId(1), addr(5000), consumers, |i| addr(6000 + i as u16)));
        assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
        s
    }

    /// A 1012-byte video packet `seq` from the producer.
    fn media(s: &mut Shard, seq: u16) {
        send(s, 1, addr(5000), &rtp(1111, seq, u32::from(seq) * 3000, 96, &[seq as u8; 1000]));
    }

    /// A NACK from consumer `i` (SSRC 5000 + i) with these FCI entries.
    fn nack(i: u32, pairs: &[(u16, u16)]) -> Vec<u8> {
        let repr = NackRepr {
            sender_ssrc: 9,
            media_ssrc: 5000 + i,
            pairs: heapless::Vec::from_slice(pairs).unwrap(),
        };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut b);
        b
    }

    /// Consumer `i`'s NACK at `now_us`: its outputs.
    fn nack_out(s: &mut Shard, i: u32, pairs: &[(u16, u16)], now_us: u64) -> heapless::Vec<Output, 64> {
        rtcp_out(s, 100 + i, addr(6000 + i as u16), &nack(i, pairs), now_us)
    }

    /// Sequence numbers of the retransmissions among `out`, in the consumer's numbering.
    fn resent(out: &[Output]) -> Vec<u16> {
        out.iter()
            .filter(|o| matches!(o.payload, PayloadRef::Stored { .. }))
            .map(|o| u16::from_be_bytes([o.header[2], o.header[3]]))
            .collect()
    }

    fn balanced(s: &Shard) {
        assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
    }

    #[test]
    fn nack_is_answered_from_the_store_or_mapped_back_upstream() {
        // A budget of all the media forwarded: this test is about the mapping, not the budget.
        let mut s = setup_with(1, RtcpLimits { retransmission_share_permille: 1000, ..Default::default() });
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

    #[test]
    fn a_sender_restart_forgets_the_stored_packets_of_the_old_numbering() {
        let mut s = setup_with(1, RtcpLimits { retransmission_share_permille: 1000, ..Default::default() });
        (10_000..10_040).for_each(|seq| media(&mut s, seq));
        // The sender restarts far behind (more than MAX_MISORDER): two packets re-sync it.
        (5_000..5_003).for_each(|seq| media(&mut s, seq));
        let probe = send(&mut s, 1, addr(5000), &rtp(1111, 5_003, 5_003 * 3000, 96, &[3; 1000]));
        let out_seq = u16::from_be_bytes([probe[0].header[2], probe[0].header[3]]);
        // The consumer's number that now maps back to the old 10_005, still in the store's slot.
        let asked = out_seq.wrapping_add(10_005u16.wrapping_sub(5_003));
        let out = nack_out(&mut s, 0, &[(asked, 0)], 1_000_000);
        assert!(resent(&out).is_empty(), "an old-numbering packet answered a new number: {out:?}");
        assert_eq!(s.counters().retransmitted, 0);
        balanced(&s);
    }

    #[test]
    fn a_packet_is_resent_to_a_consumer_at_most_once_per_interval() {
        let mut s = setup(2);
        (0..40).for_each(|seq| media(&mut s, seq));
        assert_eq!(resent(&nack_out(&mut s, 0, &[(5, 0)], 1_000_000)), vec![5]);
        // Asked again 50 ms later: too soon; another consumer has its own table.
        assert!(nack_out(&mut s, 0, &[(5, 0)], 1_050_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionTooSoon), 1);
        assert_eq!(resent(&nack_out(&mut s, 1, &[(5, 0)], 1_050_000)), vec![5]);
        // One interval (100 ms) after the first, it is resent again.
        assert_eq!(resent(&nack_out(&mut s, 0, &[(5, 0)], 1_100_000)), vec![5]);
        assert_eq!(s.counters().retransmitted, 3);
        balanced(&s);
    }

    #[test]
    fn a_measured_rtt_longer_than_the_interval_spaces_resends_further() {
        let mut s = setup(1);
        (0..40).for_each(|seq| media(&mut s, seq));
        // The producer's SR reaches the consumer at 1 s; its RR echoes it at 1.4 s, having held
        // it 0.1 s: RTT 0.3 s.
        let mut sr = [0u8; 28];
        SenderReportRepr { ssrc: 1111, ntp: 0xABCD_1234 << 16, ..Default::default() }.emit(&mut sr);
        assert_eq!(rtcp_out(&mut s, 1, addr(5000), &sr, 1_000_000).len(), 1);
        let mut reports = heapless::Vec::new();
        let block = ReportBlockRepr {
            ssrc: 5000,
            last_sr: 0xABCD_1234,
            delay_since_last_sr: 65_536 / 10,
            ..Default::default()
        };
        reports.push(block).unwrap();
        let mut rr = [0u8; 32];
        ReceiverReportRepr { ssrc: 9, reports }.emit(&mut rr);
        assert!(rtcp_out(&mut s, 100, addr(6000), &rr, 1_400_000).is_empty());
        let rtt = s.router(R).unwrap().consumer(ConsumerId(100)).unwrap().rtt_us().unwrap();
        assert!((299_000..=301_000).contains(&rtt), "{rtt}");
        assert_eq!(resent(&nack_out(&mut s, 0, &[(5, 0)], 2_000_000)), vec![5]);
        // Past the 100 ms interval but within the RTT: too soon.
        assert!(nack_out(&mut s, 0, &[(5, 0)], 2_200_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionTooSoon), 1);
        assert_eq!(resent(&nack_out(&mut s, 0, &[(5, 0)], 2_000_000 + rtt + 1000)), vec![5]);
        balanced(&s);
    }

    #[test]
    fn repeated_fcis_and_overlapping_bitmasks_are_resent_once() {
        let mut s = setup(1);
        (0..100).for_each(|seq| media(&mut s, seq));
        // 10..=26 three times over, and 12, 13, 14 once more: 54 asked, 17 distinct.
        let out = nack_out(&mut s, 0, &[(10, 0xFFFF), (10, 0xFFFF), (12, 0x0003), (10, 0xFFFF)], 0);
        assert_eq!(resent(&out), (10..=26).collect::<Vec<_>>());
        assert_eq!(out.len(), 17, "nothing asked upstream: all stored");
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionTooSoon), 54 - 17);
        balanced(&s);
    }

    #[test]
    fn retransmissions_are_paid_from_a_share_of_the_consumers_media() {
        let mut s = setup(1);
        // 20 packets of 1012 bytes forwarded: a quarter of it pays for 5 retransmissions.
        (0..20).for_each(|seq| media(&mut s, seq));
        let out = nack_out(&mut s, 0, &[(0, 0x01FF)], 0);
        assert_eq!(resent(&out), (0..5).collect::<Vec<_>>());
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionOverBudget), 5);
        assert_eq!(s.router(R).unwrap().consumer(ConsumerId(100)).unwrap().retransmission_credit(), 0);
        // Four more forwarded earn one more.
        (20..24).for_each(|seq| media(&mut s, seq));
        assert_eq!(resent(&nack_out(&mut s, 0, &[(5, 0x000F)], 1000)), vec![5]);
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionOverBudget), 9);
        balanced(&s);
    }

    #[test]
    fn credit_is_capped_at_the_burst() {
        let limits = RtcpLimits {
            retransmission_share_permille: 1000,
            retransmission_burst_bytes: 3000,
            ..Default::default()
        };
        let mut s = setup_with(1, limits);
        // 100 KB forwarded, but at most 3000 bytes of credit: two retransmissions of 1012.
        (0..100).for_each(|seq| media(&mut s, seq));
        assert_eq!(resent(&nack_out(&mut s, 0, &[(50, 0xFFFF)], 0)), vec![50, 51]);
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionOverBudget), 15);
        balanced(&s);
    }

    #[test]
    fn one_datagram_draws_at_most_the_per_datagram_cap() {
        let limits = RtcpLimits {
            retransmission_share_permille: 1000,
            retransmissions_per_datagram: 5,
            ..Default::default()
        };
        let mut s = setup_with(1, limits);
        (0..100).for_each(|seq| media(&mut s, seq));
        // Two NACKs in one compound datagram share the cap.
        let mut compound = nack(0, &[(10, 0x0007)]);
        compound.extend_from_slice(&nack(0, &[(40, 0x0007)]));
        let out = rtcp_out(&mut s, 100, addr(6000), &compound, 0);
        assert_eq!(resent(&out), vec![10, 11, 12, 13, 40]);
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionOverNackCap), 3);
        // The next datagram has its own.
        assert_eq!(resent(&nack_out(&mut s, 0, &[(41, 0x0001)], 0)), vec![41, 42]);
        balanced(&s);
    }

    #[test]
    fn upstream_nacks_are_merged_across_consumers_and_throttled() {
        let mut s = setup(2);
        // 105 and 106 never arrived: not in the store, asked of the producer.
        (100..=110).filter(|q| !(105..=106).contains(q)).for_each(|seq| media(&mut s, seq));
        let up = |out: &[Output]| -> Vec<Vec<u16>> {
            out.iter()
                .filter(|o| o.dest == addr(5000))
                .map(|o| Nack::new_checked(o.header()).unwrap().lost_sequence_numbers().collect())
                .collect()
        };
        assert_eq!(up(&nack_out(&mut s, 0, &[(105, 0x0001)], 1_000_000)), vec![vec![105, 106]]);
        // The other consumer asks the same within the interval: not asked again.
        assert!(nack_out(&mut s, 1, &[(105, 0x0001)], 1_020_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::NackUpstreamThrottled), 2);
        // After the interval it is; a NACK repeating itself asks once.
        let out = nack_out(&mut s, 1, &[(105, 0), (105, 0), (105, 0x0001)], 1_100_000);
        assert_eq!(up(&out), vec![vec![105, 106]]);
        assert_eq!(s.counters().drops_of(DropReason::NackUpstreamThrottled), 4);
        balanced(&s);
    }

    #[test]
    fn one_datagram_sends_at_most_one_nack_upstream() {
        let mut s = setup(1);
        media(&mut s, 100);
        // Five FCI entries far apart (one NACK upstream holds four), and a second NACK in the
        // same compound.
        let mut compound = nack(0, &[(1000, 0), (2000, 0), (3000, 0), (4000, 0), (5000, 0)]);
        compound.extend_from_slice(&nack(0, &[(6000, 0x0003)]));
        let out = rtcp_out(&mut s, 100, addr(6000), &compound, 0);
        assert_eq!(out.len(), 1);
        let n = Nack::new_checked(out[0].header()).unwrap();
        assert_eq!(n.lost_sequence_numbers().collect::<Vec<_>>(), vec![1000, 2000, 3000, 4000]);
        assert_eq!(s.counters().drops_of(DropReason::RetransmissionMissing), 1 + 3);
        // What did not fit was not marked as asked: the next datagram asks it.
        let out = nack_out(&mut s, 0, &[(5000, 0)], 1000);
        assert_eq!(out.len(), 1);
        balanced(&s);
    }

    /// A NACK storm — 10,000 NACKs a second for a second, each 64 FCIs of recent PIDs with
    /// every bitmask bit set — against a consumer receiving 1 Mbit/s of video draws at most its
    /// budget: a quarter of its media bytes plus one burst; the rest is counted.
    #[test]
    fn nack_storm_draws_at_most_the_budget() {
        let mut s = setup(1);
        let limits = *s.limits();
        let (mut media_bytes, mut resent_bytes, mut resends, mut media_seq) = (0u64, 0u64, 0u64, 0u16);
        for i in 0..10_000u64 {
            let now_us = i * 100;
            // 1012-byte packets every 8 ms: ~1 Mbit/s.
            if i % 80 == 0 {
                let p = rtp(1111, media_seq, u32::from(media_seq) * 3000, 96, &[1; 1000]);
                let mut out = heapless::Vec::<Output, 64>::new();
                let d = crate::shard::Datagram { socket: SocketId(1), source: addr(5000), data: &p };
                s.forward(0, &d, now_us, &mut out);
                media_bytes += out.len() as u64 * p.len() as u64;
                media_seq += 1;
            }
            let newest = media_seq.wrapping_sub(1);
            let pairs: Vec<(u16, u16)> =
                (0..64u16).map(|k| (newest.wrapping_sub(16 * (k % 4)), 0xFFFF)).collect();
            for o in nack_out(&mut s, 0, &pairs, now_us).iter() {
                if let PayloadRef::Stored { router, producer, seq } = o.payload {
                    resent_bytes +=
                        (usize::from(o.header_len) + s.stored_payload(router, producer, seq).len()) as u64;
                    resends += 1;
                }
            }
        }
        let budget = media_bytes * u64::from(limits.retransmission_share_permille) / 1000
            + u64::from(limits.retransmission_burst_bytes);
        assert!(resends > 0);
        assert!(resent_bytes <= budget, "{resent_bytes} bytes resent, budget {budget}");
        let c = s.counters();
        assert_eq!(c.retransmitted, resends);
        let refused = c.drops_of(DropReason::RetransmissionTooSoon)
            + c.drops_of(DropReason::RetransmissionOverBudget)
            + c.drops_of(DropReason::RetransmissionOverNackCap);
        // Every sequence number asked was resent or refused under a named reason (the upstream
        // ones: asked, throttled or missing).
        let upstream =
            c.drops_of(DropReason::NackUpstreamThrottled) + c.drops_of(DropReason::RetransmissionMissing);
        assert!(refused > 10_000 * 64 * 10, "{c:?}");
        assert!(upstream < refused);
        balanced(&s);
    }
}
