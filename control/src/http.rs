//! The HTTP/JSON API (`control/API.md`), served by axum on a current-thread tokio runtime of its
//! own. Handlers never block the runtime: each call runs on `spawn_blocking` and waits on the
//! control thread with a deadline.
//!
//! The JSON boundary: the typed `Response` (with its `RouterDump` and `StatsDocument`), the
//! `ControlEvent`s of `/events` and the error bodies are serialized here and nowhere else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
use tokio::sync::broadcast::error::RecvError;

use crate::api::Shardcast;
use crate::error::{ApiError, ApiErrorKind};
use crate::request::{Request, Response};

/// An HTTP error: status + `{"error", "kind"}`.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into() }
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        let (status, kind) = match e.kind {
            ApiErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
            ApiErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiErrorKind::InvalidState => (StatusCode::CONFLICT, "invalid_state"),
            ApiErrorKind::CoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "core_unavailable"),
            // API-SPEC.md has four kinds: a full ring or queue is a core that cannot take the
            // call now (the message says "busy").
            ApiErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "core_unavailable"),
        };
        HttpError::new(status, kind, e.message)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
    kind: &'static str,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> HttpResponse {
        (self.status, Json(ErrorBody { error: self.message, kind: self.kind })).into_response()
    }
}

/// The data of a `lagged` SSE event: how many events this subscriber lost.
#[derive(Debug, Serialize)]
struct Lagged {
    lost: u64,
}

/// An SSE event carrying `data` as JSON (`event` names its type; `None`: the default type).
fn sse_json(event: Option<&str>, data: &impl Serialize) -> SseEvent {
    let sse = event.map_or_else(SseEvent::default, |e| SseEvent::default().event(e));
    // The types sent here are structs and enums with string keys only: they always serialize.
    sse.json_data(data).unwrap_or_else(|e| SseEvent::default().comment(format!("unserializable event: {e}")))
}

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
}

fn localhost() -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 1])
}

