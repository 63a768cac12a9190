//! The shard's behaviour through its two entry points: commands (`apply_batch`, `apply`,
//! take/insert) and RTP forwarding. RTCP handling is tested next to each packet kind's handler
//! (`rtcp/*.rs`); the helpers here are shared with those tests.

use std::net::SocketAddr;

use super::*;
use crate::command::{ConsumerOptions, ErrorKind, PlainTransportOptions, ProducerOptions, SocketId};
use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, TransportId};
use crate::testutil::{fanout_setup, rtp};

pub(crate) const R: RouterId = RouterId(1);

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn setup(consumers: u32) -> Shard {
    let mut s = Shard::new();
    let reply = s.apply_batch(&fanout_setup(SocketId(1), addr(5000), consumers, |i| addr(6000 + i as u16)));
    assert!(matches!(reply, BatchReply::Applied { seq: 1, .. }), "{reply:?}");
    s
}

pub(crate) fn send(s: &mut Shard, socket: u32, from: SocketAddr, pkt: &[u8]) -> heapless::Vec<Output, 64> {
    let mut out = heapless::Vec::new();
    s.forward(0, &Datagram { socket: SocketId(socket), source: from, data: pkt }, 0, &mut out);
    out
}

pub(crate) fn batch(seq: u64, commands: Vec<Command>) -> CommandBatch {
    CommandBatch { seq, commands }
}

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
fn close_cascade_router_transport_producer() {
    let mut s = setup(2);
    // Closing the consumer transport 100 closes consumer 100 only.
    s.apply_batch(&batch(2, vec![Command::CloseTransport { router: R, transport: TransportId(100) }]));
    let r = s.router(R).unwrap();
    assert!(r.consumer(ConsumerId(100)).is_none());
    assert!(r.consumer(ConsumerId(101)).is_some());
    assert_eq!(r.producer(ProducerId(1)).unwrap().consumers(), &[ConsumerId(101)]);
    // Closing the producer closes its consumers on other transports.
    s.apply_batch(&batch(3, vec![Command::CloseProducer { router: R, producer: ProducerId(1) }]));
    let r = s.router(R).unwrap();
    assert!(r.consumer(ConsumerId(101)).is_none());
    assert!(r.transport(TransportId(101)).is_some());
    assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
    // Closing the router closes everything and frees its sockets for reuse.
    let reply = s.apply_batch(&batch(4, vec![Command::CloseRouter { router: R }]));
    assert_eq!(reply, BatchReply::Applied { seq: 4, outcomes: vec![Outcome::Applied] });
    assert!(s.router(R).is_none());
    assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
    assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 1);
    let again = s.apply_batch(&fanout_setup(SocketId(1), addr(5000), 1, |_| addr(7000)));
    assert!(matches!(again, BatchReply::Applied { .. }));
}

#[test]
fn commands_on_missing_targets_are_harmless_not_found() {
    let mut s = setup(1);
    let reply = s.apply_batch(&batch(
        2,
        vec![
            Command::CloseConsumer { router: R, consumer: ConsumerId(999) },
            Command::PauseProducer { router: RouterId(42), producer: ProducerId(1) },
            Command::PauseConsumer { router: R, consumer: ConsumerId(100) },
        ],
    ));
    assert_eq!(
        reply,
        BatchReply::Applied {
            seq: 2,
            outcomes: vec![Outcome::NotFound, Outcome::NotFound, Outcome::Applied]
        }
    );
}

