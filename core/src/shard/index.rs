//! `TransportIndex`: the maps that find a transport from a datagram, owned together so that
//! indexing a transport is one method on one value (and never needs the shard's other fields).
//!
//! - a dedicated socket belongs to exactly one transport: `by_socket`;
//! - on the shared port a transport with a known remote is found by that address: `by_remote`.
//!   One address may carry several transports' streams (a gateway or encoder box sending ten
//!   streams from one socket, each to its own comedia transport): such an address is `Shared`,
//!   and its datagrams are found by (address, SSRC) — a producer's SSRC for RTP and sender
//!   reports (`by_media_flow`), a consumer's SSRC for receiver reports and feedback
//!   (`by_feedback_flow`). An address used by one transport costs one lookup, as before;
//! - a shared-port comedia transport waiting to latch is found by its producers' SSRCs:
//!   `by_comedia_ssrc` (RTP only: RTCP never latches).
//!
//! The flow maps hold every shared-port transport with a known remote (not only the shared
//! addresses'), so an address becoming shared or going back to one transport changes only its
//! `by_remote` slot.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;

use crate::command::SocketId;
use crate::ids::{RouterId, Ssrc, TransportId};
use crate::router::Router;
use crate::rtcp::{RtcpCompound, RtcpPacket};
use crate::transport::{Remote, Transport};

/// A transport, named across the shard's routers.
pub(crate) type TransportKey = (RouterId, TransportId);

/// Who uses a remote address on the shared port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RemoteSlot {
    /// One transport: found by the address alone.
    One(TransportKey),
    /// Several transports (at least two): found by (address, SSRC).
    Shared(Vec<TransportKey>),
}

/// Every transport of a shard's routers, by what a datagram carries.
///
/// Keys of the address and SSRC maps come from the network: std's SipHash with a per-map random
/// key resists collision flooding.
#[derive(Debug, Default)]
pub(crate) struct TransportIndex {
    /// Dedicated sockets → their transport. Keys are chosen by the control plane.
    by_socket: HashMap<SocketId, TransportKey>,
    /// Shared-port transports with a known remote, by remote address.
    by_remote: HashMap<SocketAddr, RemoteSlot>,
    /// Shared-port transports with a known remote, by (remote, SSRC of one of their producers).
    by_media_flow: HashMap<(SocketAddr, Ssrc), TransportKey>,
    /// Shared-port transports with a known remote, by (remote, SSRC of one of their consumers).
    by_feedback_flow: HashMap<(SocketAddr, Ssrc), TransportKey>,
    /// Shared-port comedia transports waiting to latch, by the SSRCs of their producers.
    by_comedia_ssrc: HashMap<Ssrc, TransportKey>,
}

impl TransportIndex {
    /// The transport an RTP packet with `ssrc` on `socket` from `source` belongs to. On the
    /// shared port the remote address decides first (with the SSRC when the address is shared);
    /// a comedia transport waiting for `ssrc` comes next.
    pub(crate) fn lookup(&self, socket: SocketId, source: SocketAddr, ssrc: Ssrc) -> Option<TransportKey> {
        if !socket.is_shared() {
            return self.by_socket.get(&socket).copied();
        }
        match self.by_remote.get(&source) {
            Some(RemoteSlot::One(key)) => Some(*key),
            Some(RemoteSlot::Shared(_)) => {
                self.by_media_flow.get(&(source, ssrc)).or_else(|| self.by_comedia_ssrc.get(&ssrc)).copied()
            }
            None => self.by_comedia_ssrc.get(&ssrc).copied(),
        }
    }