impl Default for TransportBody {
    fn default() -> Self {
        TransportBody { listen_ip: localhost(), port: None, shared_port: false, comedia: false }
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
struct StallBody {
    millis: u64,
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

fn missing(field: &str) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, "invalid_argument", format!("missing field `{field}`"))
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
    let request = Request::CreatePlainTransport {
        router,
        listen_ip: b.listen_ip,
        port: b.port,
        shared_port: b.shared_port,
        comedia: b.comedia,
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

async fn stats(State(sc): State<Shardcast>) -> HttpResult {
    call(sc, Request::Stats).await
}

async fn metrics(State(sc): State<Shardcast>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || crate::metrics::render(&sc)).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
}

async fn events(State(sc): State<Shardcast>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = sc.events().subscribe();
    let bus = sc.events().clone();
    let stream = futures_util::stream::unfold((rx, bus), |(mut rx, bus)| async move {
        let event = match rx.recv().await {
            Ok(event) => sse_json(None, &*event),
            Err(RecvError::Lagged(n)) => {
                // A slow subscriber loses events, counted, and is told how many.
                bus.count_lagged(n);
                sse_json(Some("lagged"), &Lagged { lost: n })
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, bus)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
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
        if given != Some(token.as_str()) {
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
        .route("/consumers/:id", axum::routing::delete(close_consumer))
        .route("/consumers/:id/pause", post(pause_consumer))
        .route("/consumers/:id/resume", post(resume_consumer))
        .route("/cores/:id/stall", post(stall))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/events", get(events))
        .fallback(|| async {
            HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route (see control/API.md)")
        })
        .layer(middleware::from_fn_with_state(sc.clone(), auth))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(sc)
}

/// A running HTTP server on its own thread.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (port 0: any) and serves the API until `stop`.
    pub fn start(sc: Shardcast, addr: SocketAddr) -> std::io::Result<HttpServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("shardcast-http".into()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                let app = router(sc);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
        Ok(HttpServer { addr, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections; waits at most `deadline` for in-flight requests.
    pub fn stop(mut self, deadline: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let until = std::time::Instant::now() + deadline;
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The wire format: every JSON body this boundary writes, field by field (`control/API.md`;
    //! the tests in `control/tests/` and `benches/` read these names).

    use std::collections::BTreeMap;

    use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

    use super::*;
    use crate::events::ControlEvent;
    use crate::model::{ConsumerDump, ProducerDump, RouterDump, TransportDump};
    use crate::stats::{CoreStatsDocument, KernelSteeringDocument, StatsDocument};

    fn json(v: &impl Serialize) -> String {
        serde_json::to_string(v).expect("serializes")
    }

    #[test]
    fn responses_are_plain_numbers_and_addresses() {
        let local = SocketAddr::from(([127, 0, 0, 1], 40000));
        let cases = [
            (Response::Router { id: RouterId(1), core: 0 }, r#"{"id":1,"core":0}"#),
            (Response::Transport { id: TransportId(2), local }, r#"{"id":2,"local":"127.0.0.1:40000"}"#),
            (Response::Producer { id: ProducerId(3) }, r#"{"id":3}"#),
            (
                Response::Consumer { id: ConsumerId(4), ssrc: Ssrc(77), payload_type: PayloadType(111) },
                r#"{"id":4,"ssrc":77,"payload_type":111}"#,
            ),
            (
                Response::Moved { id: RouterId(1), core: 1, move_us: 250 },
                r#"{"id":1,"core":1,"move_us":250}"#,
            ),
            (Response::Done {}, "{}"),
        ];
        for (response, want) in cases {
            assert_eq!(json(&response), want);
        }
    }

    #[test]
    fn a_router_dump_has_the_documented_fields() {
        let dump = RouterDump {
            id: RouterId(1),
            core: 1,
            transports: vec![TransportDump {
                id: TransportId(2),
                local: SocketAddr::from(([127, 0, 0, 1], 40000)),
                remote: None,
                shared_port: false,
                comedia: true,
                producers: vec![ProducerId(3)],
                consumers: vec![ConsumerId(4)],
            }],
            producers: vec![ProducerDump {
                id: ProducerId(3),
                transport: TransportId(2),
                kind: MediaKind::Video,
                ssrc: Ssrc(1234),
                payload_type: PayloadType(96),
                paused: false,
                consumers: vec![ConsumerId(4)],
            }],
            consumers: vec![ConsumerDump {
                id: ConsumerId(4),
                transport: TransportId(2),
                producer: ProducerId(3),
                ssrc: Ssrc(99),
                payload_type: PayloadType(96),
                paused: true,
                producer_paused: false,
            }],
        };
        assert_eq!(
            json(&Response::Dump(dump)),
            concat!(
                r#"{"id":1,"core":1,"#,
                r#""transports":[{"id":2,"local":"127.0.0.1:40000","remote":null,"shared_port":false,"comedia":true,"producers":[3],"consumers":[4]}],"#,
                r#""producers":[{"id":3,"transport":2,"kind":"video","ssrc":1234,"payload_type":96,"paused":false,"consumers":[4]}],"#,
                r#""consumers":[{"id":4,"transport":2,"producer":3,"ssrc":99,"payload_type":96,"paused":true,"producer_paused":false}]}"#,
            )
        );
    }

    #[test]
    fn the_stats_document_has_the_documented_fields() {
        let core = CoreStatsDocument {
            core: 0,
            cpu: Some(1),
            stalled: false,
            packets_in: 1,
            bytes_in: 2,
            packets_out: 3,
            bytes_out: 4,
            routed: 5,
            outputs: 6,
            hopped_out: 7,
            hopped_in: 8,
            drops: BTreeMap::from([("producer_paused", 9)]),
            batches_applied: 10,
            apply_ns_max: 11,
            busy_ns: 12,
            wakeups: 13,
            routers: 14,
            ring_depth: 15,
            handoffs_in: 16,
            freeze_ns_max: 17,
            barrier_failures: 18,
        };
        let doc = StatsDocument {
            pid: 42,
            shared_port: SocketAddr::from(([0, 0, 0, 0], 5004)),
            kernel_steering: Some(KernelSteeringDocument { updates: 3, errors: 0 }),
            routers: 1,
            transports: 2,
            producers: 3,
            consumers: 4,
            moves: 5,
            rebalancer_moves: 6,
            cores: vec![core],
        };
        assert_eq!(
            json(&Response::Stats(doc.clone())),
            concat!(
                r#"{"pid":42,"shared_port":"0.0.0.0:5004","kernel_steering":{"updates":3,"errors":0},"#,
                r#""routers":1,"transports":2,"producers":3,"consumers":4,"moves":5,"rebalancer_moves":6,"#,
                r#""cores":[{"core":0,"cpu":1,"stalled":false,"packets_in":1,"bytes_in":2,"packets_out":3,"bytes_out":4,"#,
                r#""routed":5,"outputs":6,"hopped_out":7,"hopped_in":8,"drops":{"producer_paused":9},"#,
                r#""batches_applied":10,"apply_ns_max":11,"busy_ns":12,"wakeups":13,"routers":14,"ring_depth":15,"#,
                r#""handoffs_in":16,"freeze_ns_max":17,"barrier_failures":18}]}"#,
            )
        );
        let off = StatsDocument { kernel_steering: None, ..doc };
        assert!(json(&off).contains(r#""kernel_steering":null"#));
    }

    #[test]
    fn events_are_tagged_by_name() {
        let remote = SocketAddr::from(([127, 0, 0, 1], 5000));
        let cases = [
            (
                ControlEvent::TransportLatched { transport: TransportId(2), remote, core: 1 },
                r#"{"event":"transport_latched","transport":2,"remote":"127.0.0.1:5000","core":1}"#,
            ),
            (ControlEvent::CoreStalled { core: 1 }, r#"{"event":"core_stalled","core":1}"#),
            (ControlEvent::CoreRecovered { core: 1 }, r#"{"event":"core_recovered","core":1}"#),
            (
                ControlEvent::RouterMoved { router: RouterId(1), core: 0, move_us: 900 },
                r#"{"event":"router_moved","router":1,"core":0,"handoff_us":900}"#,
            ),
            (
                ControlEvent::ConsumerProducerPaused { consumer: ConsumerId(4), producer: ProducerId(3) },
                r#"{"event":"consumer_producer_paused","consumer":4,"producer":3}"#,
            ),
            (
                ControlEvent::ConsumerProducerResumed { consumer: ConsumerId(4), producer: ProducerId(3) },
                r#"{"event":"consumer_producer_resumed","consumer":4,"producer":3}"#,
            ),
            (
                ControlEvent::ProducerClosed {
                    producer: ProducerId(3),
                    consumers_closed: vec![ConsumerId(4)],
                },
                r#"{"event":"producer_closed","producer":3,"consumers_closed":[4]}"#,
            ),
        ];
        for (event, want) in cases {
            assert_eq!(json(&event), want);
        }
        assert_eq!(json(&Lagged { lost: 6 }), r#"{"lost":6}"#);
    }

    #[test]
    fn errors_carry_the_message_and_the_http_kind() {
        let busy = HttpError::from(ApiError::busy("core 1 is busy"));
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        let body = ErrorBody { error: busy.message, kind: busy.kind };
        assert_eq!(json(&body), r#"{"error":"core 1 is busy","kind":"core_unavailable"}"#);
        let kinds = [
            (ApiError::argument("x"), StatusCode::BAD_REQUEST, "invalid_argument"),
            (ApiError::not_found("x"), StatusCode::NOT_FOUND, "not_found"),
            (ApiError::state("x"), StatusCode::CONFLICT, "invalid_state"),
            (ApiError::core("x"), StatusCode::SERVICE_UNAVAILABLE, "core_unavailable"),
        ];
        for (e, status, kind) in kinds {
            let h = HttpError::from(e);
            assert_eq!((h.status, h.kind), (status, kind));
        }
    }
}