#[test]
fn rejected_batch_changes_nothing() {
    let mut s = setup(1);
    let reply = s.apply_batch(&batch(
        2,
        vec![
            Command::PauseConsumer { router: R, consumer: ConsumerId(100) },
            Command::CloseTransport { router: R, transport: TransportId(100) },
            // Duplicate producer id: refused, so the two commands above are undone.
            Command::CreateProducer {
                router: R,
                transport: TransportId(1),
                producer: ProducerId(1),
                options: ProducerOptions {
                    kind: MediaKind::Audio,
                    ssrc: Ssrc(3),
                    payload_type: PayloadType(111),
                    clock_rate: 48000,
                    paused: false,
                },
            },
        ],
    ));
    match reply {
        BatchReply::Rejected { seq: 2, index: 2, error } => {
            assert_eq!(error.kind, ErrorKind::InvalidState)
        }
        other => panic!("{other:?}"),
    }
    let c = s.router(R).unwrap().consumer(ConsumerId(100)).unwrap();
    assert!(!c.paused());
    assert_eq!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).len(), 1);
}

#[test]
fn rejected_batch_restores_steering() {
    let mut s = setup(0);
    let (moved, added) = (SteerKey::Remote(addr(7000)), SteerKey::Remote(addr(7001)));
    s.set_steering(moved, RouterId(9), Some(1));
    let reply = s.apply_batch(&batch(
        2,
        vec![
            Command::SetSteering { router: RouterId(9), key: moved, core: Some(2) },
            Command::SetSteering { router: RouterId(9), key: added, core: Some(2) },
            // Duplicate router id: refused, so both steering changes are undone.
            Command::CreateRouter { router: R },
        ],
    ));
    assert!(matches!(reply, BatchReply::Rejected { index: 2, .. }), "{reply:?}");
    assert_eq!(s.steering_of(&moved), Some((RouterId(9), 1)));
    assert_eq!(s.steering_of(&added), None);
}

#[test]
fn invalid_arguments_are_distinguished_from_state_errors() {
    let mut s = setup(0);
    let bad_pt = s.apply(&Command::CreateConsumer {
        router: R,
        transport: TransportId(1),
        consumer: ConsumerId(5),
        options: ConsumerOptions {
            producer: ProducerId(1),
            ssrc: Ssrc(9),
            payload_type: PayloadType(200),
            paused: false,
        },
    });
    assert_eq!(bad_pt.unwrap_err().kind, ErrorKind::InvalidArgument);
    let dup_router = s.apply(&Command::CreateRouter { router: R });
    assert_eq!(dup_router.unwrap_err().kind, ErrorKind::InvalidState);
    let dup_socket = s.apply(&Command::CreatePlainTransport {
        router: R,
        transport: TransportId(7),
        options: PlainTransportOptions { socket: SocketId(1), remote: None, comedia: true },
    });
    assert_eq!(dup_socket.unwrap_err().kind, ErrorKind::InvalidState);
}

#[test]
fn comedia_latches_once_on_valid_packet_and_never_relatches() {
    let mut s = Shard::new();
    let setup = vec![
        Command::CreateRouter { router: R },
        Command::CreatePlainTransport {
            router: R,
            transport: TransportId(1),
            options: PlainTransportOptions { socket: SocketId::SHARED, remote: None, comedia: true },
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

#[test]
fn take_and_insert_router_moves_state() {
    let mut a = setup(1);
    let pkt = rtp(1111, 40, 0, 96, b"x");
    assert_eq!(send(&mut a, 1, addr(5000), &pkt).len(), 1);
    let router = a.take_router(R).unwrap();
    assert!(send(&mut a, 1, addr(5000), &pkt).is_empty());
    let mut b = Shard::new();
    b.insert_router(R, router).unwrap();
    let out = send(&mut b, 1, addr(5000), &rtp(1111, 41, 0, 96, b"x"));
    assert_eq!(u16::from_be_bytes([out[0].header[2], out[0].header[3]]), 41);
}

pub(crate) fn rtcp_out(
    s: &mut Shard,
    socket: u32,
    from: SocketAddr,
    pkt: &[u8],
    now_us: u64,
) -> heapless::Vec<Output, 64> {
    let mut out = heapless::Vec::new();
    s.forward(0, &Datagram { socket: SocketId(socket), source: from, data: pkt }, now_us, &mut out);
    out
}