    /// The transport an RTCP compound packet on `socket` from `source` belongs to. From a
    /// shared address, the first sub-packet whose SSRC names one of the address's transports
    /// decides (a sender report's SSRC is a producer's; a receiver report block's, a PLI's, a
    /// FIR's or a NACK's media SSRC is a consumer's); none: `None`, never a guess.
    pub(crate) fn lookup_rtcp(
        &self,
        socket: SocketId,
        source: SocketAddr,
        compound: &RtcpCompound<'_>,
    ) -> Option<TransportKey> {
        if !socket.is_shared() {
            return self.by_socket.get(&socket).copied();
        }
        match self.by_remote.get(&source)? {
            RemoteSlot::One(key) => Some(*key),
            RemoteSlot::Shared(_) => {
                let media = |ssrc: u32| self.by_media_flow.get(&(source, Ssrc(ssrc))).copied();
                let feedback = |ssrc: u32| self.by_feedback_flow.get(&(source, Ssrc(ssrc))).copied();
                compound.iter().find_map(|packet| match packet {
                    RtcpPacket::SenderReport(sr) => {
                        media(sr.ssrc()).or_else(|| sr.report_blocks().find_map(|b| feedback(b.ssrc())))
                    }
                    RtcpPacket::ReceiverReport(rr) => rr.report_blocks().find_map(|b| feedback(b.ssrc())),
                    RtcpPacket::Pli(pli) => feedback(pli.media_ssrc()),
                    RtcpPacket::Fir(fir) => fir.entries().find_map(|(ssrc, _)| feedback(ssrc)),
                    RtcpPacket::Nack(nack) => feedback(nack.media_ssrc()),
                    RtcpPacket::Sdes(_) | RtcpPacket::Bye(_) | RtcpPacket::Other { .. } => None,
                })
            }
        }
    }

