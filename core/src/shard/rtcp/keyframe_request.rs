//! Keyframe requests from a consumer — PLI (RFC 4585 §6.3.1) and FIR (RFC 5104 §4.3.1) — go to
//! the producer, addressed with the producer's SSRC, at most once per producer per
//! [`KEYFRAME_REQUEST_INTERVAL_US`] (many receivers asking at once need one keyframe).
//!
//! A consumer switched to another producer wants a keyframe of it too; the command that switched
//! it has no output, so the producer is marked (`Producer::keyframe_wanted`) and
//! [`request_wanted_keyframe`] sends the PLI from the RTP path at its next forwarded packet,
//! under the same throttle.

use std::net::SocketAddr;

use crate::command::SocketId;
use crate::drop_reason::{Counters, DropReason};
use crate::producer::Producer;
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
        if throttled(producer, now_us) {
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

/// True while a keyframe request went to `producer` less than the interval before `now_us`.
fn throttled(producer: &Producer, now_us: u64) -> bool {
    producer.last_keyframe_request_us.is_some_and(|t| now_us.saturating_sub(t) < KEYFRAME_REQUEST_INTERVAL_US)
}

/// Sends the keyframe request a source switch left on `producer` (`keyframe_wanted`): a PLI to
/// `upstream`, its transport's (socket, remote), about its SSRC. Sender SSRC 0: the request is
/// the SFU's own, on behalf of no one receiver. While a request went upstream less than
/// [`KEYFRAME_REQUEST_INTERVAL_US`] ago, or when the sink is full (counted), it stays wanted and
/// a later packet sends it: at most one interval late, never twice within one.
pub(in crate::shard) fn request_wanted_keyframe(
    producer: &mut Producer,
    upstream: (SocketId, SocketAddr),
    now_us: u64,
    counters: &mut Counters,
    out: &mut impl OutputSink,
) {
    if throttled(producer, now_us) {
        return;
    }
    let mut header = [0u8; OUTPUT_HEADER_MAX];
    let len = PliRepr { sender_ssrc: 0, media_ssrc: producer.options.ssrc.0 }.emit(&mut header);
    if super::emit_output(counters, out, upstream, header, len) {
        producer.keyframe_wanted = false;
        producer.last_keyframe_request_us = Some(now_us);
    }
}
