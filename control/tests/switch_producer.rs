//! Switching a consumer's source producer (`POST /consumers/{id}/producer`,
//! `Consumer::switch_producer`) over real UDP: two live producers with their own SSRCs, sequence
//! and timestamp bases; the receiver of a consumer switched from one to the other mid-stream sees
//! one stream — its SSRC and payload type, sequence numbers +1 across the switch, timestamps
//! increasing by the elapsed time — and the new producer's sender gets a PLI. The dump, the
//! handles and the events agree; bad calls get the promised 4xx; closing the old producer
//! spares the consumer, closing the new one closes it.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};
use shardcast::events::ControlEvent;
use shardcast::http::HttpServer;
use shardcast::{
    Config, MediaKind, PayloadType, PlainTransportOptions, ProducerOptions, Router, Shardcast, Ssrc,
};
use shardcast_core::testutil::rtp;

const SSRC1: u32 = 0x1111_1111;
const SSRC2: u32 = 0x2222_2222;
/// A packet every 10 ms: 900 ticks of the 90 kHz clock.
const TICK: Duration = Duration::from_millis(10);
const TS_PER_TICK: u32 = 900;

struct Api {
    sc: Shardcast,
    server: Option<HttpServer>,
    base: String,
    client: Client,
}

impl Api {
    fn start() -> Api {
        let config = Config::for_tests(2);
        let sc = Shardcast::start(config.clone()).expect("starts");
        let server = HttpServer::start(sc.clone(), config.api.listen).expect("serves");
        let base = format!("http://{}", server.addr());
        let client = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Api { sc, server: Some(server), base, client }
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.client.post(format!("{}{path}", self.base)).json(&body).send().expect("HTTP works");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// A call that must succeed: its `id`, if it returns one.
    fn ok(&self, path: &str, body: Value) -> u64 {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "POST {path}: {v}");
        v["id"].as_u64().unwrap_or(0)
    }

    fn delete(&self, path: &str) -> u16 {
        self.client.delete(format!("{}{path}", self.base)).send().expect("HTTP works").status().as_u16()
    }

    fn get(&self, path: &str) -> Value {
        let r = self.client.get(format!("{}{path}", self.base)).send().expect("HTTP works");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().expect("JSON")
    }

    /// A plain transport of router `r` connected to `peer`: (id, local address).
    fn transport(&self, r: u64, peer: &UdpSocket) -> (u64, std::net::SocketAddr) {
        let (status, t) = self.post(&format!("/routers/{r}/transports"), json!({}));
        assert_eq!(status, 200, "{t}");
        let id = t["id"].as_u64().unwrap();
        let peer = peer.local_addr().unwrap();
        self.ok(
            &format!("/transports/{id}/connect"),
            json!({"ip": peer.ip().to_string(), "port": peer.port()}),
        );
        (id, t["local"].as_str().unwrap().parse().unwrap())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop(Duration::from_secs(2));
        }
        let _ = self.sc.shutdown(Duration::from_secs(5));
    }
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// One packet at the receiver: (SSRC, PT, seq, timestamp, which producer sent it, arrival).
type Arrival = (u32, u8, u16, u32, u8, Instant);

fn parse(buf: &[u8], at: Instant) -> Arrival {
    assert!(buf.len() > 12, "an RTP packet with a payload");
    let be32 = |i: usize| u32::from_be_bytes(buf[i..i + 4].try_into().unwrap());
    (be32(8), buf[1] & 0x7f, u16::from_be_bytes([buf[2], buf[3]]), be32(4), buf[12], at)
}

/// Everything `s` receives until `stop`, then what is still queued.
fn collect(s: UdpSocket, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Arrival>> {
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        loop {
            match s.recv(&mut buf) {
                Ok(n) => got.push(parse(&buf[..n], Instant::now())),
                Err(_) if stop.load(Ordering::Relaxed) => return got,
                Err(_) => {}
            }
        }
    })
}

/// The media SSRCs of the PLIs (RTCP PT 206, FMT 1) queued on `s`.
fn plis(s: &UdpSocket) -> Vec<u32> {
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while let Ok(n) = s.recv(&mut buf) {
        if n >= 12 && buf[1] == 206 && buf[0] & 0x1f == 1 {
            out.push(u32::from_be_bytes(buf[8..12].try_into().unwrap()));
        }
    }
    out
}

