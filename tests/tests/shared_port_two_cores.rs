//! The shared media port on two cores. Without kernel steering the kernel spreads flows over both
//! cores' SO_REUSEPORT sockets by hash, and datagrams landing on the core that does not own their
//! router are carried to the owner through the inter-core ring. With it (the default), the
//! reuseport eBPF program puts every known flow on its owner's socket and nothing hops. Either
//! way every packet arrives once, rewritten, in order.

use std::collections::HashMap;

use shardcast_core::command::{
    Command, ConsumerOptions, PlainTransportOptions, ProducerOptions, SocketId, SteerKey,
};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
use shardcast_dataplane::CoreStatsSnapshot;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(7);
const FLOWS: u32 = 20;
const PACKETS: u16 = 50;

#[test]
fn flows_landing_on_the_wrong_core_hop_to_the_owner() {
    let (a, _) = forward_20_flows(false);
    // With 20 flows hashed over 2 sockets, both cores receive some (p(all on one) ≈ 2e-6).
    assert!(a.counters.hopped_out > 0, "core 0 carried nothing: {a:?}");
}

#[test]
fn kernel_steering_puts_every_flow_on_its_owner_and_nothing_hops() {
    if !shardcast_tests::root_or_skip("kernel steering") {
        return;
    }
    let (a, b) = forward_20_flows(true);
    assert_eq!(a.counters.hopped_out, 0, "{a:?}");
    assert_eq!(a.counters.packets_in, 0, "core 0 received nothing: {a:?}");
    assert_eq!(b.counters.hopped_out, 0, "{b:?}");
}

