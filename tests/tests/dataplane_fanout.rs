//! 1 → N over real sockets on one core: every packet arrives once, payload byte-identical, header
//! rewritten per consumer; pause/resume keeps sequence numbers contiguous; closing one consumer
//! leaves the others untouched.

use std::time::Duration;

use shardcast_core::command::Command;
use shardcast_core::ids::{ConsumerId, RouterId};
use shardcast_core::testutil::Room;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(1);

#[test]
fn one_to_three_rewrites_and_pause_resume_is_contiguous() {
    let mut plane = Plane::start(1);
    let sender = Peer::new();
    let receivers: Vec<Peer> = (0..3).map(|_| Peer::new()).collect();
    let (in_sock, in_addr) = plane.socket(0);
    let mut room = Room::new(R).producer(1, in_sock, sender.addr(), 1111, 96);
    for (i, r) in receivers.iter().enumerate() {
        let (sock, _) = plane.socket(0);
        room = room.consumer(10 + i as u32, sock, r.addr(), 1, 9000 + i as u32, 100);
    }
    plane.route(0, room.commands());

    let payload = |seq: u16| -> Vec<u8> { (0..500).map(|i| (i as u16 ^ seq) as u8).collect() };
    for seq in 1000..1100u16 {
        sender.send(in_addr, &rtp(1111, seq, u32::from(seq) * 3000, 96, &payload(seq)));
    }
    for (i, r) in receivers.iter().enumerate() {
        let got = r.recv_n(100, DEADLINE);
        assert_eq!(got.len(), 100, "receiver {i}");
        for (k, p) in got.iter().enumerate() {
            let h = header(p);
            let seq = 1000 + k as u16;
            assert_eq!(
                h,
                shardcast_tests::Header { pt: 100, seq, ts: u32::from(seq) * 3000, ssrc: 9000 + i as u32 }
            );
            assert_eq!(&p[12..], &payload(seq)[..], "payload byte-identical");
        }
    }

    // Pause consumer 10: it gets nothing; the others get everything.
    plane.route(0, vec![Command::PauseConsumer { router: R, consumer: ConsumerId(10) }]);
    for seq in 1100..1150u16 {
        sender.send(in_addr, &rtp(1111, seq, u32::from(seq) * 3000, 96, &payload(seq)));
    }
    assert_eq!(receivers[1].recv_n(50, DEADLINE).len(), 50);
    assert_eq!(receivers[2].recv_n(50, DEADLINE).len(), 50);
    assert!(receivers[0].drain(Duration::from_millis(200)).is_empty());

    // Resume: consumer 10 continues at 1100, contiguous with what it got.
    plane.route(0, vec![Command::ResumeConsumer { router: R, consumer: ConsumerId(10) }]);
    // Close consumer 12 mid-stream: others unaffected.
    plane.route(0, vec![Command::CloseConsumer { router: R, consumer: ConsumerId(12) }]);
    for seq in 1150..1160u16 {
        sender.send(in_addr, &rtp(1111, seq, u32::from(seq) * 3000, 96, &payload(seq)));
    }
    let got = receivers[0].recv_n(10, DEADLINE);
    let seqs: Vec<u16> = got.iter().map(|p| header(p).seq).collect();
    assert_eq!(seqs, (1100..1110).collect::<Vec<_>>());
    let got = receivers[1].recv_n(10, DEADLINE);
    assert_eq!(header(&got[0]).seq, 1150);
    assert!(receivers[2].drain(Duration::from_millis(200)).is_empty());

    // Conservation: everything accepted was forwarded or counted.
    let deadline = std::time::Instant::now() + DEADLINE;
    let stats = loop {
        let s = plane.plane.cores()[0].stats();
        if s.counters.packets_in == 160 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let c = stats.counters;
    assert!(c.ingress_balanced() && c.egress_balanced(), "{c:?}");
    assert_eq!(c.packets_in, 160);
    assert_eq!(c.outputs + c.egress_drops(), 100 * 3 + 50 * 3 + 10 * 3 - 10);
    assert_eq!(c.packets_out, c.outputs);
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
