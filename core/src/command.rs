//! The command/event protocol between the control thread and the cores.
//!
//! Every mutation reaches a core only inside a [`CommandBatch`]. A core applies a batch whole,
//! between packet batches, in sequence order, and answers with exactly one [`BatchReply`]: either
//! every command was applied, or none was (the batch is validated before anything changes) and the
//! reply names the first offending command. Commands whose target is already gone are harmless:
//! they report [`Outcome::NotFound`] and do not reject the batch.

use std::net::SocketAddr;

use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

/// A socket owned by a core, by index. `SocketId::SHARED` is the shared media port (SO_REUSEPORT),
/// bound on every core; other ids are dedicated per-transport sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

impl SocketId {
    /// The shared media port, present on every core.
    pub const SHARED: SocketId = SocketId(0);

    /// True for the shared media port.
    pub fn is_shared(self) -> bool {
        self == Self::SHARED
    }
}

/// Parameters of a new plain transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainTransportOptions {
    /// The socket it receives and sends on.
    pub socket: SocketId,
    /// Where media is sent, if already known (`connect`).
    pub remote: Option<SocketAddr>,
    /// Latch the remote on the first valid packet (only if `remote` is `None`); never re-latch.
    pub comedia: bool,
}

/// Parameters of a new producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerOptions {
    pub kind: MediaKind,
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    /// RTP clock rate in Hz (timestamp units per second).
    pub clock_rate: u32,
    pub paused: bool,
}

/// Parameters of a new consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    pub producer: ProducerId,
    /// The consumer's own SSRC, chosen by the control plane.
    pub ssrc: Ssrc,
    pub payload_type: PayloadType,
    pub paused: bool,
}

/// One mutation, in mediasoup's verbs. Every command names its router so a core finds it at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateRouter {
        router: RouterId,
    },
    CloseRouter {
        router: RouterId,
    },
    CreatePlainTransport {
        router: RouterId,
        transport: TransportId,
        options: PlainTransportOptions,
    },
    ConnectTransport {
        router: RouterId,
        transport: TransportId,
        remote: SocketAddr,
    },
    CloseTransport {
        router: RouterId,
        transport: TransportId,
    },
    CreateProducer {
        router: RouterId,
        transport: TransportId,
        producer: ProducerId,
        options: ProducerOptions,
    },
    CloseProducer {
        router: RouterId,
        producer: ProducerId,
    },
    PauseProducer {
        router: RouterId,
        producer: ProducerId,
    },
    ResumeProducer {
        router: RouterId,
        producer: ProducerId,
    },
    CreateConsumer {
        router: RouterId,
        transport: TransportId,
        consumer: ConsumerId,
        options: ConsumerOptions,
    },
    CloseConsumer {
        router: RouterId,
        consumer: ConsumerId,
    },
    PauseConsumer {
        router: RouterId,
        consumer: ConsumerId,
    },
    ResumeConsumer {
        router: RouterId,
        consumer: ConsumerId,
    },
    /// Shared-port steering, sent to every core *but* the owner: datagrams on the shared port
    /// that match `key` belong to `router` on core `core` and are carried there through the
    /// inter-core ring. `core: None` removes the entry.
    SetSteering {
        router: RouterId,
        key: SteerKey,
        core: Option<u16>,
    },
}

/// What identifies a shared-port flow before its transport is known on this core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SteerKey {
    /// The remote address of a connected (or latched) transport.
    Remote(SocketAddr),
    /// An SSRC of a producer on a comedia transport waiting to latch.
    Ssrc(Ssrc),
}

impl Command {
    /// The router this command acts on.
    pub fn router(&self) -> RouterId {
        match self {
            Command::CreateRouter { router }
            | Command::CloseRouter { router }
            | Command::CreatePlainTransport { router, .. }
            | Command::ConnectTransport { router, .. }
            | Command::CloseTransport { router, .. }
            | Command::CreateProducer { router, .. }
            | Command::CloseProducer { router, .. }
            | Command::PauseProducer { router, .. }
            | Command::ResumeProducer { router, .. }
            | Command::CreateConsumer { router, .. }
            | Command::CloseConsumer { router, .. }
            | Command::PauseConsumer { router, .. }
            | Command::ResumeConsumer { router, .. }
            | Command::SetSteering { router, .. } => *router,
        }
    }
}

/// An ordered group of commands for one core, applied whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandBatch {
    /// Per-core sequence number, consecutive from 1.
    pub seq: u64,
    pub commands: Vec<Command>,
}

/// The two kinds of request error (mediasoup's TypeError vs. InvalidStateError).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's mistake: a malformed or contradictory argument.
    InvalidArgument,
    /// The request does not fit the current state (duplicate id, closed object, …).
    InvalidState,
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: &'static str,
}

impl CommandError {
    pub(crate) const fn argument(message: &'static str) -> Self {
        Self { kind: ErrorKind::InvalidArgument, message }
    }
    pub(crate) const fn state(message: &'static str) -> Self {
        Self { kind: ErrorKind::InvalidState, message }
    }
}

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self.kind {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::InvalidState => "invalid state",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

/// What one applied command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Its target was already gone; nothing changed.
    NotFound,
}

/// The single reply to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchReply {
    /// Every command applied, outcomes in command order.
    Applied { seq: u64, outcomes: Vec<Outcome> },
    /// Nothing applied: command `index` was refused.
    Rejected { seq: u64, index: usize, error: CommandError },
}

impl BatchReply {
    /// The batch sequence number this answers.
    pub fn seq(&self) -> u64 {
        match self {
            BatchReply::Applied { seq, .. } | BatchReply::Rejected { seq, .. } => *seq,
        }
    }
}

/// Things that happen on a core that the control plane must learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A comedia transport latched its remote address on its first valid packet.
    TransportLatched { router: RouterId, transport: TransportId, remote: SocketAddr },
}
