//! The shared media port on two cores: the kernel spreads flows over both cores' SO_REUSEPORT
//! sockets by hash; datagrams landing on the core that does not own their router are carried to
//! the owner through the inter-core ring. Every packet arrives once, rewritten, in order.

use std::collections::HashMap;

use shardcast_core::command::{
    Command, ConsumerOptions, PlainTransportOptions, ProducerOptions, SocketId, SteerKey,
};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(7);
const FLOWS: u32 = 20;
const PACKETS: u16 = 50;

#[test]
fn flows_landing_on_the_wrong_core_hop_to_the_owner() {
    let mut plane = Plane::start(2);
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
    // With 20 flows hashed over 2 sockets, both cores receive some (p(all on one) ≈ 2e-6).
    assert!(a.counters.hopped_out > 0, "core 0 carried nothing: {a:?}");
    assert_eq!(a.counters.hopped_out, b.counters.hopped_in);
    assert!(a.counters.ingress_balanced() && b.counters.ingress_balanced(), "{a:?} {b:?}");
    assert_eq!(a.counters.routed, 0);
    assert_eq!(b.counters.routed, u64::from(FLOWS) * u64::from(PACKETS));
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
