//! `Command::SwitchConsumerProducer`: a consumer re-pointed at another producer of its router.
//! The receiver sees one stream (its SSRC and payload type, sequence +1 across the switch,
//! timestamps re-based by the elapsed time), the new producer is asked for a keyframe with its
//! next forwarded packet (throttled), and NACKs never answer with another producer's packets.

use std::net::SocketAddr;

use super::tests::{addr, batch, rtcp_out, R};
use super::*;
use crate::command::{ConsumerOptions, ErrorKind, PlainTransportOptions, ProducerOptions, SocketId};
use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, TransportId};
use crate::rtcp::{Nack, NackRepr, Pli, PliRepr, SenderReport, SenderReportRepr};
use crate::testutil::{fanout_setup, rtp};

const P1: ProducerId = ProducerId(1);
const P2: ProducerId = ProducerId(2);
/// Audio, on P2's transport.
const AUDIO: ProducerId = ProducerId(3);
/// Video at another clock rate, on P2's transport.
const ODD_CLOCK: ProducerId = ProducerId(4);
/// Consumer 100 (SSRC 5000, PT 96, on transport/socket 100 to `addr(6000)`) follows P1.
const C: ConsumerId = ConsumerId(100);
/// Consumer 200 (SSRC 5200, to `addr(6200)`) follows P2 from the start.
const C2: ConsumerId = ConsumerId(200);

fn producer(kind: MediaKind, ssrc: u32, payload_type: u8, clock_rate: u32) -> ProducerOptions {
    ProducerOptions {
        kind,
        ssrc: Ssrc(ssrc),
        payload_type: PayloadType(payload_type),
        clock_rate,
        paused: false,
    }
}

fn transport(socket: u32, remote: SocketAddr) -> PlainTransportOptions {
    PlainTransportOptions {
        socket: SocketId(socket),
        remote: Some(remote),
        comedia: false,
        comedia_source: None,
    }
}

/// `fanout_setup`'s P1 (video 1111, PT 96, from `addr(5000)` on socket 1) with consumer 100, and
/// on transport 2 (socket 2, from `addr(5002)`) P2 (video 2222, PT 97), an audio producer and a
/// video one at 48 kHz; consumer 200 on transport 200 follows P2.
fn room() -> Shard {
    let mut s = Shard::with_limits(RtcpLimits { retransmission_share_permille: 1000, ..Default::default() });
    let mut setup = fanout_setup(SocketId(1), addr(5000), 1, |_| addr(6000));
    let t2 = TransportId(2);
    setup.commands.extend([
        Command::CreatePlainTransport { router: R, transport: t2, options: transport(2, addr(5002)) },
        Command::CreateProducer {
            router: R,
            transport: t2,
            producer: P2,
            options: producer(MediaKind::Video, 2222, 97, 90_000),
        },
        Command::CreateProducer {
            router: R,
            transport: t2,
            producer: AUDIO,
            options: producer(MediaKind::Audio, 3333, 111, 48_000),
        },
        Command::CreateProducer {
            router: R,
            transport: t2,
            producer: ODD_CLOCK,
            options: producer(MediaKind::Video, 4444, 98, 48_000),
        },
        Command::CreatePlainTransport {
            router: R,
            transport: TransportId(200),
            options: transport(200, addr(6200)),
        },
        Command::CreateConsumer {
            router: R,
            transport: TransportId(200),
            consumer: C2,
            options: ConsumerOptions {
                producer: P2,
                ssrc: Ssrc(5200),
                payload_type: PayloadType(97),
                paused: false,
            },
        },
    ]);
    let reply = s.apply_batch(&setup);
    assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
    s
}

fn switch(s: &mut Shard, seq: u64, to: ProducerId) -> BatchReply {
    s.apply_batch(&batch(seq, vec![Command::SwitchConsumerProducer { router: R, consumer: C, producer: to }]))
}

/// A video packet of P1 (`from == 1`) or P2 at `now_us`: its outputs.
fn media(s: &mut Shard, from: u8, seq: u16, ts: u32, now_us: u64) -> heapless::Vec<Output, 64> {
    let (socket, source, pkt) = match from {
        1 => (1, addr(5000), rtp(1111, seq, ts, 96, &[seq as u8; 100])),
        _ => (2, addr(5002), rtp(2222, seq, ts, 97, &[seq as u8; 100])),
    };
    rtcp_out(s, socket, source, &pkt, now_us)
}

