//! `Consumer`: one outgoing copy of a producer, `RtpRewriter`, its per-packet header rewrite, and
//! `Retransmissions`, what its NACKs may still draw.

use crate::command::ConsumerOptions;
use crate::ids::{PayloadType, ProducerId, SeqNo, Ssrc, TransportId};
use crate::rtp_store::SeqTimes;
use crate::seq_manager::SeqManager;

/// Rewrites SSRC, payload type, sequence number and timestamp of one consumer's packets.
///
/// Sequence numbers stay contiguous across pause/resume and source switches (see [`SeqManager`]).
/// Timestamps keep the producer's clock across pause/resume (the gap in timestamps is the real
/// elapsed time, as receivers expect); after a *source switch* the new source's timestamps are
/// offset so they continue from the last one sent plus the elapsed wall time.
#[derive(Debug, Clone)]
pub struct RtpRewriter {
    ssrc: Ssrc,
    payload_type: PayloadType,
    seq: SeqManager,
    ts_offset: u32,
    last_out_ts: Option<(u32, u64)>,
    source_switch_pending: bool,
}

/// One rewritten header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    pub seq: SeqNo,
    pub timestamp: u32,
}

impl RtpRewriter {
    pub fn new(ssrc: Ssrc, payload_type: PayloadType) -> Self {
        Self {
            ssrc,
            payload_type,
            seq: SeqManager::new(),
            ts_offset: 0,
            last_out_ts: None,
            source_switch_pending: false,
        }
    }

    /// The next packet continues the output sequence (resume after a pause): a [`SeqManager::sync`].
    pub fn sync(&mut self) {
        self.seq.sync();
    }

    /// The next packet comes from a different source (another SSRC/clock base): continue both the
    /// sequence and the timestamp line.
    pub fn switch_source(&mut self) {
        self.seq.switch_source();
        self.source_switch_pending = self.last_out_ts.is_some();
    }

    /// Rewrites one packet. `now_us` is the caller's monotonic clock; `clock_rate` the RTP clock.
    /// `None`: the packet predates the last sync and must be dropped.
    pub fn rewrite(&mut self, seq: SeqNo, timestamp: u32, clock_rate: u32, now_us: u64) -> Option<Rewritten> {
        let out_seq = self.seq.input(seq)?;
        if self.source_switch_pending {
            self.source_switch_pending = false;
            if let Some((last_ts, last_us)) = self.last_out_ts {
                let elapsed_us = now_us.saturating_sub(last_us);
                // At least one tick so the timestamp strictly advances.
                let ticks = (u128::from(elapsed_us) * u128::from(clock_rate) / 1_000_000).max(1);
                let target = last_ts.wrapping_add(ticks as u32);
                self.ts_offset = target.wrapping_sub(timestamp);
            }
        }
        let out_ts = timestamp.wrapping_add(self.ts_offset);
        match self.last_out_ts {
            Some((last, _)) if (out_ts.wrapping_sub(last) as i32) < 0 => {}
            _ => self.last_out_ts = Some((out_ts, now_us)),
        }
        Some(Rewritten { ssrc: self.ssrc, payload_type: self.payload_type, seq: out_seq, timestamp: out_ts })
    }

    /// Maps a sequence number this consumer sent back to its producer's (for NACK); `None` when
    /// it was not sent from the producer it follows now (see [`SeqManager::output_to_input`]).
    pub fn output_to_input(&self, seq: SeqNo) -> Option<SeqNo> {
        self.seq.output_to_input(seq)
    }

    /// After a source switch, until the new source's first packet: the timestamp offset is not
    /// known yet (an SR of the new source cannot be mapped).
    pub fn timeline_pending(&self) -> bool {
        self.source_switch_pending
    }

    /// Timestamp offset added to the producer's timestamps (for SR rewriting).
    pub fn ts_offset(&self) -> u32 {
        self.ts_offset
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    pub fn payload_type(&self) -> PayloadType {
        self.payload_type
    }
}

/// Consumer-side statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    pub packets: u64,
    pub bytes: u64,
    /// From the receiver's last RTCP receiver report (RFC 3550 §6.4.1).
    pub fraction_lost: u8,
    pub jitter: u32,
}

/// What a consumer's NACKs may still draw: a byte budget earned from the media forwarded to it
/// (a token bucket filled by `share` of every media byte, capped at a burst, so retransmissions
/// stay a fraction of the consumer's own media rate whatever it asks, with no clock), and when
/// each packet was last retransmitted to it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Retransmissions {
    /// Bytes of retransmission the consumer may still draw.
    credit: u64,
    /// The consumer's forwarded media bytes (`ConsumerStats::bytes`) already turned into credit.
    earned_up_to: u64,
    /// When each producer sequence number was last retransmitted to this consumer; allocated at
    /// its first NACK, never on the media path.
    pub(crate) resent: Option<SeqTimes>,
}

impl Retransmissions {
    /// Credits `share_permille`/1000 of the media bytes forwarded since the last call (the
    /// consumer's running total is `forwarded_bytes`), holding at most `burst` bytes.
    pub(crate) fn earn(&mut self, forwarded_bytes: u64, share_permille: u32, burst: u64) {
        let new = forwarded_bytes.saturating_sub(self.earned_up_to);
        self.earned_up_to = forwarded_bytes;
        let earned = new.saturating_mul(u64::from(share_permille)) / 1000;
        self.credit = self.credit.saturating_add(earned).min(burst);
    }

