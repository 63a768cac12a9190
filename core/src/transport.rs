//! `Transport`: where a router's media enters and leaves (a plain UDP transport for now).
//!
//! The seam for future transports (pipe, WebRTC, RTP over TCP) is the pair (socket, remote): the
//! router only asks a transport "is this source yours?" and "where do I send?".

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::command::{IpPrefix, PlainTransportOptions, SocketId};
use crate::ids::{ConsumerId, ProducerId, Ssrc};

/// How a transport knows its remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// Not connected and not comedia: nothing is accepted or sent.
    Unset,
    /// Waiting to latch on the first valid packet.
    Comedia,
    /// Known (connected by the API or latched); never changes after latching.
    Known(SocketAddr),
}

/// A plain transport.
#[derive(Debug, Clone)]
pub struct Transport {
    pub(crate) socket: SocketId,
    pub(crate) remote: Remote,
    /// Where a comedia transport may latch from (`None`: anywhere: trust on first use).
    pub(crate) comedia_source: Option<IpPrefix>,
    /// Producers on this transport by SSRC. Keys are chosen by a peer's configuration; `HashMap`'s
    /// default SipHash with a random key resists collision flooding.
    pub(crate) producers_by_ssrc: HashMap<Ssrc, ProducerId>,
    /// Consumers on this transport by their (shardcast-chosen) SSRC, for RTCP feedback.
    pub(crate) consumers_by_ssrc: HashMap<Ssrc, ConsumerId>,
}

impl Transport {
    pub(crate) fn new(options: &PlainTransportOptions) -> Self {
        let remote = match (options.remote, options.comedia) {
            (Some(addr), _) => Remote::Known(addr),
            (None, true) => Remote::Comedia,
            (None, false) => Remote::Unset,
        };
        Self {
            socket: options.socket,
            remote,
            comedia_source: options.comedia_source,
            producers_by_ssrc: HashMap::new(),
            consumers_by_ssrc: HashMap::new(),
        }
    }

    /// The socket the transport uses.
    pub fn socket(&self) -> SocketId {
        self.socket
    }

    /// The remote address state.
    pub fn remote(&self) -> Remote {
        self.remote
    }

    /// The prefix a comedia transport latches from, if restricted.
    pub fn comedia_source(&self) -> Option<IpPrefix> {
        self.comedia_source
    }

    /// The address media is sent to, if known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        match self.remote {
            Remote::Known(a) => Some(a),
            _ => None,
        }
    }

    /// The socket and address this transport sends from and to, once its remote is known.
    pub(crate) fn egress(&self) -> Option<(SocketId, SocketAddr)> {
        Some((self.socket, self.remote_addr()?))
    }

    /// Producers on this transport.
    pub fn producers(&self) -> impl Iterator<Item = ProducerId> + '_ {
        self.producers_by_ssrc.values().copied()
    }

    /// Consumers on this transport.
    pub fn consumers(&self) -> impl Iterator<Item = ConsumerId> + '_ {
        self.consumers_by_ssrc.values().copied()
    }
}