/// The output to consumer 100 among `out`: (SSRC, PT, seq, timestamp).
fn to_c(out: &[Output]) -> Option<(u32, u8, u16, u32)> {
    let o = out.iter().find(|o| o.dest == addr(6000))?;
    let h = o.header();
    let be32 = |r: std::ops::Range<usize>| u32::from_be_bytes(h[r].try_into().unwrap());
    Some((be32(8..12), h[1] & 0x7f, u16::from_be_bytes([h[2], h[3]]), be32(4..8)))
}

/// The PLIs among `out` sent upstream to P2's sender: their media SSRCs.
fn plis_to_p2(out: &[Output]) -> Vec<u32> {
    out.iter()
        .filter(|o| (o.socket, o.dest) == (SocketId(2), addr(5002)))
        .filter_map(|o| Pli::new_checked(o.header()).ok().map(|p| p.media_ssrc()))
        .collect()
}

/// P1 sends 10, 11, 12 (33 ms apart, 3000 ticks), the consumer is switched to P2 at 80 ms, and P2's
/// first packet (its own numbering and clock base) arrives at 100 ms.
fn switched_mid_stream(s: &mut Shard) -> heapless::Vec<Output, 64> {
    for (i, seq) in (10..=12u16).enumerate() {
        let out = media(s, 1, seq, 9_000 + 3_000 * i as u32, 33_000 * i as u64);
        assert_eq!(to_c(&out), Some((5000, 96, seq, 9_000 + 3_000 * i as u32)));
    }
    assert_eq!(switch(s, 2, P2), BatchReply::Applied { seq: 2, outcomes: vec![Outcome::Applied] });
    media(s, 2, 40_000, 7_000_000, 100_000)
}

#[test]
fn the_receiver_sees_one_stream_and_the_new_producer_a_keyframe_request() {
    let mut s = room();
    let first = switched_mid_stream(&mut s);
    // Same SSRC and PT, the next sequence number, the timestamp 34 ms (3060 ticks) after the last.
    assert_eq!(to_c(&first), Some((5000, 96, 13, 15_000 + 3_060)));
    assert_eq!(plis_to_p2(&first), [2222], "{first:?}");
    let pli = first.iter().find(|o| o.socket == SocketId(2)).unwrap();
    assert_eq!(Pli::new_checked(pli.header()).unwrap().sender_ssrc(), 0);
    // The next packets follow P2's clock from there; no second PLI.
    let next = media(&mut s, 2, 40_001, 7_003_000, 133_000);
    assert_eq!(to_c(&next), Some((5000, 96, 14, 18_060 + 3_000)));
    assert!(plis_to_p2(&next).is_empty());
    // P1 no longer reaches it; P2's own consumer still gets P2's stream.
    assert_eq!(to_c(&media(&mut s, 1, 13, 18_000, 140_000)), None);
    assert_eq!(s.counters().drops_of(DropReason::NoConsumers), 1);
    assert_eq!(next.iter().filter(|o| o.dest == addr(6200)).count(), 1);
    let r = s.router(R).unwrap();
    assert_eq!(r.consumer(C).unwrap().producer(), P2);
    assert!(r.producer(P1).unwrap().consumers().is_empty());
    assert_eq!(r.producer(P2).unwrap().consumers(), &[C2, C]);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

#[test]
fn nacks_after_a_switch_are_answered_from_the_new_producer_only() {
    let mut s = room();
    switched_mid_stream(&mut s);
    media(&mut s, 2, 40_001, 7_003_000, 133_000);
    let nack = |lost: &[u16]| {
        let repr = NackRepr::from_lost(9, 5000, lost);
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut b);
        b
    };
    // 11 and 12 were P1's: P2's store holds other packets under whatever they would map to, and
    // P1 is not this consumer's producer any more. Neither answered nor asked upstream.
    let out = rtcp_out(&mut s, 100, addr(6000), &nack(&[11, 12]), 200_000);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(s.counters().drops_of(DropReason::RetransmissionMissing), 2);
    assert_eq!(s.counters().retransmitted, 0);
    // 14 was P2's 40_001: resent from P2's store, numbered and timed as the consumer saw it;
    // 15 (not sent yet) is asked of P2 in its own numbering.
    let out = rtcp_out(&mut s, 100, addr(6000), &nack(&[14, 15]), 300_000);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].payload, PayloadRef::Stored { router: R, producer: P2, seq: 40_001 });
    assert_eq!(to_c(&out[..1]), Some((5000, 96, 14, 21_060)));
    assert_eq!((out[1].socket, out[1].dest), (SocketId(2), addr(5002)));
    let upstream = Nack::new_checked(out[1].header()).unwrap();
    assert_eq!(upstream.media_ssrc(), 2222);
    assert_eq!(upstream.lost_sequence_numbers().collect::<Vec<_>>(), [40_002]);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

