//! The command/event protocol between the control thread and the cores.
//!
//! Every mutation reaches a core only inside a [`CommandBatch`]. A core applies a batch whole,
//! between packet batches, in sequence order, and answers with exactly one [`BatchReply`]: either
//! every command was applied, or none was (the batch is validated before anything changes) and the
//! reply names the first offending command. Commands whose target is already gone are harmless:
//! they report [`Outcome::NotFound`] and do not reject the batch.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

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
    /// Comedia is trust-on-first-use: whoever sends the first valid packet of a producer's SSRC
    /// becomes the remote. Narrow it with `comedia_source`, or connect explicitly.
    pub comedia: bool,
    /// With `comedia`: only a packet from this prefix may latch (the port is learnt, the
    /// address is not), as SIP media relays restrict where media may come from.
    pub comedia_source: Option<IpPrefix>,
}

/// An IP prefix, `203.0.113.0/24` or `2001:db8::/32` (a bare address is a host prefix). Built
/// only valid: the length fits the family and no host bit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    /// `addr/len`; refused when `len` exceeds the family's width or `addr` has host bits set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, CommandError> {
        let addr = addr.to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        if len > width {
            return Err(CommandError::argument("prefix length exceeds the address width"));
        }
        let prefix = Self { addr, len };
        if prefix.network(addr) != addr {
            return Err(CommandError::argument("prefix has host bits set"));
        }
        Ok(prefix)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` lies inside the prefix (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.network(ip) == self.addr
    }

    /// `ip` with every bit past the prefix length cleared (same family as `ip`).
    fn network(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::from((u32::from(a) & mask).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                IpAddr::from((u128::from(a) & mask).to_be_bytes())
            }
        }
    }
}

impl FromStr for IpPrefix {
    type Err = CommandError;

    /// `address/length` or a bare address.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr =
            addr.parse().map_err(|_| CommandError::argument("not an IP address or address/length"))?;
        let len = match len {
            Some(l) => l.parse().map_err(|_| CommandError::argument("prefix length is not a number"))?,
            None if addr.to_canonical().is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, len)
    }
}

impl core::fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
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
    /// Re-points a consumer at another producer of its router, of the same kind and clock rate
    /// (mediasoup users' cascade failover): the consumer keeps its SSRC and payload type, its
    /// sequence continues and its timestamps are re-based by the elapsed time
    /// (`RtpRewriter::switch_source`); it follows the new producer's paused state; a video
    /// producer is asked for a keyframe (a PLI at its next forwarded packet, throttled as any
    /// keyframe request). Switching to the producer it follows changes nothing.
    SwitchConsumerProducer {
        router: RouterId,
        consumer: ConsumerId,
        producer: ProducerId,
    },
    /// Shared-port steering, sent to every core *but* the owner: datagrams on the shared port
    /// that match `key` belong to `router` on core `core` and are carried there through the
    /// inter-core ring. `core: None` removes the entry.
    SetSteering {
        router: RouterId,
        key: SteerKey,
        core: Option<u16>,
    },
    /// A piped producer of `router`: its packets come from the pipe out of `source`, not from
    /// a transport (`shard/pipe.rs`). Same options as its source (SSRC, payload type, paused).
    CreatePipedProducer {
        router: RouterId,
        producer: ProducerId,
        options: ProducerOptions,
        source: PipeEnd,
    },
    /// Pipes `producer` of `router` to the piped producer `target`: each packet it routes is
    /// also delivered to `target` (in the same pass on the same core, through the hop ring to
    /// another).
    AddPipe {
        router: RouterId,
        producer: ProducerId,
        target: PipeEnd,
    },
    /// Stops piping `producer` of `router` to the piped producer `target`.
    RemovePipe {
        router: RouterId,
        producer: ProducerId,
        target: ProducerId,
    },
    /// Router `moved` (the other end of pipes of `router`'s producers) is now on core `core`:
    /// pipes of `router` to or from it reach it there (sent in a move's second phase).
    RetargetPipes {
        router: RouterId,
        moved: RouterId,
        core: u16,
    },
}

/// One end of a pipe: producer `producer` of router `router`, owned by core `core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipeEnd {
    pub router: RouterId,
    pub producer: ProducerId,
    pub core: u16,
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
            | Command::SwitchConsumerProducer { router, .. }
            | Command::SetSteering { router, .. }
            | Command::CreatePipedProducer { router, .. }
            | Command::AddPipe { router, .. }
            | Command::RemovePipe { router, .. }
            | Command::RetargetPipes { router, .. } => *router,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_prefix_parses_validates_and_matches() {
        let p: IpPrefix = "203.0.113.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "203.0.113.0/24");
        assert!(p.contains("203.0.113.77".parse().unwrap()));
        assert!(p.contains("::ffff:203.0.113.1".parse().unwrap()), "IPv4-mapped IPv6 is IPv4");
        assert!(!p.contains("203.0.114.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let host: IpPrefix = "192.0.2.7".parse().unwrap();
        assert_eq!((host.prefix_len(), host.contains("192.0.2.7".parse().unwrap())), (32, true));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let any: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("198.51.100.1".parse().unwrap()));
        let v6: IpPrefix = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert_eq!("2001:db8::1".parse::<IpPrefix>().unwrap().prefix_len(), 128);
        for bad in ["203.0.113.1/24", "10.0.0.0/33", "::/129", "10.0.0.0/x", "nope", "10.0.0.0/"] {
            let e = bad.parse::<IpPrefix>().unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
