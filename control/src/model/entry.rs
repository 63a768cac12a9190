//! The entries of the object model: what exists, where, in which state.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use shardcast_core::command::{IpPrefix, SocketId};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use super::quota::RouterCounts;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterEntry {
    pub core: usize,
    pub transports: BTreeSet<TransportId>,
    /// Its producers and consumers, counted (quotas, the rebalancer's weight).
    pub counts: RouterCounts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportEntry {
    pub router: RouterId,
    pub socket: SocketId,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    /// On the shared port: the remote is this transport's address steering key. True once
    /// connected, or latched on an address no other shared-port transport uses (one address
    /// latched by several comedia transports is steered by their SSRC keys).
    pub remote_key: bool,
    pub comedia: bool,
    /// With `comedia`: the prefix a latching packet must come from.
    pub comedia_source: Option<IpPrefix>,
    pub producers: BTreeSet<ProducerId>,
    pub consumers: BTreeSet<ConsumerId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub router: RouterId,
    pub transport: TransportId,
    pub kind: MediaKind,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    pub clock_rate: u32,
    pub paused: bool,
    pub consumers: BTreeSet<ConsumerId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerEntry {
    pub router: RouterId,
    pub transport: TransportId,
    pub producer: ProducerId,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    pub paused: bool,
}
