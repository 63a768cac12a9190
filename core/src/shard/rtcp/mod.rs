//! The RTCP path, as a forwarding SFU handles it (mediasoup's model), one file per packet kind:
//!
//! - a producer's sender report is rewritten per consumer ([`sender_report`]);
//! - a consumer's receiver report is terminated here, never forwarded blindly
//!   ([`receiver_report`]);
//! - a consumer's PLI/FIR goes to the producer, throttled ([`keyframe_request`]), as does the
//!   PLI a consumer switched to another producer wants of it (sent from the RTP path);
//! - a consumer's NACK is answered from the producer's store, and what the store no longer holds
//!   is asked of the producer in its own numbering ([`nack`]).
//!
//! What a peer's RTCP can make a core send is bounded by [`RtcpLimits`]: a packet is resent to a
//! consumer at most once per interval and within a budget earned from its own media, one datagram
//! draws at most a fixed number of retransmissions and at most one NACK upstream, a sequence
//! number is asked of a producer at most once per interval whichever consumer asks, and a
//! producer's sender reports are fanned out at most once per interval.
//!
//! A compound packet is terminated (counted in `rtcp_terminated`) when any of its sub-packets was
//! acted on, and dropped as [`DropReason::RtcpIgnored`] otherwise.

mod keyframe_request;
mod nack;
mod receiver_report;
pub(super) mod sender_report;

pub(super) use keyframe_request::request_wanted_keyframe;
pub use keyframe_request::KEYFRAME_REQUEST_INTERVAL_US;

use std::net::SocketAddr;

use crate::command::{PipeEnd, SocketId};
use crate::consumer::Consumer;
use crate::drop_reason::{Counters, DropReason};
use crate::ids::{RouterId, Ssrc, TransportId};
use crate::producer::Producer;
use crate::router::Router;
use crate::rtcp::{RtcpCompound, RtcpPacket};
use crate::shard::output::{Datagram, Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
use crate::shard::{Shard, Verdict};
use crate::transport::Remote;

/// Bounds on what RTCP from peers can make a core send (mediasoup bounds resends by RTT; a
/// reflector needs more: issue 12). [`Default`] is what shardcast runs with unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpLimits {
    /// A packet is retransmitted to one consumer, and a sequence number asked of its producer, at
    /// most once per this interval (µs). mediasoup waits one RTT; 100 ms is its RTT before one is
    /// measured, and it bounds a repeat whatever RTT a peer's reports would claim.
    pub nack_interval_us: u64,
    /// Retransmission credit a consumer earns per byte of media forwarded to it, in thousandths
    /// (250: retransmissions to a consumer are at most a quarter of its media bytes, plus the
    /// burst).
    pub retransmission_share_permille: u32,
    /// The most credit a consumer holds, in bytes: the burst a NACK after a quiet period may draw.
    pub retransmission_burst_bytes: u32,
    /// Most retransmissions one incoming RTCP datagram may draw, whatever its NACKs ask.
    pub retransmissions_per_datagram: u32,
    /// A producer's sender reports are fanned out to its consumers at most once per this interval
    /// (µs).
    pub sender_report_interval_us: u64,
}

impl Default for RtcpLimits {
    fn default() -> Self {
        Self {
            nack_interval_us: 100_000,
            retransmission_share_permille: 250,
            retransmission_burst_bytes: 64 * 1024,
            retransmissions_per_datagram: 64,
            sender_report_interval_us: 100_000,
        }
    }
}

/// What every per-kind handler works on: the router and transport a compound packet arrived on,
/// the shard's counters and limits, the caller's output sink, and what is left of the datagram's
/// allowance (retransmissions, one NACK upstream).
struct RtcpContext<'a, O: OutputSink> {
    rid: RouterId,
    tid: TransportId,
    router: &'a mut Router,
    counters: &'a mut Counters,
    out: &'a mut O,
    now_us: u64,
    limits: &'a RtcpLimits,
    /// Retransmissions this datagram may still draw.
    retransmissions_left: u32,
    /// A NACK already went upstream for this datagram.
    upstream_nack_sent: bool,
    /// Feedback for source producers through pipes (sent once the router is released).
    to_pipes: ToPipes,
    /// A source's sender report for its piped producers (sent once the router is released).
    sr_to_pipes: SrToPipes,
}

/// Sender reports for piped producers: (piped producer, SR, length).
type SrToPipes = heapless::Vec<(PipeEnd, [u8; OUTPUT_HEADER_MAX], u8), { crate::shard::MAX_PIPES }>;

/// Feedback about piped producers' consumers, for their sources: (source, header, length).
type ToPipes = heapless::Vec<(PipeEnd, [u8; OUTPUT_HEADER_MAX], u8), 4>;

