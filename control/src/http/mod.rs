//! The HTTP/JSON API (`control/API.md`), served by axum on a current-thread tokio runtime of its
//! own. Handlers never block the runtime: each call runs on `spawn_blocking` and waits on the
//! control thread with a deadline.
//!
//! The JSON boundary: the typed `Response` (with its `RouterDump` and `StatsDocument`), the
//! `ControlEvent`s of `/events` and the error bodies are serialized here and nowhere else.
//!
//! This file holds the routes, the request bodies and the handlers; `error.rs` the error bodies,
//! `sse.rs` the event stream, `server.rs` the server thread.

mod error;
mod server;
mod sse;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use shardcast_core::command::IpPrefix;
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
use subtle::ConstantTimeEq;
use tower_http::timeout::TimeoutLayer;

use self::error::missing;
pub use self::error::HttpError;
pub use self::server::{connection_cap, HttpServer};
use crate::api::Shardcast;
use crate::request::{Request, Response};

type HttpResult = Result<Json<Response>, HttpError>;

fn body<T: DeserializeOwned + Default>(bytes: Result<Bytes, BytesRejection>) -> Result<T, HttpError> {
    let bytes =
        bytes.map_err(|e| HttpError::new(e.status(), "invalid_argument", format!("request body: {e}")))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid_argument", format!("invalid JSON body: {e}"))
    })
}

fn id(path: Result<Path<u32>, PathRejection>) -> Result<u32, HttpError> {
    path.map(|Path(id)| id)
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, "invalid_argument", format!("id in path: {e}")))
}

