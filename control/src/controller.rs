//! The control thread: the single sequencer.
//!
//! API calls arrive on a bounded channel and are handled one at a time, in arrival order: validate
//! against the model, send one `CoreBatch` per affected core (per phase), wait — with a deadline —
//! for every reply, then answer. So the effects of two calls reach every core in the same order,
//! and a call returns only once they are applied: a `resume` can never overtake a `consume` in
//! flight. The model changes only once the owning core has applied the call (a late `Applied`
//! from a core that missed its deadline commits it then; a refusal never does). Nothing here
//! holds a lock; the only waits are `recv_timeout`s with deadlines.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use serde_json::json;
use shardcast_core::command::{BatchReply, Command, Event, Outcome, SocketId};
use shardcast_core::drop_reason::DropReason;
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId};
use shardcast_dataplane::socket::{bind_udp, SocketOptions};
use shardcast_dataplane::{CoreBatch, CoreMessage, CoreOp, DataPlane};
use tracing::{info, warn};

use crate::config::Config;
use crate::error::ApiError;
use crate::events::EventBus;
use crate::model::{Change, Model, Op, Plan};
use crate::request::{Request, Response};

/// A call waiting for the control thread.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub request: Request,
    pub reply: Sender<Result<Response, ApiError>>,
}

/// Messages to the control thread.
#[derive(Debug)]
pub(crate) enum Msg {
    Call(Envelope),
    Shutdown { reply: Sender<Result<(), Vec<usize>>>, deadline: Duration },
    SetRebalancer(crate::config::RebalancerConfig), // a SIGHUP reload's new [rebalancer]
}

/// Control-plane figures, read by `/metrics` and `/stats` without touching the control thread.
#[derive(Debug, Default)]
pub struct ControlMetrics {
    pub api_calls: AtomicU64,
    pub api_errors: AtomicU64,
    pub moves: AtomicU64,
    pub rebalancer_moves: AtomicU64,
    pub steering_lost: AtomicU64,
    pub core_rejections: AtomicU64,
    /// Per core: deadline misses and whether it is stalled now.
    pub deadline_misses: Vec<AtomicU64>,
    pub stalled: Vec<AtomicU64>,
    /// Last handoff duration seen by the control plane (µs).
    pub last_move_us: AtomicU64,
}

impl ControlMetrics {
    pub(crate) fn new(cores: usize) -> Self {
        Self {
            deadline_misses: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            stalled: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        }
    }
}

struct Stall {
    since: Instant,
    seq: u64,
}

pub(crate) struct Controller {
    plane: DataPlane,
    model: Model,
    config: Config,
    seqs: Vec<u64>,
    stalled: Vec<Option<Stall>>,
    sockets: HashMap<SocketId, UdpSocket>,
    metrics: Arc<ControlMetrics>,
    events: EventBus,
    port_cursor: u16,
    rebalancer: Rebalancer,
    /// Model changes whose owner missed its deadline, by (core, seq) of the batch that carries
    /// them: committed if that batch's late reply is `Applied`, dropped if it is refused.
    pending: HashMap<(usize, u64), Change>,
}

/// What became of one core's batch in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchFate {
    Applied,
    Rejected,
    /// Queued but not confirmed by the deadline (or queued on a stalled core): it applies later.
    Late(u64),
    /// Not queued: the ring was full.
    NotSent,
}

impl Controller {
    pub(crate) fn new(
        plane: DataPlane,
        config: Config,
        metrics: Arc<ControlMetrics>,
        events: EventBus,
    ) -> Self {
        let cores = plane.cores().len();
        let port_cursor = config.media.port_range.0;
        Self {
            plane,
            model: Model::new(cores, config.seed, config.placement),
            seqs: vec![0; cores],
            stalled: (0..cores).map(|_| None).collect(),
            sockets: HashMap::new(),
            metrics,
            events,
            port_cursor,
            rebalancer: Rebalancer::new(cores),
            pending: HashMap::new(),
            config,
        }
    }

