//! What goes in and out of [`Shard::forward`](super::Shard::forward): the received [`Datagram`],
//! the [`Output`]s it writes (an inline header plus a [`PayloadRef`], never a payload copy) and the
//! caller-owned [`OutputSink`] they go to.

use std::net::SocketAddr;

use crate::command::SocketId;
use crate::ids::{ProducerId, RouterId};

/// A received datagram, borrowed from the caller's receive buffers.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub socket: SocketId,
    pub source: SocketAddr,
    pub data: &'a [u8],
}

/// Largest header an [`Output`] carries inline.
pub const OUTPUT_HEADER_MAX: usize = 28;

/// Where an output's bytes after its inline header come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadRef {
    /// Nothing: the header is the whole packet (generated RTCP).
    None,
    /// `datagrams[index][offset..]` of the batch being forwarded (zero-copy).
    Datagram { index: u32, offset: u16 },
    /// A retransmission: the payload of the packet `seq` kept in a producer's store (after its
    /// fixed header); see [`Shard::stored_payload`](super::Shard::stored_payload).
    Stored { router: RouterId, producer: ProducerId, seq: u16 },
}

/// One datagram to send: `header[..header_len]` followed by the referenced payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub socket: SocketId,
    pub dest: SocketAddr,
    pub header: [u8; OUTPUT_HEADER_MAX],
    pub header_len: u8,
    pub payload: PayloadRef,
}

impl Output {
    /// The inline header bytes.
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }
}

/// Where [`Shard::forward`](super::Shard::forward) writes outputs; `push` returns `false` when
/// full (counted as a drop).
pub trait OutputSink {
    fn push(&mut self, output: Output) -> bool;
}

impl<const N: usize> OutputSink for heapless::Vec<Output, N> {
    fn push(&mut self, output: Output) -> bool {
        heapless::Vec::push(self, output).is_ok()
    }
}
