//! The control thread: the single sequencer.
//!
//! API calls arrive on a bounded channel and are handled one at a time, in arrival order: validate
//! against the model, send one `CoreBatch` per affected core (per phase), wait — with a deadline —
//! for every reply, then answer. So the effects of two calls reach every core in the same order,
//! and a call returns only once they are applied: a `resume` can never overtake a `consume` in
//! flight. The model changes only once the owning core has applied the call (a late `Applied`
//! from a core that missed its deadline commits it then; a refusal never does). Nothing here
//! holds a lock; the only waits are `recv_timeout`s with deadlines.
//!
//! This file is the loop and the dispatch of each call; `sequencer.rs` sends plans and waits for
//! the cores, `rebalancer.rs` picks moves off a hot core, `ports.rs` binds transport sockets.

mod ports;
mod rebalancer;
mod sequencer;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use shardcast_core::command::{Event, IpPrefix, SocketId};
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId};
use shardcast_dataplane::socket::SocketOptions;
use shardcast_dataplane::{CoreOp, DataPlane};
use tracing::{info, warn};

use self::ports::Ports;
use self::rebalancer::Rebalancer;
use self::sequencer::Stall;
use crate::config::Config;
use crate::error::ApiError;
use crate::events::{ControlEvent, EventBus};
use crate::model::{Change, Model, Plan};
use crate::request::{Request, Response};
use crate::stats::StatsDocument;

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
    Shutdown {
        reply: Sender<Result<(), Vec<usize>>>,
        deadline: Duration,
    },
    /// A SIGHUP reload's new `[rebalancer]`.
    SetRebalancer(crate::config::RebalancerConfig),
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
    /// The last move call's wall time on the control thread (µs; `Response::Moved::move_us`).
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

pub(crate) struct Controller {
    plane: DataPlane,
    model: Model,
    config: Config,
    /// Per core: the sequence number of the last batch queued.
    seqs: Vec<u64>,
    stalled: Vec<Option<Stall>>,
    /// Sockets bound for transports being created, until their `AttachSocket` op takes them.
    sockets: HashMap<SocketId, UdpSocket>,
    metrics: Arc<ControlMetrics>,
    events: EventBus,
    ports: Ports,
    rebalancer: Rebalancer,
    /// Model changes whose owner missed its deadline, by (core, seq) of the batch that carries
    /// them: committed if that batch's late reply is `Applied`, dropped if it is refused.
    pending: HashMap<(usize, u64), Change>,
}