/// Where a producer's feedback goes.
#[derive(Debug, Clone, Copy)]
enum Upstream {
    /// Its transport's (socket, remote).
    Socket((SocketId, SocketAddr)),
    /// A piped producer's: through the pipe to its source.
    Pipe(PipeEnd),
}

/// The consumer a feedback packet is about, its producer, and where that producer is reached.
struct FeedbackTarget<'r> {
    consumer: &'r mut Consumer,
    producer: &'r mut Producer,
    /// Where the producer is reached: its transport's (socket, remote), or its pipe's source.
    upstream: Upstream,
    /// The consumer's transport's (socket, remote), if connected.
    downstream: Option<(SocketId, SocketAddr)>,
}

/// Resolves feedback (RFC 4585 §6.1) about `media_ssrc`: one of the consumers on transport `tid`
/// (the one it arrived on), whose producer's transport has a remote (or whose producer is piped).
/// `None`: not ours to act on.
fn feedback_target(router: &mut Router, tid: TransportId, media_ssrc: u32) -> Option<FeedbackTarget<'_>> {
    let Router { transports, producers, consumers } = router;
    let cid = transports.get(&tid)?.consumers_by_ssrc.get(&Ssrc(media_ssrc))?;
    let consumer = consumers.get_mut(cid)?;
    let producer = producers.get_mut(&consumer.producer)?;
    let upstream = match producer.pipe_source {
        Some(source) => Upstream::Pipe(source),
        None => Upstream::Socket(transports.get(&producer.transport)?.egress()?),
    };
    let downstream = transports.get(&consumer.transport).and_then(|t| t.egress());
    Some(FeedbackTarget { consumer, producer, upstream, downstream })
}

impl<O: OutputSink> RtcpContext<'_, O> {
    /// Sends one generated RTCP packet (`header[..len]`, no payload) to `(socket, dest)`; `false`
    /// when the sink was full (counted).
    fn emit(
        counters: &mut Counters,
        out: &mut O,
        (socket, dest): (SocketId, SocketAddr),
        header: [u8; OUTPUT_HEADER_MAX],
        len: usize,
    ) -> bool {
        emit_output(counters, out, (socket, dest), header, len)
    }

    /// Sends feedback to a producer: to its sender, or (a piped producer's) into `to_pipes` for
    /// its source; `false` when it could not go (counted).
    fn upstream(
        counters: &mut Counters,
        out: &mut O,
        to_pipes: &mut ToPipes,
        upstream: Upstream,
        header: [u8; OUTPUT_HEADER_MAX],
        len: usize,
    ) -> bool {
        match upstream {
            Upstream::Socket(to) => Self::emit(counters, out, to, header, len),
            Upstream::Pipe(source) => {
                let pushed = to_pipes.push((source, header, len as u8)).is_ok();
                if !pushed {
                    counters.drop(DropReason::PipeRingFull);
                }
                pushed
            }
        }
    }
}

/// Sends one generated RTCP packet (`header[..len]`, no payload) to `(socket, dest)`; `false`
/// when the sink was full (counted).
fn emit_output(
    counters: &mut Counters,
    out: &mut impl OutputSink,
    (socket, dest): (SocketId, SocketAddr),
    header: [u8; OUTPUT_HEADER_MAX],
    len: usize,
) -> bool {
    let output = Output { socket, dest, header, header_len: len as u8, payload: PayloadRef::None };
    let pushed = out.push(output);
    if pushed {
        counters.outputs += 1;
    } else {
        counters.drop(DropReason::OutputFull);
    }
    pushed
}

