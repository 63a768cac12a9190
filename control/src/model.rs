//! The authoritative object model: what exists, where, in which state. Pure and synchronous.
//!
//! Every request is validated here first; a valid request yields a [`Plan`]: the per-core
//! operations (in phases) that make the cores agree, the response, and the [`Change`] to the model.
//! Planning changes nothing but the id counters. The controller sends the operations and commits
//! the change only once the router's owning core has applied them ([`Model::commit`]); a core that
//! misses its deadline applies the batch later, in the same order, and its late `Applied` reply
//! commits the change then. So the model never claims what no core holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use shardcast_core::command::{
    Command, ConsumerOptions, PlainTransportOptions, ProducerOptions, SocketId, SteerKey,
};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use crate::error::ApiError;
use crate::request::{Kind, Response};

/// An operation for one core, before sockets are attached (the controller owns those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Route(Command),
    /// Attach the socket the controller bound for this transport.
    AttachSocket(SocketId),
    DetachSocket(SocketId),
    HandOff {
        router: RouterId,
        to: usize,
    },
    ConfirmImport {
        router: RouterId,
    },
}

/// How new routers are placed on cores (stalled cores are always skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The core owning the fewest routers (lowest index on a tie).
    #[default]
    LeastLoaded,
    /// Cores in turn.
    RoundRobin,
}

/// A change to the model, committed once the owning core has applied the plan's first phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing to change (a no-op move).
    Nothing,
    AddRouter {
        id: RouterId,
        core: usize,
    },
    /// Removes the router and everything in it.
    RemoveRouter(RouterId),
    MoveRouter {
        id: RouterId,
        core: usize,
    },
    AddTransport {
        id: TransportId,
        entry: TransportEntry,
    },
    Connect {
        id: TransportId,
        remote: SocketAddr,
    },
    /// Removes the transport, its producers (and their consumers) and its consumers.
    RemoveTransport(TransportId),
    AddProducer {
        id: ProducerId,
        entry: ProducerEntry,
    },
    /// Removes the producer and its consumers.
    RemoveProducer(ProducerId),
    ProducerPaused {
        id: ProducerId,
        paused: bool,
    },
    AddConsumer {
        id: ConsumerId,
        entry: ConsumerEntry,
    },
    RemoveConsumer(ConsumerId),
    ConsumerPaused {
        id: ConsumerId,
        paused: bool,
    },
}

/// What a valid request turns into: phases of per-core operations (each phase is confirmed by
/// every core before the next is sent), the response, and the change to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub phases: Vec<Vec<(usize, Op)>>,
    pub response: Response,
    /// Committed when `owner` has applied phase 0.
    pub change: Change,
    /// The core that owns the router the plan is about (before the plan), the one whose
    /// `Applied` reply commits the change.
    pub owner: usize,
}

impl Plan {
    fn one(owner: usize, ops: Vec<(usize, Op)>, response: Response, change: Change) -> Self {
        Plan { phases: vec![ops], response, change, owner }
    }

