//! RTP forwarding: per-consumer rewrite without payload copies, drops by reason, pause and resume,
//! comedia's single latch, a full output sink, sequence outliers and restarts.

use super::*;
use crate::command::{ConsumerOptions, PlainTransportOptions, ProducerOptions, SocketId};
use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, TransportId};
use crate::testutil::rtp;

#[test]
fn fanout_rewrites_each_consumer_without_copying_payload() {
    let mut s = setup(3);
    let pkt = rtp(1111, 7, 1000, 96, b"hello");
    let out = send(&mut s, 1, addr(5000), &pkt);
    assert_eq!(out.len(), 3);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.socket, SocketId(100 + i as u32));
        assert_eq!(o.dest, addr(6000 + i as u16));
        assert_eq!(o.payload, PayloadRef::Datagram { index: 0, offset: 12 });
        let h = o.header();
        assert_eq!(h.len(), 12);
        assert_eq!(u32::from_be_bytes(h[8..12].try_into().unwrap()), 5000 + i as u32);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 7);
        assert_eq!(h[1] & 0x7f, 96);
    }
    assert_eq!(s.counters().routed, 1);
    assert_eq!(s.counters().outputs, 3);
}

#[test]
fn wrong_source_unknown_ssrc_bad_pt_and_garbage_are_counted() {
    let mut s = setup(1);
    assert!(send(&mut s, 1, addr(5001), &rtp(1111, 1, 0, 96, b"x")).is_empty());
    assert!(send(&mut s, 1, addr(5000), &rtp(2222, 1, 0, 96, b"x")).is_empty());
    assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 97, b"x")).is_empty());
    assert!(send(&mut s, 1, addr(5000), &[0x00, 1, 2]).is_empty());
    assert!(send(&mut s, 1, addr(5000), &[0x80, 96, 0]).is_empty());
    assert!(send(&mut s, 9, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
    let c = s.counters();
    assert_eq!(c.drops_of(DropReason::SourceMismatch), 1);
    assert_eq!(c.drops_of(DropReason::UnknownSsrc), 1);
    assert_eq!(c.drops_of(DropReason::UnknownPayloadType), 1);
    assert_eq!(c.drops_of(DropReason::NotRtp), 1);
    assert_eq!(c.drops_of(DropReason::Malformed), 1);
    assert_eq!(c.drops_of(DropReason::UnknownTransport), 1);
    assert_eq!(c.packets_in, c.routed + c.ingress_drops());
}

#[test]
fn producer_pause_stops_all_consumer_pause_stops_one_and_seq_stays_contiguous() {
    let mut s = setup(2);
    let p = |seq| rtp(1111, seq, u32::from(seq) * 3000, 96, b"p");
    assert_eq!(send(&mut s, 1, addr(5000), &p(1)).len(), 2);
    s.apply_batch(&batch(2, vec![Command::PauseConsumer { router: R, consumer: ConsumerId(100) }]));
    let out = send(&mut s, 1, addr(5000), &p(2));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].socket, SocketId(101));
    s.apply_batch(&batch(3, vec![Command::PauseProducer { router: R, producer: ProducerId(1) }]));
    assert!(send(&mut s, 1, addr(5000), &p(3)).is_empty());
    let consumer = s.router(R).unwrap().consumer(ConsumerId(101)).unwrap();
    assert!(consumer.producer_paused());
    s.apply_batch(&batch(
        4,
        vec![
            Command::ResumeProducer { router: R, producer: ProducerId(1) },
            Command::ResumeConsumer { router: R, consumer: ConsumerId(100) },
        ],
    ));
    let out = send(&mut s, 1, addr(5000), &p(10));
    assert_eq!(out.len(), 2);
    let seq = |o: &Output| u16::from_be_bytes([o.header[2], o.header[3]]);
    assert_eq!(seq(&out[0]), 2, "consumer 100 sent 1 before its pause");
    assert_eq!(seq(&out[1]), 3, "consumer 101 sent 1 and 2");
    assert_eq!(s.counters().drops_of(DropReason::ProducerPaused), 1);
    assert_eq!(s.counters().drops_of(DropReason::ConsumerPaused), 1);
}