    /// Pays for a retransmission of `bytes`; `false` (nothing paid) when the credit is short.
    pub(crate) fn spend(&mut self, bytes: u64) -> bool {
        let Some(left) = self.credit.checked_sub(bytes) else { return false };
        self.credit = left;
        true
    }

    /// Bytes of retransmission the consumer may still draw (as of its last NACK).
    pub(crate) fn credit(&self) -> u64 {
        self.credit
    }
}

/// An outgoing copy of one producer.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub(crate) transport: TransportId,
    pub(crate) producer: ProducerId,
    pub(crate) paused: bool,
    pub(crate) producer_paused: bool,
    pub(crate) rewriter: RtpRewriter,
    pub(crate) stats: ConsumerStats,
    pub(crate) retransmissions: Retransmissions,
    /// The last sender report sent to it: (NTP middle 32 bits, when, caller's clock µs).
    pub(crate) last_sender_report: Option<(u32, u64)>,
    /// Round-trip time from its receiver reports (µs), once one echoed a sender report.
    pub(crate) rtt_us: Option<u64>,
}

impl Consumer {
    pub(crate) fn new(transport: TransportId, options: &ConsumerOptions, producer_paused: bool) -> Self {
        Self {
            transport,
            producer: options.producer,
            paused: options.paused,
            producer_paused,
            rewriter: RtpRewriter::new(options.ssrc, options.payload_type),
            stats: ConsumerStats::default(),
            retransmissions: Retransmissions::default(),
            last_sender_report: None,
            rtt_us: None,
        }
    }

    pub fn transport(&self) -> TransportId {
        self.transport
    }
    pub fn producer(&self) -> ProducerId {
        self.producer
    }
    pub fn paused(&self) -> bool {
        self.paused
    }
    pub fn producer_paused(&self) -> bool {
        self.producer_paused
    }
    pub fn ssrc(&self) -> Ssrc {
        self.rewriter.ssrc()
    }
    /// The payload type its packets carry.
    pub fn payload_type(&self) -> PayloadType {
        self.rewriter.payload_type()
    }
    pub fn stats(&self) -> ConsumerStats {
        self.stats
    }
    /// Round-trip time to its receiver (µs), from the receiver reports echoing its sender reports.
    pub fn rtt_us(&self) -> Option<u64> {
        self.rtt_us
    }
    /// Bytes of retransmission this consumer may still draw, as of its last NACK.
    pub fn retransmission_credit(&self) -> u64 {
        self.retransmissions.credit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> RtpRewriter {
        RtpRewriter::new(Ssrc(0xAAAA), PayloadType(96))
    }

    #[test]
    fn rewrites_ssrc_pt_and_keeps_stream_continuous() {
        let mut r = rw();
        let a = r.rewrite(SeqNo(100), 9000, 90000, 0).unwrap();
        assert_eq!(
            a,
            Rewritten { ssrc: Ssrc(0xAAAA), payload_type: PayloadType(96), seq: SeqNo(100), timestamp: 9000 }
        );
        let b = r.rewrite(SeqNo(101), 12000, 90000, 33_000).unwrap();
        assert_eq!((b.seq, b.timestamp), (SeqNo(101), 12000));
    }

    #[test]
    fn pause_resume_keeps_seq_contiguous_and_timestamps_real() {
        let mut r = rw();
        r.rewrite(SeqNo(1), 1000, 90000, 0).unwrap();
        r.sync();
        // 50 packets were withheld while paused.
        let p = r.rewrite(SeqNo(52), 1000 + 51 * 3000, 90000, 1_700_000).unwrap();
        assert_eq!(p.seq, SeqNo(2));
        assert_eq!(p.timestamp, 1000 + 51 * 3000);
    }

    #[test]
    fn source_switch_continues_timestamps_by_elapsed_time() {
        let mut r = rw();
        r.rewrite(SeqNo(10), 50_000, 90000, 1_000_000).unwrap();
        r.switch_source();
        // New source with an unrelated timestamp base, 20 ms later.
        let p = r.rewrite(SeqNo(7000), 4_000_000_000, 90000, 1_020_000).unwrap();
        assert_eq!(p.seq, SeqNo(11));
        assert_eq!(p.timestamp, 50_000 + 1800);
        let q = r.rewrite(SeqNo(7001), 4_000_000_000u32.wrapping_add(3000), 90000, 1_053_000).unwrap();
        assert_eq!((q.seq, q.timestamp), (SeqNo(12), 50_000 + 1800 + 3000));
    }

    #[test]
    fn retransmission_credit_is_a_share_of_forwarded_bytes_up_to_a_burst() {
        let mut r = Retransmissions::default();
        r.earn(4000, 250, 10_000);
        assert_eq!(r.credit(), 1000);
        assert!(!r.spend(1001));
        assert!(r.spend(600));
        assert_eq!(r.credit(), 400);
        // Only bytes forwarded since the last call earn credit.
        r.earn(4000, 250, 10_000);
        assert_eq!(r.credit(), 400);
        r.earn(1_000_000, 250, 10_000);
        assert_eq!(r.credit(), 10_000);
        assert!(r.spend(10_000));
        assert!(!r.spend(1));
    }

    #[test]
    fn timestamp_wraps() {
        let mut r = rw();
        let a = r.rewrite(SeqNo(1), u32::MAX - 10, 48000, 0).unwrap();
        let b = r.rewrite(SeqNo(2), 950, 48000, 20_000).unwrap();
        assert_eq!(a.timestamp, u32::MAX - 10);
        assert_eq!(b.timestamp, 950);
        assert_eq!(r.output_to_input(SeqNo(2)), Some(SeqNo(2)));
    }
}
