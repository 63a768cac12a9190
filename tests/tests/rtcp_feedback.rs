//! RTCP end to end over real sockets: a consumer's PLI reaches the producer (with the producer's
//! SSRC); a consumer's NACK is answered from shardcast's store for packets it forwarded, and
//! otherwise reaches the producer mapped to the producer's sequence numbers, whose
//! retransmission reaches the consumer with the consumer's sequence number; the
//! producer's SR reaches the consumer rewritten; the consumer's RR is not forwarded.

use std::time::Duration;

use shardcast_core::ids::RouterId;
use shardcast_core::rtcp::{
    Nack, NackRepr, Pli, PliRepr, ReceiverReportRepr, RtcpCompound, RtcpPacket, SenderReportRepr,
};
use shardcast_core::testutil::Room;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(1);

#[test]
fn pli_nack_sr_rr_between_consumer_and_producer() {
    let mut plane = Plane::start(1);
    let producer = Peer::new();
    let consumer = Peer::new();
    let (in_sock, in_addr) = plane.socket(0);
    let (out_sock, out_addr) = plane.socket(0);
    let room = Room::new(R).producer(1, in_sock, producer.addr(), 1111, 96).consumer(
        2,
        out_sock,
        consumer.addr(),
        1,
        2222,
        96,
    );
    plane.route(0, room.commands());
    // Media 500..510 with 505 "lost" on the way (the producer does not send it yet).
    for seq in (500..510u16).filter(|s| *s != 505) {
        producer.send(in_addr, &rtp(1111, seq, u32::from(seq) * 3000, 96, &seq.to_be_bytes()));
    }
    let got = consumer.recv_n(9, DEADLINE);
    assert_eq!(got.len(), 9);
    let first = header(&got[0]).seq;

    // PLI from the consumer about its SSRC → the producer, about the producer's SSRC.
    let mut pli = [0u8; 12];
    PliRepr { sender_ssrc: 77, media_ssrc: 2222 }.emit(&mut pli);
    consumer.send(out_addr, &pli);
    let up = producer.recv_n(1, DEADLINE);
    let p = Pli::new_checked(&up[0]).unwrap();
    assert_eq!((p.sender_ssrc(), p.media_ssrc()), (77, 1111));

    // NACK for the consumer's sequence number of 505 → the producer, as 505.
    let missing = first.wrapping_add(5);
    let repr = NackRepr::from_lost(77, 2222, &[missing]);
    let mut nack = vec![0u8; repr.buffer_len()];
    repr.emit(&mut nack);
    consumer.send(out_addr, &nack);
    let up = producer.recv_n(1, DEADLINE);
    let n = Nack::new_checked(&up[0]).unwrap();
    assert_eq!(n.media_ssrc(), 1111);
    assert_eq!(n.lost_sequence_numbers().collect::<Vec<_>>(), vec![505]);
    // The producer retransmits 505: the consumer gets it under its own numbering.
    producer.send(in_addr, &rtp(1111, 505, 505 * 3000, 96, &505u16.to_be_bytes()));
    let re = consumer.recv_n(1, DEADLINE);
    assert_eq!(header(&re[0]).seq, missing);
    assert_eq!(header(&re[0]).ssrc, 2222);
    assert_eq!(&re[0][12..], &505u16.to_be_bytes());

    // NACK for a packet shardcast forwarded (503): answered from the producer's store, as the
    // consumer numbered it; the producer is not asked.
    let forwarded = first.wrapping_add(3);
    let repr = NackRepr::from_lost(77, 2222, &[forwarded]);
    let mut nack = vec![0u8; repr.buffer_len()];
    repr.emit(&mut nack);
    consumer.send(out_addr, &nack);
    let re = consumer.recv_n(1, DEADLINE);
    assert_eq!(re.len(), 1, "no retransmission from the store");
    assert_eq!((header(&re[0]).seq, header(&re[0]).ssrc), (forwarded, 2222));
    assert_eq!(&re[0][12..], &503u16.to_be_bytes());
    assert!(producer.drain(Duration::from_millis(200)).is_empty(), "the producer was asked anyway");

    // The producer's SR reaches the consumer rewritten; the consumer's RR goes nowhere.
    let mut sr = [0u8; 28];
    SenderReportRepr {
        ssrc: 1111,
        ntp: 1 << 40,
        rtp_timestamp: 1_500_000,
        packet_count: 10,
        octet_count: 20,
        reports: Default::default(),
    }
    .emit(&mut sr);
    producer.send(in_addr, &sr);
    let down = consumer.recv_n(1, DEADLINE);
    let c = RtcpCompound::new_checked(&down[0]).unwrap();
    match c.iter().next() {
        Some(RtcpPacket::SenderReport(s)) => {
            assert_eq!(
                (s.ssrc(), s.ntp(), s.rtp_timestamp(), s.packet_count()),
                (2222, 1 << 40, 1_500_000, 10)
            )
        }
        other => panic!("{other:?}"),
    }
    let mut rr = vec![0u8; 8];
    ReceiverReportRepr { ssrc: 77, reports: Default::default() }.emit(&mut rr);
    consumer.send(out_addr, &rr);
    assert!(producer.drain(Duration::from_millis(200)).is_empty(), "RR must not be forwarded");
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
