//! The authoritative object model: what exists, where, in which state. Pure and synchronous.
//!
//! Every request is validated here first; a valid request mutates the model and yields the
//! per-core operations (in phases) that make the cores agree. The controller sends them and the
//! call returns once every core has applied them. Mutating the model before the cores confirm is
//! safe because each core applies its batches in order: a core that misses a deadline applies
//! the batch later, in the same order, and the API error says so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

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

/// What a valid request turns into: phases of per-core operations (each phase is confirmed by
/// every core before the next is sent) and the response.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub phases: Vec<Vec<(usize, Op)>>,
    pub response: Response,
}

impl Plan {
    fn one(ops: Vec<(usize, Op)>, response: Response) -> Self {
        Plan { phases: vec![ops], response }
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
    pub fn new(cores: usize, seed: u32) -> Self {
        Self {
            cores: cores.max(1),
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

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A fresh dedicated-socket id (never 0, the shared port).
    pub fn socket_id(&mut self) -> SocketId {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        id
    }

    fn new_ssrc(&mut self) -> u32 {
        // xorshift32: deterministic per seed, spread over the whole space; collisions with any
        // SSRC in use are skipped.
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

    pub fn create_router(&mut self, core: Option<usize>, stalled: &[bool]) -> Result<Plan, ApiError> {
        let core = match core {
            Some(c) if c >= self.cores => {
                return Err(ApiError::argument(format!("core {c} does not exist (0..{})", self.cores)))
            }
            Some(c) => c,
            None => {
                let loads = self.routers_per_core();
                (0..self.cores)
                    .filter(|c| !stalled.get(*c).copied().unwrap_or(false))
                    .min_by_key(|c| loads[*c])
                    .ok_or_else(|| ApiError::core("every core is stalled"))?
            }
        };
        let id = RouterId(self.id());
        self.routers.insert(id, RouterEntry { core, transports: BTreeSet::new() });
        Ok(Plan::one(
            vec![(core, Op::Route(Command::CreateRouter { router: id }))],
            Response::Router { id: id.0, core },
        ))
    }

    pub fn close_router(&mut self, id: RouterId) -> Result<Plan, ApiError> {
        let r = self.router(id)?.clone();
        let mut ops = vec![(r.core, Op::Route(Command::CloseRouter { router: id }))];
        for t in &r.transports {
            ops.extend(self.remove_transport(*t, r.core));
        }
        self.routers.remove(&id);
        Ok(Plan::one(ops, Response::Done {}))
    }

    /// Removes a transport and its cascade from the model; returns socket/steering cleanup ops.
    fn remove_transport(&mut self, id: TransportId, core: usize) -> Vec<(usize, Op)> {
        let Some(t) = self.transports.get(&id).cloned() else { return Vec::new() };
        let mut ops = Vec::new();
        for key in self.transport_keys(&t) {
            ops.extend(self.steer(t.router, core, key, false));
        }
        if !t.socket.is_shared() {
            ops.push((core, Op::DetachSocket(t.socket)));
        }
        for p in &t.producers {
            self.remove_producer(*p);
        }
        for c in &t.consumers {
            self.remove_consumer(*c);
        }
        self.transports.remove(&id);
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.remove(&id);
        }
        ops
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
        self.transports.insert(id, entry);
        if let Some(r) = self.routers.get_mut(&router) {
            r.transports.insert(id);
        }
        let mut ops = Vec::new();
        if !socket.is_shared() {
            ops.push((core, Op::AttachSocket(socket)));
        }
        ops.push((
            core,
            Op::Route(Command::CreatePlainTransport {
                router,
                transport: id,
                options: PlainTransportOptions { socket, remote: None, comedia },
            }),
        ));
        Ok(Plan::one(ops, Response::Transport { id: id.0, local }))
    }

    pub fn connect_transport(&mut self, id: TransportId, remote: SocketAddr) -> Result<Plan, ApiError> {
        let t = self.transport(id)?.clone();
        if t.remote.is_some() {
            return Err(ApiError::state(format!("transport {id} is already connected (or latched)")));
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(ApiError::argument("remote must be a concrete ip and a non-zero port"));
        }
        if t.socket.is_shared()
            && self.transports.values().any(|o| o.socket.is_shared() && o.remote == Some(remote))
        {
            return Err(ApiError::state(format!(
                "{remote} is already used by another shared-port transport"
            )));
        }
        let core = self.router(t.router)?.core;
        let mut ops =
            vec![(core, Op::Route(Command::ConnectTransport { router: t.router, transport: id, remote }))];
        if t.socket.is_shared() {
            ops.extend(self.steer(t.router, core, SteerKey::Remote(remote), true));
        }
        if let Some(e) = self.transports.get_mut(&id) {
            e.remote = Some(remote);
        }
        Ok(Plan::one(ops, Response::Done {}))
    }

    /// A comedia transport latched: the model learns its remote.
    pub fn latched(&mut self, id: TransportId, remote: SocketAddr) {
        if let Some(t) = self.transports.get_mut(&id) {
            if t.remote.is_none() {
                t.remote = Some(remote);
            }
        }
    }

    pub fn close_transport(&mut self, id: TransportId) -> Result<Plan, ApiError> {
        let t = self.transport(id)?.clone();
        let core = self.router(t.router)?.core;
        let mut ops = vec![(core, Op::Route(Command::CloseTransport { router: t.router, transport: id }))];
        ops.extend(self.remove_transport(id, core));
        Ok(Plan::one(ops, Response::Done {}))
    }

    #[allow(clippy::too_many_arguments)]
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
            return Err(ApiError::argument("payload_type must be 0..=127"));
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
        let t = self.transport(transport)?.clone();
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
            return Err(ApiError::state(format!("ssrc {ssrc} is already awaited on the shared port")));
        }
        let core = self.router(t.router)?.core;
        let id = ProducerId(self.id());
        let media_kind = match kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        };
        let mut ops = vec![(
            core,
            Op::Route(Command::CreateProducer {
                router: t.router,
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
            ops.extend(self.steer(t.router, core, SteerKey::Ssrc(Ssrc(ssrc)), true));
        }
        self.producers.insert(
            id,
            ProducerEntry {
                router: t.router,
                transport,
                kind,
                ssrc,
                payload_type,
                clock_rate,
                paused,
                consumers: BTreeSet::new(),
            },
        );
        if let Some(e) = self.transports.get_mut(&transport) {
            e.producers.insert(id);
        }
        Ok(Plan::one(ops, Response::Producer { id: id.0 }))
    }

    pub fn close_producer(&mut self, id: ProducerId) -> Result<Plan, ApiError> {
        let p = self.producer(id)?.clone();
        let core = self.router(p.router)?.core;
        let mut ops = vec![(core, Op::Route(Command::CloseProducer { router: p.router, producer: id }))];
        if let Some(t) = self.transports.get(&p.transport) {
            if t.socket.is_shared() && t.comedia {
                ops.extend(self.steer(p.router, core, SteerKey::Ssrc(Ssrc(p.ssrc)), false));
            }
        }
        self.remove_producer(id);
        Ok(Plan::one(ops, Response::Done {}))
    }

    pub fn set_producer_paused(&mut self, id: ProducerId, paused: bool) -> Result<Plan, ApiError> {
        let p = self.producer(id)?.clone();
        let core = self.router(p.router)?.core;
        let command = if paused {
            Command::PauseProducer { router: p.router, producer: id }
        } else {
            Command::ResumeProducer { router: p.router, producer: id }
        };
        if let Some(e) = self.producers.get_mut(&id) {
            e.paused = paused;
        }
        Ok(Plan::one(vec![(core, Op::Route(command))], Response::Done {}))
    }

    pub fn consume(
        &mut self,
        transport: TransportId,
        producer: ProducerId,
        paused: bool,
    ) -> Result<Plan, ApiError> {
        let t = self.transport(transport)?.clone();
        let p = self.producer(producer)?.clone();
        if p.router != t.router {
            return Err(ApiError::argument(format!(
                "producer {producer} is in router {} but transport {transport} is in router {}",
                p.router, t.router
            )));
        }
        let core = self.router(t.router)?.core;
        let id = ConsumerId(self.id());
        let ssrc = self.new_ssrc();
        let command = Command::CreateConsumer {
            router: t.router,
            transport,
            consumer: id,
            options: ConsumerOptions {
                producer,
                ssrc: Ssrc(ssrc),
                payload_type: PayloadType(p.payload_type),
                paused,
            },
        };
        self.consumers.insert(
            id,
            ConsumerEntry {
                router: t.router,
                transport,
                producer,
                ssrc,
                payload_type: p.payload_type,
                paused,
            },
        );
        if let Some(e) = self.transports.get_mut(&transport) {
            e.consumers.insert(id);
        }
        if let Some(e) = self.producers.get_mut(&producer) {
            e.consumers.insert(id);
        }
        Ok(Plan::one(
            vec![(core, Op::Route(command))],
            Response::Consumer { id: id.0, ssrc, payload_type: p.payload_type },
        ))
    }

    pub fn close_consumer(&mut self, id: ConsumerId) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?.clone();
        let core = self.router(c.router)?.core;
        self.remove_consumer(id);
        Ok(Plan::one(
            vec![(core, Op::Route(Command::CloseConsumer { router: c.router, consumer: id }))],
            Response::Done {},
        ))
    }

    pub fn set_consumer_paused(&mut self, id: ConsumerId, paused: bool) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?.clone();
        let core = self.router(c.router)?.core;
        let command = if paused {
            Command::PauseConsumer { router: c.router, consumer: id }
        } else {
            Command::ResumeConsumer { router: c.router, consumer: id }
        };
        if let Some(e) = self.consumers.get_mut(&id) {
            e.paused = paused;
        }
        Ok(Plan::one(vec![(core, Op::Route(command))], Response::Done {}))
    }

    /// Moves a router to `to`: phase 1 freezes and hands it over on its owner, phase 2 confirms
    /// the import on `to` and re-points steering on every other core.
    pub fn move_router(&mut self, id: RouterId, to: usize) -> Result<Plan, ApiError> {
        if to >= self.cores {
            return Err(ApiError::argument(format!("core {to} does not exist (0..{})", self.cores)));
        }
        let r = self.router(id)?.clone();
        if r.core == to {
            return Ok(Plan {
                phases: Vec::new(),
                response: Response::Moved { id: id.0, core: to, freeze_us: 0 },
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
        if let Some(e) = self.routers.get_mut(&id) {
            e.core = to;
        }
        Ok(Plan {
            phases: vec![vec![(r.core, Op::HandOff { router: id, to })], phase2],
            response: Response::Moved { id: id.0, core: to, freeze_us: 0 },
        })
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