async fn call(sc: Shardcast, request: Request) -> HttpResult {
    let result = tokio::task::spawn_blocking(move || sc.call(request))
        .await
        .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(result?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRouterBody {
    core: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    core: usize,
}

impl Default for MoveBody {
    fn default() -> Self {
        MoveBody { core: usize::MAX }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportBody {
    #[serde(default = "localhost")]
    listen_ip: std::net::IpAddr,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    shared_port: bool,
    #[serde(default)]
    comedia: bool,
    /// `"203.0.113.0/24"`, `"2001:db8::/32"` or one address.
    #[serde(default)]
    comedia_source: Option<String>,
}

fn localhost() -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 1])
}

impl Default for TransportBody {
    fn default() -> Self {
        TransportBody {
            listen_ip: localhost(),
            port: None,
            shared_port: false,
            comedia: false,
            comedia_source: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    ip: Option<std::net::IpAddr>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceBody {
    kind: Option<MediaKind>,
    ssrc: Option<Ssrc>,
    payload_type: Option<PayloadType>,
    #[serde(default)]
    clock_rate: Option<u32>,
    #[serde(default)]
    paused: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeBody {
    producer_id: Option<u32>,
    #[serde(default)]
    paused: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipeBody {
    router: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchProducerBody {
    producer_id: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StallBody {
    millis: u64,
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

async fn create_router(State(sc): State<Shardcast>, b: Result<Bytes, BytesRejection>) -> HttpResult {
    let b: CreateRouterBody = body(b)?;
    call(sc, Request::CreateRouter { core: b.core }).await
}

async fn dump_router(State(sc): State<Shardcast>, p: Result<Path<u32>, PathRejection>) -> HttpResult {
    call(sc, Request::DumpRouter { router: RouterId(id(p)?) }).await
}

async fn close_router(State(sc): State<Shardcast>, p: Result<Path<u32>, PathRejection>) -> HttpResult {
    call(sc, Request::CloseRouter { router: RouterId(id(p)?) }).await
}

async fn move_router(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let router = RouterId(id(p)?);
    let b: MoveBody = body(b)?;
    if b.core == usize::MAX {
        return Err(missing("core"));
    }
    call(sc, Request::MoveRouter { router, core: b.core }).await
}

async fn create_transport(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let router = RouterId(id(p)?);
    let b: TransportBody = body(b)?;
    let comedia_source = match b.comedia_source.as_deref().map(str::parse::<IpPrefix>) {
        None => None,
        Some(Ok(prefix)) => Some(prefix),
        Some(Err(e)) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                format!(
                    "comedia_source: {} (expected an address or address/length, e.g. \"203.0.113.0/24\")",
                    e.message
                ),
            ))
        }
    };
    let request = Request::CreatePlainTransport {
        router,
        listen_ip: b.listen_ip,
        port: b.port,
        shared_port: b.shared_port,
        comedia: b.comedia,
        comedia_source,
    };
    call(sc, request).await
}

async fn connect(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let transport = TransportId(id(p)?);
    let b: ConnectBody = body(b)?;
    let ip = b.ip.ok_or_else(|| missing("ip"))?;
    let port = b.port.ok_or_else(|| missing("port"))?;
    call(sc, Request::ConnectTransport { transport, remote: SocketAddr::new(ip, port) }).await
}

async fn close_transport(State(sc): State<Shardcast>, p: Result<Path<u32>, PathRejection>) -> HttpResult {
    call(sc, Request::CloseTransport { transport: TransportId(id(p)?) }).await
}

async fn produce(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let transport = TransportId(id(p)?);
    let b: ProduceBody = body(b)?;
    let request = Request::Produce {
        transport,
        kind: b.kind.ok_or_else(|| missing("kind"))?,
        ssrc: b.ssrc.ok_or_else(|| missing("ssrc"))?,
        payload_type: b.payload_type.ok_or_else(|| missing("payload_type"))?,
        clock_rate: b.clock_rate,
        paused: b.paused,
    };
    call(sc, request).await
}

async fn consume(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let transport = TransportId(id(p)?);
    let b: ConsumeBody = body(b)?;
    let producer = ProducerId(b.producer_id.ok_or_else(|| missing("producer_id"))?);
    call(sc, Request::Consume { transport, producer, paused: b.paused }).await
}

async fn pipe(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let producer = ProducerId(id(p)?);
    let b: PipeBody = body(b)?;
    let router = RouterId(b.router.ok_or_else(|| missing("router"))?);
    call(sc, Request::PipeToRouter { producer, router }).await
}

async fn switch_consumer_producer(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let consumer = ConsumerId(id(p)?);
    let b: SwitchProducerBody = body(b)?;
    let producer = ProducerId(b.producer_id.ok_or_else(|| missing("producer_id"))?);
    call(sc, Request::SwitchConsumerProducer { consumer, producer }).await
}

macro_rules! by_id {
    ($name:ident, $variant:ident, $field:ident, $ty:ident) => {
        async fn $name(State(sc): State<Shardcast>, p: Result<Path<u32>, PathRejection>) -> HttpResult {
            call(sc, Request::$variant { $field: $ty(id(p)?) }).await
        }
    };
}

by_id!(pause_producer, PauseProducer, producer, ProducerId);
by_id!(resume_producer, ResumeProducer, producer, ProducerId);
by_id!(close_producer, CloseProducer, producer, ProducerId);
by_id!(pause_consumer, PauseConsumer, consumer, ConsumerId);
by_id!(resume_consumer, ResumeConsumer, consumer, ConsumerId);
by_id!(close_consumer, CloseConsumer, consumer, ConsumerId);

async fn stall(
    State(sc): State<Shardcast>,
    p: Result<Path<u32>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let core = id(p)? as usize;
    let b: StallBody = body(b)?;
    call(sc, Request::StallCore { core, millis: b.millis, wait: b.wait }).await
}

async fn panic_core(State(sc): State<Shardcast>, p: Result<Path<u32>, PathRejection>) -> HttpResult {
    call(sc, Request::PanicCore { core: id(p)? as usize }).await
}

async fn stats(State(sc): State<Shardcast>) -> HttpResult {
    call(sc, Request::Stats).await
}

async fn metrics(State(sc): State<Shardcast>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || crate::metrics::render(&sc)).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
}

async fn auth(
    State(sc): State<Shardcast>,
    headers: HeaderMap,
    request: HttpRequest,
    next: Next,
) -> HttpResponse {
    if let Some(token) = &sc.config().api.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant time in the token's bytes: the time to refuse tells nothing of a prefix.
        let matches = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())));
        if !matches {
            return HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The body of `TimeoutLayer`'s 408: the error shape of every other error.
async fn timed_out(response: HttpResponse) -> HttpResponse {
    if response.status() != StatusCode::REQUEST_TIMEOUT {
        return response;
    }
    HttpError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request (its body and the call) took longer than api.request_timeout_ms",
    )
    .into_response()
}

/// The API's routes.
pub fn router(sc: Shardcast) -> Router {
    let limit = sc.config().api.max_body_bytes;
    Router::new()
        .route("/routers", post(create_router))
        .route("/routers/:id", get(dump_router).delete(close_router))
        .route("/routers/:id/move", post(move_router))
        .route("/routers/:id/transports", post(create_transport))
        .route("/transports/:id", axum::routing::delete(close_transport))
        .route("/transports/:id/connect", post(connect))
        .route("/transports/:id/producers", post(produce))
        .route("/transports/:id/consumers", post(consume))
        .route("/producers/:id", axum::routing::delete(close_producer))
        .route("/producers/:id/pause", post(pause_producer))
        .route("/producers/:id/resume", post(resume_producer))
        .route("/producers/:id/pipe", post(pipe))
        .route("/consumers/:id", axum::routing::delete(close_consumer))
        .route("/consumers/:id/pause", post(pause_consumer))
        .route("/consumers/:id/resume", post(resume_consumer))
        .route("/consumers/:id/producer", post(switch_consumer_producer))
        .route("/cores/:id/stall", post(stall))
        .route("/cores/:id/panic", post(panic_core))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/events", get(sse::events))
        .fallback(|| async {
            HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route (see control/API.md)")
        })
        .layer(middleware::from_fn_with_state(sc.clone(), auth))
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(sc.config().api.request_timeout_ms),
        ))
        .layer(middleware::map_response(timed_out))
        .with_state(sc)
}

#[cfg(test)]
mod tests;