impl Shard {
    /// `None` when the packet was dropped (and counted).
    pub(super) fn route_rtcp<O: OutputSink>(
        &mut self,
        dgram: &Datagram<'_>,
        now_us: u64,
        out: &mut O,
    ) -> Option<Verdict> {
        let Ok(compound) = RtcpCompound::new_checked(dgram.data) else {
            return self.drop(DropReason::Malformed);
        };
        // By address (and its SSRCs when the address is shared): RTCP never finds (or latches) a
        // comedia transport.
        let Some((rid, tid)) = self.index.lookup_rtcp(dgram.socket, dgram.source, &compound) else {
            if let Some(v) = self.steer(dgram, None) {
                return Some(v);
            }
            return self.drop(DropReason::UnknownTransport);
        };
        let Some(router) = self.routers.get_mut(&rid) else {
            return self.drop(DropReason::UnknownTransport);
        };
        let Some(transport) = router.transports.get(&tid) else {
            return self.drop(DropReason::UnknownTransport);
        };
        match transport.remote {
            Remote::Known(addr) if addr == dgram.source => {}
            Remote::Known(_) => return self.drop(DropReason::SourceMismatch),
            // RTCP never latches a comedia transport: only valid RTP of a known SSRC does.
            Remote::Comedia | Remote::Unset => return self.drop(DropReason::NotConnected),
        }
        let mut cx = RtcpContext {
            rid,
            tid,
            router,
            counters: &mut self.counters,
            out,
            now_us,
            limits: &self.limits,
            retransmissions_left: self.limits.retransmissions_per_datagram,
            upstream_nack_sent: false,
            to_pipes: ToPipes::new(),
            sr_to_pipes: SrToPipes::new(),
        };
        let mut acted = false;
        for packet in compound.iter() {
            acted |= match packet {
                RtcpPacket::SenderReport(sr) => cx.sender_report(&sr),
                RtcpPacket::ReceiverReport(rr) => cx.receiver_report(&rr),
                RtcpPacket::Pli(pli) => cx.pli(&pli),
                RtcpPacket::Fir(fir) => cx.fir(&fir),
                RtcpPacket::Nack(nack) => cx.nack(&nack),
                RtcpPacket::Sdes(_) | RtcpPacket::Bye(_) | RtcpPacket::Other { .. } => false,
            };
        }
        let to_pipes = core::mem::take(&mut cx.to_pipes);
        let sr_to_pipes = core::mem::take(&mut cx.sr_to_pipes);
        for (target, header, len) in &sr_to_pipes {
            let sr = &header[..usize::from(*len)];
            if self.routers.contains_key(&target.router) {
                self.pipe_sender_report(target.router, target.producer, sr, now_us, out);
            } else {
                self.leave_pipe_hop(crate::shard::PipeHop {
                    core: target.core,
                    router: target.router,
                    producer: target.producer,
                    cargo: crate::shard::PipeCargo::SenderReport { header: *header, len: *len },
                    carried_on: false,
                });
            }
        }
        for (source, header, len) in &to_pipes {
            let rtcp = &header[..usize::from(*len)];
            if self.routers.contains_key(&source.router) {
                self.pipe_feedback(source.router, source.producer, rtcp, now_us, out);
            } else {
                self.leave_pipe_hop(crate::shard::PipeHop {
                    core: source.core,
                    router: source.router,
                    producer: source.producer,
                    cargo: crate::shard::PipeCargo::Feedback { header: *header, len: *len },
                    carried_on: false,
                });
            }
        }
        if acted {
            self.counters.rtcp_terminated += 1;
            Some(Verdict::Done)
        } else {
            self.drop(DropReason::RtcpIgnored)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::command::SocketId;
    use crate::drop_reason::DropReason;
    use crate::ids::ConsumerId;
    use crate::shard::tests::{addr, rtcp_out, send, setup, R};
    use crate::testutil::rtp;

    #[test]
    fn consumer_rr_is_terminated_and_pli_goes_upstream_throttled() {
        let mut s = setup(2);
        send(&mut s, 1, addr(5000), &rtp(1111, 1, 1000, 96, b"x"));
        // RR from consumer 0's receiver about its SSRC 5000: terminated, not forwarded.
        let mut rr = [0u8; 32];
        let mut reports = heapless::Vec::new();
        reports
            .push(crate::rtcp::ReportBlockRepr { ssrc: 5000, fraction_lost: 12, ..Default::default() })
            .unwrap();
        crate::rtcp::ReceiverReportRepr { ssrc: 42, reports }.emit(&mut rr);
        assert!(rtcp_out(&mut s, 100, addr(6000), &rr, 0).is_empty());
        assert_eq!(s.router(R).unwrap().consumer(ConsumerId(100)).unwrap().stats().fraction_lost, 12);
        // PLI about consumer 1's SSRC: forwarded to the producer with the producer's SSRC.
        let mut pli = [0u8; 12];
        crate::rtcp::PliRepr { sender_ssrc: 42, media_ssrc: 5001 }.emit(&mut pli);
        let out = rtcp_out(&mut s, 101, addr(6001), &pli, 1_000_000);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].socket, out[0].dest), (SocketId(1), addr(5000)));
        let p = crate::rtcp::Pli::new_checked(out[0].header()).unwrap();
        assert_eq!((p.sender_ssrc(), p.media_ssrc()), (42, 1111));
        // A second one within the interval is throttled, a later one passes.
        assert!(rtcp_out(&mut s, 101, addr(6001), &pli, 1_100_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::KeyframeRequestThrottled), 1);
        assert_eq!(rtcp_out(&mut s, 101, addr(6001), &pli, 1_600_001).len(), 1);
        // RTCP from the wrong source is refused.
        assert!(rtcp_out(&mut s, 101, addr(6999), &pli, 9_000_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::SourceMismatch), 1);
        assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
    }
}
