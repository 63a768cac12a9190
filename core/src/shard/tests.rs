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
        options: PlainTransportOptions {
            socket: SocketId(1),
            remote: None,
            comedia: true,
            comedia_source: None,
        },
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

/// A router with `n` comedia producer transports on the shared port (transport and producer
/// `1 + i`, audio SSRC `7000 + i`, PT 111, latching only from `source` if given), each producer
/// consumed on its own dedicated transport (`100 + i`, socket `100 + i`, to `addr(9000 + i)`,
/// consumer SSRC `8000 + i`).
fn comedia_room(n: u32, source: Option<crate::command::IpPrefix>) -> Shard {
    let mut commands = vec![Command::CreateRouter { router: R }];
    for i in 0..n {
        commands.push(Command::CreatePlainTransport {
            router: R,
            transport: TransportId(1 + i),
            options: PlainTransportOptions {
                socket: SocketId::SHARED,
                remote: None,
                comedia: true,
                comedia_source: source,
            },
        });
        commands.push(Command::CreateProducer {
            router: R,
            transport: TransportId(1 + i),
            producer: ProducerId(1 + i),
            options: ProducerOptions {
                kind: MediaKind::Audio,
                ssrc: Ssrc(7000 + i),
                payload_type: PayloadType(111),
                clock_rate: 48000,
                paused: false,
            },
        });
        commands.push(Command::CreatePlainTransport {
            router: R,
            transport: TransportId(100 + i),
            options: PlainTransportOptions {
                socket: SocketId(100 + i),
                remote: Some(addr(9000 + i as u16)),
                comedia: false,
                comedia_source: None,
            },
        });
        commands.push(Command::CreateConsumer {
            router: R,
            transport: TransportId(100 + i),
            consumer: ConsumerId(100 + i),
            options: ConsumerOptions {
                producer: ProducerId(1 + i),
                ssrc: Ssrc(8000 + i),
                payload_type: PayloadType(111),
                paused: false,
            },
        });
    }
    let mut s = Shard::new();
    let reply = s.apply_batch(&batch(1, commands));
    assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
    s
}

fn shared(s: &mut Shard, from: SocketAddr, pkt: &[u8]) -> heapless::Vec<Output, 64> {
    send(s, SocketId::SHARED.0, from, pkt)
}

fn remote_of(s: &Shard, transport: u32) -> Remote {
    s.router(R).unwrap().transport(TransportId(transport)).unwrap().remote()
}

