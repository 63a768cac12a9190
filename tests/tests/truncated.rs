//! A datagram larger than a receive slot (2048 bytes) is never forwarded cut: the kernel flags it
//! `MSG_TRUNC`, the core drops it whole and counts it `truncated`, and conservation holds. A
//! datagram that fills a slot exactly is forwarded whole.

use std::time::{Duration, Instant};

use shardcast_core::drop_reason::DropReason;
use shardcast_core::ids::RouterId;
use shardcast_core::testutil::Room;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(1);
/// The core's receive slot (`dataplane/src/runtime/state.rs`).
const SLOT: usize = 2048;

#[test]
fn a_datagram_larger_than_the_slot_is_dropped_whole_and_counted() {
    let mut plane = Plane::start(1);
    let sender = Peer::new();
    let receiver = Peer::new();
    let (in_sock, in_addr) = plane.socket(0);
    let (out_sock, _) = plane.socket(0);
    let room = Room::new(R).producer(1, in_sock, sender.addr(), 4242, 96).consumer(
        10,
        out_sock,
        receiver.addr(),
        1,
        7000,
        96,
    );
    plane.route(0, room.commands());

    // seq 1: small; seq 2: 3000 bytes (cut by the kernel); seq 3: exactly one slot; seq 4:
    // 2049 bytes (one byte too many); seq 5: small.
    let sizes = [(1u16, 200usize), (2, 3000), (3, SLOT), (4, SLOT + 1), (5, 200)];
    for (seq, size) in sizes {
        let payload: Vec<u8> = (0..size - 12).map(|i| (i as u16 ^ seq) as u8).collect();
        sender.send(in_addr, &rtp(4242, seq, u32::from(seq) * 3000, 96, &payload));
    }
    let got = receiver.recv_n(3, DEADLINE);
    let lens: Vec<usize> = got.iter().map(Vec::len).collect();
    assert_eq!(lens, vec![200, SLOT, 200]);
    assert!(receiver.drain(Duration::from_millis(200)).is_empty(), "nothing cut was forwarded");
    // The consumer's sequence numbers keep the producer's gaps: got[k] is seq 1, 3, 5.
    let first = header(&got[0]).seq;
    for (p, seq) in got.iter().zip([1u16, 3, 5]) {
        assert_eq!(header(p).seq.wrapping_sub(first), seq - 1);
        let payload: Vec<u8> = (0..p.len() - 12).map(|i| (i as u16 ^ seq) as u8).collect();
        assert_eq!(&p[12..], &payload[..], "payload of seq {seq} byte-identical");
    }

    let deadline = Instant::now() + DEADLINE;
    let c = loop {
        let c = plane.plane.cores()[0].stats().counters;
        if c.packets_in == 5 || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(c.packets_in, 5, "{c:?}");
    assert_eq!(c.drops_of(DropReason::Truncated), 2, "{c:?}");
    assert_eq!(c.routed, 3, "{c:?}");
    assert_eq!(c.drops_of(DropReason::Malformed), 0, "{c:?}");
    assert!(c.ingress_balanced() && c.egress_balanced(), "{c:?}");
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
