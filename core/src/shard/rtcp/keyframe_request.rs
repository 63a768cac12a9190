//! Keyframe requests from a consumer — PLI (RFC 4585 §6.3.1) and FIR (RFC 5104 §4.3.1) — go to
//! the producer, addressed with the producer's SSRC, at most once per producer per
//! [`KEYFRAME_REQUEST_INTERVAL_US`] (many receivers asking at once need one keyframe).

use crate::drop_reason::DropReason;
use crate::rtcp::{Fir, FirRepr, Pli, PliRepr};
use crate::shard::output::{OutputSink, OUTPUT_HEADER_MAX};
use crate::shard::rtcp::{feedback_target, FeedbackTarget, RtcpContext};

/// Keyframe requests (PLI/FIR) forwarded to one producer at most this often.
pub const KEYFRAME_REQUEST_INTERVAL_US: u64 = 500_000;

/// The two ways to ask for a keyframe.
#[derive(Debug, Clone, Copy)]
enum KeyframeRequest<'p> {
    Pli(&'p Pli<'p>),
    Fir(&'p Fir<'p>),
}

impl<O: OutputSink> RtcpContext<'_, O> {
    /// A PLI about one of this transport's consumers (its media SSRC).
    pub(super) fn pli(&mut self, pli: &Pli<'_>) -> bool {
        self.keyframe_request(pli.media_ssrc(), KeyframeRequest::Pli(pli))
    }

    /// A FIR about one of this transport's consumers (the SSRC of its first FCI entry; RFC 5104
    /// §4.3.1.2 leaves the media SSRC field unused).
    pub(super) fn fir(&mut self, fir: &Fir<'_>) -> bool {
        self.keyframe_request(fir.entries().next().map_or(0, |e| e.0), KeyframeRequest::Fir(fir))
    }

    /// Acted on when the request is about a consumer whose producer can be reached, throttled
    /// or not (a throttled one is counted as [`DropReason::KeyframeRequestThrottled`]).
    fn keyframe_request(&mut self, media_ssrc: u32, request: KeyframeRequest<'_>) -> bool {
        let now_us = self.now_us;
        let Some(FeedbackTarget { producer, upstream, .. }) =
            feedback_target(self.router, self.tid, media_ssrc)
        else {
            return false;
        };
        if producer
            .last_keyframe_request_us
            .is_some_and(|t| now_us.saturating_sub(t) < KEYFRAME_REQUEST_INTERVAL_US)
        {
            self.counters.drop(DropReason::KeyframeRequestThrottled);
            return true;
        }
        producer.last_keyframe_request_us = Some(now_us);
        producer.fir_seq = producer.fir_seq.wrapping_add(1);
        let producer_ssrc = producer.options.ssrc.0;
        let mut header = [0u8; OUTPUT_HEADER_MAX];
        let len = match request {
            KeyframeRequest::Fir(f) => {
                let mut entries = heapless::Vec::new();
                // Capacity 16: the first push cannot fail.
                let _ = entries.push((producer_ssrc, producer.fir_seq));
                FirRepr { sender_ssrc: f.sender_ssrc(), entries }.emit(&mut header)
            }
            KeyframeRequest::Pli(p) => {
                PliRepr { sender_ssrc: p.sender_ssrc(), media_ssrc: producer_ssrc }.emit(&mut header)
            }
        };
        Self::upstream(self.counters, self.out, &mut self.to_pipes, upstream, header, len);
        true
    }
}