    /// Every core this plan touches.
    pub fn cores(&self) -> BTreeSet<usize> {
        self.phases.iter().flatten().map(|(c, _)| *c).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterEntry {
    pub core: usize,
    pub transports: BTreeSet<TransportId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportEntry {
    pub router: RouterId,
    pub socket: SocketId,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub comedia: bool,
    pub producers: BTreeSet<ProducerId>,
    pub consumers: BTreeSet<ConsumerId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub router: RouterId,
    pub transport: TransportId,
    pub kind: Kind,
    pub ssrc: u32,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub paused: bool,
    pub consumers: BTreeSet<ConsumerId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerEntry {
    pub router: RouterId,
    pub transport: TransportId,
    pub producer: ProducerId,
    pub ssrc: u32,
    pub payload_type: u8,
    pub paused: bool,
}

/// The object model.
#[derive(Debug, Clone)]
pub struct Model {
    cores: usize,
    placement: Placement,
    next_core: usize,
    next_id: u32,
    next_socket: u32,
    ssrc_state: u32,
    pub routers: BTreeMap<RouterId, RouterEntry>,
    pub transports: BTreeMap<TransportId, TransportEntry>,
    pub producers: BTreeMap<ProducerId, ProducerEntry>,
    pub consumers: BTreeMap<ConsumerId, ConsumerEntry>,
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
            routers: BTreeMap::new(),
            transports: BTreeMap::new(),
            producers: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// A fresh object id (process-wide, shared by every kind, never reused).
    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A fresh dedicated-socket id (never 0, the shared port; never reused, so a router can move
    /// between cores with its sockets).
    pub fn socket_id(&mut self) -> SocketId {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        id
    }

    fn new_ssrc(&mut self) -> u32 {
        // xorshift32: deterministic per seed, spread over the whole space, full period (it never
        // repeats a value before 2^32 - 1 draws); collisions with any SSRC in use are skipped.
        loop {
            let mut x = self.ssrc_state;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.ssrc_state = x;
            if x != 0
                && !self.consumers.values().any(|c| c.ssrc == x)
                && !self.producers.values().any(|p| p.ssrc == x)
            {
                return x;
            }
        }
    }

    /// Router counts per core (the default placement load).
    pub fn routers_per_core(&self) -> Vec<usize> {
        let mut v = vec![0; self.cores];
        for r in self.routers.values() {
            v[r.core] += 1;
        }
        v
    }

    fn router(&self, id: RouterId) -> Result<&RouterEntry, ApiError> {
        self.routers.get(&id).ok_or_else(|| ApiError::not_found(format!("no router {id}")))
    }
    fn transport(&self, id: TransportId) -> Result<&TransportEntry, ApiError> {
        self.transports.get(&id).ok_or_else(|| ApiError::not_found(format!("no transport {id}")))
    }
    fn producer(&self, id: ProducerId) -> Result<&ProducerEntry, ApiError> {
        self.producers.get(&id).ok_or_else(|| ApiError::not_found(format!("no producer {id}")))
    }
    fn consumer(&self, id: ConsumerId) -> Result<&ConsumerEntry, ApiError> {
        self.consumers.get(&id).ok_or_else(|| ApiError::not_found(format!("no consumer {id}")))
    }

    /// The core owning the router of a transport/producer/consumer (for pre-checks).
    pub fn core_of_router(&self, id: RouterId) -> Option<usize> {
        self.routers.get(&id).map(|r| r.core)
    }
    pub fn core_of_transport(&self, id: TransportId) -> Option<usize> {
        self.transports.get(&id).and_then(|t| self.core_of_router(t.router))
    }

    /// Steering ops: on every core but `owner`, point `key` at `owner` (or remove it).
    fn steer(&self, router: RouterId, owner: usize, key: SteerKey, add: bool) -> Vec<(usize, Op)> {
        (0..self.cores)
            .filter(|c| *c != owner)
            .map(|c| {
                let core = add.then_some(owner as u16);
                (c, Op::Route(Command::SetSteering { router, key, core }))
            })
            .collect()
    }

    fn transport_keys(&self, t: &TransportEntry) -> Vec<SteerKey> {
        if !t.socket.is_shared() {
            return Vec::new();
        }
        let mut keys: Vec<SteerKey> = t.remote.map(SteerKey::Remote).into_iter().collect();
        if t.comedia {
            keys.extend(
                t.producers
                    .iter()
                    .filter_map(|p| self.producers.get(p))
                    .map(|p| SteerKey::Ssrc(Ssrc(p.ssrc))),
            );
        }
        keys
    }

    /// Picks a core for a new router per the placement policy, skipping stalled cores.
    fn place(&mut self, stalled: &[bool]) -> Result<usize, ApiError> {
        let usable = |c: &usize| !stalled.get(*c).copied().unwrap_or(false);
        let core = match self.placement {
            Placement::LeastLoaded => {
                let loads = self.routers_per_core();
                (0..self.cores).filter(usable).min_by_key(|c| loads[*c])
            }
            Placement::RoundRobin => {
                let start = self.next_core;
                (0..self.cores).map(|i| (start + i) % self.cores).find(usable)
            }
        };
        let core = core.ok_or_else(|| {
            ApiError::core("every core is stalled; retry once one answers again (see /stats)")
        })?;
        self.next_core = (core + 1) % self.cores;
        Ok(core)
    }

    pub fn create_router(&mut self, core: Option<usize>, stalled: &[bool]) -> Result<Plan, ApiError> {
        let core = match core {
            Some(c) if c >= self.cores => {
                return Err(ApiError::argument(format!(
                    "core {c} does not exist: use 0..{} or leave it out",
                    self.cores
                )))
            }
            Some(c) => c,
            None => self.place(stalled)?,
        };
        let id = RouterId(self.id());
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(Command::CreateRouter { router: id }))],
            Response::Router { id: id.0, core },
            Change::AddRouter { id, core },
        ))
    }

    pub fn close_router(&self, id: RouterId) -> Result<Plan, ApiError> {
        let r = self.router(id)?;
        let mut ops = vec![(r.core, Op::Route(Command::CloseRouter { router: id }))];
        for t in r.transports.iter().filter_map(|t| self.transports.get(t)) {
            ops.extend(self.transport_cleanup(t, r.core));
        }
        Ok(Plan::one(r.core, ops, Response::Done {}, Change::RemoveRouter(id)))
    }

    /// The socket and steering cleanup of a transport that goes away (with its router or alone).
    fn transport_cleanup(&self, t: &TransportEntry, core: usize) -> Vec<(usize, Op)> {
        let mut ops = Vec::new();
        for key in self.transport_keys(t) {
            ops.extend(self.steer(t.router, core, key, false));
        }
        if !t.socket.is_shared() {
            ops.push((core, Op::DetachSocket(t.socket)));
        }
        ops
    }

    /// `socket` and `local` come from the controller, which bound the socket (or `SocketId::SHARED`).
    pub fn create_transport(
        &mut self,
        router: RouterId,
        socket: SocketId,
        local: SocketAddr,
        comedia: bool,
    ) -> Result<Plan, ApiError> {
        let core = self.router(router)?.core;
        let id = TransportId(self.id());
        let entry = TransportEntry {
            router,
            socket,
            local,
            remote: None,
            comedia,
            producers: BTreeSet::new(),
            consumers: BTreeSet::new(),
        };
        let mut ops = Vec::new();
        if !socket.is_shared() {
            ops.push((core, Op::AttachSocket(socket)));
        }
        ops.push((
            core,
            Op::Route(Command::CreatePlainTransport {
                router,
                transport: id,
                options: PlainTransportOptions { socket, remote: None, comedia, comedia_source: None },
            }),
        ));
        Ok(Plan::one(core, ops, Response::Transport { id: id.0, local }, Change::AddTransport { id, entry }))
    }

    pub fn connect_transport(&self, id: TransportId, remote: SocketAddr) -> Result<Plan, ApiError> {
        let t = self.transport(id)?;
        if t.remote.is_some() {
            return Err(ApiError::state(format!(
                "transport {id} is already connected (or latched); create a new transport for another remote"
            )));
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(ApiError::argument("remote must be a concrete ip and a non-zero port"));
        }
        if t.socket.is_shared()
            && self.transports.values().any(|o| o.socket.is_shared() && o.remote == Some(remote))
        {
            return Err(ApiError::state(format!(
                "{remote} is already used by another shared-port transport: the shared port tells flows apart by remote address"
            )));
        }
        let core = self.router(t.router)?.core;
        let mut ops =
            vec![(core, Op::Route(Command::ConnectTransport { router: t.router, transport: id, remote }))];
        if t.socket.is_shared() {
            ops.extend(self.steer(t.router, core, SteerKey::Remote(remote), true));
        }
        Ok(Plan::one(core, ops, Response::Done {}, Change::Connect { id, remote }))
    }

    /// A comedia transport latched (an event from its core): the model learns its remote.
    pub fn latched(&mut self, id: TransportId, remote: SocketAddr) {
        if let Some(t) = self.transports.get_mut(&id) {
            if t.remote.is_none() {
                t.remote = Some(remote);
            }
        }
    }

    pub fn close_transport(&self, id: TransportId) -> Result<Plan, ApiError> {
        let t = self.transport(id)?;
        let core = self.router(t.router)?.core;
        let mut ops = vec![(core, Op::Route(Command::CloseTransport { router: t.router, transport: id }))];
        ops.extend(self.transport_cleanup(t, core));
        Ok(Plan::one(core, ops, Response::Done {}, Change::RemoveTransport(id)))
    }

    pub fn produce(
        &mut self,
        transport: TransportId,
        kind: Kind,
        ssrc: u32,
        payload_type: u8,
        clock_rate: Option<u32>,
        paused: bool,
    ) -> Result<Plan, ApiError> {
        if payload_type > 127 {
            return Err(ApiError::argument(format!("payload_type {payload_type} is not 0..=127")));
        }
        if ssrc == 0 {
            return Err(ApiError::argument("ssrc must be non-zero"));
        }
        let clock_rate = clock_rate.unwrap_or(match kind {
            Kind::Audio => 48_000,
            Kind::Video => 90_000,
        });
        if clock_rate == 0 {
            return Err(ApiError::argument("clock_rate must be positive"));
        }
        let t = self.transport(transport)?;
        if t.producers.iter().any(|p| self.producers.get(p).is_some_and(|p| p.ssrc == ssrc)) {
            return Err(ApiError::state(format!(
                "transport {transport} already has a producer with ssrc {ssrc}"
            )));
        }
        let shared_comedia = t.socket.is_shared() && t.comedia && t.remote.is_none();
        if shared_comedia
            && self.producers.values().any(|p| {
                p.ssrc == ssrc
                    && self.transports.get(&p.transport).is_some_and(|o| o.socket.is_shared() && o.comedia)
            })
        {
            return Err(ApiError::state(format!(
                "ssrc {ssrc} is already awaited on the shared port by another comedia transport; use another ssrc or connect the transport"
            )));
        }
        let router = t.router;
        let core = self.router(router)?.core;
        let id = ProducerId(self.id());
        let media_kind = match kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        };
        let mut ops = vec![(
            core,
            Op::Route(Command::CreateProducer {
                router,
                transport,
                producer: id,
                options: ProducerOptions {
                    kind: media_kind,
                    ssrc: Ssrc(ssrc),
                    payload_type: PayloadType(payload_type),
                    clock_rate,
                    paused,
                },
            }),
        )];
        if shared_comedia {
            ops.extend(self.steer(router, core, SteerKey::Ssrc(Ssrc(ssrc)), true));
        }
        let entry = ProducerEntry {
            router,
            transport,
            kind,
            ssrc,
            payload_type,
            clock_rate,
            paused,
            consumers: BTreeSet::new(),
        };
        Ok(Plan::one(core, ops, Response::Producer { id: id.0 }, Change::AddProducer { id, entry }))
    }

