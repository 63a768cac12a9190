//! shardcast-core: the sans-IO half of shardcast.
//!
//! Packets and time are inputs, outputs are values the caller sends: this crate opens no socket,
//! reads no clock, starts no thread and contains no `unsafe`.
#![forbid(unsafe_code)]

pub mod ids;
pub mod rtcp;
pub mod rtp;
