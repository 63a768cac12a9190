//! `api_request`: JSON request bodies through the real HTTP layer (`shardcast::http::router`)
//! of one in-process shardcast (one core, test hooks off), without a TCP socket.
//!
//! The body types the handlers decode (`CreateRouterBody`, `TransportBody`, ...) are private to
//! `control/src/http.rs`, so the target drives the public router with `tower::ServiceExt::oneshot`
//! and checks what it answers against a reference decoder of each route's body schema written
//! from `control/API.md` and `http.rs` (`reference_accepts`).

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request as HttpRequest, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use shardcast::{Config, Shardcast};
use tower::ServiceExt;

/// Longest body tried (well under the configured `max_body_bytes`, which would answer 413).
pub const MAX_BODY: usize = 4096;

/// The routes whose bodies are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateRouter,
    MoveRouter,
    CreateTransport,
    Connect,
    Produce,
    Consume,
    Stall,
}

pub const ROUTES: [Route; 7] = [
    Route::CreateRouter,
    Route::MoveRouter,
    Route::CreateTransport,
    Route::Connect,
    Route::Produce,
    Route::Consume,
    Route::Stall,
];

/// Field types of the reference schemas.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Usize,
    U64,
    U32,
    U16,
    U8,
    Bool,
    Ip,
    Kind,
}

/// `(name, type, required, nullable)` per field, as `http.rs` declares them (`Option<T>` fields
/// are nullable and optional; `#[serde(default)]` fields are optional).
fn schema(route: Route) -> &'static [(&'static str, Ty, bool, bool)] {
    match route {
        Route::CreateRouter => &[("core", Ty::Usize, false, true)],
        Route::MoveRouter => &[("core", Ty::Usize, true, false)],
        Route::CreateTransport => &[
            ("listen_ip", Ty::Ip, false, false),
            ("port", Ty::U16, false, true),
            ("shared_port", Ty::Bool, false, false),
            ("comedia", Ty::Bool, false, false),
        ],
        Route::Connect => &[("ip", Ty::Ip, false, true), ("port", Ty::U16, false, true)],
        Route::Produce => &[
            ("kind", Ty::Kind, false, true),
            ("ssrc", Ty::U32, false, true),
            ("payload_type", Ty::U8, false, true),
            ("clock_rate", Ty::U32, false, true),
            ("paused", Ty::Bool, false, false),
        ],
        Route::Consume => &[("producer_id", Ty::U32, false, true), ("paused", Ty::Bool, false, false)],
        Route::Stall => &[("millis", Ty::U64, true, false), ("wait", Ty::Bool, false, false)],
    }
}

/// A JSON object's entries in order, duplicates kept (serde's derive refuses duplicate fields;
/// `serde_json::Map` would hide them).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, Value>()? {
                    v.push(e);
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// What the reference decoder says of a body: accepted, refused, or not modelled (JSON arrays,
/// which serde's derive reads positionally).
#[derive(Debug, PartialEq, Eq)]
pub enum Reference {
    Accepts,
    Refuses,
    Unmodelled,
}

/// Decides from `control/API.md`'s schema alone whether the body decodes.
pub fn reference_accepts(route: Route, body: &[u8]) -> Reference {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        // An empty body is the default body; the handler then reports missing fields itself.
        return Reference::Accepts;
    }
    if let Ok(Value::Array(_)) = serde_json::from_slice::<Value>(body) {
        return Reference::Unmodelled;
    }
    let Ok(Entries(entries)) = serde_json::from_slice::<Entries>(body) else { return Reference::Refuses };
    let fields = schema(route);
    let mut seen = Vec::new();
    for (key, value) in &entries {
        let Some(&(_, ty, _, nullable)) = fields.iter().find(|f| f.0 == key) else {
            return Reference::Refuses;
        };
        if seen.contains(&key.as_str()) {
            return Reference::Refuses;
        }
        seen.push(key.as_str());
        let ok = match (value, ty) {
            (Value::Null, _) => nullable,
            (Value::Bool(_), Ty::Bool) => true,
            (Value::Number(n), Ty::Usize | Ty::U64) => n.as_u64().is_some(),
            (Value::Number(n), Ty::U32) => n.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)),
            (Value::Number(n), Ty::U16) => n.as_u64().is_some_and(|v| v <= u64::from(u16::MAX)),
            (Value::Number(n), Ty::U8) => n.as_u64().is_some_and(|v| v <= u64::from(u8::MAX)),
            (Value::String(s), Ty::Ip) => s.parse::<IpAddr>().is_ok(),
            (Value::String(s), Ty::Kind) => s == "audio" || s == "video",
            _ => false,
        };
        if !ok {
            return Reference::Refuses;
        }
    }
    if fields.iter().any(|f| f.2 && !seen.contains(&f.0)) {
        return Reference::Refuses;
    }
    Reference::Accepts
}

/// The one shardcast the target talks to, a runtime to drive the router, and the fixture ids.
struct Fixture {
    sc: Shardcast,
    rt: tokio::runtime::Runtime,
    router: u32,
    producer_transport: u32,
    consumer_transport: u32,
    baseline: Value,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut config = Config::for_tests(1);
        config.allow_test_hooks = false;
        assert!(config.api.max_body_bytes > MAX_BODY);
        let sc = Shardcast::start(config).expect("shardcast starts");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut f = Fixture {
            sc,
            rt,
            router: 0,
            producer_transport: 0,
            consumer_transport: 0,
            baseline: Value::Null,
        };
        f.router = f.ok(Method::POST, "/routers".into(), b"{}")["id"].as_u64().expect("id") as u32;
        let t = format!("/routers/{}/transports", f.router);
        f.producer_transport = f.ok(Method::POST, t.clone(), b"{}")["id"].as_u64().expect("id") as u32;
        f.consumer_transport = f.ok(Method::POST, t, b"{}")["id"].as_u64().expect("id") as u32;
        let p = format!("/transports/{}/producers", f.producer_transport);
        f.ok(Method::POST, p, br#"{"kind": "video", "ssrc": 1111, "payload_type": 96}"#);
        f.baseline = f.ok(Method::GET, format!("/routers/{}", f.router), b"");
        f
    })
}