    /// The shared-port comedia transport waiting for `ssrc`, if any.
    pub(crate) fn awaiting(&self, ssrc: Ssrc) -> Option<TransportKey> {
        self.by_comedia_ssrc.get(&ssrc).copied()
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

    /// Whether the shared-port transport `key` could use `remote` next to the transports
    /// already there: none of their flows (remote, SSRC) is one of its own.
    pub(crate) fn flows_free(&self, key: &TransportKey, t: &Transport, remote: SocketAddr) -> bool {
        let free = |map: &HashMap<(SocketAddr, Ssrc), TransportKey>, ssrc: &Ssrc| {
            map.get(&(remote, *ssrc)).is_none_or(|k| k == key)
        };
        t.producers_by_ssrc.keys().all(|s| free(&self.by_media_flow, s))
            && t.consumers_by_ssrc.keys().all(|s| free(&self.by_feedback_flow, s))
    }

    /// Whether a producer (`media`) or consumer SSRC is free from `remote` on the shared port
    /// for transport `key`.
    pub(crate) fn flow_free(&self, key: &TransportKey, remote: SocketAddr, ssrc: Ssrc, media: bool) -> bool {
        let map = if media { &self.by_media_flow } else { &self.by_feedback_flow };
        map.get(&(remote, ssrc)).is_none_or(|k| k == key)
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

    /// Indexes `t` under what it currently is (socket, remote and its flows, or comedia SSRCs).
    pub(crate) fn insert(&mut self, key: &TransportKey, t: &Transport) {
        if !t.socket.is_shared() {
            self.by_socket.insert(t.socket, *key);
            return;
        }
        match t.remote {
            Remote::Known(addr) => {
                match self.by_remote.entry(addr) {
                    Entry::Vacant(e) => {
                        e.insert(RemoteSlot::One(*key));
                    }
                    Entry::Occupied(mut e) => match e.get_mut() {
                        RemoteSlot::One(k) if k == key => {}
                        RemoteSlot::One(k) => {
                            let first = *k;
                            e.insert(RemoteSlot::Shared(vec![first, *key]));
                        }
                        RemoteSlot::Shared(keys) => {
                            if !keys.contains(key) {
                                keys.push(*key);
                            }
                        }
                    },
                }
                // A flow already taken stays with its transport (commands refuse the clash).
                for ssrc in t.producers_by_ssrc.keys() {
                    self.by_media_flow.entry((addr, *ssrc)).or_insert(*key);
                }
                for ssrc in t.consumers_by_ssrc.keys() {
                    self.by_feedback_flow.entry((addr, *ssrc)).or_insert(*key);
                }
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
                if let Entry::Occupied(mut e) = self.by_remote.entry(addr) {
                    match e.get_mut() {
                        RemoteSlot::One(k) if k == key => {
                            e.remove();
                        }
                        RemoteSlot::One(_) => {}
                        RemoteSlot::Shared(keys) => {
                            keys.retain(|k| k != key);
                            if let [last] = keys[..] {
                                e.insert(RemoteSlot::One(last));
                            }
                        }
                    }
                }
                for ssrc in t.producers_by_ssrc.keys() {
                    if self.by_media_flow.get(&(addr, *ssrc)) == Some(key) {
                        self.by_media_flow.remove(&(addr, *ssrc));
                    }
                }
                for ssrc in t.consumers_by_ssrc.keys() {
                    if self.by_feedback_flow.get(&(addr, *ssrc)) == Some(key) {
                        self.by_feedback_flow.remove(&(addr, *ssrc));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::PlainTransportOptions;

    fn shared(remote: Option<SocketAddr>, producers: &[u32], consumers: &[u32]) -> Transport {
        let mut t = Transport::new(&PlainTransportOptions {
            socket: SocketId::SHARED,
            remote,
            comedia: remote.is_none(),
            comedia_source: None,
        });
        for (i, s) in producers.iter().enumerate() {
            t.producers_by_ssrc.insert(Ssrc(*s), crate::ids::ProducerId(i as u32));
        }
        for (i, s) in consumers.iter().enumerate() {
            t.consumers_by_ssrc.insert(Ssrc(*s), crate::ids::ConsumerId(i as u32));
        }
        t
    }

    #[test]
    fn an_address_shared_by_two_transports_resolves_by_ssrc_and_collapses_back() {
        let a = SocketAddr::from(([192, 0, 2, 1], 4000));
        let k1 = (RouterId(1), TransportId(1));
        let k2 = (RouterId(2), TransportId(2));
        let mut index = TransportIndex::default();
        let mut t1 = shared(None, &[11], &[]);
        let mut t2 = shared(None, &[22], &[]);
        index.insert(&k1, &t1);
        index.insert(&k2, &t2);
        assert_eq!(index.lookup(SocketId::SHARED, a, Ssrc(22)), Some(k2), "awaiting comedia");
        index.set_remote(&k1, &mut t1, a);
        // One transport at `a`: the address alone decides (its SSRCs are checked by the caller).
        assert_eq!(index.lookup(SocketId::SHARED, a, Ssrc(22)), Some(k1));
        assert!(index.flows_free(&k2, &t2, a));
        index.set_remote(&k2, &mut t2, a);
        assert_eq!(index.lookup(SocketId::SHARED, a, Ssrc(11)), Some(k1));
        assert_eq!(index.lookup(SocketId::SHARED, a, Ssrc(22)), Some(k2));
        assert_eq!(index.lookup(SocketId::SHARED, a, Ssrc(33)), None, "shared: never a guess");
        index.remove(&k1, &t1);
        assert_eq!(index.lookup(SocketId::SHARED, a, Ssrc(33)), Some(k2), "back to one");
        index.remove(&k2, &t2);
        assert!(!index.has_remote(a));
        assert!(index.by_media_flow.is_empty() && index.by_feedback_flow.is_empty());
    }

    #[test]
    fn a_taken_flow_is_not_free() {
        let a = SocketAddr::from(([192, 0, 2, 1], 4000));
        let k1 = (RouterId(1), TransportId(1));
        let k2 = (RouterId(1), TransportId(2));
        let mut index = TransportIndex::default();
        index.insert(&k1, &shared(Some(a), &[11], &[500]));
        assert!(!index.flows_free(&k2, &shared(None, &[11], &[]), a));
        assert!(!index.flows_free(&k2, &shared(None, &[12], &[500]), a));
        assert!(index.flows_free(&k2, &shared(None, &[12], &[501]), a));
        assert!(index.flows_free(&k1, &shared(None, &[11], &[500]), a), "its own flows");
        assert!(!index.flow_free(&k2, a, Ssrc(11), true));
        assert!(index.flow_free(&k2, a, Ssrc(11), false));
    }
}