/// 20 senders on the shared port, their router on core 1; returns both cores' stats.
fn forward_20_flows(kernel: bool) -> (CoreStatsSnapshot, CoreStatsSnapshot) {
    let mut plane = Plane::start_with(2, kernel);
    assert_eq!(plane.plane.kernel_steering().is_some(), kernel, "kernel steering loads (root)");
    let shared = plane.shared_addr();
    let senders: Vec<Peer> = (0..FLOWS).map(|_| Peer::new()).collect();
    let receiver = Peer::new();
    let mut commands = vec![Command::CreateRouter { router: R }];
    let mut steering = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let i = i as u32;
        commands.push(Command::CreatePlainTransport {
            router: R,
            transport: TransportId(i + 1),
            options: PlainTransportOptions {
                socket: SocketId::SHARED,
                remote: Some(s.addr()),
                comedia: false,
                comedia_source: None,
            },
        });
        commands.push(Command::CreateProducer {
            router: R,
            transport: TransportId(i + 1),
            producer: ProducerId(i + 1),
            options: ProducerOptions {
                kind: MediaKind::Audio,
                ssrc: Ssrc(100 + i),
                payload_type: PayloadType(111),
                clock_rate: 48000,
                paused: false,
            },
        });
        steering.push(Command::SetSteering { router: R, key: SteerKey::Remote(s.addr()), core: Some(1) });
    }
    commands.push(Command::CreatePlainTransport {
        router: R,
        transport: TransportId(1000),
        options: PlainTransportOptions {
            socket: SocketId::SHARED,
            remote: Some(receiver.addr()),
            comedia: false,
            comedia_source: None,
        },
    });
    for i in 0..FLOWS {
        commands.push(Command::CreateConsumer {
            router: R,
            transport: TransportId(1000),
            consumer: ConsumerId(i + 1),
            options: ConsumerOptions {
                producer: ProducerId(i + 1),
                ssrc: Ssrc(5000 + i),
                payload_type: PayloadType(111),
                paused: false,
            },
        });
    }
    plane.route(1, commands);
    plane.route(0, steering);
    if kernel {
        for s in &senders {
            assert_eq!(plane.plane.kernel_steered_to(&SteerKey::Remote(s.addr())), Some(1));
        }
    }

    for seq in 0..PACKETS {
        for (i, s) in senders.iter().enumerate() {
            s.send(shared, &rtp(100 + i as u32, seq, u32::from(seq) * 960, 111, &[i as u8; 200]));
        }
    }
    let got = receiver.recv_n(FLOWS as usize * usize::from(PACKETS), DEADLINE);
    assert_eq!(got.len(), FLOWS as usize * usize::from(PACKETS));
    let mut per_ssrc: HashMap<u32, Vec<u16>> = HashMap::new();
    for p in &got {
        let h = header(p);
        assert_eq!(p[12..], [(h.ssrc - 5000) as u8; 200]);
        per_ssrc.entry(h.ssrc).or_default().push(h.seq);
    }
    for (ssrc, seqs) in per_ssrc {
        assert_eq!(seqs, (0..PACKETS).collect::<Vec<_>>(), "ssrc {ssrc}: once each, in order");
    }
    // Counters are published between batches: wait until they settle.
    let deadline = std::time::Instant::now() + DEADLINE;
    let (a, b) = loop {
        let (a, b) = (plane.plane.cores()[0].stats(), plane.plane.cores()[1].stats());
        let total = u64::from(FLOWS) * u64::from(PACKETS);
        if (a.counters.hopped_out == b.counters.hopped_in && b.counters.routed == total)
            || std::time::Instant::now() > deadline
        {
            break (a, b);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(a.counters.hopped_out, b.counters.hopped_in);
    assert!(a.counters.ingress_balanced() && b.counters.ingress_balanced(), "{a:?} {b:?}");
    assert_eq!(a.counters.routed, 0);
    assert_eq!(b.counters.routed, u64::from(FLOWS) * u64::from(PACKETS));
    plane.plane.shutdown(DEADLINE).expect("cores stop");
    (a, b)
}

/// A settled move switches the kernel steering with the router: once the new owner's barrier
/// marker has come back through the old owner, the flow lands on the new owner's socket and
/// nothing hops; every packet before, during and after arrives once, in order.
#[test]
fn a_settled_move_takes_the_kernel_steering_along() {
    use shardcast_core::command::{BatchReply, Outcome};
    use shardcast_core::testutil::Room;
    use shardcast_dataplane::CoreOp;

    if !shardcast_tests::root_or_skip("kernel steering") {
        return;
    }
    let mut plane = Plane::start(2);
    assert!(plane.plane.kernel_steering().is_some(), "kernel steering loads (root)");
    let shared = plane.shared_addr();
    let sender = Peer::new();
    let receiver = Peer::new();
    let (sock, _) = plane.socket(0);
    let room = Room::new(R).producer(1, SocketId::SHARED, sender.addr(), 42, 96).consumer(
        10,
        sock,
        receiver.addr(),
        1,
        4242,
        96,
    );
    plane.route(0, room.commands());
    let key = SteerKey::Remote(sender.addr());
    plane.route(1, vec![Command::SetSteering { router: R, key, core: Some(0) }]);
    assert_eq!(plane.plane.kernel_steered_to(&key), Some(0));

    let mut seq = 0u16;
    let mut send = |n: u16| {
        for _ in 0..n {
            sender.send(shared, &rtp(42, seq, u32::from(seq) * 960, 96, &seq.to_be_bytes()));
            seq += 1;
        }
    };
    send(100);
    for (from, to) in [(0usize, 1u16), (1, 0), (0, 1)] {
        let reply = plane.apply(from, vec![CoreOp::HandOff { router: R, to }]);
        assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
        send(50);
        let reply = plane.apply(usize::from(to), vec![CoreOp::ConfirmImport { router: R }]);
        assert_eq!(reply, BatchReply::Applied { seq: reply.seq(), outcomes: vec![Outcome::Applied] });
        // The marker's round trip, then the switch: wait for it with a deadline.
        let deadline = std::time::Instant::now() + DEADLINE;
        while plane.plane.kernel_steered_to(&key) != Some(to) {
            assert!(std::time::Instant::now() < deadline, "the kernel steering followed the router");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        send(50);
    }
    let hops_before: u64 = plane.plane.cores().iter().map(|c| c.stats().counters.hopped_out).sum();
    send(200);
    let total = usize::from(seq);
    let got = receiver.recv_n(total, DEADLINE);
    assert_eq!(got.len(), total);
    let seqs: Vec<u16> = got.iter().map(|p| u16::from_be_bytes([p[12], p[13]])).collect();
    assert_eq!(seqs, (0..seq).collect::<Vec<_>>(), "every packet once, in order");
    let first = header(&got[0]).seq;
    for (k, p) in got.iter().enumerate() {
        assert_eq!(header(p).seq, first.wrapping_add(k as u16), "contiguous numbering");
    }
    // The last 200 packets went straight to core 1's socket.
    let deadline = std::time::Instant::now() + DEADLINE;
    let (a, b) = loop {
        let (a, b) = (plane.plane.cores()[0].stats(), plane.plane.cores()[1].stats());
        if b.counters.routed == u64::from(seq) - a.counters.routed || std::time::Instant::now() > deadline {
            break (a, b);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(a.counters.hopped_out + b.counters.hopped_out, hops_before, "{a:?}\n{b:?}");
    assert_eq!(a.counters.ingress_drops() + b.counters.ingress_drops(), 0, "{a:?}\n{b:?}");
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