#[test]
fn comedia_latches_once_on_valid_packet_and_never_relatches() {
    let mut s = Shard::new();
    let setup = vec![
        Command::CreateRouter { router: R },
        Command::CreatePlainTransport {
            router: R,
            transport: TransportId(1),
            options: PlainTransportOptions {
                socket: SocketId::SHARED,
                remote: None,
                comedia: true,
                comedia_source: None,
            },
        },
        Command::CreateProducer {
            router: R,
            transport: TransportId(1),
            producer: ProducerId(1),
            options: ProducerOptions {
                kind: MediaKind::Audio,
                ssrc: Ssrc(77),
                payload_type: PayloadType(111),
                clock_rate: 48000,
                paused: false,
            },
        },
        Command::CreatePlainTransport {
            router: R,
            transport: TransportId(2),
            options: PlainTransportOptions {
                socket: SocketId::SHARED,
                remote: Some(addr(9000)),
                comedia: false,
                comedia_source: None,
            },
        },
        Command::CreateConsumer {
            router: R,
            transport: TransportId(2),
            consumer: ConsumerId(1),
            options: ConsumerOptions {
                producer: ProducerId(1),
                ssrc: Ssrc(88),
                payload_type: PayloadType(111),
                paused: false,
            },
        },
    ];
    assert!(matches!(s.apply_batch(&batch(1, setup)), BatchReply::Applied { .. }));
    // Unknown SSRC from an attacker does not latch.
    assert!(send(&mut s, 0, addr(6666), &rtp(1, 1, 0, 111, b"x")).is_empty());
    // Garbage does not latch.
    assert!(send(&mut s, 0, addr(6666), &[0x80, 111]).is_empty());
    // The first valid packet latches.
    assert_eq!(send(&mut s, 0, addr(5555), &rtp(77, 1, 0, 111, b"x")).len(), 1);
    assert_eq!(
        s.pop_event(),
        Some(Event::TransportLatched { router: R, transport: TransportId(1), remote: addr(5555) })
    );
    // The same SSRC from another address is refused: no re-latching.
    assert!(send(&mut s, 0, addr(6666), &rtp(77, 2, 0, 111, b"x")).is_empty());
    assert_eq!(send(&mut s, 0, addr(5555), &rtp(77, 3, 0, 111, b"x")).len(), 1);
    assert_eq!(s.router(R).unwrap().transport(TransportId(1)).unwrap().remote(), Remote::Known(addr(5555)));
    assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 2);
}

#[test]
fn full_output_sink_counts_drops() {
    let mut s = setup(3);
    let mut out: heapless::Vec<Output, 2> = heapless::Vec::new();
    let pkt = rtp(1111, 1, 0, 96, b"x");
    s.forward(0, &Datagram { socket: SocketId(1), source: addr(5000), data: &pkt }, 0, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(s.counters().drops_of(DropReason::OutputFull), 1);
    assert_eq!(s.counters().outputs + s.counters().egress_drops(), 3);
}

/// Finding 7: one spoofed packet far ahead (max + 0x7FFF right after the first packet, or
/// max + 0x6000 later) loses only itself: without the check it moved the consumers' sync point
/// past the real stream, refused as stale for ~16k packets. Every consumer's output stays
/// contiguous.
#[test]
fn a_sequence_outlier_loses_only_itself() {
    let mut s = setup(2);
    let seqs_out = |out: &heapless::Vec<Output, 64>| {
        out.iter().map(|o| u16::from_be_bytes([o.header[2], o.header[3]])).collect::<Vec<_>>()
    };
    let spoof = |s: &mut Shard, seq: u16| send(s, 1, addr(5000), &rtp(1111, seq, 0, 96, b"spoof"));
    assert_eq!(send(&mut s, 1, addr(5000), &rtp(1111, 100, 0, 96, b"v")).len(), 2);
    assert!(spoof(&mut s, 100 + 0x7fff).is_empty());
    for seq in 101..40_000u16 {
        if seq == 20_000 {
            assert!(spoof(&mut s, 19_999 + 0x6000).is_empty());
        }
        let out = send(&mut s, 1, addr(5000), &rtp(1111, seq, 0, 96, b"v"));
        assert_eq!(seqs_out(&out), [seq, seq], "packet {seq}");
    }
    assert_eq!(s.counters().drops_of(DropReason::SequenceOutlier), 2);
    assert_eq!(s.counters().drops_of(DropReason::StaleSequence), 0);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

/// Finding 7: a sender that restarts its numbering (two consecutive packets after the jump)
/// loses one packet, and the consumers continue their own numbering after it.
#[test]
fn a_restarted_sequence_resyncs_after_two_packets() {
    let mut s = setup(1);
    let seq_of = |out: &heapless::Vec<Output, 64>| u16::from_be_bytes([out[0].header[2], out[0].header[3]]);
    for seq in 40_000..40_010u16 {
        send(&mut s, 1, addr(5000), &rtp(1111, seq, 0, 96, b"v"));
    }
    assert!(send(&mut s, 1, addr(5000), &rtp(1111, 7, 0, 96, b"v")).is_empty());
    for (i, seq) in (8..100u16).enumerate() {
        let out = send(&mut s, 1, addr(5000), &rtp(1111, seq, 0, 96, b"v"));
        assert_eq!(seq_of(&out), 40_010 + i as u16, "packet {seq}");
    }
    assert_eq!(s.counters().drops_of(DropReason::SequenceOutlier), 1);
    assert_eq!(s.counters().drops_of(DropReason::StaleSequence), 0);
}