#[test]
fn a_switched_consumer_is_one_continuous_stream_and_the_new_source_is_asked_for_a_keyframe() {
    let api = Api::start();
    let r = api.ok("/routers", json!({}));
    let (sender1, sender2, receiver) = (peer(), peer(), peer());
    let (t1, local1) = api.transport(r, &sender1);
    let (t2, local2) = api.transport(r, &sender2);
    let (t3, _) = api.transport(r, &receiver);
    let p1 = api.ok(
        &format!("/transports/{t1}/producers"),
        json!({"kind": "video", "ssrc": SSRC1, "payload_type": 96}),
    );
    // P2: another SSRC and payload type; its numbering and clock start elsewhere.
    let p2 = api.ok(
        &format!("/transports/{t2}/producers"),
        json!({"kind": "video", "ssrc": SSRC2, "payload_type": 97}),
    );
    let (status, c) = api.post(&format!("/transports/{t3}/consumers"), json!({"producer_id": p1}));
    assert_eq!(status, 200, "{c}");
    let (k, own_ssrc) = (c["id"].as_u64().unwrap(), c["ssrc"].as_u64().unwrap() as u32);

    // Both producers send, paced, from one thread: P1 from seq 1000 / ts 10,000, P2 from
    // seq 60,000 / ts 3,000,000,000 (it wraps during the test).
    let stop = Arc::new(AtomicBool::new(false));
    let received = collect(receiver.try_clone().unwrap(), stop.clone());
    let media = {
        let (s1, s2, stop) = (sender1.try_clone().unwrap(), sender2.try_clone().unwrap(), stop.clone());
        thread::spawn(move || {
            let mut next = Instant::now();
            for i in 0u32.. {
                if stop.load(Ordering::Relaxed) {
                    return i;
                }
                let (seq1, ts1) = (1000u16.wrapping_add(i as u16), 10_000 + i * TS_PER_TICK);
                let (seq2, ts2) =
                    (60_000u16.wrapping_add(i as u16), 3_000_000_000u32.wrapping_add(i * TS_PER_TICK));
                s1.send_to(&rtp(SSRC1, seq1, ts1, 96, &[1; 200]), local1).unwrap();
                s2.send_to(&rtp(SSRC2, seq2, ts2, 97, &[2; 200]), local2).unwrap();
                next += TICK;
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            unreachable!()
        })
    };
    thread::sleep(Duration::from_millis(400));
    assert!(plis(&sender2).is_empty(), "nobody asked P2 for a keyframe yet");
    let (status, v) = api.post(&format!("/consumers/{k}/producer"), json!({"producer_id": p2}));
    assert_eq!((status, &v), (200, &json!({})));
    // The dump shows the new producer as soon as the call returned.
    let dump = api.get(&format!("/routers/{r}"));
    let consumer = dump["consumers"].as_array().unwrap().iter().find(|c| c["id"] == k).unwrap().clone();
    assert_eq!(
        (consumer["producer"].as_u64(), consumer["producer_paused"].as_bool()),
        (Some(p2), Some(false))
    );
    let of = |p: u64| {
        dump["producers"].as_array().unwrap().iter().find(|x| x["id"] == p).unwrap()["consumers"].clone()
    };
    assert_eq!((of(p1), of(p2)), (json!([]), json!([k])));
    thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let ticks = media.join().unwrap();
    let got = received.join().unwrap();

    // One stream: the consumer's SSRC and PT throughout, P1's packets then P2's.
    assert!(got.iter().all(|a| (a.0, a.1) == (own_ssrc, 96)), "SSRC/PT kept: {got:?}");
    let at = got.iter().position(|a| a.4 == 2).expect("P2's packets arrive after the switch");
    assert!(at >= 20 && got.len() - at >= 20, "{at} packets before, {} after", got.len() - at);
    assert!(got[at..].iter().all(|a| a.4 == 2), "nothing of P1 after the switch");
    // Sequence numbers +1 from packet to packet, across the switch too: no gap, no jump.
    for w in got.windows(2) {
        assert_eq!(
            w[1].2,
            w[0].2.wrapping_add(1),
            "seq {} then {} (P{} then P{})",
            w[0].2,
            w[1].2,
            w[0].4,
            w[1].4
        );
    }
    // Timestamps: each source's own steps, and across the switch about the time that passed.
    for (i, w) in got.windows(2).enumerate() {
        let step = w[1].3.wrapping_sub(w[0].3);
        if i + 1 != at {
            assert_eq!(step, TS_PER_TICK, "packet {i}: a source's own clock");
        }
    }
    let (last1, first2) = (&got[at - 1], &got[at]);
    let step = first2.3.wrapping_sub(last1.3);
    assert!(step > 0 && step < 1 << 31, "timestamps increase across the switch: +{step}");
    let elapsed_ms = first2.5.duration_since(last1.5).as_secs_f64() * 1000.0;
    let step_ms = f64::from(step) / 90.0;
    assert!((step_ms - elapsed_ms).abs() < 25.0, "re-based by {step_ms:.1} ms, {elapsed_ms:.1} ms passed");

    // P2's sender got a PLI about its SSRC (one: the throttle holds for 500 ms); P1's none.
    assert_eq!(plis(&sender2), [SSRC2]);
    assert!(plis(&sender1).is_empty());

    // Bad calls: 404 for unknown ids, 400 for another router's or another kind's producer or no
    // producer_id; each changes nothing.
    let other_router = api.ok("/routers", json!({}));
    let (t_other, _) = api.transport(other_router, &peer());
    let foreign = api.ok(
        &format!("/transports/{t_other}/producers"),
        json!({"kind": "video", "ssrc": 77, "payload_type": 96}),
    );
    let audio = api.ok(
        &format!("/transports/{t2}/producers"),
        json!({"kind": "audio", "ssrc": 78, "payload_type": 111}),
    );
    for (path, body, status, kind) in [
        ("/consumers/999999/producer".to_string(), json!({"producer_id": p1}), 404, "not_found"),
        (format!("/consumers/{k}/producer"), json!({"producer_id": 999999}), 404, "not_found"),
        (format!("/consumers/{k}/producer"), json!({"producer_id": foreign}), 400, "invalid_argument"),
        (format!("/consumers/{k}/producer"), json!({"producer_id": audio}), 400, "invalid_argument"),
        (format!("/consumers/{k}/producer"), json!({}), 400, "invalid_argument"),
    ] {
        let (got_status, v) = api.post(&path, body.clone());
        assert_eq!((got_status, v["kind"].as_str()), (status, Some(kind)), "{path} {body}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    }
    let (_, v) = api.post(&format!("/consumers/{k}/producer"), json!({"producer_id": audio}));
    assert!(v["error"].as_str().unwrap().starts_with("producer_id:"), "names the field: {v}");
    // To the producer it follows: 200, nothing changes.
    let dump = api.get(&format!("/routers/{r}"));
    assert_eq!(api.post(&format!("/consumers/{k}/producer"), json!({"producer_id": p2})).0, 200);
    assert_eq!(api.get(&format!("/routers/{r}")), dump);

    // Closing the old producer spares the consumer: P2's media still reaches it, continuing.
    assert_eq!(api.delete(&format!("/producers/{p1}")), 200);
    let after = api.get(&format!("/routers/{r}"));
    assert!(after["consumers"].as_array().unwrap().iter().any(|c| c["id"] == k), "{after}");
    let last = got.last().unwrap();
    let (seq2, ts2) =
        (60_000u16.wrapping_add(ticks as u16), 3_000_000_000u32.wrapping_add(ticks * TS_PER_TICK));
    sender2.send_to(&rtp(SSRC2, seq2, ts2, 97, &[2; 200]), local2).unwrap();
    receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    let n = receiver.recv(&mut buf).expect("still forwarded");
    let a = parse(&buf[..n], Instant::now());
    assert_eq!((a.0, a.2, a.3), (own_ssrc, last.2.wrapping_add(1), last.3.wrapping_add(TS_PER_TICK)));
    // Closing the new one closes it.
    assert_eq!(api.delete(&format!("/producers/{p2}")), 200);
    let after = api.get(&format!("/routers/{r}"));
    assert_eq!(after["consumers"], json!([]), "{after}");
}

#[test]
fn the_handles_follow_a_switch_and_its_paused_state_with_events() {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    let router = Router::create(&sc, None).unwrap();
    let t = router.create_plain_transport(PlainTransportOptions::default()).unwrap();
    let live = t.produce(ProducerOptions::new(MediaKind::Audio, Ssrc(10), PayloadType(111))).unwrap();
    let paused = t
        .produce(ProducerOptions {
            paused: true,
            ..ProducerOptions::new(MediaKind::Audio, Ssrc(11), PayloadType(111))
        })
        .unwrap();
    let mut consumer = t.consume(live.id(), false).unwrap();
    let mut events = sc.events().subscribe();

    // To a paused producer: paused by it, announced as a producer pause would be.
    consumer.switch_producer(paused.id()).unwrap();
    assert_eq!(consumer.producer_id(), paused.id());
    let dump = router.dump().unwrap();
    assert_eq!((dump.consumers[0].producer, dump.consumers[0].producer_paused), (paused.id(), true));
    assert_eq!(
        *events.try_recv().unwrap(),
        ControlEvent::ConsumerProducerPaused { consumer: consumer.id(), producer: paused.id() }
    );
    // The new producer's resume reaches it; the old one's pause no longer does.
    live.pause().unwrap();
    assert!(events.try_recv().is_err(), "the old producer's pause is not the consumer's");
    paused.resume().unwrap();
    assert_eq!(
        *events.try_recv().unwrap(),
        ControlEvent::ConsumerProducerResumed { consumer: consumer.id(), producer: paused.id() }
    );
    assert!(!router.dump().unwrap().consumers[0].producer_paused);
    // Back to the (now paused) first one: paused again, and said so.
    consumer.switch_producer(live.id()).unwrap();
    assert_eq!(
        *events.try_recv().unwrap(),
        ControlEvent::ConsumerProducerPaused { consumer: consumer.id(), producer: live.id() }
    );
    // A refused switch leaves the handle as it was.
    let video = t.produce(ProducerOptions::new(MediaKind::Video, Ssrc(12), PayloadType(96))).unwrap();
    let e = consumer.switch_producer(video.id()).unwrap_err();
    assert_eq!(e.kind, shardcast::ApiErrorKind::InvalidArgument, "{e}");
    assert_eq!(consumer.producer_id(), live.id());
    assert_eq!(router.dump().unwrap().consumers[0].producer, live.id());
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