#[test]
fn the_keyframe_request_waits_for_the_throttle() {
    let mut s = room();
    media(&mut s, 1, 10, 9_000, 900_000);
    // P2's own receiver asked for a keyframe at 1 s: forwarded.
    let mut pli = [0u8; 12];
    PliRepr { sender_ssrc: 42, media_ssrc: 5200 }.emit(&mut pli);
    assert_eq!(plis_to_p2(&rtcp_out(&mut s, 200, addr(6200), &pli, 1_000_000)), [2222]);
    switch(&mut s, 2, P2);
    // Within the interval of that request: the media flows, the PLI waits.
    let out = media(&mut s, 2, 500, 1_000, 1_100_000);
    assert_eq!(to_c(&out).map(|o| o.2), Some(11));
    assert!(plis_to_p2(&out).is_empty());
    assert!(plis_to_p2(&media(&mut s, 2, 501, 4_000, 1_400_000)).is_empty());
    // The first packet past it sends it, once.
    assert_eq!(plis_to_p2(&media(&mut s, 2, 502, 7_000, 1_500_001)), [2222]);
    assert!(plis_to_p2(&media(&mut s, 2, 503, 10_000, 2_100_000)).is_empty());
}

#[test]
fn a_switch_follows_the_new_producers_paused_state() {
    let mut s = room();
    media(&mut s, 1, 10, 9_000, 0);
    s.apply_batch(&batch(2, vec![Command::PauseProducer { router: R, producer: P2 }]));
    switch(&mut s, 3, P2);
    assert!(s.router(R).unwrap().consumer(C).unwrap().producer_paused());
    // Nothing reaches the consumer, and the keyframe is wanted only once media flows again.
    let out = media(&mut s, 2, 40_000, 1_000, 50_000);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(s.counters().drops_of(DropReason::ProducerPaused), 1);
    s.apply_batch(&batch(4, vec![Command::ResumeProducer { router: R, producer: P2 }]));
    assert!(!s.router(R).unwrap().consumer(C).unwrap().producer_paused());
    let out = media(&mut s, 2, 40_010, 31_000, 383_000);
    assert_eq!(to_c(&out), Some((5000, 96, 11, 9_000 + 34_470)));
    assert_eq!(plis_to_p2(&out), [2222]);
    // And back to P1, not paused: it resumes by P1's state.
    s.apply_batch(&batch(5, vec![Command::PauseProducer { router: R, producer: P2 }]));
    switch(&mut s, 6, P1);
    assert!(!s.router(R).unwrap().consumer(C).unwrap().producer_paused());
    assert_eq!(to_c(&media(&mut s, 1, 20, 50_000, 400_000)).map(|o| o.2), Some(12));
}

