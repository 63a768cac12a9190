//! The Rust embedding API: start shardcast in-process and call it with typed requests.
//!
//! ```no_run
//! use shardcast::{Config, Shardcast, Request};
//! let sc = Shardcast::start(Config::for_tests(2)).unwrap();
//! let router = sc.create_router(None).unwrap();
//! let stats = sc.call(Request::Stats).unwrap();
//! sc.shutdown(std::time::Duration::from_secs(2)).unwrap();
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{bounded, Sender, TrySendError};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
use shardcast_dataplane::{DataPlane, DataPlaneConfig};
use tracing::warn;

use crate::config::Config;
use crate::controller::{ControlMetrics, Controller, Envelope, Msg};
use crate::error::ApiError;
use crate::events::EventBus;
use crate::model::RouterDump;
use crate::request::{Request, Response};

/// Why shardcast could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A handle on a running shardcast; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Shardcast {
    tx: Sender<Msg>,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    metrics: Arc<ControlMetrics>,
    events: EventBus,
    cores: Vec<shardcast_dataplane::CoreHandle>,
    shared_addr: SocketAddr,
    kernel_steering: Option<Arc<shardcast_dataplane::steering::KernelSteering>>,
}

/// A created transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportInfo {
    pub id: TransportId,
    pub local: SocketAddr,
}

/// A created consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub id: ConsumerId,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
}

impl Shardcast {
    /// Starts the data plane and the control thread.
    pub fn start(config: Config) -> Result<Shardcast, StartError> {
        config.validate().map_err(StartError)?;
        let plane_config = DataPlaneConfig {
            cpus: config.data_plane_cpus(),
            shared_addr: config.media.listen,
            socket_options: shardcast_dataplane::socket::SocketOptions {
                reuse_port: true,
                recv_buffer: config.media.recv_buffer,
                send_buffer: config.media.send_buffer,
            },
            ring_capacity: config.ring_capacity,
            allow_test_hooks: config.allow_test_hooks,
            kernel_steering: config.media.kernel_steering,
            sched_policy: config.data_plane_policy(),
            rtcp_limits: config.rtcp.limits(),
            ..DataPlaneConfig::default()
        };
        let plane = DataPlane::start(plane_config).map_err(|e| StartError(format!("data plane: {e}")))?;
        let cores = plane.cores().to_vec();
        let shared_addr = plane.shared_addr();
        let kernel_steering = plane.kernel_steering_handle();
        let metrics = Arc::new(ControlMetrics::new(cores.len()));
        let events = EventBus::new(config.api.event_buffer);
        let (tx, rx) = bounded(config.api.queue);
        let controller = Controller::new(plane, config.clone(), metrics.clone(), events.clone());
        let control_cpu = config.control_cpu();
        let policy = config.cores.control_policy.into();
        let (started, start_rx) = bounded(1);
        std::thread::Builder::new()
            .name("shardcast-control".into())
            .spawn(move || {
                if let Some(cpu) = control_cpu {
                    if let Err(e) = shardcast_dataplane::io::pin_current_thread(cpu) {
                        warn!("cannot pin the control thread to cpu {cpu}: {e}");
                    }
                }
                let policy = shardcast_dataplane::io::set_current_thread_policy(policy);
                let ok = policy.is_ok();
                let _ =
                    started.send(policy.map_err(|e| format!("control thread: cores.control_policy: {e}")));
                if ok {
                    controller.run(rx);
                }
            })
            .map_err(|e| StartError(format!("control thread: {e}")))?;
        start_rx.recv().map_err(|_| StartError("control thread exited".into()))?.map_err(StartError)?;
        Ok(Shardcast {
            tx,
            inner: Arc::new(Inner { config, metrics, events, cores, shared_addr, kernel_steering }),
        })
    }

