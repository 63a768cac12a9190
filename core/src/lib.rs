//! shardcast-core: the sans-IO half of shardcast.
//!
//! Packets and time are inputs, outputs are values the caller sends: this crate opens no socket,
//! reads no clock, starts no thread and contains no `unsafe`.
#![forbid(unsafe_code)]

pub mod command;
pub mod consumer;
pub mod demux;
pub mod drop_reason;
pub mod ids;
pub mod producer;
pub mod queue;
pub mod router;
pub mod rtcp;
pub mod rtp;
pub mod rtp_store;
pub mod rtp_stream;
pub mod seq_manager;
pub mod shard;
pub mod transport;

#[cfg(any(test, feature = "test-util"))]
pub mod testutil;
