//! A consumer's receiver report (RFC 3550 §6.4.2) is terminated here: each report block about
//! one of the transport's consumers updates that consumer's loss and jitter statistics. Nothing
//! is forwarded (the producer gets no view of one receiver's loss).

use crate::ids::Ssrc;
use crate::rtcp::ReceiverReport;
use crate::shard::output::OutputSink;
use crate::shard::rtcp::RtcpContext;

impl<O: OutputSink> RtcpContext<'_, O> {
    /// Acted on when at least one report block is about a consumer on this transport.
    pub(super) fn receiver_report(&mut self, rr: &ReceiverReport<'_>) -> bool {
        let router = &mut *self.router;
        let Some(t) = router.transports.get(&self.tid) else { return false };
        let mut acted = false;
        for block in rr.report_blocks() {
            let consumer =
                t.consumers_by_ssrc.get(&Ssrc(block.ssrc())).and_then(|c| router.consumers.get_mut(c));
            if let Some(c) = consumer {
                c.stats.fraction_lost = block.fraction_lost();
                c.stats.jitter = block.jitter();
                acted = true;
            }
        }
        acted
    }
}