    /// Makes one call; waits at most the configured request deadline.
    pub fn call(&self, request: Request) -> Result<Response, ApiError> {
        let (reply, rx) = bounded(1);
        match self.tx.try_send(Msg::Call(Envelope { request, reply })) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::busy("the control plane's queue is full; retry"))
            }
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::state("shardcast is shut down")),
        }
        rx.recv_timeout(self.inner.config.request_deadline()).unwrap_or_else(|_| {
            Err(ApiError::core(format!(
                "no answer from the control thread within {} ms",
                self.inner.config.request_deadline().as_millis()
            )))
        })
    }

    /// Stops accepting calls, closes every router in order and stops the cores.
    pub fn shutdown(&self, deadline: Duration) -> Result<(), ApiError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send_timeout(Msg::Shutdown { reply, deadline }, deadline)
            .map_err(|_| ApiError::core("control thread did not take the shutdown request in time"))?;
        match rx.recv_timeout(deadline + Duration::from_secs(1)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cores)) => Err(ApiError::core(format!("cores {cores:?} did not stop in time"))),
            Err(_) => Err(ApiError::core("shutdown did not finish in time")),
        }
    }

    /// Applies a reloaded config's rebalancer settings (the control thread takes them between
    /// two calls).
    pub fn set_rebalancer(&self, rebalancer: crate::config::RebalancerConfig) -> Result<(), ApiError> {
        self.tx.send_timeout(Msg::SetRebalancer(rebalancer), self.inner.config.request_deadline()).map_err(
            |_| ApiError::busy("the control thread did not take the new rebalancer settings in time"),
        )
    }

    /// The shared port's kernel steering figures; `None` when it is off.
    pub fn kernel_steering(&self) -> Option<shardcast_dataplane::steering::KernelSteeringStats> {
        self.inner.kernel_steering.as_ref().map(|k| k.stats())
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn metrics(&self) -> &ControlMetrics {
        &self.inner.metrics
    }
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }
    pub fn cores(&self) -> &[shardcast_dataplane::CoreHandle] {
        &self.inner.cores
    }
    /// The shared media port's address.
    pub fn shared_addr(&self) -> SocketAddr {
        self.inner.shared_addr
    }

    pub fn create_router(&self, core: Option<usize>) -> Result<(RouterId, usize), ApiError> {
        match self.call(Request::CreateRouter { core })? {
            Response::Router { id, core } => Ok((id, core)),
            other => Err(unexpected(other)),
        }
    }

    pub fn close_router(&self, router: RouterId) -> Result<(), ApiError> {
        self.call(Request::CloseRouter { router }).map(|_| ())
    }

    /// Moves a router to `core` while media flows; returns the move call's wall time on the
    /// control thread in µs (`move_us`: planning, both phases, every core's confirmation).
    pub fn move_router(&self, router: RouterId, core: usize) -> Result<u64, ApiError> {
        match self.call(Request::MoveRouter { router, core })? {
            Response::Moved { move_us, .. } => Ok(move_us),
            other => Err(unexpected(other)),
        }
    }

    pub fn create_plain_transport(
        &self,
        router: RouterId,
        listen_ip: IpAddr,
        shared_port: bool,
        comedia: bool,
    ) -> Result<TransportInfo, ApiError> {
        match self.call(Request::CreatePlainTransport {
            router,
            listen_ip,
            port: None,
            shared_port,
            comedia,
            comedia_source: None,
        })? {
            Response::Transport { id, local } => Ok(TransportInfo { id, local }),
            other => Err(unexpected(other)),
        }
    }

    pub fn connect(&self, transport: TransportId, remote: SocketAddr) -> Result<(), ApiError> {
        self.call(Request::ConnectTransport { transport, remote }).map(|_| ())
    }

    pub fn produce(
        &self,
        transport: TransportId,
        kind: MediaKind,
        ssrc: Ssrc,
        payload_type: PayloadType,
    ) -> Result<ProducerId, ApiError> {
        let request =
            Request::Produce { transport, kind, ssrc, payload_type, clock_rate: None, paused: false };
        match self.call(request)? {
            Response::Producer { id } => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    pub fn consume(&self, transport: TransportId, producer: ProducerId) -> Result<ConsumerInfo, ApiError> {
        match self.call(Request::Consume { transport, producer, paused: false })? {
            Response::Consumer { id, ssrc, payload_type } => Ok(ConsumerInfo { id, ssrc, payload_type }),
            other => Err(unexpected(other)),
        }
    }

    pub fn pause_producer(&self, producer: ProducerId) -> Result<(), ApiError> {
        self.call(Request::PauseProducer { producer }).map(|_| ())
    }
    pub fn resume_producer(&self, producer: ProducerId) -> Result<(), ApiError> {
        self.call(Request::ResumeProducer { producer }).map(|_| ())
    }
    pub fn pause_consumer(&self, consumer: ConsumerId) -> Result<(), ApiError> {
        self.call(Request::PauseConsumer { consumer }).map(|_| ())
    }
    pub fn resume_consumer(&self, consumer: ConsumerId) -> Result<(), ApiError> {
        self.call(Request::ResumeConsumer { consumer }).map(|_| ())
    }
    /// Re-points `consumer` at `producer`, another producer of its router of the same kind and
    /// clock rate; returns once the router's core applied it. Its receiver sees one stream (the
    /// consumer's SSRC and payload type, sequence numbers continuing, timestamps re-based by the
    /// elapsed time) and a video producer is asked for a keyframe. The consumer is `producer`'s
    /// from then on: paused by it, closed with it. To the producer it follows: nothing happens.
    pub fn switch_consumer_producer(
        &self,
        consumer: ConsumerId,
        producer: ProducerId,
    ) -> Result<(), ApiError> {
        self.call(Request::SwitchConsumerProducer { consumer, producer }).map(|_| ())
    }
    pub fn close_consumer(&self, consumer: ConsumerId) -> Result<(), ApiError> {
        self.call(Request::CloseConsumer { consumer }).map(|_| ())
    }
    /// Pipes `producer` to `router` (another router of this process) and returns the piped
    /// producer, consumable in `router` like a local one, once it is live there; the pipe that
    /// already joins the pair if there is one. Close the pipe by closing the piped producer.
    pub fn pipe_to_router(&self, producer: ProducerId, router: RouterId) -> Result<ProducerId, ApiError> {
        match self.call(Request::PipeToRouter { producer, router })? {
            Response::Pipe { id, .. } => Ok(id),
            other => Err(unexpected(other)),
        }
    }
    pub fn close_producer(&self, producer: ProducerId) -> Result<(), ApiError> {
        self.call(Request::CloseProducer { producer }).map(|_| ())
    }
    /// The router's transports, producers and consumers as the model holds them.
    pub fn dump_router(&self, router: RouterId) -> Result<RouterDump, ApiError> {
        match self.call(Request::DumpRouter { router })? {
            Response::Dump(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(r: Response) -> ApiError {
    ApiError::state(format!("internal: unexpected response {r:?}"))
}