impl Controller {
    pub(crate) fn new(
        plane: DataPlane,
        config: Config,
        metrics: Arc<ControlMetrics>,
        events: EventBus,
    ) -> Self {
        let cores = plane.cores().len();
        let ports = Ports::new(
            config.media.port_range,
            SocketOptions {
                reuse_port: false,
                recv_buffer: config.media.recv_buffer,
                send_buffer: config.media.send_buffer,
            },
            ports::allowed_listen_ips(&config.media.allowed_listen_ips, config.media.listen.ip()),
        );
        Self {
            plane,
            model: Model::new(cores, config.seed, config.placement).with_quotas(config.quotas.clone()),
            seqs: vec![0; cores],
            stalled: (0..cores).map(|_| None).collect(),
            sockets: HashMap::new(),
            metrics,
            events,
            ports,
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
                // Its remote becomes its shared-port address key, on every other core (and in
                // the kernel map) as for an explicit connect: RTCP, which names no comedia SSRC,
                // then reaches it wherever it lands.
                if let Some(plan) = self.model.latched(transport, remote) {
                    if let Err(e) = self.execute(plan) {
                        warn!("steering transport {transport}'s latched remote {remote}: {e}");
                    }
                }
                self.events.publish(ControlEvent::TransportLatched { transport, remote, core });
            }
        }
    }

    fn housekeeping(&mut self) {
        // Late replies clear stalls.
        self.drain_late_replies();
        if self.config.rebalancer.enabled {
            let stalled = self.stalled_flags();
            if let Some((router, to)) = self.rebalancer.tick(&self.plane, &self.model, &self.config, &stalled)
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

    /// Per core: stalled now.
    fn stalled_flags(&self) -> Vec<bool> {
        self.stalled.iter().map(|s| s.is_some()).collect()
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
            | Request::ResumeProducer { producer }
            | Request::PipeToRouter { producer, .. } => of_producer(*producer),
            Request::CloseConsumer { consumer }
            | Request::PauseConsumer { consumer }
            | Request::ResumeConsumer { consumer }
            | Request::SwitchConsumerProducer { consumer, .. } => of_consumer(*consumer),
            Request::StallCore { core, .. } | Request::PanicCore { core } => Some(*core),
            Request::CreateRouter { core } => *core,
            Request::Stats => None,
        }
    }

    /// Fails fast on a call whose core is stalled or whose ring is full.
    fn precheck(&self, request: &Request) -> Result<(), ApiError> {
        // A core index from the caller is validated by the model later; only existing cores
        // are checked here.
        let Some(core) = self.target_core(request).filter(|c| *c < self.stalled.len()) else {
            return Ok(());
        };
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
        Ok(())
    }

    fn handle(&mut self, request: Request) -> Result<Response, ApiError> {
        // Drain late replies first so a recovered core is usable again.
        self.drain_late_replies();
        self.precheck(&request)?;
        let started = Instant::now();
        // Events the call announces once every core has applied it.
        let mut announce: Vec<ControlEvent> = Vec::new();
        // Piped producers a close may take with it (announced if it did).
        let piped_before = match request {
            Request::CloseRouter { .. } | Request::CloseTransport { .. } | Request::CloseProducer { .. } => {
                self.model.pipes.keys().map(|p| (*p, self.consumers_of(*p))).collect()
            }
            _ => Vec::new(),
        };
        let closed_directly = match request {
            Request::CloseProducer { producer } => Some(producer),
            _ => None,
        };
        let plan = match request {
            Request::Stats => {
                let stalled = self.stalled_flags();
                let stats = StatsDocument::collect(&self.plane, &self.model, &self.metrics, &stalled);
                return Ok(Response::Stats(stats));
            }
            Request::DumpRouter { router } => return self.model.dump_router(router).map(Response::Dump),
            Request::StallCore { core, millis, wait } => return self.stall_core(core, millis, wait),
            Request::PanicCore { core } => return self.test_hook(core, CoreOp::Panic, false),
            Request::CreateRouter { core } => {
                let stalled = self.stalled_flags();
                self.model.create_router(core, &stalled)?
            }
            Request::CloseRouter { router } => self.model.close_router(router)?,
            Request::MoveRouter { router, core } => self.model.move_router(router, core)?,
            Request::CreatePlainTransport {
                router,
                listen_ip,
                port,
                shared_port,
                comedia,
                comedia_source,
            } => self.plan_transport(router, listen_ip, port, shared_port, comedia, comedia_source)?,
            Request::ConnectTransport { transport, remote } => {
                self.model.connect_transport(transport, remote)?
            }
            Request::CloseTransport { transport } => self.model.close_transport(transport)?,
            Request::Produce { transport, kind, ssrc, payload_type, clock_rate, paused } => {
                self.model.produce(transport, kind, ssrc, payload_type, clock_rate, paused)?
            }
            Request::CloseProducer { producer } => {
                let plan = self.model.close_producer(producer)?;
                let consumers_closed = self.consumers_of(producer);
                announce.push(ControlEvent::ProducerClosed { producer, consumers_closed });
                plan
            }
            Request::PauseProducer { producer } => {
                let plan = self.model.set_producer_paused(producer, true)?;
                announce.extend(
                    self.consumers_of(producer)
                        .into_iter()
                        .map(|consumer| ControlEvent::ConsumerProducerPaused { consumer, producer }),
                );
                announce.extend(self.piped_pause_events(producer, true));
                plan
            }
            Request::ResumeProducer { producer } => {
                let plan = self.model.set_producer_paused(producer, false)?;
                announce.extend(
                    self.consumers_of(producer)
                        .into_iter()
                        .map(|consumer| ControlEvent::ConsumerProducerResumed { consumer, producer }),
                );
                announce.extend(self.piped_pause_events(producer, false));
                plan
            }
            Request::PipeToRouter { producer, router } => self.model.pipe_to_router(producer, router)?,
            Request::Consume { transport, producer, paused } => {
                self.model.consume(transport, producer, paused)?
            }
            Request::CloseConsumer { consumer } => self.model.close_consumer(consumer)?,
            Request::PauseConsumer { consumer } => self.model.set_consumer_paused(consumer, true)?,
            Request::ResumeConsumer { consumer } => self.model.set_consumer_paused(consumer, false)?,
            Request::SwitchConsumerProducer { consumer, producer } => {
                let plan = self.model.switch_consumer_producer(consumer, producer)?;
                announce.extend(self.producer_paused_change(consumer, producer));
                plan
            }
        };
        let noop = plan.phases.is_empty();
        let response = self.execute(plan)?;
        for event in announce {
            self.events.publish(event);
        }
        for (producer, consumers_closed) in piped_before {
            if Some(producer) != closed_directly && !self.model.pipes.contains_key(&producer) {
                self.events.publish(ControlEvent::ProducerClosed { producer, consumers_closed });
            }
        }
        if let (Response::Moved { id, core, .. }, false) = (&response, noop) {
            let (id, core) = (*id, *core);
            // The whole move call as the control thread saw it: planning, both phases, and
            // every affected core's confirmation.
            let move_us = started.elapsed().as_micros() as u64;
            self.metrics.moves.fetch_add(1, Ordering::Relaxed);
            self.metrics.last_move_us.store(move_us, Ordering::Relaxed);
            self.events.publish(ControlEvent::RouterMoved { router: id, core, move_us });
            return Ok(Response::Moved { id, core, move_us });
        }
        Ok(response)
    }

    /// Binds the transport's dedicated socket (or takes the shared port) and plans it.
    fn plan_transport(
        &mut self,
        router: RouterId,
        listen_ip: std::net::IpAddr,
        port: Option<u16>,
        shared_port: bool,
        comedia: bool,
        comedia_source: Option<IpPrefix>,
    ) -> Result<Plan, ApiError> {
        crate::model::check_comedia_source(comedia, comedia_source)?;
        // The quotas before a socket is bound (also checked by the model's plan).
        self.model.admit_transport(router)?;
        let (socket, local) = if shared_port {
            if port.is_some() {
                return Err(ApiError::argument(
                    "port must be null with shared_port (the shared port is fixed)",
                ));
            }
            (SocketId::SHARED, self.plane.shared_addr())
        } else {
            let socket = self.ports.bind(listen_ip, port)?;
            let local = socket.local_addr().map_err(|e| ApiError::state(format!("socket: {e}")))?;
            let id = self.model.socket_id()?;
            // Moved into the AttachSocket op by `execute`; dropped (closed) if unused.
            self.sockets.insert(id, socket);
            (id, local)
        };
        let plan = self.model.create_transport(router, socket, local, comedia, comedia_source);
        if plan.is_err() && !socket.is_shared() {
            self.sockets.remove(&socket);
        }
        plan
    }

    /// The stall test hook: block `core` for `millis`, waiting for it like any call or not.
    fn stall_core(&mut self, core: usize, millis: u64, wait: bool) -> Result<Response, ApiError> {
        self.test_hook(core, CoreOp::Stall(Duration::from_millis(millis)), wait)
    }

    /// Sends test hook `op` to `core` (refused without `allow_test_hooks`).
    fn test_hook(&mut self, core: usize, op: CoreOp, wait: bool) -> Result<Response, ApiError> {
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
        if !wait {
            // Queue the hook and return: later calls find the core busy behind it.
            self.submit_unconfirmed(core, op)?;
            return Ok(Response::Done {});
        }
        match self.execute_phase(vec![(core, op)]) {
            (_, Some(e)) => Err(e),
            (_, None) => Ok(Response::Done {}),
        }
    }

    /// The events of a source's pause or resume for the consumers of its piped producers.
    fn piped_pause_events(&self, producer: ProducerId, paused: bool) -> Vec<ControlEvent> {
        let mut events = Vec::new();
        for piped in self.model.piped_of(producer) {
            for consumer in self.consumers_of(piped) {
                events.push(if paused {
                    ControlEvent::ConsumerProducerPaused { consumer, producer: piped }
                } else {
                    ControlEvent::ConsumerProducerResumed { consumer, producer: piped }
                });
            }
        }
        events
    }

    /// The event a switch of `consumer` to `producer` announces when the consumer's
    /// `producer_paused` changes with it (as a pause or resume of its producer would).
    fn producer_paused_change(&self, consumer: ConsumerId, producer: ProducerId) -> Option<ControlEvent> {
        let m = &self.model;
        let paused = |p: ProducerId| m.producers.get(&p).map(|p| p.paused);
        let before = paused(m.consumers.get(&consumer)?.producer)?;
        match (before, paused(producer)?) {
            (false, true) => Some(ControlEvent::ConsumerProducerPaused { consumer, producer }),
            (true, false) => Some(ControlEvent::ConsumerProducerResumed { consumer, producer }),
            _ => None,
        }
    }

    fn consumers_of(&self, producer: ProducerId) -> Vec<ConsumerId> {
        self.model.producers.get(&producer).map(|p| p.consumers.iter().copied().collect()).unwrap_or_default()
    }
}
