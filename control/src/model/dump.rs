//! A router's dump: its transports, producers and consumers as the model holds them. Typed;
//! `http/` serializes it (`GET /routers/{id}`), with the field names of `control/API.md`.

use std::net::SocketAddr;

use serde::Serialize;
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use super::Model;
use crate::error::ApiError;

/// One router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterDump {
    pub id: RouterId,
    pub core: usize,
    pub transports: Vec<TransportDump>,
    pub producers: Vec<ProducerDump>,
    pub consumers: Vec<ConsumerDump>,
}

/// A transport of the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransportDump {
    pub id: TransportId,
    pub local: SocketAddr,
    /// `None` until connected or latched (JSON `null`).
    pub remote: Option<SocketAddr>,
    pub shared_port: bool,
    pub comedia: bool,
    pub producers: Vec<ProducerId>,
    pub consumers: Vec<ConsumerId>,
}

/// A producer of the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducerDump {
    pub id: ProducerId,
    /// `None` (JSON `null`) for a piped producer, which has no transport.
    pub transport: Option<TransportId>,
    pub kind: MediaKind,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    pub paused: bool,
    pub consumers: Vec<ConsumerId>,
    /// For a piped producer: the producer (in another router) it is piped from.
    pub piped_from: Option<PipeEndDump>,
    /// The piped producers (in other routers) this producer feeds.
    pub piped_to: Vec<PipeEndDump>,
}

/// One end of a pipe: a producer and its router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PipeEndDump {
    pub router: RouterId,
    pub producer: ProducerId,
}

/// A consumer of the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerDump {
    pub id: ConsumerId,
    pub transport: TransportId,
    pub producer: ProducerId,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    pub paused: bool,
    /// Whether its producer is paused (it forwards only when neither is).
    pub producer_paused: bool,
}

impl Model {
    /// The dump of one router.
    pub fn dump_router(&self, id: RouterId) -> Result<RouterDump, ApiError> {
        let r = self.router(id)?;
        let transports = r
            .transports
            .iter()
            .filter_map(|t| self.transports.get(t).map(|e| (*t, e)))
            .map(|(t, e)| TransportDump {
                id: t,
                local: e.local,
                remote: e.remote,
                shared_port: e.socket.is_shared(),
                comedia: e.comedia,
                producers: e.producers.iter().copied().collect(),
                consumers: e.consumers.iter().copied().collect(),
            })
            .collect();
        let producers = self
            .producers
            .iter()
            .filter(|(_, p)| p.router == id)
            .map(|(pid, p)| ProducerDump {
                id: *pid,
                transport: Some(p.transport).filter(|_| !self.pipes.contains_key(pid)),
                kind: p.kind,
                ssrc: p.ssrc,
                payload_type: p.payload_type,
                paused: p.paused,
                consumers: p.consumers.iter().copied().collect(),
                piped_from: self.pipes.get(pid).and_then(|e| self.pipe_end(e.source)),
                piped_to: self.piped_of(*pid).into_iter().filter_map(|q| self.pipe_end(q)).collect(),
            })
            .collect();
        let consumers = self
            .consumers
            .iter()
            .filter(|(_, c)| c.router == id)
            .map(|(cid, c)| ConsumerDump {
                id: *cid,
                transport: c.transport,
                producer: c.producer,
                ssrc: c.ssrc,
                payload_type: c.payload_type,
                paused: c.paused,
                producer_paused: self.producers.get(&c.producer).is_some_and(|p| p.paused),
            })
            .collect();
        Ok(RouterDump { id, core: r.core, transports, producers, consumers })
    }

    fn pipe_end(&self, producer: ProducerId) -> Option<PipeEndDump> {
        self.producers.get(&producer).map(|p| PipeEndDump { router: p.router, producer })
    }
}
