//! Requests and responses of the control API, shared by the Rust embedding API and HTTP.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use shardcast_core::command::IpPrefix;
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use crate::model::RouterDump;
use crate::stats::StatsDocument;

/// One API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateRouter {
        core: Option<usize>,
    },
    CloseRouter {
        router: RouterId,
    },
    DumpRouter {
        router: RouterId,
    },
    MoveRouter {
        router: RouterId,
        core: usize,
    },
    CreatePlainTransport {
        router: RouterId,
        listen_ip: IpAddr,
        port: Option<u16>,
        shared_port: bool,
        comedia: bool,
        /// With `comedia`: only a packet from this prefix may latch.
        comedia_source: Option<IpPrefix>,
    },
    ConnectTransport {
        transport: TransportId,
        remote: SocketAddr,
    },
    CloseTransport {
        transport: TransportId,
    },
    Produce {
        transport: TransportId,
        kind: MediaKind,
        ssrc: Ssrc,
        payload_type: PayloadType,
        clock_rate: Option<u32>,
        paused: bool,
    },
    CloseProducer {
        producer: ProducerId,
    },
    PauseProducer {
        producer: ProducerId,
    },
    ResumeProducer {
        producer: ProducerId,
    },
    /// Pipes `producer` to `router` (another router of this process); returns the pipe that
    /// already does, if any.
    PipeToRouter {
        producer: ProducerId,
        router: RouterId,
    },
    Consume {
        transport: TransportId,
        producer: ProducerId,
        paused: bool,
    },
    CloseConsumer {
        consumer: ConsumerId,
    },
    PauseConsumer {
        consumer: ConsumerId,
    },
    ResumeConsumer {
        consumer: ConsumerId,
    },
    /// Re-point a consumer at another producer of its router (same kind and clock rate).
    SwitchConsumerProducer {
        consumer: ConsumerId,
        producer: ProducerId,
    },
    /// Per-core and process figures.
    Stats,
    /// Test hook (only with `allow_test_hooks`): block core `core` for `millis`; with `wait`
    /// the call waits for the core like any other (and misses its deadline if `millis` exceeds
    /// it), without it the call returns once the stall is queued.
    StallCore {
        core: usize,
        millis: u64,
        wait: bool,
    },
    /// Test hook (only with `allow_test_hooks`): panic core `core`; by the panic policy the
    /// process aborts (ARCHITECTURE.md). Returns once the panic is queued.
    PanicCore {
        core: usize,
    },
}

/// The answer to a [`Request`]: typed; `http/` turns it into the JSON of `control/API.md`
/// (ids, SSRCs and payload types are plain numbers there).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Router {
        id: RouterId,
        core: usize,
    },
    Transport {
        id: TransportId,
        local: SocketAddr,
    },
    Producer {
        id: ProducerId,
    },
    /// `PipeToRouter`: the piped producer `id`, in `router`, carrying `source`.
    Pipe {
        id: ProducerId,
        router: RouterId,
        source: ProducerId,
    },
    Consumer {
        id: ConsumerId,
        ssrc: Ssrc,
        payload_type: PayloadType,
    },
    /// A live handoff: `move_us` is the wall time of the whole move call on the control thread,
    /// from planning through both phases until every affected core confirmed (0 for a router
    /// already on `core`). It is not the core-side freeze (`/stats` `freeze_ns_max`).
    Moved {
        id: RouterId,
        core: usize,
        move_us: u64,
    },
    /// `DumpRouter`.
    Dump(RouterDump),
    /// `Stats`.
    Stats(StatsDocument),
    Done {},
}