/// Finding 5: a flood that carries the producer's SSRC first, but not its payload type (or no
/// media), must not take the latch; the real sender then latches.
#[test]
fn comedia_latches_only_on_a_packet_valid_for_the_producer() {
    let mut s = comedia_room(1, None);
    let attacker = addr(6666);
    for seq in 0..100 {
        assert!(shared(&mut s, attacker, &rtp(7000, seq, 0, 0, b"flood")).is_empty());
    }
    assert!(shared(&mut s, attacker, &rtp(7000, 100, 0, 111, b"")).is_empty(), "no media");
    assert_eq!(remote_of(&s, 1), Remote::Comedia);
    assert_eq!(s.pop_event(), None);
    assert_eq!(s.counters().drops_of(DropReason::UnknownPayloadType), 100);
    assert_eq!(s.counters().drops_of(DropReason::NotConnected), 1);
    let sender = addr(5555);
    for seq in 0..50 {
        assert_eq!(shared(&mut s, sender, &rtp(7000, seq, 0, 111, b"voice")).len(), 1, "packet {seq}");
    }
    assert_eq!(remote_of(&s, 1), Remote::Known(sender));
    assert!(shared(&mut s, attacker, &rtp(7000, 50, 0, 111, b"late flood")).is_empty());
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

/// Finding 5: with `comedia_source`, a packet from outside the prefix never latches, however
/// valid; the sender inside it does, from any port.
#[test]
fn comedia_source_restricts_who_may_latch() {
    let prefix: crate::command::IpPrefix = "127.0.0.0/30".parse().unwrap();
    let mut s = comedia_room(1, Some(prefix));
    let outside = SocketAddr::from(([127, 0, 0, 9], 4000));
    assert!(shared(&mut s, outside, &rtp(7000, 1, 0, 111, b"x")).is_empty());
    assert_eq!(s.counters().drops_of(DropReason::ComediaSourceRefused), 1);
    assert_eq!(remote_of(&s, 1), Remote::Comedia);
    let inside = SocketAddr::from(([127, 0, 0, 2], 41234));
    assert_eq!(shared(&mut s, inside, &rtp(7000, 2, 0, 111, b"x")).len(), 1);
    assert_eq!(remote_of(&s, 1), Remote::Known(inside));
    // The prefix is for comedia only.
    let bad = s.apply(&Command::CreatePlainTransport {
        router: R,
        transport: TransportId(50),
        options: PlainTransportOptions {
            socket: SocketId::SHARED,
            remote: Some(addr(1)),
            comedia: false,
            comedia_source: Some(prefix),
        },
    });
    assert_eq!(bad.unwrap_err().kind, ErrorKind::InvalidArgument);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

/// Finding 6(a): ten comedia transports on the shared port fed from one sender socket: all ten
/// latch that address and every stream flows.
#[test]
fn ten_comedia_transports_share_one_sender_address() {
    let mut s = comedia_room(10, None);
    let gateway = addr(5555);
    for seq in 0..20u16 {
        for i in 0..10u32 {
            let out = shared(&mut s, gateway, &rtp(7000 + i, seq, 0, 111, b"stream"));
            assert_eq!(out.len(), 1, "stream {i} packet {seq}");
            assert_eq!(out[0].dest, addr(9000 + i as u16));
        }
    }
    for i in 0..10 {
        assert_eq!(remote_of(&s, 1 + i), Remote::Known(gateway));
    }
    let latched = core::iter::from_fn(|| s.pop_event()).count();
    assert_eq!(latched, 10);
    // An SSRC none of them has, from that address, is nobody's.
    assert!(shared(&mut s, gateway, &rtp(1, 1, 0, 111, b"x")).is_empty());
    assert_eq!(s.counters().drops_of(DropReason::UnknownSsrc), 0);
    assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 1);
    assert_eq!(s.counters().routed, 200);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

/// Finding 6(a): RTCP from an address shared by several transports finds its transport by its
/// SSRCs (a sender report by the producer's, a receiver report by a consumer's); RTCP naming
/// none of them is counted, never guessed.
#[test]
fn rtcp_from_a_shared_address_is_resolved_by_ssrc() {
    let mut s = comedia_room(3, None);
    let gateway = addr(5555);
    for i in 0..3 {
        assert_eq!(shared(&mut s, gateway, &rtp(7000 + i, 1, 1000, 111, b"x")).len(), 1);
    }
    // The gateway also receives producer 1's stream on comedia transport 3 (consumer SSRC 9300).
    let consume = Command::CreateConsumer {
        router: R,
        transport: TransportId(3),
        consumer: ConsumerId(300),
        options: ConsumerOptions {
            producer: ProducerId(1),
            ssrc: Ssrc(9300),
            payload_type: PayloadType(111),
            paused: false,
        },
    };
    assert_eq!(s.apply(&consume), Ok(Outcome::Applied));
    let mut sr = [0u8; 28];
    crate::rtcp::SenderReportRepr {
        ssrc: 7001,
        ntp: 1,
        rtp_timestamp: 1000,
        packet_count: 1,
        octet_count: 1,
        reports: heapless::Vec::new(),
    }
    .emit(&mut sr);
    let out = shared(&mut s, gateway, &sr);
    assert_eq!(out.len(), 1, "producer 2's SR, rewritten for its consumer");
    assert_eq!(out[0].dest, addr(9001));
    let rr = |about: u32| {
        let mut rr = [0u8; 32];
        let mut reports = heapless::Vec::new();
        reports
            .push(crate::rtcp::ReportBlockRepr { ssrc: about, fraction_lost: 33, ..Default::default() })
            .unwrap();
        crate::rtcp::ReceiverReportRepr { ssrc: 1, reports }.emit(&mut rr);
        rr
    };
    assert!(shared(&mut s, gateway, &rr(9300)).is_empty());
    assert_eq!(s.router(R).unwrap().consumer(ConsumerId(300)).unwrap().stats().fraction_lost, 33);
    assert_eq!(s.counters().rtcp_terminated, 2);
    assert!(shared(&mut s, gateway, &rr(4242)).is_empty());
    assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 1);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
}

/// Finding 6(a): two transports never claim the same (address, SSRC): a latch that would is
/// refused, and so is a producer or consumer whose SSRC another transport there already has.
#[test]
fn a_flow_claimed_twice_is_refused() {
    let mut s = comedia_room(2, None);
    let gateway = addr(5555);
    // Transport 2 also awaits SSRC 7100; transport 1 gets producer 3 with SSRC 7100 once latched.
    let producer = |transport: u32, id: u32, ssrc: u32| Command::CreateProducer {
        router: R,
        transport: TransportId(transport),
        producer: ProducerId(id),
        options: ProducerOptions {
            kind: MediaKind::Audio,
            ssrc: Ssrc(ssrc),
            payload_type: PayloadType(111),
            clock_rate: 48000,
            paused: false,
        },
    };
    assert_eq!(s.apply(&producer(2, 4, 7100)), Ok(Outcome::Applied));
    assert_eq!(shared(&mut s, gateway, &rtp(7000, 1, 0, 111, b"x")).len(), 1);
    assert_eq!(s.apply(&producer(1, 3, 7100)), Ok(Outcome::Applied), "7100 is free from the gateway");
    // Transport 2 latching the gateway would claim (gateway, 7100) twice.
    assert!(shared(&mut s, gateway, &rtp(7001, 1, 0, 111, b"x")).is_empty());
    assert_eq!(s.counters().drops_of(DropReason::SourceMismatch), 1);
    assert_eq!(remote_of(&s, 2), Remote::Comedia);
    // From its own address it latches.
    assert_eq!(shared(&mut s, addr(5556), &rtp(7001, 2, 0, 111, b"x")).len(), 1);
    assert_eq!(remote_of(&s, 2), Remote::Known(addr(5556)));
    // Two transports latched on the gateway: neither may add a producer the other has.
    let s2 = &mut comedia_room(2, None);
    assert_eq!(shared(s2, gateway, &rtp(7000, 1, 0, 111, b"x")).len(), 1);
    assert_eq!(shared(s2, gateway, &rtp(7001, 1, 0, 111, b"x")).len(), 1);
    let clash = s2.apply(&producer(2, 5, 7000));
    assert_eq!(clash.unwrap_err().kind, ErrorKind::InvalidState);
    // Closing one transport of a shared address leaves the other found by address alone.
    assert_eq!(
        s2.apply(&Command::CloseTransport { router: R, transport: TransportId(1) }),
        Ok(Outcome::Applied)
    );
    assert_eq!(shared(s2, gateway, &rtp(7001, 2, 0, 111, b"x")).len(), 1);
    assert!(shared(s2, gateway, &rtp(7000, 2, 0, 111, b"x")).is_empty());
    assert_eq!(s2.counters().drops_of(DropReason::UnknownSsrc), 1);
}

/// Finding 6(a), across cores: a shared-port stream from an address this core knows for another
/// transport, whose SSRC is steered to another core, hops there.
#[test]
fn a_shared_address_stream_owned_elsewhere_hops_by_ssrc() {
    let mut s = comedia_room(1, None);
    let gateway = addr(5555);
    assert_eq!(shared(&mut s, gateway, &rtp(7000, 1, 0, 111, b"x")).len(), 1);
    s.set_steering(SteerKey::Ssrc(Ssrc(7777)), RouterId(2), Some(1));
    let mut out: heapless::Vec<Output, 4> = heapless::Vec::new();
    let pkt = rtp(7777, 1, 0, 111, b"x");
    let v = s.forward(0, &Datagram { socket: SocketId::SHARED, source: gateway, data: &pkt }, 0, &mut out);
    assert_eq!(v, Verdict::Hop { core: 1 });
    // Counted once, by the caller that carried it (as the run loop does): the fuzz target
    // `shard_forward` found this path counting it a second time itself.
    assert_eq!(s.counters().hopped_out, 0);
    s.count_hopped_out();
    assert_eq!(s.counters().hopped_out, 1);
    assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
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
