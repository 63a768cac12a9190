//! The seed race of issue 14 as users hit it, through the HTTP API: while media flows, several
//! clients fire pause/resume of the source, `pipe` (to a router on the source's core and to one
//! on the other core, twice at once for one of them) and `consume` on every router without
//! waiting for each other, in random interleavings, for 1,000 rounds. After all calls of a round
//! returned, every view agrees — the source, each piped producer, every consumer's
//! `producer_paused` — and the wire agrees with the views: every packet sent afterwards reaches
//! every consumer when the source is active, none when it is paused, with each consumer's numbering
//! contiguous. Two clients piping the same pair at once get one pipe. A second run adds a client
//! moving the routers between the cores meanwhile. Afterwards, closing the
//! source closes the whole chain once, with one `producer_closed` event per producer, and every
//! core's conservation counters balance.

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::Rng;

use reqwest::blocking::Client;
use serde_json::{json, Value};
use shardcast::events::ControlEvent;
use shardcast::http::HttpServer;
use shardcast::{Config, Shardcast};
use shardcast_core::drop_reason::DropReason;
use shardcast_core::testutil::rtp;

const ROUNDS: u64 = 1000;

#[derive(Clone)]
struct Api {
    base: String,
    client: Client,
}

impl Api {
    fn post(&self, path: &str, body: Value) -> Value {
        let r = self.client.post(format!("{}{path}", self.base)).json(&body).send().expect("HTTP works");
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert_eq!(status, 200, "POST {path} {body}: {v}");
        v
    }
    fn delete(&self, path: &str) {
        let r = self.client.delete(format!("{}{path}", self.base)).send().expect("HTTP works");
        assert_eq!(r.status().as_u16(), 200, "DELETE {path}");
    }
    fn get(&self, path: &str) -> Value {
        let r = self.client.get(format!("{}{path}", self.base)).send().expect("HTTP works");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().expect("JSON")
    }
    fn id(v: &Value) -> u64 {
        v["id"].as_u64().expect("an id")
    }
}

fn receiver() -> UdpSocket {
    let opts = shardcast_dataplane::socket::SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
    let (s, _) = shardcast_dataplane::socket::bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Everything queued on `s` now: (seq, ssrc, sender counter).
fn drain(s: &UdpSocket) -> Vec<(u16, u32, u64)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.recv(&mut buf) {
        if n >= 20 {
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ssrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
            out.push((seq, ssrc, u64::from_be_bytes(buf[12..20].try_into().unwrap())));
        }
    }
    out
}