    pub fn close_producer(&self, id: ProducerId) -> Result<Plan, ApiError> {
        let p = self.producer(id)?;
        let core = self.router(p.router)?.core;
        let mut ops = vec![(core, Op::Route(Command::CloseProducer { router: p.router, producer: id }))];
        if let Some(t) = self.transports.get(&p.transport) {
            if t.socket.is_shared() && t.comedia {
                ops.extend(self.steer(p.router, core, SteerKey::Ssrc(Ssrc(p.ssrc)), false));
            }
        }
        Ok(Plan::one(core, ops, Response::Done {}, Change::RemoveProducer(id)))
    }

    pub fn set_producer_paused(&self, id: ProducerId, paused: bool) -> Result<Plan, ApiError> {
        let p = self.producer(id)?;
        let core = self.router(p.router)?.core;
        let command = if paused {
            Command::PauseProducer { router: p.router, producer: id }
        } else {
            Command::ResumeProducer { router: p.router, producer: id }
        };
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(command))],
            Response::Done {},
            Change::ProducerPaused { id, paused },
        ))
    }

    pub fn consume(
        &mut self,
        transport: TransportId,
        producer: ProducerId,
        paused: bool,
    ) -> Result<Plan, ApiError> {
        let t = self.transport(transport)?;
        let p = self.producer(producer)?;
        if p.router != t.router {
            return Err(ApiError::argument(format!(
                "producer {producer} is in router {} but transport {transport} is in router {}: consume on a transport of the producer's router",
                p.router, t.router
            )));
        }
        let (router, payload_type) = (t.router, p.payload_type);
        let core = self.router(router)?.core;
        let id = ConsumerId(self.id());
        let ssrc = self.new_ssrc();
        let command = Command::CreateConsumer {
            router,
            transport,
            consumer: id,
            options: ConsumerOptions {
                producer,
                ssrc: Ssrc(ssrc),
                payload_type: PayloadType(payload_type),
                paused,
            },
        };
        let entry = ConsumerEntry { router, transport, producer, ssrc, payload_type, paused };
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(command))],
            Response::Consumer { id: id.0, ssrc, payload_type },
            Change::AddConsumer { id, entry },
        ))
    }

    pub fn close_consumer(&self, id: ConsumerId) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?;
        let core = self.router(c.router)?.core;
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(Command::CloseConsumer { router: c.router, consumer: id }))],
            Response::Done {},
            Change::RemoveConsumer(id),
        ))
    }

    pub fn set_consumer_paused(&self, id: ConsumerId, paused: bool) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?;
        let core = self.router(c.router)?.core;
        let command = if paused {
            Command::PauseConsumer { router: c.router, consumer: id }
        } else {
            Command::ResumeConsumer { router: c.router, consumer: id }
        };
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(command))],
            Response::Done {},
            Change::ConsumerPaused { id, paused },
        ))
    }

    /// Moves a router to `to`: phase 1 freezes and hands it over on its owner, phase 2 confirms
    /// the import on `to` and re-points steering on every other core. The change (the router's
    /// new core) commits once the old owner has handed it over.
    pub fn move_router(&self, id: RouterId, to: usize) -> Result<Plan, ApiError> {
        if to >= self.cores {
            return Err(ApiError::argument(format!("core {to} does not exist: use 0..{}", self.cores)));
        }
        let r = self.router(id)?;
        if r.core == to {
            return Ok(Plan {
                phases: Vec::new(),
                response: Response::Moved { id: id.0, core: to, freeze_us: 0 },
                change: Change::Nothing,
                owner: to,
            });
        }
        let mut phase2 = vec![(to, Op::ConfirmImport { router: id })];
        let keys: Vec<SteerKey> = r
            .transports
            .iter()
            .filter_map(|t| self.transports.get(t))
            .flat_map(|t| self.transport_keys(t))
            .collect();
        for key in keys {
            for c in (0..self.cores).filter(|c| *c != to && *c != r.core) {
                phase2.push((c, Op::Route(Command::SetSteering { router: id, key, core: Some(to as u16) })));
            }
        }
        Ok(Plan {
            phases: vec![vec![(r.core, Op::HandOff { router: id, to })], phase2],
            response: Response::Moved { id: id.0, core: to, freeze_us: 0 },
            change: Change::MoveRouter { id, core: to },
            owner: r.core,
        })
    }

    /// Applies a change the owning core has confirmed. Idempotent for removals (a cascade may
    /// already have removed the object).
    pub fn commit(&mut self, change: Change) {
        match change {
            Change::Nothing => {}
            Change::AddRouter { id, core } => {
                self.routers.insert(id, RouterEntry { core, transports: BTreeSet::new() });
            }
            Change::RemoveRouter(id) => {
                let Some(r) = self.routers.remove(&id) else { return };
                for t in r.transports {
                    self.remove_transport(t);
                }
            }
            Change::MoveRouter { id, core } => {
                if let Some(r) = self.routers.get_mut(&id) {
                    r.core = core;
                }
            }
            Change::AddTransport { id, entry } => {
                if let Some(r) = self.routers.get_mut(&entry.router) {
                    r.transports.insert(id);
                    self.transports.insert(id, entry);
                }
            }
            Change::Connect { id, remote } => {
                if let Some(t) = self.transports.get_mut(&id) {
                    t.remote = Some(remote);
                }
            }
            Change::RemoveTransport(id) => self.remove_transport(id),
            Change::AddProducer { id, entry } => {
                if let Some(t) = self.transports.get_mut(&entry.transport) {
                    t.producers.insert(id);
                    self.producers.insert(id, entry);
                }
            }
            Change::RemoveProducer(id) => self.remove_producer(id),
            Change::ProducerPaused { id, paused } => {
                if let Some(p) = self.producers.get_mut(&id) {
                    p.paused = paused;
                }
            }
            Change::AddConsumer { id, entry } => {
                let (Some(t), true) =
                    (self.transports.get_mut(&entry.transport), self.producers.contains_key(&entry.producer))
                else {
                    return;
                };
                t.consumers.insert(id);
                if let Some(p) = self.producers.get_mut(&entry.producer) {
                    p.consumers.insert(id);
                }
                self.consumers.insert(id, entry);
            }
            Change::RemoveConsumer(id) => self.remove_consumer(id),
            Change::ConsumerPaused { id, paused } => {
                if let Some(c) = self.consumers.get_mut(&id) {
                    c.paused = paused;
                }
            }
        }
    }

    /// Removes a transport and its cascade (its producers with their consumers, its consumers).
    fn remove_transport(&mut self, id: TransportId) {
        let Some(t) = self.transports.remove(&id) else { return };
        for p in &t.producers {
            self.remove_producer(*p);
        }
        for c in &t.consumers {
            self.remove_consumer(*c);
        }
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.remove(&id);
        }
    }

    fn remove_producer(&mut self, id: ProducerId) {
        let Some(p) = self.producers.remove(&id) else { return };
        for c in &p.consumers {
            self.remove_consumer(*c);
        }
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.remove(&id);
        }
    }

    fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.remove(&id) else { return };
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.consumers.remove(&id);
        }
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.remove(&id);
        }
    }

    /// A JSON dump of one router.
    pub fn dump_router(&self, id: RouterId) -> Result<serde_json::Value, ApiError> {
        let r = self.router(id)?;
        let transports: Vec<_> = r
            .transports
            .iter()
            .filter_map(|t| self.transports.get(t).map(|e| (t, e)))
            .map(|(t, e)| {
                json!({
                    "id": t.0, "local": e.local.to_string(), "remote": e.remote.map(|r| r.to_string()),
                    "shared_port": e.socket.is_shared(), "comedia": e.comedia,
                    "producers": e.producers.iter().map(|p| p.0).collect::<Vec<_>>(),
                    "consumers": e.consumers.iter().map(|c| c.0).collect::<Vec<_>>(),
                })
            })
            .collect();
        let producers: Vec<_> = self
            .producers
            .iter()
            .filter(|(_, p)| p.router == id)
            .map(|(pid, p)| {
                json!({"id": pid.0, "transport": p.transport.0, "kind": p.kind, "ssrc": p.ssrc,
                       "payload_type": p.payload_type, "paused": p.paused,
                       "consumers": p.consumers.iter().map(|c| c.0).collect::<Vec<_>>()})
            })
            .collect();
        let consumers: Vec<_> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.router == id)
            .map(|(cid, c)| {
                let producer_paused = self.producers.get(&c.producer).is_some_and(|p| p.paused);
                json!({"id": cid.0, "transport": c.transport.0, "producer": c.producer.0, "ssrc": c.ssrc,
                       "payload_type": c.payload_type, "paused": c.paused, "producer_paused": producer_paused})
            })
            .collect();
        Ok(
            json!({"id": id.0, "core": r.core, "transports": transports, "producers": producers, "consumers": consumers}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Plans and commits at once, as the controller does when the owner applies.
    fn run(m: &mut Model, f: impl FnOnce(&mut Model) -> Result<Plan, ApiError>) -> Response {
        let plan = f(m).expect("valid request");
        let response = plan.response.clone();
        m.commit(plan.change);
        response
    }

    fn router(m: &mut Model) -> RouterId {
        match run(m, |m| m.create_router(None, &[])) {
            Response::Router { id, .. } => RouterId(id),
            r => panic!("{r:?}"),
        }
    }

    fn transport(m: &mut Model, r: RouterId, shared: bool) -> TransportId {
        let socket = if shared { SocketId::SHARED } else { m.socket_id() };
        match run(m, |m| m.create_transport(r, socket, addr(1), false)) {
            Response::Transport { id, .. } => TransportId(id),
            x => panic!("{x:?}"),
        }
    }

    fn produce(m: &mut Model, t: TransportId, ssrc: u32) -> ProducerId {
        match run(m, |m| m.produce(t, Kind::Video, ssrc, 96, None, false)) {
            Response::Producer { id } => ProducerId(id),
            x => panic!("{x:?}"),
        }
    }

    fn consume(m: &mut Model, t: TransportId, p: ProducerId) -> (ConsumerId, u32) {
        match run(m, |m| m.consume(t, p, false)) {
            Response::Consumer { id, ssrc, payload_type } => {
                assert_eq!(payload_type, 96);
                (ConsumerId(id), ssrc)
            }
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn planning_changes_nothing_until_the_owner_applied() {
        let mut m = Model::new(2, 7, Placement::LeastLoaded);
        let plan = m.create_router(None, &[]).unwrap();
        assert!(m.routers.is_empty(), "a plan alone claims nothing");
        assert_eq!(plan.owner, 0);
        assert_eq!(plan.phases, vec![vec![(0, Op::Route(Command::CreateRouter { router: RouterId(1) }))]]);
        m.commit(plan.change);
        assert_eq!(m.routers[&RouterId(1)].core, 0);

        let t = transport(&mut m, RouterId(1), false);
        let p = produce(&mut m, t, 1111);
        let pause = m.set_producer_paused(p, true).unwrap();
        assert!(!m.producers[&p].paused);
        m.commit(pause.change);
        assert!(m.producers[&p].paused);
        // A refused plan is simply never committed: a second close still finds the producer.
        let _refused = m.close_producer(p).unwrap();
        assert!(m.producers.contains_key(&p));
    }

    #[test]
    fn closing_cascades_through_transports_producers_and_consumers() {
        let mut m = Model::new(1, 7, Placement::LeastLoaded);
        let r = router(&mut m);
        let t1 = transport(&mut m, r, false);
        let t2 = transport(&mut m, r, false);
        let p1 = produce(&mut m, t1, 10);
        let p2 = produce(&mut m, t2, 20);
        let (c1, _) = consume(&mut m, t2, p1); // on t2, of t1's producer
        let (c2, _) = consume(&mut m, t1, p2); // on t1, of t2's producer

        // Closing t1 removes p1 (and c1 on t2, its consumer) and c2 (on t1).
        let plan = m.close_transport(t1).unwrap();
        assert!(plan.phases[0].contains(&(0, Op::DetachSocket(SocketId(1)))), "{plan:?}");
        m.commit(plan.change);
        assert!(!m.transports.contains_key(&t1));
        assert!(!m.producers.contains_key(&p1));
        assert!(!m.consumers.contains_key(&c1) && !m.consumers.contains_key(&c2));
        assert!(m.producers[&p2].consumers.is_empty());
        assert!(m.transports[&t2].consumers.is_empty());

        run(&mut m, |m| m.close_router(r));
        assert!(m.routers.is_empty() && m.transports.is_empty());
        assert!(m.producers.is_empty() && m.consumers.is_empty());
    }

    #[test]
    fn errors_say_what_is_wrong_with_the_right_kind() {
        let mut m = Model::new(2, 7, Placement::LeastLoaded);
        let kind = |r: Result<Plan, ApiError>| r.unwrap_err().kind;
        assert_eq!(kind(m.close_router(RouterId(9))), ErrorKind::NotFound);
        assert_eq!(kind(m.create_router(Some(2), &[])), ErrorKind::InvalidArgument);
        let r1 = router(&mut m);
        let r2 = router(&mut m);
        let t1 = transport(&mut m, r1, false);
        let t2 = transport(&mut m, r2, false);
        let p = produce(&mut m, t1, 5);
        assert_eq!(kind(m.produce(t1, Kind::Audio, 5, 111, None, false)), ErrorKind::InvalidState);
        assert_eq!(kind(m.produce(t1, Kind::Audio, 6, 128, None, false)), ErrorKind::InvalidArgument);
        assert_eq!(kind(m.produce(t1, Kind::Audio, 0, 111, None, false)), ErrorKind::InvalidArgument);
        let cross = m.consume(t2, p, false).unwrap_err();
        assert_eq!(cross.kind, ErrorKind::InvalidArgument);
        assert!(cross.message.contains("router"), "{cross}");
        assert_eq!(kind(m.consume(t1, ProducerId(999), false)), ErrorKind::NotFound);
        run(&mut m, |m| m.connect_transport(t1, addr(5000)));
        assert_eq!(kind(m.connect_transport(t1, addr(5001))), ErrorKind::InvalidState);
        assert_eq!(kind(m.connect_transport(t2, addr(0))), ErrorKind::InvalidArgument);
        assert_eq!(kind(m.move_router(r1, 5)), ErrorKind::InvalidArgument);
    }

    #[test]
    fn ids_are_never_reused_and_consumer_ssrcs_are_unique_and_seeded() {
        let build = |seed| {
            let mut m = Model::new(1, seed, Placement::LeastLoaded);
            let r = router(&mut m);
            let t = transport(&mut m, r, false);
            let p = produce(&mut m, t, 42);
            let ssrcs: Vec<u32> = (0..200).map(|_| consume(&mut m, t, p).1).collect();
            (m, ssrcs)
        };
        let (mut m, ssrcs) = build(1);
        let unique: BTreeSet<u32> = ssrcs.iter().copied().collect();
        assert_eq!(unique.len(), ssrcs.len());
        assert!(!unique.contains(&0) && !unique.contains(&42));
        assert_eq!(build(1).1, ssrcs, "same seed, same SSRCs");
        assert_ne!(build(2).1, ssrcs, "another seed, other SSRCs");
        let last = *m.consumers.keys().last().unwrap();
        let r = *m.routers.keys().next().unwrap();
        run(&mut m, |m| m.close_router(r));
        assert!(router(&mut m).0 > last.0, "ids are never reused");
    }

    #[test]
    fn placement_policies_skip_stalled_cores() {
        let mut m = Model::new(3, 1, Placement::LeastLoaded);
        let cores: Vec<usize> = (0..6)
            .map(|_| match run(&mut m, |m| m.create_router(None, &[false, true, false])) {
                Response::Router { core, .. } => core,
                x => panic!("{x:?}"),
            })
            .collect();
        assert_eq!(cores, vec![0, 2, 0, 2, 0, 2]);
        assert_eq!(m.create_router(None, &[true, true, true]).unwrap_err().kind, ErrorKind::CoreUnavailable);

        let mut rr = Model::new(3, 1, Placement::RoundRobin);
        let order: Vec<usize> = (0..5)
            .map(|i| {
                let stalled = [i == 3, false, false];
                match run(&mut rr, |m| m.create_router(None, &stalled)) {
                    Response::Router { core, .. } => core,
                    x => panic!("{x:?}"),
                }
            })
            .collect();
        assert_eq!(order, vec![0, 1, 2, 1, 2]);
        // Round robin does not look at load: a closed router does not change the turn.
        let first = *rr.routers.keys().next().unwrap();
        run(&mut rr, |m| m.close_router(first));
        assert!(matches!(rr.create_router(None, &[]).unwrap().response, Response::Router { core: 0, .. }));
    }

    #[test]
    fn shared_port_flows_are_steered_on_every_other_core() {
        let mut m = Model::new(3, 1, Placement::LeastLoaded);
        let r = match run(&mut m, |m| m.create_router(Some(1), &[])) {
            Response::Router { id, .. } => RouterId(id),
            x => panic!("{x:?}"),
        };
        let t = transport(&mut m, r, true);
        let remote = addr(7000);
        let plan = m.connect_transport(t, remote).unwrap();
        let steer = |core: Option<u16>| {
            Op::Route(Command::SetSteering { router: r, key: SteerKey::Remote(remote), core })
        };
        assert_eq!(plan.phases[0][1..], [(0, steer(Some(1))), (2, steer(Some(1)))]);
        m.commit(plan.change);
        // Another shared-port transport cannot take the same remote.
        let t2 = transport(&mut m, r, true);
        assert_eq!(m.connect_transport(t2, remote).unwrap_err().kind, ErrorKind::InvalidState);
        // A move re-points the third core; closing removes the steering everywhere.
        let mv = m.move_router(r, 2).unwrap();
        assert_eq!(mv.owner, 1);
        assert_eq!(mv.phases[0], vec![(1, Op::HandOff { router: r, to: 2 })]);
        assert!(mv.phases[1].contains(&(0, steer(Some(2)))));
        m.commit(mv.change);
        assert_eq!(m.routers[&r].core, 2);
        let close = m.close_router(r).unwrap();
        assert!(close.phases[0].contains(&(0, steer(None))) && close.phases[0].contains(&(1, steer(None))));
    }
}