    /// The control thread's loop. Returns when asked to shut down or when every handle is gone.
    pub(crate) fn run(mut self, requests: Receiver<Msg>) {
        let tick = Duration::from_millis(50);
        loop {
            crossbeam::select! {
                recv(requests) -> msg => match msg {
                    Ok(Msg::Call(env)) => {
                        let result = self.handle(env.request);
                        self.metrics.api_calls.fetch_add(1, Ordering::Relaxed);
                        if result.is_err() {
                            self.metrics.api_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        // The caller may have given up (its own deadline): nothing to do then.
                        let _ = env.reply.send(result);
                    }
                    Ok(Msg::SetRebalancer(r)) => self.config.rebalancer = r,
                    Ok(Msg::Shutdown { reply, deadline }) => {
                        let _ = reply.send(self.shutdown(deadline));
                        return;
                    }
                    Err(_) => {
                        let _ = self.shutdown(Duration::from_secs(2));
                        return;
                    }
                },
                recv(self.plane.events()) -> ev => if let Ok(ev) = ev { self.on_event(ev.core, ev.event) },
                default(tick) => self.housekeeping(),
            }
        }
    }

    fn shutdown(mut self, deadline: Duration) -> Result<(), Vec<usize>> {
        // Close routers in order, then stop the cores.
        let routers: Vec<RouterId> = self.model.routers.keys().copied().collect();
        for r in routers {
            if let Err(e) = self.handle(Request::CloseRouter { router: r }) {
                warn!("shutdown: closing router {r}: {e}");
            }
        }
        self.plane.shutdown(deadline)
    }

    fn on_event(&mut self, core: usize, event: Event) {
        match event {
            Event::TransportLatched { transport, remote, .. } => {
                self.model.latched(transport, remote);
                self.events.publish(json!({"event": "transport_latched", "transport": transport.0, "remote": remote.to_string(), "core": core}));
            }
        }
    }

    fn housekeeping(&mut self) {
        // Late replies clear stalls.
        while let Ok(msg) = self.plane.replies().try_recv() {
            self.on_late_reply(msg);
        }
        if self.config.rebalancer.enabled {
            if let Some((router, to)) =
                self.rebalancer.tick(&self.plane, &self.model, &self.config, &self.stalled)
            {
                match self.handle(Request::MoveRouter { router, core: to }) {
                    Ok(_) => {
                        self.metrics.rebalancer_moves.fetch_add(1, Ordering::Relaxed);
                        info!(router = router.0, to, "rebalancer moved a router");
                    }
                    Err(e) => warn!("rebalancer: moving router {router} to core {to}: {e}"),
                }
            }
        }
    }

    fn on_late_reply(&mut self, msg: CoreMessage) {
        let CoreMessage::Reply { core, reply, .. } = msg;
        let change = self.pending.remove(&(core, reply.seq()));
        match (&reply, change) {
            (BatchReply::Applied { .. }, Some(change)) => {
                info!(core, seq = reply.seq(), "late batch applied: the model catches up");
                self.model.commit(change);
            }
            (BatchReply::Rejected { seq, index, error }, change) => {
                self.metrics.core_rejections.fetch_add(1, Ordering::Relaxed);
                warn!(
                    core,
                    seq,
                    index,
                    dropped_change = change.is_some(),
                    "core rejected a late batch: {error}"
                );
            }
            _ => {}
        }
        if let Some(s) = &self.stalled[core] {
            if reply.seq() >= s.seq {
                info!(core, stalled_ms = s.since.elapsed().as_millis() as u64, "core recovered");
                self.stalled[core] = None;
                self.metrics.stalled[core].store(0, Ordering::Relaxed);
                self.events.publish(json!({"event": "core_recovered", "core": core}));
            }
        }
    }

    /// The core a request targets, for the fast stall check (before anything changes).
    fn target_core(&self, request: &Request) -> Option<usize> {
        let m = &self.model;
        let of_producer = |p: ProducerId| m.producers.get(&p).and_then(|p| m.core_of_router(p.router));
        let of_consumer = |c: ConsumerId| m.consumers.get(&c).and_then(|c| m.core_of_router(c.router));
        match request {
            Request::CloseRouter { router }
            | Request::DumpRouter { router }
            | Request::MoveRouter { router, .. } => m.core_of_router(*router),
            Request::CreatePlainTransport { router, .. } => m.core_of_router(*router),
            Request::ConnectTransport { transport, .. }
            | Request::CloseTransport { transport }
            | Request::Produce { transport, .. }
            | Request::Consume { transport, .. } => m.core_of_transport(*transport),
            Request::CloseProducer { producer }
            | Request::PauseProducer { producer }
            | Request::ResumeProducer { producer } => of_producer(*producer),
            Request::CloseConsumer { consumer }
            | Request::PauseConsumer { consumer }
            | Request::ResumeConsumer { consumer } => of_consumer(*consumer),
            Request::StallCore { core, .. } => Some(*core),
            Request::CreateRouter { core } => *core,
            Request::Stats => None,
        }
    }

    fn handle(&mut self, request: Request) -> Result<Response, ApiError> {
        // Drain late replies first so a recovered core is usable again.
        while let Ok(msg) = self.plane.replies().try_recv() {
            self.on_late_reply(msg);
        }
        // A core index from the caller is validated by the model below; only existing cores
        // are checked here.
        if let Some(core) = self.target_core(&request).filter(|c| *c < self.stalled.len()) {
            if let Some(s) = &self.stalled[core] {
                if !matches!(request, Request::StallCore { .. }) {
                    return Err(ApiError::core(format!(
                        "core {core} is stalled (no reply for {} ms); calls on its routers fail fast until it answers again",
                        s.since.elapsed().as_millis()
                    )));
                }
            }
            let depth = self.plane.cores()[core].stats().ring_depth as usize;
            if depth >= self.config.ring_capacity {
                return Err(ApiError::busy(format!("core {core} is busy: its command ring is full")));
            }
        }
        let started = Instant::now();
        // Events the call announces once every core has applied it.
        let mut announce: Vec<serde_json::Value> = Vec::new();
        let plan = match request {
            Request::Stats => return Ok(Response::Value(self.stats())),
            Request::DumpRouter { router } => return self.model.dump_router(router).map(Response::Value),
            Request::StallCore { core, millis, wait } => {
                if !self.config.allow_test_hooks {
                    return Err(ApiError::argument(
                        "test hooks are disabled (allow_test_hooks = false in the config)",
                    ));
                }
                if core >= self.model.cores() {
                    return Err(ApiError::argument(format!(
                        "core {core} does not exist: use 0..{}",
                        self.model.cores()
                    )));
                }
                let stall = CoreOp::Stall(Duration::from_millis(millis));
                if !wait {
                    // Queue the stall and return: later calls find the core busy behind it.
                    self.seqs[core] += 1;
                    let batch = CoreBatch { seq: self.seqs[core], ops: vec![stall] };
                    if self.plane.cores()[core].submit(batch).is_err() {
                        self.seqs[core] -= 1;
                        return Err(ApiError::busy(format!("core {core} is busy: its command ring is full")));
                    }
                    return Ok(Response::Done {});
                }
                let ops = vec![(core, stall)];
                return match self.execute_phase(ops) {
                    (_, Some(e)) => Err(e),
                    (_, None) => Ok(Response::Done {}),
                };
            }
            Request::CreateRouter { core } => {
                let stalled: Vec<bool> = self.stalled.iter().map(|s| s.is_some()).collect();
                self.model.create_router(core, &stalled)?
            }
            Request::CloseRouter { router } => self.model.close_router(router)?,
            Request::MoveRouter { router, core } => self.model.move_router(router, core)?,
            Request::CreatePlainTransport { router, listen_ip, port, shared_port, comedia } => {
                self.model
                    .core_of_router(router)
                    .ok_or_else(|| ApiError::not_found(format!("no router {router}")))?;
                let (socket, local) = if shared_port {
                    if port.is_some() {
                        return Err(ApiError::argument(
                            "port must be null with shared_port (the shared port is fixed)",
                        ));
                    }
                    (SocketId::SHARED, self.plane.shared_addr())
                } else {
                    let socket = self.bind(listen_ip, port)?;
                    let local = socket.local_addr().map_err(|e| ApiError::state(format!("socket: {e}")))?;
                    let id = self.model.socket_id();
                    // Moved into the AttachSocket op by `execute`; dropped (closed) if unused.
                    self.sockets.insert(id, socket);
                    (id, local)
                };
                let plan = self.model.create_transport(router, socket, local, comedia);
                if plan.is_err() && !socket.is_shared() {
                    self.sockets.remove(&socket);
                }
                plan?
            }
            Request::ConnectTransport { transport, remote } => {
                self.model.connect_transport(transport, remote)?
            }
            Request::CloseTransport { transport } => self.model.close_transport(transport)?,
            Request::Produce { transport, kind, ssrc, payload_type, clock_rate, paused } => {
                self.model.produce(transport, kind, ssrc, payload_type, clock_rate, paused)?
            }
            Request::CloseProducer { producer } => {
                let plan = self.model.close_producer(producer)?;
                let consumers = self.consumers_of(producer);
                announce.push(json!({"event": "producer_closed", "producer": producer.0, "consumers_closed": consumers}));
                plan
            }
            Request::PauseProducer { producer } => {
                let plan = self.model.set_producer_paused(producer, true)?;
                self.announce_producer_paused(producer, true, &mut announce);
                plan
            }
            Request::ResumeProducer { producer } => {
                let plan = self.model.set_producer_paused(producer, false)?;
                self.announce_producer_paused(producer, false, &mut announce);
                plan
            }
            Request::Consume { transport, producer, paused } => {
                self.model.consume(transport, producer, paused)?
            }
            Request::CloseConsumer { consumer } => self.model.close_consumer(consumer)?,
            Request::PauseConsumer { consumer } => self.model.set_consumer_paused(consumer, true)?,
            Request::ResumeConsumer { consumer } => self.model.set_consumer_paused(consumer, false)?,
        };
        let noop = plan.phases.is_empty();
        let response = self.execute(plan)?;
        for event in announce {
            self.events.publish(event);
        }
        if let (Response::Moved { id, core, .. }, false) = (&response, noop) {
            let (id, core) = (*id, *core);
            let us = started.elapsed().as_micros() as u64;
            self.metrics.moves.fetch_add(1, Ordering::Relaxed);
            self.metrics.last_move_us.store(us, Ordering::Relaxed);
            self.events
                .publish(json!({"event": "router_moved", "router": id, "core": core, "handoff_us": us}));
            return Ok(Response::Moved { id, core, freeze_us: us });
        }
        Ok(response)
    }

    fn consumers_of(&self, producer: ProducerId) -> Vec<u32> {
        self.model
            .producers
            .get(&producer)
            .map(|p| p.consumers.iter().map(|c| c.0).collect())
            .unwrap_or_default()
    }

    fn announce_producer_paused(&self, producer: ProducerId, paused: bool, out: &mut Vec<serde_json::Value>) {
        let event = if paused { "consumer_producer_paused" } else { "consumer_producer_resumed" };
        for c in self.consumers_of(producer) {
            out.push(json!({"event": event, "consumer": c, "producer": producer.0}));
        }
    }

    /// Binds a dedicated transport socket: the given port, or the next free one in the range.
    fn bind(&mut self, ip: std::net::IpAddr, port: Option<u16>) -> Result<UdpSocket, ApiError> {
        let opts = SocketOptions {
            reuse_port: false,
            recv_buffer: self.config.media.recv_buffer,
            send_buffer: self.config.media.send_buffer,
        };
        if let Some(p) = port {
            return bind_udp(SocketAddr::new(ip, p), &opts)
                .map(|(s, _)| s)
                .map_err(|e| ApiError::state(format!("cannot bind {ip}:{p}: {e}")));
        }
        let (lo, hi) = self.config.media.port_range;
        if lo == 0 {
            return bind_udp(SocketAddr::new(ip, 0), &opts)
                .map(|(s, _)| s)
                .map_err(|e| ApiError::state(format!("cannot bind {ip}:0: {e}")));
        }
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let p = self.port_cursor;
            self.port_cursor = if p >= hi { lo } else { p + 1 };
            if let Ok((s, _)) = bind_udp(SocketAddr::new(ip, p), &opts) {
                return Ok(s);
            }
        }
        Err(ApiError::state(format!("no free port in {lo}-{hi} on {ip}")))
    }