#[test]
fn a_switch_to_another_kind_or_clock_rate_is_refused_and_to_the_same_producer_changes_nothing() {
    let mut s = room();
    media(&mut s, 1, 10, 9_000, 0);
    for (to, field) in [(AUDIO, "kind"), (ODD_CLOCK, "clock_rate")] {
        let BatchReply::Rejected { error, .. } = switch(&mut s, 2, to) else { panic!("{to:?} accepted") };
        assert_eq!(error.kind, ErrorKind::InvalidArgument);
        assert!(error.message.contains(field), "{error}");
    }
    // A batch refused after a switch undoes the switch.
    let refused = s.apply_batch(&batch(
        2,
        vec![
            Command::SwitchConsumerProducer { router: R, consumer: C, producer: P2 },
            Command::SwitchConsumerProducer { router: R, consumer: C, producer: AUDIO },
        ],
    ));
    assert!(matches!(refused, BatchReply::Rejected { index: 1, .. }), "{refused:?}");
    assert_eq!(s.router(R).unwrap().consumer(C).unwrap().producer(), P1);
    // To the producer it follows: applied, and nothing changes (no re-base, no keyframe request).
    assert_eq!(switch(&mut s, 2, P1), BatchReply::Applied { seq: 2, outcomes: vec![Outcome::Applied] });
    let out = media(&mut s, 1, 11, 12_000, 33_000);
    assert_eq!((to_c(&out), out.len()), (Some((5000, 96, 11, 12_000)), 1));
    assert!(!s.router(R).unwrap().producer(P1).unwrap().keyframe_wanted);
    // Missing targets are harmless.
    let missing = s.apply_batch(&batch(
        3,
        vec![
            Command::SwitchConsumerProducer { router: R, consumer: ConsumerId(999), producer: P2 },
            Command::SwitchConsumerProducer { router: R, consumer: C, producer: ProducerId(999) },
            Command::SwitchConsumerProducer { router: RouterId(42), consumer: C, producer: P2 },
        ],
    ));
    assert_eq!(missing, BatchReply::Applied { seq: 3, outcomes: vec![Outcome::NotFound; 3] });
    assert_eq!(s.router(R).unwrap().consumer(C).unwrap().producer(), P1);
}

#[test]
fn closing_the_old_producer_spares_a_switched_consumer_closing_the_new_one_closes_it() {
    let mut s = room();
    switched_mid_stream(&mut s);
    s.apply_batch(&batch(3, vec![Command::CloseProducer { router: R, producer: P1 }]));
    assert!(s.router(R).unwrap().consumer(C).is_some());
    assert_eq!(to_c(&media(&mut s, 2, 40_001, 7_003_000, 133_000)).map(|o| o.2), Some(14));
    s.apply_batch(&batch(4, vec![Command::CloseProducer { router: R, producer: P2 }]));
    let r = s.router(R).unwrap();
    assert!(r.consumer(C).is_none() && r.consumer(C2).is_none());
    assert!(r.transport(TransportId(100)).unwrap().consumers().next().is_none());
}

#[test]
fn the_new_producers_sender_reports_reach_the_consumer_once_its_timeline_is_rebased() {
    let mut s = room();
    let sr = |rtp_timestamp: u32| {
        let mut b = [0u8; 28];
        SenderReportRepr { ssrc: 2222, ntp: 77, rtp_timestamp, ..Default::default() }.emit(&mut b);
        b
    };
    let srs_to = |out: &[Output], to| -> Vec<(u32, u32)> {
        out.iter()
            .filter(|o| o.dest == to)
            .filter_map(|o| SenderReport::new_checked(o.header()).ok().map(|r| (r.ssrc(), r.rtp_timestamp())))
            .collect()
    };
    media(&mut s, 1, 10, 9_000, 0);
    switch(&mut s, 2, P2);
    // Before P2's first packet to it: P2's own consumer gets the SR, the switched one does not
    // (P1's offset would misplace P2's clock).
    let out = rtcp_out(&mut s, 2, addr(5002), &sr(7_000_000), 10_000);
    assert_eq!((srs_to(&out, addr(6200)), srs_to(&out, addr(6000))), (vec![(5200, 7_000_000)], vec![]));
    // P2's 7_000_900 arrives 20 ms after P1's last packet: sent as 9_000 + 1800.
    assert_eq!(to_c(&media(&mut s, 2, 40_000, 7_000_900, 20_000)).map(|o| o.3), Some(10_800));
    let out = rtcp_out(&mut s, 2, addr(5002), &sr(7_000_000), 1_000_000);
    assert_eq!(srs_to(&out, addr(6000)), [(5000, 9_900)]);
}
