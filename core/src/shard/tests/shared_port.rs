//! The shared port: comedia transports latching one address told apart by SSRC, RTCP resolved by
//! the SSRCs it names, flows claimed twice refused, hops by SSRC.

use std::net::SocketAddr;

use super::*;
use crate::command::{ConsumerOptions, ErrorKind, PlainTransportOptions, ProducerOptions, SocketId};
use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, TransportId};
use crate::testutil::rtp;

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
