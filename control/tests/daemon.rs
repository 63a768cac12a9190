//! The real daemon binary, driven over HTTP and real UDP: create a room with the API, send RTP,
//! receive it rewritten, pause/resume/close and see the effect on the wire; bad input gets a
//! clear 4xx and changes nothing; SIGTERM stops it.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};
use shardcast_core::testutil::rtp;

mod common;
use common::Daemon;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn post(c: &Client, url: String, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().expect("HTTP works");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

fn recv_all(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    recv_within(s, n, Duration::from_secs(10))
}

/// Whatever arrives within `quiet` (to show that nothing does).
fn recv_none(s: &UdpSocket) -> Vec<Vec<u8>> {
    recv_within(s, 1, Duration::from_millis(300))
}

fn recv_within(s: &UdpSocket, n: usize, within: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < n && Instant::now() < deadline {
        if let Ok(len) = s.recv(&mut buf) {
            got.push(buf[..len].to_vec());
        }
    }
    got
}

#[test]
fn a_room_over_http_forwards_pauses_and_closes() {
    let d = Daemon::start(&[]);
    let c = client();
    let (s, router) = post(&c, format!("{}/routers", d.api), json!({}));
    assert_eq!(s, 200, "{router}");
    let r = router["id"].as_u64().unwrap();
    // Producer side: a transport on the shared port, connected to the sender.
    let sender = peer();
    let (s, t1) = post(&c, format!("{}/routers/{r}/transports", d.api), json!({"shared_port": true}));
    assert_eq!(s, 200, "{t1}");
    let t1 = t1["id"].as_u64().unwrap();
    let sa = sender.local_addr().unwrap();
    let (s, _) =
        post(&c, format!("{}/transports/{t1}/connect", d.api), json!({"ip": "127.0.0.1", "port": sa.port()}));
    assert_eq!(s, 200);
    let (s, p) = post(
        &c,
        format!("{}/transports/{t1}/producers", d.api),
        json!({"kind": "video", "ssrc": 1234, "payload_type": 96}),
    );
    assert_eq!(s, 200, "{p}");
    let p = p["id"].as_u64().unwrap();
    // Consumer side: a dedicated transport connected to the receiver.
    let receiver = peer();
    let (s, t2) = post(&c, format!("{}/routers/{r}/transports", d.api), json!({}));
    assert_eq!(s, 200, "{t2}");
    let t2 = t2["id"].as_u64().unwrap();
    let ra = receiver.local_addr().unwrap();
    post(&c, format!("{}/transports/{t2}/connect", d.api), json!({"ip": "127.0.0.1", "port": ra.port()}));
    let (s, k) = post(&c, format!("{}/transports/{t2}/consumers", d.api), json!({"producer_id": p}));
    assert_eq!(s, 200, "{k}");
    let (k, k_ssrc) = (k["id"].as_u64().unwrap(), k["ssrc"].as_u64().unwrap() as u32);

    for seq in 0..100u16 {
        sender.send_to(&rtp(1234, seq, u32::from(seq) * 3000, 96, b"media"), d.media).unwrap();
    }
    let got = recv_all(&receiver, 100);
    assert_eq!(got.len(), 100);
    assert!(got
        .iter()
        .all(|p| u32::from_be_bytes(p[8..12].try_into().unwrap()) == k_ssrc && &p[12..] == b"media"));

    // Pause the producer: once the call returned, nothing more arrives.
    assert_eq!(post(&c, format!("{}/producers/{p}/pause", d.api), json!({})).0, 200);
    let dump: Value = c.get(format!("{}/routers/{r}", d.api)).send().unwrap().json().unwrap();
    assert_eq!(dump["consumers"][0]["producer_paused"], json!(true));
    for seq in 100..150u16 {
        sender.send_to(&rtp(1234, seq, u32::from(seq) * 3000, 96, b"media"), d.media).unwrap();
    }
    assert!(recv_none(&receiver).is_empty(), "a paused producer's packets reached a consumer");
    assert_eq!(post(&c, format!("{}/producers/{p}/resume", d.api), json!({})).0, 200);
    for seq in 150..160u16 {
        sender.send_to(&rtp(1234, seq, u32::from(seq) * 3000, 96, b"media"), d.media).unwrap();
    }
    let got = recv_all(&receiver, 10);
    assert_eq!(got.len(), 10);
    assert_eq!(u16::from_be_bytes([got[0][2], got[0][3]]), 100, "contiguous after resume");

    // Close the consumer: it stops receiving.
    assert_eq!(c.delete(format!("{}/consumers/{k}", d.api)).send().unwrap().status().as_u16(), 200);
    sender.send_to(&rtp(1234, 160, 0, 96, b"media"), d.media).unwrap();
    assert!(recv_none(&receiver).is_empty());

    let stats: Value = c.get(format!("{}/stats", d.api)).send().unwrap().json().unwrap();
    assert_eq!(stats["pid"].as_u64().unwrap(), u64::from(d.child.id()));
    let metrics = c.get(format!("{}/metrics", d.api)).send().unwrap().text().unwrap();
    assert!(metrics.contains("shardcast_packets_in_total{core=\"0\"}"), "{metrics}");
    assert!(metrics.contains("reason=\"producer_paused\""));
    // Two cores, run as root: the shared port is steered in the kernel, and it has been used.
    assert!(metrics.contains("shardcast_kernel_steering 1"), "{metrics}");
    assert!(metrics.contains("shardcast_kernel_steering_errors_total 0"), "{metrics}");
    assert!(d.stop(), "daemon exits cleanly on SIGTERM");
}

#[test]
fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let d = Daemon::start(&["--token", "s3cret"]);
    let c = client();
    let auth = |r: reqwest::blocking::RequestBuilder| r.header("Authorization", "Bearer s3cret");
    // Wrong or missing token.
    assert_eq!(c.post(format!("{}/routers", d.api)).send().unwrap().status().as_u16(), 401);
    let wrong = c.post(format!("{}/routers", d.api)).header("Authorization", "Bearer nope").send().unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let ok: Value = auth(c.post(format!("{}/routers", d.api))).send().unwrap().json().unwrap();
    let r = ok["id"].as_u64().unwrap();
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (format!("{}/routers/{r}/transports", d.api), "{not json", 400, "invalid_argument"),
        (format!("{}/routers/{r}/transports", d.api), r#"{"bogus": 1}"#, 400, "invalid_argument"),
        (format!("{}/routers/{r}/transports", d.api), r#"{"comedia": "yes"}"#, 400, "invalid_argument"),
        (format!("{}/routers/999/transports", d.api), "{}", 404, "not_found"),
        (format!("{}/routers/abc/transports", d.api), "{}", 400, "invalid_argument"),
        (
            format!("{}/transports/77/producers", d.api),
            r#"{"kind":"audio","ssrc":1,"payload_type":111}"#,
            404,
            "not_found",
        ),
        (format!("{}/routers/{r}/move", d.api), r#"{"core": 9}"#, 400, "invalid_argument"),
        (format!("{}/producers/5/pause", d.api), "", 404, "not_found"),
        // comedia_source: a prefix with host bits set, not a prefix, or without comedia.
        (
            format!("{}/routers/{r}/transports", d.api),
            r#"{"shared_port": true, "comedia": true, "comedia_source": "203.0.113.7/24"}"#,
            400,
            "invalid_argument",
        ),
        (
            format!("{}/routers/{r}/transports", d.api),
            r#"{"comedia": true, "comedia_source": "somewhere"}"#,
            400,
            "invalid_argument",
        ),
        (
            format!("{}/routers/{r}/transports", d.api),
            r#"{"comedia_source": "203.0.113.0/24"}"#,
            400,
            "invalid_argument",
        ),
    ];
    for (url, body, status, kind) in cases {
        let resp = auth(c.post(&url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{url} {body}");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["kind"], json!(kind), "{url} {body}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
        if body.contains("comedia_source") {
            assert!(v["error"].as_str().unwrap().contains("comedia_source"), "names the field: {v}");
        }
    }
    // A producer with an out-of-range payload type, and a duplicate SSRC (wrong state).
    let t: Value = auth(c.post(format!("{}/routers/{r}/transports", d.api)))
        .json(&json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let t = t["id"].as_u64().unwrap();
    let bad_pt = auth(c.post(format!("{}/transports/{t}/producers", d.api)))
        .json(&json!({"kind": "audio", "ssrc": 7, "payload_type": 200}))
        .send()
        .unwrap();
    assert_eq!(bad_pt.status().as_u16(), 400);
    let good = json!({"kind": "audio", "ssrc": 7, "payload_type": 111});
    assert_eq!(
        auth(c.post(format!("{}/transports/{t}/producers", d.api)))
            .json(&good)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let dup = auth(c.post(format!("{}/transports/{t}/producers", d.api))).json(&good).send().unwrap();
    assert_eq!(dup.status().as_u16(), 409);
    // A huge body.
    let huge = "x".repeat(1 << 20);
    let resp = auth(c.post(format!("{}/routers/{r}/transports", d.api))).body(huge).send().unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // Nothing changed: one transport, one producer. (A fresh client: the server closed the
    // connection that carried the oversized body.)
    let c = client();
    let dump: Value = auth(c.get(format!("{}/routers/{r}", d.api))).send().unwrap().json().unwrap();
    assert_eq!(dump["transports"].as_array().unwrap().len(), 1, "{dump}");
    assert_eq!(dump["producers"].as_array().unwrap().len(), 1, "{dump}");
    assert!(d.stop());
}
