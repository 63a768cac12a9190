//! Object handles for the embedding API, in mediasoup-rust's shape: a [`Router`] makes
//! [`Transport`]s, a transport makes [`Producer`]s and [`Consumer`]s, each handle carries its id
//! and acts on its object. Every method is one call through the sequencer (same order, same
//! deadlines as the HTTP API). Handles do not close their object on drop: closing is explicit
//! (`close`), and closing a router or transport closes what it contains.

use std::net::{IpAddr, SocketAddr};

use shardcast_core::command::IpPrefix;
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use crate::api::Shardcast;
use crate::error::ApiError;
use crate::model::RouterDump;
use crate::request::{Request, Response};

/// How to create a plain transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainTransportOptions {
    /// Address to bind the dedicated socket on (ignored with `shared_port`).
    pub listen_ip: IpAddr,
    /// `None`: the next free port of the configured range.
    pub port: Option<u16>,
    /// Use the process's shared media port instead of a dedicated socket.
    pub shared_port: bool,
    /// Latch the remote address on the first valid packet (never re-latch). Trust on first use:
    /// narrow it with `comedia_source`, or connect explicitly.
    pub comedia: bool,
    /// With `comedia`: only a packet from this prefix may latch (the port is learnt).
    pub comedia_source: Option<IpPrefix>,
}

impl Default for PlainTransportOptions {
    fn default() -> Self {
        Self {
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            port: None,
            shared_port: false,
            comedia: false,
            comedia_source: None,
        }
    }
}

/// How to create a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerOptions {
    pub kind: MediaKind,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    /// `None`: 48 kHz for audio, 90 kHz for video.
    pub clock_rate: Option<u32>,
    pub paused: bool,
}

impl ProducerOptions {
    pub fn new(kind: MediaKind, ssrc: Ssrc, payload_type: PayloadType) -> Self {
        Self { kind, ssrc, payload_type, clock_rate: None, paused: false }
    }
}

fn unexpected(r: Response) -> ApiError {
    ApiError::state(format!("internal: unexpected response {r:?}"))
}

/// A router (a room) on one core.
#[derive(Debug, Clone)]
pub struct Router {
    sc: Shardcast,
    id: RouterId,
    core: usize,
}

impl Router {
    /// Creates a router on `core`, or where the placement policy puts it.
    pub fn create(sc: &Shardcast, core: Option<usize>) -> Result<Router, ApiError> {
        match sc.call(Request::CreateRouter { core })? {
            Response::Router { id, core } => Ok(Router { sc: sc.clone(), id, core }),
            other => Err(unexpected(other)),
        }
    }

    pub fn id(&self) -> RouterId {
        self.id
    }

    /// The core that owns it (as of its creation or last move through this handle).
    pub fn core(&self) -> usize {
        self.core
    }

