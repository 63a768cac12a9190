//! The HTTP/JSON API served in-process on 127.0.0.1:0: bad input of every kind gets the right
//! 4xx with `{"error", "kind"}` and changes nothing; `/stats` and `/metrics` have the promised
//! shape; `/events` streams the events of calls once they applied.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};
use shardcast::http::HttpServer;
use shardcast::{Config, Shardcast};

const TOKEN: &str = "t0ken";

struct Api {
    sc: Shardcast,
    server: Option<HttpServer>,
    base: String,
    client: Client,
}

impl Api {
    fn start(allow_test_hooks: bool) -> Api {
        let mut config = Config::for_tests(2);
        config.api.token = Some(TOKEN.into());
        config.allow_test_hooks = allow_test_hooks;
        let sc = Shardcast::start(config.clone()).expect("starts");
        let server = HttpServer::start(sc.clone(), config.api.listen).expect("serves");
        let base = format!("http://{}", server.addr());
        let client = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Api { sc, server: Some(server), base, client }
    }

    fn auth(&self, r: RequestBuilder) -> RequestBuilder {
        r.header("Authorization", format!("Bearer {TOKEN}"))
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .auth(self.client.post(format!("{}{path}", self.base)))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("HTTP works");
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        let r = self.auth(self.client.get(format!("{}{path}", self.base))).send().expect("HTTP works");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().expect("JSON")
    }

