//! The Rust embedding API's handles over real UDP: a room forwards RTP rewritten to the
//! consumer's SSRC; pause/resume/close take effect on the wire by the time the call returns.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use shardcast::{
    ApiErrorKind, Config, MediaKind, PayloadType, PlainTransportOptions, ProducerOptions, Router, Shardcast,
    Ssrc,
};
use shardcast_core::testutil::rtp;

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// SSRCs of whatever arrives within `within`.
fn received(s: &UdpSocket, within: Duration) -> Vec<u32> {
    let until = Instant::now() + within;
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while Instant::now() < until {
        if let Ok(n) = s.recv(&mut buf) {
            assert!(n >= 12, "an RTP packet");
            out.push(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
        }
    }
    out
}

#[test]
fn handles_drive_a_room_over_real_udp() {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    let mut router = Router::create(&sc, None).unwrap();
    let sender = peer();
    let receiver = peer();

    let ingress = router.create_plain_transport(PlainTransportOptions::default()).unwrap();
    ingress.connect(sender.local_addr().unwrap()).unwrap();
    let producer =
        ingress.produce(ProducerOptions::new(MediaKind::Audio, Ssrc(0xabc), PayloadType(111))).unwrap();
    let egress = router.create_plain_transport(PlainTransportOptions::default()).unwrap();
    egress.connect(receiver.local_addr().unwrap()).unwrap();
    let consumer = egress.consume(producer.id(), false).unwrap();
    assert_eq!(consumer.payload_type(), PayloadType(111));
    assert_eq!(consumer.producer_id(), producer.id());

    let mut seq = 0u16;
    let mut send = |n: usize| {
        for _ in 0..n {
            seq = seq.wrapping_add(1);
            sender.send_to(&rtp(0xabc, seq, u32::from(seq) * 960, 111, &[7; 40]), ingress.local()).unwrap();
        }
    };
    send(5);
    let got = received(&receiver, Duration::from_millis(500));
    assert_eq!(got, vec![consumer.ssrc().0; 5], "forwarded, rewritten to the consumer's SSRC");

    // Paused: nothing arrives after the call returned. Resumed: media flows again.
    producer.pause().unwrap();
    send(5);
    assert!(received(&receiver, Duration::from_millis(300)).is_empty());
    producer.resume().unwrap();
    consumer.pause().unwrap();
    send(5);
    assert!(received(&receiver, Duration::from_millis(300)).is_empty());
    consumer.resume().unwrap();

    // A move keeps forwarding.
    let to = 1 - router.core();
    router.move_to(to).unwrap();
    assert_eq!(router.core(), to);
    assert_eq!(router.dump().unwrap().core, to);
    send(5);
    assert_eq!(received(&receiver, Duration::from_millis(500)).len(), 5);

    // Closing the producer closes its consumer.
    let consumer_id = consumer.id();
    producer.close().unwrap();
    send(3);
    assert!(received(&receiver, Duration::from_millis(300)).is_empty());
    assert!(router.dump().unwrap().consumers.is_empty());
    assert_eq!(sc.pause_consumer(consumer_id).unwrap_err().kind, ApiErrorKind::NotFound);

    router.close().unwrap();
    assert_eq!(egress.connect(receiver.local_addr().unwrap()).unwrap_err().kind, ApiErrorKind::NotFound);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