/// Waits until the cores read every packet sent up to `n` and every pipe copy was taken: then
/// every output of those packets was handed to the kernel (a core sends before it publishes).
fn settle(sc: &Shardcast, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c: Vec<_> = sc.cores().iter().map(|c| c.stats().counters).collect();
        let read: u64 = c.iter().map(|c| c.packets_in).sum();
        let (out, taken): (u64, u64) =
            (c.iter().map(|c| c.piped_out).sum(), c.iter().map(|c| c.piped_in).sum());
        if read >= n && out == taken {
            return;
        }
        assert!(Instant::now() < deadline, "not settled: read {read} of {n}, piped {out}, taken {taken}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A client's transport in one router, connected to its own receiver.
struct Sink {
    transport: u64,
    socket: UdpSocket,
}

fn sink(api: &Api, router: u64) -> Sink {
    let socket = receiver();
    let t = api.post(&format!("/routers/{router}/transports"), json!({"listen_ip": "127.0.0.1"}));
    let port = socket.local_addr().unwrap().port();
    api.post(&format!("/transports/{}/connect", Api::id(&t)), json!({"ip": "127.0.0.1", "port": port}));
    Sink { transport: Api::id(&t), socket }
}

#[test]
fn racing_clients_over_http_keep_pipes_views_and_wire_in_agreement() {
    race(false);
}

/// The same while another client keeps moving the three routers between the cores: pipes turn
/// same-core and cross-core under the racing calls, and nothing changes for the views or the wire.
#[test]
fn racing_clients_and_moves_keep_pipes_views_and_wire_in_agreement() {
    race(true);
}

fn race(with_moves: bool) {
    let config = Config::for_tests(2);
    let sc = Shardcast::start(config.clone()).unwrap();
    let server = HttpServer::start(sc.clone(), config.api.listen).unwrap();
    let api = Api {
        base: format!("http://{}", server.addr()),
        client: Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
    };
    // r1 holds the source; r2 is on its core (same-core pipe), r3 on the other (cross-core).
    let r1 = Api::id(&api.post("/routers", json!({"core": 0})));
    let r2 = Api::id(&api.post("/routers", json!({"core": 0})));
    let r3 = Api::id(&api.post("/routers", json!({"core": 1})));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t_in = api.post(&format!("/routers/{r1}/transports"), json!({"listen_ip": "127.0.0.1"}));
    let dest: std::net::SocketAddr = t_in["local"].as_str().unwrap().parse().unwrap();
    let port = sender.local_addr().unwrap().port();
    api.post(&format!("/transports/{}/connect", Api::id(&t_in)), json!({"ip": "127.0.0.1", "port": port}));
    let p = api.post(
        &format!("/transports/{}/producers", Api::id(&t_in)),
        json!({"kind": "video", "ssrc": 4242, "payload_type": 96}),
    );
    let p = Api::id(&p);
    let sinks = [sink(&api, r1), sink(&api, r2), sink(&api, r3)];

    // Media: a paced sender whose payload is its counter.
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let media = {
        let (counter, stop) = (counter.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 1;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_micros(n * 250);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let _ = sender.send_to(&rtp(4242, n as u16, n as u32 * 90, 96, &n.to_be_bytes()), dest);
                counter.store(n, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    let now = || counter.load(Ordering::SeqCst);

    let moving = Arc::new(AtomicBool::new(with_moves));
    let mover = {
        let (api, moving) = (api.clone(), moving.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0xfeed);
            let mut moves = 0u32;
            while moving.load(Ordering::Relaxed) {
                let router = [r1, r2, r3][rng.below(3) as usize];
                let to = rng.below(2);
                api.post(&format!("/routers/{router}/move"), json!({"core": to}));
                moves += 1;
                std::thread::sleep(Duration::from_millis(1 + rng.below(3)));
            }
            moves
        })
    };
    let mut rng = Rng(0x5eed);
    let mut checked_packets = 0u64;
    let mut pipes_created = BTreeSet::new();
    for round in 0..ROUNDS {
        let want_pause = rng.below(2) == 0;
        let jitter: Vec<u64> = (0..6).map(|_| rng.below(400)).collect();
        let wait = |i: usize| std::thread::sleep(Duration::from_micros(jitter[i]));
        let pipe_and_consume = |router: u64, sink: &Sink, i: usize| {
            wait(i);
            let q = Api::id(&api.post(&format!("/producers/{p}/pipe"), json!({"router": router})));
            let c = api.post(&format!("/transports/{}/consumers", sink.transport), json!({"producer_id": q}));
            (q, c)
        };
        // Every client at once, none waiting for another.
        let (q2, q2b, q3, consumers) = std::thread::scope(|s| {
            let toggle = s.spawn(|| {
                wait(0);
                api.post(
                    &format!("/producers/{p}/{}", if want_pause { "pause" } else { "resume" }),
                    json!({}),
                );
            });
            let c2 = s.spawn(|| pipe_and_consume(r2, &sinks[1], 1));
            let c3 = s.spawn(|| pipe_and_consume(r3, &sinks[2], 2));
            let twin = s.spawn(|| {
                wait(3);
                Api::id(&api.post(&format!("/producers/{p}/pipe"), json!({"router": r2})))
            });
            let c1 = s.spawn(|| {
                wait(4);
                api.post(&format!("/transports/{}/consumers", sinks[0].transport), json!({"producer_id": p}))
            });
            toggle.join().unwrap();
            let (q2, k2) = c2.join().unwrap();
            let (q3, k3) = c3.join().unwrap();
            (q2, twin.join().unwrap(), q3, [c1.join().unwrap(), k2, k3])
        });
        let paused = want_pause;
        assert_eq!(q2, q2b, "round {round}: two clients piping the same pair got two pipes");
        pipes_created.insert(q2);
        pipes_created.insert(q3);

        // Every view agrees.
        let dumps: Vec<Value> = [r1, r2, r3].iter().map(|r| api.get(&format!("/routers/{r}"))).collect();
        let source = dumps[0]["producers"].as_array().unwrap().iter().find(|x| x["id"] == p).unwrap();
        assert_eq!(source["paused"], paused, "round {round}: source");
        let piped_to: BTreeSet<u64> =
            source["piped_to"].as_array().unwrap().iter().map(|t| t["producer"].as_u64().unwrap()).collect();
        assert_eq!(piped_to, BTreeSet::from([q2, q3]), "round {round}");
        for (d, q) in [(&dumps[1], q2), (&dumps[2], q3)] {
            let producers = d["producers"].as_array().unwrap();
            assert_eq!(producers.len(), 1, "round {round}: one piped producer: {d}");
            assert_eq!(producers[0]["id"], q);
            assert_eq!(producers[0]["piped_from"], json!({"router": r1, "producer": p}));
            assert_eq!(producers[0]["paused"], paused, "round {round}: piped producer {q}");
        }
        for d in &dumps {
            for c in d["consumers"].as_array().unwrap() {
                assert_eq!(c["producer_paused"], paused, "round {round}: {c}");
            }
        }

        // The wire agrees: everything sent from now on reaches every consumer, or nothing does.
        let n0 = now();
        settle(&sc, n0);
        let n1 = loop {
            let n = now();
            if n >= n0 + 8 {
                break n;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        settle(&sc, n1);
        for (sink, c) in sinks.iter().zip(&consumers) {
            let ssrc = c["ssrc"].as_u64().unwrap() as u32;
            let mut got: Vec<_> = drain(&sink.socket).into_iter().filter(|g| g.1 == ssrc).collect();
            got.sort_by_key(|g| g.2);
            for w in got.windows(2) {
                assert_eq!(w[1].0, w[0].0.wrapping_add(1), "round {round}: consumer {ssrc} not contiguous");
            }
            let after: BTreeSet<u64> = got.iter().map(|g| g.2).filter(|n| *n > n0 && *n <= n1).collect();
            if paused {
                assert!(after.is_empty(), "round {round}: consumer {ssrc} got {after:?} while paused");
            } else {
                assert_eq!(after, (n0 + 1..=n1).collect(), "round {round}: consumer {ssrc} missed packets");
                checked_packets += after.len() as u64;
            }
        }
        // Next round: new consumers; and now and then new pipes (closing one is closing its
        // piped producer).
        for c in &consumers {
            api.delete(&format!("/consumers/{}", Api::id(c)));
        }
        if rng.below(3) == 0 {
            api.delete(&format!("/producers/{q2}"));
        }
        if rng.below(3) == 0 {
            api.delete(&format!("/producers/{q3}"));
        }
    }
    moving.store(false, Ordering::Relaxed);
    let moves = mover.join().unwrap();
    assert_eq!(moves > 100, with_moves, "{moves} moves");
    assert!(pipes_created.len() > 300, "pipes were re-created: {}", pipes_created.len());
    assert!(checked_packets > 1000, "checked too little: {checked_packets}");

    // Closing the source closes the chain once, on every core, with one event per producer.
    for r in [r2, r3] {
        api.post(&format!("/producers/{p}/pipe"), json!({"router": r}));
    }
    let live: Vec<u64> = [r2, r3]
        .iter()
        .flat_map(|r| {
            api.get(&format!("/routers/{r}"))["producers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(live.len(), 2);
    let mut events = sc.events().subscribe();
    api.delete(&format!("/producers/{p}"));
    let mut closed: BTreeMap<u64, u32> = BTreeMap::new();
    while let Ok(e) = events.try_recv() {
        if let ControlEvent::ProducerClosed { producer, .. } = &*e {
            *closed.entry(u64::from(producer.0)).or_default() += 1;
        }
    }
    let want: BTreeMap<u64, u32> = live.iter().chain([&p]).map(|q| (*q, 1)).collect();
    assert_eq!(closed, want, "one producer_closed per producer of the chain");
    for r in [r1, r2, r3] {
        let d = api.get(&format!("/routers/{r}"));
        assert!(d["producers"].as_array().unwrap().is_empty(), "{d}");
    }
    stop.store(true, Ordering::Relaxed);
    media.join().unwrap();
    settle(&sc, now());
    let stats = api.get("/stats");
    let mut sums = (0, 0);
    for (i, core) in sc.cores().iter().enumerate() {
        let c = core.stats().counters;
        assert!(c.ingress_balanced() && c.egress_balanced(), "core {i}: {c:?}");
        assert_eq!(c.drops_of(DropReason::PipeRingFull), 0, "core {i}");
        sums = (sums.0 + c.piped_out, sums.1 + c.piped_in);
        assert_eq!(stats["cores"][i]["drops"]["pipe_ring_full"], 0);
    }
    assert_eq!(sums.0, sums.1);
    assert!(sums.0 > 1000, "{sums:?}");
    server.stop(Duration::from_secs(2));
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

/// Bad `pipe` calls get the documented errors and change nothing.
#[test]
fn bad_pipe_calls_get_their_errors() {
    let config = Config::for_tests(2);
    let sc = Shardcast::start(config.clone()).unwrap();
    let server = HttpServer::start(sc.clone(), config.api.listen).unwrap();
    let api = Api {
        base: format!("http://{}", server.addr()),
        client: Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
    };
    let r1 = Api::id(&api.post("/routers", json!({"core": 0})));
    let r2 = Api::id(&api.post("/routers", json!({"core": 1})));
    let t = api.post(&format!("/routers/{r1}/transports"), json!({"listen_ip": "127.0.0.1"}));
    let p = api.post(
        &format!("/transports/{}/producers", Api::id(&t)),
        json!({"kind": "audio", "ssrc": 5, "payload_type": 111}),
    );
    let p = Api::id(&p);
    let raw = |path: &str, body: &str| {
        let r = api
            .client
            .post(format!("{}{path}", api.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null)["kind"].clone())
    };
    let pipe = format!("/producers/{p}/pipe");
    assert_eq!(raw(&pipe, "{}"), (400, json!("invalid_argument")), "router missing");
    assert_eq!(raw(&pipe, r#"{"router": 1, "x": 2}"#), (400, json!("invalid_argument")));
    assert_eq!(raw(&pipe, "nope"), (400, json!("invalid_argument")));
    assert_eq!(raw(&pipe, &format!(r#"{{"router": {r1}}}"#)), (400, json!("invalid_argument")), "own router");
    assert_eq!(raw(&pipe, r#"{"router": 4242}"#), (404, json!("not_found")));
    assert_eq!(raw("/producers/4242/pipe", &format!(r#"{{"router": {r2}}}"#)), (404, json!("not_found")));
    let q = Api::id(&api.post(&pipe, json!({"router": r2})));
    let again = raw(&format!("/producers/{q}/pipe"), &format!(r#"{{"router": {r1}}}"#));
    assert_eq!(again, (400, json!("invalid_argument")), "a piped producer is not piped again");
    assert_eq!(raw(&format!("/producers/{q}/pause"), "{}"), (409, json!("invalid_state")));
    let stats = api.get("/stats");
    assert_eq!(stats["producers"], 2, "{stats}");
    server.stop(Duration::from_secs(2));
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