    pub fn create_plain_transport(&self, options: PlainTransportOptions) -> Result<Transport, ApiError> {
        let request = Request::CreatePlainTransport {
            router: self.id,
            listen_ip: options.listen_ip,
            port: options.port,
            shared_port: options.shared_port,
            comedia: options.comedia,
            comedia_source: options.comedia_source,
        };
        match self.sc.call(request)? {
            Response::Transport { id, local } => {
                Ok(Transport { sc: self.sc.clone(), id, router: self.id, local })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Hands the router to `core` while media flows; returns the move call's wall time on the
    /// control thread in µs (`move_us`).
    pub fn move_to(&mut self, core: usize) -> Result<u64, ApiError> {
        match self.sc.call(Request::MoveRouter { router: self.id, core })? {
            Response::Moved { core, move_us, .. } => {
                self.core = core;
                Ok(move_us)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Its transports, producers and consumers as the model holds them.
    pub fn dump(&self) -> Result<RouterDump, ApiError> {
        match self.sc.call(Request::DumpRouter { router: self.id })? {
            Response::Dump(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// Closes the router and everything in it.
    pub fn close(self) -> Result<(), ApiError> {
        self.sc.call(Request::CloseRouter { router: self.id }).map(|_| ())
    }
}

/// A plain RTP transport.
#[derive(Debug, Clone)]
pub struct Transport {
    sc: Shardcast,
    id: TransportId,
    router: RouterId,
    local: SocketAddr,
}

impl Transport {
    pub fn id(&self) -> TransportId {
        self.id
    }

    pub fn router_id(&self) -> RouterId {
        self.router
    }

    /// Where it receives RTP/RTCP.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sets the remote address media is sent to and accepted from.
    pub fn connect(&self, remote: SocketAddr) -> Result<(), ApiError> {
        self.sc.call(Request::ConnectTransport { transport: self.id, remote }).map(|_| ())
    }

    /// A producer: the packets of `options.ssrc` arriving on this transport.
    pub fn produce(&self, options: ProducerOptions) -> Result<Producer, ApiError> {
        let request = Request::Produce {
            transport: self.id,
            kind: options.kind,
            ssrc: options.ssrc,
            payload_type: options.payload_type,
            clock_rate: options.clock_rate,
            paused: options.paused,
        };
        match self.sc.call(request)? {
            Response::Producer { id } => Ok(Producer { sc: self.sc.clone(), id }),
            other => Err(unexpected(other)),
        }
    }

    /// A consumer of `producer` (of the same router), sending from this transport.
    pub fn consume(&self, producer: ProducerId, paused: bool) -> Result<Consumer, ApiError> {
        match self.sc.call(Request::Consume { transport: self.id, producer, paused })? {
            Response::Consumer { id, ssrc, payload_type } => {
                Ok(Consumer { sc: self.sc.clone(), id, producer, ssrc, payload_type })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Closes the transport, its producers (with their consumers) and its consumers.
    pub fn close(self) -> Result<(), ApiError> {
        self.sc.call(Request::CloseTransport { transport: self.id }).map(|_| ())
    }
}

/// A producer.
#[derive(Debug, Clone)]
pub struct Producer {
    sc: Shardcast,
    id: ProducerId,
}

impl Producer {
    pub fn id(&self) -> ProducerId {
        self.id
    }

    /// Returns once every core holding it (and its consumers) stopped forwarding it.
    pub fn pause(&self) -> Result<(), ApiError> {
        self.sc.call(Request::PauseProducer { producer: self.id }).map(|_| ())
    }

    pub fn resume(&self) -> Result<(), ApiError> {
        self.sc.call(Request::ResumeProducer { producer: self.id }).map(|_| ())
    }

    /// Closes the producer and its consumers (and the producers piped from it; closing a piped
    /// producer closes its pipe).
    pub fn close(self) -> Result<(), ApiError> {
        self.sc.call(Request::CloseProducer { producer: self.id }).map(|_| ())
    }

    /// Pipes this producer into `router` (mediasoup's `pipeToRouter`): returns the piped
    /// producer there — the existing one if the pair is already piped — once it is live.
    pub fn pipe_to_router(&self, router: &Router) -> Result<Producer, ApiError> {
        match self.sc.call(Request::PipeToRouter { producer: self.id, router: router.id })? {
            Response::Pipe { id, .. } => Ok(Producer { sc: self.sc.clone(), id }),
            other => Err(unexpected(other)),
        }
    }
}

/// A consumer.
#[derive(Debug, Clone)]
pub struct Consumer {
    sc: Shardcast,
    id: ConsumerId,
    producer: ProducerId,
    ssrc: Ssrc,
    payload_type: PayloadType,
}

impl Consumer {
    pub fn id(&self) -> ConsumerId {
        self.id
    }

    pub fn producer_id(&self) -> ProducerId {
        self.producer
    }

    /// The SSRC its packets carry.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    pub fn payload_type(&self) -> PayloadType {
        self.payload_type
    }

    pub fn pause(&self) -> Result<(), ApiError> {
        self.sc.call(Request::PauseConsumer { consumer: self.id }).map(|_| ())
    }

    pub fn resume(&self) -> Result<(), ApiError> {
        self.sc.call(Request::ResumeConsumer { consumer: self.id }).map(|_| ())
    }

    /// Re-points it at `producer` (of its router, same kind and clock rate): see
    /// [`Shardcast::switch_consumer_producer`]. [`producer_id`](Self::producer_id) is `producer`
    /// once it returns `Ok`.
    pub fn switch_producer(&mut self, producer: ProducerId) -> Result<(), ApiError> {
        self.sc.switch_consumer_producer(self.id, producer)?;
        self.producer = producer;
        Ok(())
    }

    pub fn close(self) -> Result<(), ApiError> {
        self.sc.call(Request::CloseConsumer { consumer: self.id }).map(|_| ())
    }
}
