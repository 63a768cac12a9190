//! The shard's behaviour through its two entry points, one file per concept: commands
//! (`commands.rs`: `apply_batch`, `apply`, take/insert, the close cascade), RTP forwarding
//! (`forwarding.rs`: fan-out, drops, pause, comedia's latch, sequence checks) and the shared port
//! (`shared_port.rs`: comedia transports sharing an address, RTCP by SSRC, hops by SSRC). RTCP
//! handling is tested next to each packet kind's handler (`rtcp/*.rs`); the helpers here are
//! shared with those tests.

use std::net::SocketAddr;

use super::*;
use crate::command::SocketId;
use crate::testutil::fanout_setup;

pub(crate) const R: RouterId = RouterId(1);

mod commands;
mod forwarding;
mod shared_port;

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn setup(consumers: u32) -> Shard {
    let mut s = Shard::new();
    let reply = s.apply_batch(&fanout_setup(SocketId(1), addr(5000), consumers, |i| addr(6000 + i as u16)));
    assert!(matches!(reply, BatchReply::Applied { seq: 1, .. }), "{reply:?}");
    s
}

pub(crate) fn send(s: &mut Shard, socket: u32, from: SocketAddr, pkt: &[u8]) -> heapless::Vec<Output, 64> {
    let mut out = heapless::Vec::new();
    s.forward(0, &Datagram { socket: SocketId(socket), source: from, data: pkt }, 0, &mut out);
    out
}

pub(crate) fn batch(seq: u64, commands: Vec<Command>) -> CommandBatch {
    CommandBatch { seq, commands }
}

pub(crate) fn rtcp_out(
    s: &mut Shard,
    socket: u32,
    from: SocketAddr,
    pkt: &[u8],
    now_us: u64,
) -> heapless::Vec<Output, 64> {
    let mut out = heapless::Vec::new();
    s.forward(0, &Datagram { socket: SocketId(socket), source: from, data: pkt }, now_us, &mut out);
    out
}
