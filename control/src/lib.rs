//! shardcast's control plane: the sequencer (control thread), the authoritative object model,
//! the Rust embedding API, the HTTP/JSON API, configuration and metrics.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod controller;
pub mod error;
pub mod events;
pub mod handle;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pinning;
pub mod request;
pub mod sdnotify;
pub mod stats;
pub mod tune;

pub use api::{ConsumerInfo, Shardcast, StartError, TransportInfo};
pub use config::Config;
pub use error::{ApiError, ApiErrorKind};
pub use handle::{Consumer, PlainTransportOptions, Producer, ProducerOptions, Router, Transport};
pub use request::{Request, Response};
/// The protocol vocabulary of requests and responses, from the core crate.
pub use shardcast_core::ids::{MediaKind, PayloadType, Ssrc};
