//! The authoritative object model: what exists, where, in which state. Pure and synchronous.
//!
//! Every request is validated here first; a valid request yields a [`Plan`]: the per-core
//! operations (in phases) that make the cores agree, the response, and the [`Change`] to the model.
//! Planning changes nothing but the id counters. The controller sends the operations and commits
//! the change only once the router's owning core has applied them ([`Model::commit`]); a core that
//! misses its deadline applies the batch later, in the same order, and its late `Applied` reply
//! commits the change then. So the model never claims what no core holds.
//!
//! One concept per file: the plan a call becomes (`plan.rs`), the entries the model holds
//! (`entry.rs`), placement of new routers (`placement.rs`), shared-port steering (`steering.rs`),
//! the planning of each object's calls (`router.rs`, `transport.rs`, `producer.rs`,
//! `consumer.rs`, `pipe.rs`), committing a confirmed change (`commit.rs`), a router's dump
//! (`dump.rs`) and the quotas (`quota.rs`).

mod commit;
mod consumer;
mod dump;
mod entry;
mod pipe;
mod placement;
mod plan;
mod producer;
mod quota;
mod router;
mod steering;
mod transport;
pub(crate) use transport::check_comedia_source;

use std::collections::{BTreeMap, HashMap};

use shardcast_core::command::SocketId;
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId, Ssrc, TransportId};

use crate::error::ApiError;

pub use dump::{ConsumerDump, PipeEndDump, ProducerDump, RouterDump, TransportDump};
pub use entry::{ConsumerEntry, ProducerEntry, RouterEntry, TransportEntry};
pub use pipe::PipeEntry;
pub use placement::Placement;
pub use plan::{Change, Op, Plan};
pub use quota::{Quotas, RouterCounts};

/// The object model.
#[derive(Debug, Clone)]
pub struct Model {
    cores: usize,
    placement: Placement,
    next_core: usize,
    next_id: u32,
    next_socket: u32,
    ssrc_state: u32,
    quotas: Quotas,
    /// Video producers (NACK stores), counted for their quota.
    video_producers: usize,
    /// Routers per core, counted (placement).
    routers_on: Vec<usize>,
    /// SSRCs in use by producers and consumers, with how many use each (a fresh consumer SSRC
    /// avoids them in O(1)). Keyed by SSRCs callers choose: std's randomly keyed SipHash.
    ssrcs: HashMap<Ssrc, u32>,
    pub routers: BTreeMap<RouterId, RouterEntry>,
    pub transports: BTreeMap<TransportId, TransportEntry>,
    pub producers: BTreeMap<ProducerId, ProducerEntry>,
    pub consumers: BTreeMap<ConsumerId, ConsumerEntry>,
    /// Pipes, by their piped producer (`pipe.rs`).
    pub pipes: BTreeMap<ProducerId, PipeEntry>,
}

impl Model {
    /// An empty model for `cores` cores; `seed` drives consumer SSRC allocation.
    pub fn new(cores: usize, seed: u32, placement: Placement) -> Self {
        Self {
            cores: cores.max(1),
            placement,
            next_core: 0,
            next_id: 1,
            next_socket: 1,
            ssrc_state: seed | 1,
            quotas: Quotas::default(),
            video_producers: 0,
            routers_on: vec![0; cores.max(1)],
            ssrcs: HashMap::new(),
            routers: BTreeMap::new(),
            transports: BTreeMap::new(),
            producers: BTreeMap::new(),
            consumers: BTreeMap::new(),
            pipes: BTreeMap::new(),
        }
    }

    /// The same model with these quotas.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// A fresh object id (process-wide, shared by every kind, never reused: once 2^32 - 2 have
    /// been handed out, calls that create objects fail rather than reuse one).
    pub(super) fn id(&mut self) -> Result<u32, ApiError> {
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or_else(|| {
            ApiError::state("object ids are exhausted (2^32 - 2 created); restart the daemon")
        })?;
        Ok(id)
    }

    /// A fresh dedicated-socket id (never 0, the shared port; never reused, so a router can move
    /// between cores with its sockets). The counter never wraps: it would reach 0, the shared
    /// port's id, and a transport would take over the shared socket.
    pub fn socket_id(&mut self) -> Result<SocketId, ApiError> {
        let id = SocketId(self.next_socket);
        self.next_socket = self.next_socket.checked_add(1).ok_or_else(|| {
            ApiError::state("socket ids are exhausted (2^32 - 2 bound); restart the daemon")
        })?;
        Ok(id)
    }

    pub(super) fn new_ssrc(&mut self) -> Ssrc {
        // xorshift32: deterministic per seed, spread over the whole space, full period (it never
        // repeats a value before 2^32 - 1 draws); collisions with any SSRC in use are skipped.
        loop {
            let mut x = self.ssrc_state;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.ssrc_state = x;
            let ssrc = Ssrc(x);
            if x != 0 && !self.ssrcs.contains_key(&ssrc) {
                return ssrc;
            }
        }
    }

    /// Router counts per core (the default placement load), kept by `commit`.
    pub fn routers_per_core(&self) -> &[usize] {
        &self.routers_on
    }

    pub(super) fn router(&self, id: RouterId) -> Result<&RouterEntry, ApiError> {
        self.routers.get(&id).ok_or_else(|| ApiError::not_found(format!("no router {id}")))
    }
    pub(super) fn transport(&self, id: TransportId) -> Result<&TransportEntry, ApiError> {
        self.transports.get(&id).ok_or_else(|| ApiError::not_found(format!("no transport {id}")))
    }
    pub(super) fn producer(&self, id: ProducerId) -> Result<&ProducerEntry, ApiError> {
        self.producers.get(&id).ok_or_else(|| ApiError::not_found(format!("no producer {id}")))
    }
    pub(super) fn consumer(&self, id: ConsumerId) -> Result<&ConsumerEntry, ApiError> {
        self.consumers.get(&id).ok_or_else(|| ApiError::not_found(format!("no consumer {id}")))
    }

    /// The core owning the router of a transport/producer/consumer (for pre-checks).
    pub fn core_of_router(&self, id: RouterId) -> Option<usize> {
        self.routers.get(&id).map(|r| r.core)
    }
    pub fn core_of_transport(&self, id: TransportId) -> Option<usize> {
        self.transports.get(&id).and_then(|t| self.core_of_router(t.router))
    }
}

#[cfg(test)]
mod tests;