    /// Object counts from `/stats`: what any bad call must leave unchanged.
    fn counts(&self) -> Value {
        let s = self.get("/stats");
        json!([s["routers"], s["transports"], s["producers"], s["consumers"]])
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

#[test]
fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let api = Api::start(false);
    let (status, router) = api.post("/routers", "{}");
    assert_eq!(status, 200, "{router}");
    let r = router["id"].as_u64().unwrap();
    let (_, t) = api.post(&format!("/routers/{r}/transports"), r#"{"listen_ip": "127.0.0.1", "port": null}"#);
    let t = t["id"].as_u64().unwrap();
    let (_, p) =
        api.post(&format!("/transports/{t}/producers"), r#"{"kind":"video","ssrc":1234,"payload_type":96}"#);
    let p = p["id"].as_u64().unwrap();
    let before = api.counts();
    assert_eq!(before, json!([1, 1, 1, 0]));

    let cases: Vec<(String, &str, u16, &str)> = vec![
        // Malformed JSON, unknown fields, wrong types, out-of-range values, missing fields.
        ("/routers".into(), "[1,2", 400, "invalid_argument"),
        ("/routers".into(), r#"{"cores": 1}"#, 400, "invalid_argument"),
        ("/routers".into(), r#"{"core": 7}"#, 400, "invalid_argument"),
        ("/routers".into(), r#"{"core": -1}"#, 400, "invalid_argument"),
        (format!("/routers/{r}/transports"), r#"{"listen_ip": "localhost"}"#, 400, "invalid_argument"),
        (format!("/routers/{r}/transports"), r#"{"port": 70000}"#, 400, "invalid_argument"),
        (format!("/routers/{r}/transports"), r#"{"shared_port": true, "port": 5}"#, 400, "invalid_argument"),
        (format!("/transports/{t}/connect"), r#"{"ip": "127.0.0.1"}"#, 400, "invalid_argument"),
        (format!("/transports/{t}/connect"), r#"{"ip": "0.0.0.0", "port": 5000}"#, 400, "invalid_argument"),
        (
            format!("/transports/{t}/producers"),
            r#"{"kind":"text","ssrc":1,"payload_type":96}"#,
            400,
            "invalid_argument",
        ),
        (
            format!("/transports/{t}/producers"),
            r#"{"kind":"audio","ssrc":-1,"payload_type":96}"#,
            400,
            "invalid_argument",
        ),
        (
            format!("/transports/{t}/producers"),
            r#"{"kind":"audio","ssrc":1,"payload_type":300}"#,
            400,
            "invalid_argument",
        ),
        (
            format!("/transports/{t}/producers"),
            r#"{"kind":"audio","payload_type":96}"#,
            400,
            "invalid_argument",
        ),
        (
            format!("/transports/{t}/producers"),
            r#"{"kind":"audio","ssrc":"1","payload_type":96}"#,
            400,
            "invalid_argument",
        ),
        (format!("/transports/{t}/consumers"), r#"{"producer":1}"#, 400, "invalid_argument"),
        (format!("/transports/{t}/consumers"), "{}", 400, "invalid_argument"),
        // Wrong state.
        (
            format!("/transports/{t}/producers"),
            r#"{"kind":"video","ssrc":1234,"payload_type":96}"#,
            409,
            "invalid_state",
        ),
        // Unknown ids, and ids that are not ids.
        ("/routers/4242/transports".into(), "{}", 404, "not_found"),
        ("/transports/4242/connect".into(), r#"{"ip": "127.0.0.1", "port": 5000}"#, 404, "not_found"),
        (format!("/transports/{t}/consumers"), r#"{"producer_id": 4242}"#, 404, "not_found"),
        ("/consumers/4242/pause".into(), "", 404, "not_found"),
        ("/producers/-3/pause".into(), "", 400, "invalid_argument"),
        ("/producers/x/resume".into(), "", 400, "invalid_argument"),
        ("/no/such/route".into(), "{}", 404, "not_found"),
        // The test hook is off.
        ("/cores/0/stall".into(), r#"{"millis": 10}"#, 400, "invalid_argument"),
    ];
    for (path, body, status, kind) in &cases {
        let (got, v) = api.post(path, body);
        assert_eq!(got, *status, "POST {path} {body}: {v}");
        assert_eq!(v["kind"], json!(kind), "POST {path} {body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.len() > 5), "POST {path} {body}: {v}");
    }
    let del = api.auth(api.client.delete(format!("{}/routers/4242", api.base))).send().unwrap();
    assert_eq!(del.status().as_u16(), 404);

    // No token, a wrong token, a malformed header: 401, and nothing happens.
    for header in [None, Some("Bearer nope"), Some(TOKEN), Some("Basic dDBrZW4=")] {
        let mut req = api.client.post(format!("{}/producers/{p}/pause", api.base));
        if let Some(h) = header {
            req = req.header("Authorization", h);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{header:?}");
        let v: Value = resp.json().unwrap();
        assert!(v["error"].as_str().unwrap().contains("Bearer"), "{v}");
    }
    assert_eq!(api.client.get(format!("{}/stats", api.base)).send().unwrap().status().as_u16(), 401);

    // A body over the limit.
    let huge = format!(r#"{{"listen_ip": "127.0.0.1", "pad": "{}"}}"#, "x".repeat(128 << 10));
    let (status, _) = api.post(&format!("/routers/{r}/transports"), &huge);
    assert_eq!(status, 413);

    assert_eq!(api.counts(), before, "bad calls changed nothing");
    let dump = api.get(&format!("/routers/{r}"));
    assert_eq!(dump["producers"][0]["paused"], json!(false), "{dump}");
    assert_eq!(dump["transports"][0]["remote"], Value::Null, "{dump}");
}

#[test]
fn stats_metrics_and_events_have_the_promised_shape() {
    let api = Api::start(true);
    let events = api.auth(api.client.get(format!("{}/events", api.base))).send().expect("SSE opens");
    assert_eq!(events.status().as_u16(), 200);
    let (lines_tx, lines) = crossbeam::channel::unbounded::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(events).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });

    let (_, r) = api.post("/routers", "{}");
    let r = r["id"].as_u64().unwrap();
    let (_, t) = api.post(&format!("/routers/{r}/transports"), "{}");
    let t = t["id"].as_u64().unwrap();
    let (_, p) =
        api.post(&format!("/transports/{t}/producers"), r#"{"kind":"audio","ssrc":77,"payload_type":111}"#);
    let p = p["id"].as_u64().unwrap();
    let (status, k) = api.post(&format!("/transports/{t}/consumers"), &format!(r#"{{"producer_id": {p}}}"#));
    assert_eq!(status, 200, "{k}");
    assert_eq!(k["payload_type"], json!(111));
    assert!(k["ssrc"].as_u64().is_some_and(|s| s != 0 && s != 77), "{k}");
    let k = k["id"].as_u64().unwrap();
    assert_eq!(api.post(&format!("/producers/{p}/pause"), "").0, 200);
    assert_eq!(api.post(&format!("/producers/{p}/resume"), "").0, 200);
    assert_eq!(api.post(&format!("/producers/{p}/resume"), "").0, 200, "resume is idempotent");

    // The events of applied calls, in order.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = lines.recv_timeout(Duration::from_secs(10)).expect("events arrive");
        if let Some(data) = line.strip_prefix("data:") {
            let v: Value = serde_json::from_str(data.trim()).expect("event is JSON");
            seen.push(v);
        }
    }
    assert_eq!(seen[0], json!({"event": "consumer_producer_paused", "consumer": k, "producer": p}));
    assert_eq!(seen[1], json!({"event": "consumer_producer_resumed", "consumer": k, "producer": p}));

    let dump = api.get(&format!("/routers/{r}"));
    assert_eq!(dump["consumers"][0]["producer_paused"], json!(false), "{dump}");
    assert_eq!(dump["consumers"][0]["paused"], json!(false), "{dump}");

    let stats = api.get("/stats");
    assert_eq!(stats["pid"], json!(std::process::id()));
    let cores = stats["cores"].as_array().expect("cores array");
    assert_eq!(cores.len(), 2);
    for (i, c) in cores.iter().enumerate() {
        assert_eq!(c["core"], json!(i));
        assert_eq!(c["stalled"], json!(false));
        for field in ["packets_in", "packets_out", "bytes_in", "bytes_out", "batches_applied", "ring_depth"] {
            assert!(c[field].is_u64(), "core {i} {field}: {c}");
        }
        assert!(c["drops"]["producer_paused"].is_u64(), "drops by reason name: {c}");
    }
    let applied: u64 = cores.iter().map(|c| c["batches_applied"].as_u64().unwrap()).sum();
    assert!(applied >= 7, "every call reached a core: {applied}");

    let metrics = api.auth(api.client.get(format!("{}/metrics", api.base))).send().unwrap().text().unwrap();
    for needle in [
        "shardcast_packets_in_total{core=\"0\"}",
        "shardcast_drops_total{core=\"1\",reason=\"producer_paused\"}",
        "shardcast_ring_depth{core=\"0\"}",
        "shardcast_batches_applied_total{core=\"1\"}",
        "shardcast_core_stalled{core=\"0\"} 0",
        "shardcast_deadline_misses_total{core=\"1\"} 0",
        "shardcast_api_calls_total",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    assert!(metrics.trim_end().ends_with("# EOF"), "OpenMetrics text ends with # EOF");
}
