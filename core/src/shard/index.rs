//! `TransportIndex`: the three maps that find a transport from a datagram, owned together so that
//! indexing a transport is one method on one value (and never needs the shard's other fields).
//!
//! - a dedicated socket belongs to exactly one transport: `by_socket`;
//! - on the shared port a transport with a known remote is found by that address: `by_remote`;
//! - a shared-port comedia transport waiting to latch is found by its producers' SSRCs:
//!   `by_comedia_ssrc` (RTP only: RTCP never latches).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::command::SocketId;
use crate::ids::{RouterId, Ssrc, TransportId};
use crate::router::Router;
use crate::transport::{Remote, Transport};

/// A transport, named across the shard's routers.
pub(crate) type TransportKey = (RouterId, TransportId);

/// Every transport of a shard's routers, by what a datagram carries.
#[derive(Debug, Default)]
pub(crate) struct TransportIndex {
    /// Dedicated sockets → their transport. Keys are chosen by the control plane.
    by_socket: HashMap<SocketId, TransportKey>,
    /// Shared-port transports with a known remote, by remote address. Keys come from the network:
    /// std's SipHash with a per-map random key resists collision flooding.
    by_remote: HashMap<SocketAddr, TransportKey>,
    /// Shared-port comedia transports waiting to latch, by the SSRCs of their producers (keys
    /// come from a peer too: same hasher).
    by_comedia_ssrc: HashMap<Ssrc, TransportKey>,
}

impl TransportIndex {
    /// The transport a datagram on `socket` from `source` belongs to. On the shared port the
    /// remote address decides first; `ssrc` (RTP only) then finds a comedia transport.
    pub(crate) fn lookup(
        &self,
        socket: SocketId,
        source: SocketAddr,
        ssrc: Option<Ssrc>,
    ) -> Option<TransportKey> {
        if !socket.is_shared() {
            return self.by_socket.get(&socket).copied();
        }
        self.by_remote.get(&source).or_else(|| self.by_comedia_ssrc.get(&ssrc?)).copied()
    }

    /// A dedicated socket already used by a transport.
    pub(crate) fn has_socket(&self, socket: SocketId) -> bool {
        self.by_socket.contains_key(&socket)
    }

    /// A remote address already used by a transport on the shared port.
    pub(crate) fn has_remote(&self, remote: SocketAddr) -> bool {
        self.by_remote.contains_key(&remote)
    }

    /// An SSRC already awaited by a comedia transport on the shared port.
    pub(crate) fn has_comedia_ssrc(&self, ssrc: Ssrc) -> bool {
        self.by_comedia_ssrc.contains_key(&ssrc)
    }

    /// Indexes every transport of a router.
    pub(crate) fn insert_router(&mut self, id: RouterId, router: &Router) {
        for (tid, t) in router.transports() {
            self.insert(&(id, tid), t);
        }
    }

    /// Removes every transport of a router.
    pub(crate) fn remove_router(&mut self, id: RouterId, router: &Router) {
        for (tid, t) in router.transports() {
            self.remove(&(id, tid), t);
        }
    }

    /// Indexes `t` under what it currently is (socket, remote or comedia SSRCs).
    pub(crate) fn insert(&mut self, key: &TransportKey, t: &Transport) {
        if !t.socket.is_shared() {
            self.by_socket.insert(t.socket, *key);
            return;
        }
        match t.remote {
            Remote::Known(addr) => {
                self.by_remote.insert(addr, *key);
            }
            Remote::Comedia => {
                for ssrc in t.producers_by_ssrc.keys() {
                    self.by_comedia_ssrc.insert(*ssrc, *key);
                }
            }
            Remote::Unset => {}
        }
    }

    /// Removes what [`Self::insert`] added for `t`, leaving entries of other transports alone.
    pub(crate) fn remove(&mut self, key: &TransportKey, t: &Transport) {
        if !t.socket.is_shared() {
            if self.by_socket.get(&t.socket) == Some(key) {
                self.by_socket.remove(&t.socket);
            }
            return;
        }
        match t.remote {
            Remote::Known(addr) => {
                if self.by_remote.get(&addr) == Some(key) {
                    self.by_remote.remove(&addr);
                }
            }
            Remote::Comedia => {
                for ssrc in t.producers_by_ssrc.keys() {
                    if self.by_comedia_ssrc.get(ssrc) == Some(key) {
                        self.by_comedia_ssrc.remove(ssrc);
                    }
                }
            }
            Remote::Unset => {}
        }
    }

    /// Gives `t` its remote address (connected by the API, or latched by comedia) and re-indexes
    /// it under that address.
    pub(crate) fn set_remote(&mut self, key: &TransportKey, t: &mut Transport, remote: SocketAddr) {
        self.remove(key, t);
        t.remote = Remote::Known(remote);
        self.insert(key, t);
    }
}
