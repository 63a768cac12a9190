//! A consumer's receiver report (RFC 3550 §6.4.2) is terminated here: each report block about
//! one of the transport's consumers updates that consumer's loss and jitter statistics, and its
//! round-trip time when the block echoes the last sender report sent to it (RFC 3550 §6.4.1:
//! RTT = now − time the SR was sent − DLSR). Nothing is forwarded (the producer gets no view of
//! one receiver's loss).

use crate::ids::Ssrc;
use crate::rtcp::ReceiverReport;
use crate::shard::output::OutputSink;
use crate::shard::rtcp::RtcpContext;

impl<O: OutputSink> RtcpContext<'_, O> {
    /// Acted on when at least one report block is about a consumer on this transport.
    pub(super) fn receiver_report(&mut self, rr: &ReceiverReport<'_>) -> bool {
        let now_us = self.now_us;
        let router = &mut *self.router;
        let Some(t) = router.transports.get(&self.tid) else { return false };
        let mut acted = false;
        for block in rr.report_blocks() {
            let consumer =
                t.consumers_by_ssrc.get(&Ssrc(block.ssrc())).and_then(|c| router.consumers.get_mut(c));
            if let Some(c) = consumer {
                c.stats.fraction_lost = block.fraction_lost();
                c.stats.jitter = block.jitter();
                match c.last_sender_report {
                    Some((lsr, sent_us)) if lsr == block.last_sr() && lsr != 0 => {
                        // DLSR is in 1/65536 s.
                        let dlsr_us = u64::from(block.delay_since_last_sr()) * 1_000_000 / 65_536;
                        c.rtt_us = Some(now_us.saturating_sub(sent_us).saturating_sub(dlsr_us));
                    }
                    _ => {}
                }
                acted = true;
            }
        }
        acted
    }
}
