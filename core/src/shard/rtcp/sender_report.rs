//! A producer's sender report (RFC 3550 §6.4.1), rewritten for each of its consumers: the
//! consumer's SSRC, the producer's RTP timestamp moved by the consumer's timestamp offset, and the
//! consumer's own packet and octet counts. The NTP time is the producer's. A consumer switched to
//! the producer gets its SRs once the producer's first packet to it re-based its timestamps.
//!
//! One SR in makes one copy per consumer, so a producer's SRs are fanned out at most once per
//! [`RtcpLimits::sender_report_interval_us`](super::RtcpLimits) (senders report every second or
//! so, RFC 3550 §6.2); the copies of a more frequent one are counted as
//! [`DropReason::SenderReportThrottled`].

use crate::drop_reason::{Counters, DropReason};
use crate::ids::{ProducerId, Ssrc};
use crate::router::Router;
use crate::rtcp::{SenderReport, SenderReportRepr};
use crate::shard::output::{OutputSink, OUTPUT_HEADER_MAX};
use crate::shard::rtcp::RtcpContext;

impl<O: OutputSink> RtcpContext<'_, O> {
    /// Acted on when the SR's SSRC is a producer on the transport it came in on (even if no
    /// consumer can take a copy now).
    pub(super) fn sender_report(&mut self, sr: &SenderReport<'_>) -> bool {
        let now_us = self.now_us;
        let interval_us = self.limits.sender_report_interval_us;
        let router = &mut *self.router;
        let Some(t) = router.transports.get(&self.tid) else { return false };
        let Some(&pid) = t.producers_by_ssrc.get(&Ssrc(sr.ssrc())) else { return false };
        let Some(producer) = router.producers.get_mut(&pid) else { return false };
        let throttled =
            producer.last_sender_report_us.is_some_and(|t| now_us.saturating_sub(t) < interval_us);
        if !throttled {
            producer.last_sender_report_us = Some(now_us);
        }
        fan_out(self.counters, self.out, self.router, pid, sr, throttled, now_us);
        if throttled {
            return true;
        }
        // Its piped producers' consumers get it too (`shard/pipe.rs`), as the source sent it.
        let Some(producer) = self.router.producers.get(&pid) else { return true };
        for target in &producer.pipes {
            let repr = SenderReportRepr {
                ssrc: sr.ssrc(),
                ntp: sr.ntp(),
                rtp_timestamp: sr.rtp_timestamp(),
                packet_count: sr.packet_count(),
                octet_count: sr.octet_count(),
                reports: heapless::Vec::new(),
            };
            let mut header = [0u8; OUTPUT_HEADER_MAX];
            let len = repr.emit(&mut header);
            if self.sr_to_pipes.push((*target, header, len as u8)).is_err() {
                self.counters.drop(DropReason::PipeRingFull);
            }
        }
        true
    }
}

/// Sends each active consumer of producer `pid` its copy of `sr` (or counts it throttled).
pub(in crate::shard) fn fan_out<O: OutputSink>(
    counters: &mut Counters,
    out: &mut O,
    router: &mut Router,
    pid: ProducerId,
    sr: &SenderReport<'_>,
    throttled: bool,
    now_us: u64,
) {
    let Router { transports, producers, consumers } = router;
    let Some(producer) = producers.get(&pid) else { return };
    for cid in &producer.consumers {
        let Some(c) = consumers.get_mut(cid) else { continue };
        // Switched to this producer and no packet of it re-based its timeline yet: the
        // offset would map this producer's clock with the previous one's.
        if c.paused || c.producer_paused || c.rewriter.timeline_pending() {
            continue;
        }
        let Some(egress) = transports.get(&c.transport).and_then(|t| t.egress()) else {
            continue;
        };
        if throttled {
            counters.drop(DropReason::SenderReportThrottled);
            continue;
        }
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
        if RtcpContext::<O>::emit(counters, out, egress, header, len) {
            // What the consumer's receiver reports will echo (RFC 3550 §6.4.1 LSR): its RTT.
            c.last_sender_report = Some(((sr.ntp() >> 16) as u32, now_us));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::drop_reason::DropReason;
    use crate::rtcp::{SenderReport, SenderReportRepr};
    use crate::shard::tests::{addr, rtcp_out, send, setup};

    #[test]
    fn producer_sender_report_is_rewritten_per_consumer() {
        let mut s = setup(2);
        send(&mut s, 1, addr(5000), &crate::testutil::rtp(1111, 1, 1000, 96, b"x"));
        let mut sr = [0u8; 28];
        SenderReportRepr {
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
        let v = SenderReport::new_checked(out[0].header()).unwrap();
        assert_eq!((v.ssrc(), v.ntp(), v.rtp_timestamp(), v.packet_count()), (5000, 77, 5000, 1));
        assert_eq!(out[1].dest, addr(6001));
        assert_eq!(s.counters().rtcp_terminated, 1);
    }

    #[test]
    fn sender_reports_are_fanned_out_at_most_once_per_interval() {
        let mut s = setup(3);
        send(&mut s, 1, addr(5000), &crate::testutil::rtp(1111, 1, 1000, 96, b"x"));
        let mut sr = [0u8; 28];
        SenderReportRepr { ssrc: 1111, ntp: 77, rtp_timestamp: 5000, ..Default::default() }.emit(&mut sr);
        assert_eq!(rtcp_out(&mut s, 1, addr(5000), &sr, 1_000_000).len(), 3);
        // 50 ms later: terminated, not fanned out; each copy not made is counted.
        assert!(rtcp_out(&mut s, 1, addr(5000), &sr, 1_050_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::SenderReportThrottled), 3);
        assert_eq!(s.counters().rtcp_terminated, 2);
        // One interval (100 ms) after the last one fanned out, it is again.
        assert_eq!(rtcp_out(&mut s, 1, addr(5000), &sr, 1_100_000).len(), 3);
        assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
    }
}
