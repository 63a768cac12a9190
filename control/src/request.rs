//! Requests and responses of the control API, shared by the Rust embedding API and HTTP.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId, TransportId};

/// Audio or video, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

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
        kind: Kind,
        ssrc: u32,
        payload_type: u8,
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
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Router { id: u32, core: usize },
    Transport { id: u32, local: SocketAddr },
    Producer { id: u32 },
    Consumer { id: u32, ssrc: u32, payload_type: u8 },
    Moved { id: u32, core: usize, freeze_us: u64 },
    Value(serde_json::Value),
    Done {},
}
