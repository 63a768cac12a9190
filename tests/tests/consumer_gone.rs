//! A consumer whose destination is gone (its socket closed: the kernel answers ICMP port
//! unreachable) loses only its own packets; every other consumer sees no loss.

use shardcast_core::command::SocketId;
use shardcast_core::ids::RouterId;
use shardcast_core::testutil::Room;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(1);

#[test]
fn a_vanished_consumer_hurts_nobody_else() {
    let mut plane = Plane::start(1);
    let sender = Peer::new();
    let receivers: Vec<Peer> = (0..4).map(|_| Peer::new()).collect();
    let gone = Peer::new();
    let gone_addr = gone.addr();
    drop(gone);
    // Consumer 10 goes to the closed port; the others are alive. All share the same egress
    // socket (the shared port), so one sendmmsg batch mixes dead and live destinations.
    let remotes: Vec<_> = std::iter::once(gone_addr).chain(receivers.iter().map(|r| r.addr())).collect();
    let mut room = Room::new(R).producer(1, SocketId::SHARED, sender.addr(), 5, 111);
    for (i, remote) in remotes.iter().enumerate() {
        room = room.consumer(10 + i as u32, SocketId::SHARED, *remote, 1, 50 + i as u32, 111);
    }
    plane.route(0, room.commands());
    let shared = plane.shared_addr();
    for seq in 0..500u16 {
        sender.send(shared, &rtp(5, seq, u32::from(seq) * 960, 111, &[1; 160]));
    }
    for (i, r) in receivers.iter().enumerate() {
        let got = r.recv_n(500, DEADLINE);
        assert_eq!(got.len(), 500, "live consumer {i} lost packets");
        assert!(got.iter().enumerate().all(|(k, p)| header(p).seq == k as u16));
    }
    let deadline = std::time::Instant::now() + DEADLINE;
    let c = loop {
        let c = plane.plane.cores()[0].stats().counters;
        if c.outputs == 2500 || std::time::Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    // Every copy is accounted for: sent, or refused by the kernel and counted.
    assert!(c.ingress_balanced() && c.egress_balanced(), "{c:?}");
    assert_eq!(c.outputs, 2500);
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