    /// Sends the plan's phases in order; commits its change once the owner has applied phase 0
    /// (or parks it until the owner's late reply).
    fn execute(&mut self, plan: Plan) -> Result<Response, ApiError> {
        let Plan { phases, response, change, owner } = plan;
        if phases.is_empty() {
            self.model.commit(change);
            return Ok(response);
        }
        let mut change = Some(change);
        for phase in phases {
            let mut ops = Vec::with_capacity(phase.len());
            for (core, op) in phase {
                let op = match op {
                    Op::Route(c) => CoreOp::Route(c),
                    Op::AttachSocket(id) => match self.sockets.remove(&id) {
                        Some(socket) => CoreOp::AttachSocket { id, socket },
                        None => {
                            return Err(ApiError::state(format!("internal: socket {id:?} was not bound")))
                        }
                    },
                    Op::DetachSocket(id) => CoreOp::DetachSocket { id },
                    Op::HandOff { router, to } => CoreOp::HandOff { router, to: to as u16 },
                    Op::ConfirmImport { router } => CoreOp::ConfirmImport { router },
                };
                ops.push((core, op));
            }
            let (fates, error) = self.execute_phase(ops);
            if let Some(change) = change.take() {
                match fates.get(&owner) {
                    Some(BatchFate::Applied) => self.model.commit(change),
                    Some(BatchFate::Late(seq)) => {
                        self.pending.insert((owner, *seq), change);
                    }
                    // Refused or never queued: the owner did not change, neither does the model.
                    Some(BatchFate::Rejected | BatchFate::NotSent) | None => {}
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(response)
    }

    /// Sends one batch per core and waits for every reply, with a deadline. Returns what became
    /// of each core's batch and the first error, if any.
    fn execute_phase(&mut self, ops: Vec<(usize, CoreOp)>) -> (BTreeMap<usize, BatchFate>, Option<ApiError>) {
        let mut per_core: BTreeMap<usize, Vec<CoreOp>> = BTreeMap::new();
        for (core, op) in ops {
            per_core.entry(core).or_default().push(op);
        }
        let mut waiting: BTreeMap<usize, u64> = BTreeMap::new();
        let mut fates: BTreeMap<usize, BatchFate> = BTreeMap::new();
        let mut error: Option<ApiError> = None;
        for (core, ops) in per_core {
            let only_steering = ops.iter().all(|o| matches!(o, CoreOp::Route(Command::SetSteering { .. })));
            self.seqs[core] += 1;
            let seq = self.seqs[core];
            match self.plane.cores()[core].submit(CoreBatch { seq, ops }) {
                Ok(()) => {
                    if self.stalled[core].is_none() {
                        waiting.insert(core, seq);
                    } else {
                        fates.insert(core, BatchFate::Late(seq));
                    }
                }
                Err(_) => {
                    self.seqs[core] -= 1;
                    fates.insert(core, BatchFate::NotSent);
                    if only_steering {
                        // A steering update for a core that is not the owner: losing it only
                        // costs that core's misdirected packets (counted as unknown_transport).
                        self.metrics.steering_lost.fetch_add(1, Ordering::Relaxed);
                        warn!(core, "steering update lost: ring full");
                    } else {
                        error.get_or_insert(ApiError::busy(format!(
                            "core {core} is busy: its command ring is full"
                        )));
                    }
                }
            }
        }
        let deadline = Instant::now() + self.config.core_deadline();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.plane.replies().recv_timeout(left) {
                Ok(CoreMessage::Reply { core, reply, .. }) => {
                    if waiting.get(&core) == Some(&reply.seq()) {
                        waiting.remove(&core);
                        match reply {
                            BatchReply::Applied { outcomes, .. } => {
                                fates.insert(core, BatchFate::Applied);
                                if outcomes.contains(&Outcome::NotFound) {
                                    tracing::debug!(core, "batch applied with not-found outcomes");
                                }
                            }
                            BatchReply::Rejected { index, error: e, .. } => {
                                fates.insert(core, BatchFate::Rejected);
                                self.metrics.core_rejections.fetch_add(1, Ordering::Relaxed);
                                warn!(core, index, "core rejected a batch the model accepted: {e}");
                                error.get_or_insert(ApiError::state(format!("core {core} refused: {e}")));
                            }
                        }
                    } else {
                        self.on_late_reply(CoreMessage::Reply { core, reply, exported: None, apply_ns: 0 });
                    }
                }
                Err(_) => break,
            }
        }
        for (core, seq) in waiting {
            fates.insert(core, BatchFate::Late(seq));
            self.metrics.deadline_misses[core].fetch_add(1, Ordering::Relaxed);
            self.metrics.stalled[core].store(1, Ordering::Relaxed);
            warn!(core, seq, "core missed its deadline");
            if self.stalled[core].is_none() {
                self.stalled[core] = Some(Stall { since: Instant::now(), seq });
                self.events.publish(json!({"event": "core_stalled", "core": core}));
            }
            error.get_or_insert(ApiError::core(format!(
                "core {core} did not apply batch {seq} within {} ms; it stays queued in order and applies when the core recovers",
                self.config.core_deadline().as_millis()
            )));
        }
        (fates, error)
    }

    fn stats(&self) -> serde_json::Value {
        let cores: Vec<_> = self
            .plane
            .cores()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = c.stats();
                let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
                    .iter()
                    .map(|r| (r.as_str().to_string(), json!(s.counters.drops_of(*r))))
                    .collect();
                json!({
                    "core": i, "cpu": c.cpu(), "stalled": self.stalled[i].is_some(),
                    "packets_in": s.counters.packets_in, "bytes_in": s.counters.bytes_in,
                    "packets_out": s.counters.packets_out, "bytes_out": s.counters.bytes_out,
                    "routed": s.counters.routed, "outputs": s.counters.outputs,
                    "hopped_out": s.counters.hopped_out, "hopped_in": s.counters.hopped_in,
                    "drops": drops, "batches_applied": s.batches_applied, "apply_ns_max": s.apply_ns_max,
                    "busy_ns": s.busy_ns, "wakeups": s.wakeups, "routers": s.routers, "ring_depth": s.ring_depth,
                    "handoffs_in": s.handoffs_in, "freeze_ns_max": s.freeze_ns_max,
                    "barrier_failures": s.barrier_failures,
                })
            })
            .collect();
        json!({
            "pid": std::process::id(),
            "shared_port": self.plane.shared_addr().to_string(),
            "kernel_steering": self.plane.kernel_steering()
                .map(|k| json!({"updates": k.updates, "errors": k.errors})),
            "routers": self.model.routers.len(), "transports": self.model.transports.len(),
            "producers": self.model.producers.len(), "consumers": self.model.consumers.len(),
            "moves": self.metrics.moves.load(Ordering::Relaxed),
            "rebalancer_moves": self.metrics.rebalancer_moves.load(Ordering::Relaxed),
            "cores": cores,
        })
    }
}