impl Fixture {
    fn send(&self, method: Method, uri: String, body: &[u8]) -> (StatusCode, Value) {
        let request = HttpRequest::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("request");
        let app = shardcast::http::router(self.sc.clone());
        let (status, bytes) = self.rt.block_on(async {
            let response = tokio::time::timeout(Duration::from_secs(10), app.oneshot(request))
                .await
                .expect("the API answers within 10 s")
                .expect("infallible");
            let status = response.status();
            let bytes = response.into_body().collect().await.expect("body").to_bytes();
            (status, bytes)
        });
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri}: {status} with a body that is not JSON ({e}): {bytes:?}"));
        (status, value)
    }

    fn ok(&self, method: Method, uri: String, body: &[u8]) -> Value {
        let (status, v) = self.send(method, uri.clone(), body);
        assert_eq!(status, StatusCode::OK, "{uri}: {v}");
        v
    }
}

/// Input: one byte choosing the route, then the body (at most [`MAX_BODY`] bytes).
///
/// Invariants: the API answers every body with 200, 400, 404, 409 or 503 — never a 500 or a
/// panic — and a JSON body; an error is `{"error": string, "kind": k}` with `k` the status's
/// kind; the body is refused as "invalid JSON body" exactly when the reference decoder refuses
/// it; whatever a successful call created is closed again (200), and the fixture router's dump
/// is the same after every input as before the first.
pub fn api_request(data: &[u8]) {
    let Some((&r, body)) = data.split_first() else { return };
    let body = &body[..body.len().min(MAX_BODY)];
    let route = ROUTES[usize::from(r) % ROUTES.len()];
    let f = fixture();
    // Connect needs a transport that is not connected yet: a fresh one, closed afterwards.
    let fresh = (route == Route::Connect).then(|| {
        let v = f.ok(Method::POST, format!("/routers/{}/transports", f.router), b"{}");
        v["id"].as_u64().expect("id") as u32
    });
    let uri = match route {
        Route::CreateRouter => "/routers".to_string(),
        Route::MoveRouter => format!("/routers/{}/move", f.router),
        Route::CreateTransport => format!("/routers/{}/transports", f.router),
        Route::Connect => format!("/transports/{}/connect", fresh.expect("created")),
        Route::Produce => format!("/transports/{}/producers", f.producer_transport),
        Route::Consume => format!("/transports/{}/consumers", f.consumer_transport),
        Route::Stall => "/cores/0/stall".to_string(),
    };
    let (status, v) = f.send(Method::POST, uri.clone(), body);
    let shown = String::from_utf8_lossy(body);
    if status == StatusCode::OK {
        assert!(v.is_object(), "{uri} {shown:?}: 200 with {v}");
    } else {
        let kind = match status {
            StatusCode::BAD_REQUEST => "invalid_argument",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "invalid_state",
            StatusCode::SERVICE_UNAVAILABLE => "core_unavailable",
            other => panic!("{uri} {shown:?}: status {other}: {v}"),
        };
        assert_eq!(v["kind"], kind, "{uri} {shown:?}: {v}");
        assert!(v["error"].is_string(), "{uri} {shown:?}: {v}");
        let o = v.as_object().expect("an object");
        assert_eq!(o.len(), 2, "{uri} {shown:?}: error body has exactly error and kind: {v}");
    }
    let decode_error = status == StatusCode::BAD_REQUEST
        && v["error"].as_str().is_some_and(|e| e.starts_with("invalid JSON body"));
    match reference_accepts(route, body) {
        Reference::Accepts => {
            assert!(!decode_error, "{uri} {shown:?}: refused a body the schema accepts: {v}")
        }
        Reference::Refuses => {
            assert!(decode_error, "{uri} {shown:?}: accepted a body the schema refuses: {status} {v}")
        }
        Reference::Unmodelled => {}
    }
    if status == StatusCode::OK {
        let id = v["id"].as_u64();
        let close = match route {
            Route::CreateRouter => id.map(|id| format!("/routers/{id}")),
            Route::CreateTransport => id.map(|id| format!("/transports/{id}")),
            Route::Produce => id.map(|id| format!("/producers/{id}")),
            Route::Consume => id.map(|id| format!("/consumers/{id}")),
            Route::MoveRouter | Route::Connect | Route::Stall => None,
        };
        if matches!(route, Route::CreateRouter | Route::CreateTransport | Route::Produce | Route::Consume) {
            let close = close.unwrap_or_else(|| panic!("{uri} {shown:?}: 200 without an id: {v}"));
            f.ok(Method::DELETE, close, b"");
        }
    }
    if let Some(t) = fresh {
        f.ok(Method::DELETE, format!("/transports/{t}"), b"");
    }
    let dump = f.ok(Method::GET, format!("/routers/{}", f.router), b"");
    assert_eq!(dump, f.baseline, "{uri} {shown:?} left the fixture router changed");
}