/// Moves routers off a hot core: per-core busy fraction over an interval; when the spread
/// exceeds the threshold, move the router whose weight best halves it. Hysteresis: a minimum
/// interval between moves, and no move that would invert the imbalance.
struct Rebalancer {
    last_busy: Vec<u64>,
    last_tick: Instant,
    last_move: Option<Instant>,
}

impl Rebalancer {
    fn new(cores: usize) -> Self {
        Self { last_busy: vec![0; cores], last_tick: Instant::now(), last_move: None }
    }

    fn tick(
        &mut self,
        plane: &DataPlane,
        model: &Model,
        config: &Config,
        stalled: &[Option<Stall>],
    ) -> Option<(RouterId, usize)> {
        let interval = Duration::from_millis(config.rebalancer.interval_ms);
        let elapsed = self.last_tick.elapsed();
        if elapsed < interval || plane.cores().len() < 2 {
            return None;
        }
        self.last_tick = Instant::now();
        let busy: Vec<u64> = plane.cores().iter().map(|c| c.stats().busy_ns).collect();
        let load: Vec<f64> = busy
            .iter()
            .zip(&self.last_busy)
            .map(|(now, before)| now.saturating_sub(*before) as f64 / elapsed.as_nanos() as f64)
            .collect();
        self.last_busy = busy;
        if self
            .last_move
            .is_some_and(|t| t.elapsed() < Duration::from_millis(config.rebalancer.min_interval_ms))
        {
            return None;
        }
        let usable = |c: &usize| stalled.get(*c).is_none_or(|s| s.is_none());
        let hot = (0..load.len()).filter(usable).max_by(|a, b| load[*a].total_cmp(&load[*b]))?;
        let cold = (0..load.len()).filter(usable).min_by(|a, b| load[*a].total_cmp(&load[*b]))?;
        let spread = load[hot] - load[cold];
        if hot == cold || spread < config.rebalancer.threshold {
            return None;
        }
        // Weight of a router ≈ its fan-out (producers × their consumers, at least 1 per producer).
        let weight = |r: RouterId| -> f64 {
            model
                .producers
                .values()
                .filter(|p| p.router == r)
                .map(|p| 1.0 + p.consumers.len() as f64)
                .sum::<f64>()
                .max(1.0)
        };
        let on_hot: Vec<(RouterId, f64)> =
            model.routers.iter().filter(|(_, e)| e.core == hot).map(|(id, _)| (*id, weight(*id))).collect();
        if on_hot.len() < 2 {
            return None;
        }
        let total: f64 = on_hot.iter().map(|(_, w)| w).sum();
        // Moving a router with share s of the hot core's load moves s × load[hot] and narrows the
        // spread by twice that; the best move halves the spread, and a move larger than half the
        // spread is refused: it would invert the imbalance (ping-pong).
        let target = spread / 2.0;
        let best = on_hot
            .iter()
            .map(|(id, w)| (*id, w / total * load[hot]))
            .filter(|(_, moved)| *moved <= spread / 2.0)
            .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))?;
        self.last_move = Some(Instant::now());
        Some((best.0, cold))
    }
}
