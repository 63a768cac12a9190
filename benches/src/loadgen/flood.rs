//! The flood (issue 12): legitimate streams at a fraction of capacity while a seeded mix of
//! hostile datagrams, at a multiple of the legitimate packet rate, hits the same ports.
//!
//! The legitimate side is an ordinary [`run`] (profile set up through the daemon's API, pacing,
//! per-stream accounting); the flood is its [`DuringHook`], so it runs exactly over the measured
//! window. The hook learns the topology from the router's dump (`GET /routers/{R}`), sends the
//! hostile classes from three sources (the legitimate sender's own address and two other
//! sockets; the consumers' own addresses for [`HostileClass::NackFromConsumer`]) to the shared
//! port, the producers' transports and the consumers' transports, and once the legitimate
//! sender has stopped, waits for the relay to drain and takes the "after" readings while the
//! router (and so its sockets) still exists.
//!
//! Attribution, as [`Conservation`] checks it:
//! - the relay's identity, per core: `Δpackets_in = Δrouted + Δrtcp_terminated + Δhopped_out +
//!   Σ Δingress drops` (exact with `/stats`' `rtcp_terminated`; a relay that does not publish it
//!   gets it inferred as the residual, which must lie in `0..=` the consumer NACKs sent, the only datagrams of the run the
//!   relay can act on without forwarding them: the legitimate side sends RTP only);
//! - the sockets' identity: `legit sent + hostile sent = (Δpackets_in − Δhopped_in) + kernel
//!   drops on the relay's own sockets` (`/proc/net/udp`, by the inodes of the relay's fds);
//! - no hostile datagram is forwarded: `Δrouted ≤ legit sent`;
//! - every ingress drop and every terminated RTCP packet of the run is attributed to the flood;
//!   `hostile sent − that` is what the kernel dropped of the flood, which must lie in
//!   `0..=` the kernel drops on the relay's sockets; the rest of those drops hit legit packets
//!   (`legit sent − Δrouted`);
//! - legit loss at the receivers is at most what the kernel dropped (on the relay's sockets and
//!   on the receivers'); egress drops (e.g. `send_would_block`) are reported beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use shardcast_core::drop_reason::DropReason;
use shardcast_dataplane::io::{pin_current_thread, SendBatch};

use crate::loadgen::cpu::UdpCounters;
use crate::loadgen::run::{run, DuringContext, DuringHook, RunConfig, RunResult, MAGIC};
use crate::loadgen::target::Target;

/// The hostile datagram classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostileClass {
    /// 2..=11 bytes of an RTP-looking header.
    Truncated,
    /// A full RTP packet with version 1 or 3.
    WrongVersion,
    /// P set, the padding count larger than the payload.
    BadPadding,
    /// X set, the extension's length past the end of the datagram.
    BadExtension,
    /// CC = 15 and fewer than 15 CSRCs present.
    BadCsrcCount,
    /// RTCP whose length field disagrees with the datagram (too long, or trailing bytes).
    RtcpBadLength,
    /// A STUN binding request (RFC 5389 magic cookie).
    StunLike,
    /// A DTLS 1.2 handshake record header and random bytes.
    DtlsLike,
    /// Valid RTP carrying a legitimate producer's SSRC and payload type, from another address.
    LegitSsrcWrongSource,
    /// Valid RTP with an SSRC no producer has.
    UnknownSsrc,
    /// 2049..=9000 bytes (larger than the relay's receive slot), legitimate SSRC.
    Oversized,
    /// A NACK (64 FCIs, BLP 0xFFFF) about a consumer's SSRC, to its transport, from another
    /// address.
    NackSpoofed,
    /// The same NACK from the consumer's own address: the relay acts on it (retransmissions).
    NackFromConsumer,
}

impl HostileClass {
    pub const ALL: [HostileClass; 13] = [
        HostileClass::Truncated,
        HostileClass::WrongVersion,
        HostileClass::BadPadding,
        HostileClass::BadExtension,
        HostileClass::BadCsrcCount,
        HostileClass::RtcpBadLength,
        HostileClass::StunLike,
        HostileClass::DtlsLike,
        HostileClass::LegitSsrcWrongSource,
        HostileClass::UnknownSsrc,
        HostileClass::Oversized,
        HostileClass::NackSpoofed,
        HostileClass::NackFromConsumer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostileClass::Truncated => "truncated",
            HostileClass::WrongVersion => "wrong_version",
            HostileClass::BadPadding => "bad_padding",
            HostileClass::BadExtension => "bad_extension",
            HostileClass::BadCsrcCount => "bad_csrc_count",
            HostileClass::RtcpBadLength => "rtcp_bad_length",
            HostileClass::StunLike => "stun_like",
            HostileClass::DtlsLike => "dtls_like",
            HostileClass::LegitSsrcWrongSource => "legit_ssrc_wrong_source",
            HostileClass::UnknownSsrc => "unknown_ssrc",
            HostileClass::Oversized => "oversized",
            HostileClass::NackSpoofed => "nack_spoofed",
            HostileClass::NackFromConsumer => "nack_from_consumer",
        }
    }

    /// The relay's reasons this class is expected to land in (documentation for the report; the
    /// checks do not depend on it).
    pub fn expected(self) -> &'static str {
        match self {
            HostileClass::Truncated | HostileClass::Oversized => "malformed / truncated",
            HostileClass::WrongVersion | HostileClass::StunLike | HostileClass::DtlsLike => "not_rtp",
            HostileClass::BadPadding | HostileClass::BadExtension | HostileClass::BadCsrcCount => "malformed",
            HostileClass::RtcpBadLength => "malformed",
            HostileClass::LegitSsrcWrongSource => "source_mismatch / unknown_transport",
            HostileClass::UnknownSsrc => "unknown_ssrc / unknown_transport / source_mismatch",
            HostileClass::NackSpoofed => "source_mismatch / unknown_transport",
            HostileClass::NackFromConsumer => "rtcp_terminated (+ nack limits)",
        }
    }
}

/// A flood run.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The legitimate load (its target must be shardcast; its `during` is replaced).
    pub legit: RunConfig,
    /// Hostile datagrams per second = `flood_factor` × the legitimate input rate.
    pub flood_factor: f64,
    /// NACK storms from the consumers' own addresses, datagrams per second (part of the flood's
    /// rate; each can ask for up to 1088 retransmissions).
    pub consumer_nack_pps: f64,
    /// The relay's log (its stderr redirected to a file): lines written during the run are
    /// counted.
    pub relay_log: Option<PathBuf>,
    /// Pin the flood thread to this CPU.
    pub flood_cpu: Option<usize>,
    /// After the flood, send this many datagrams of each class alone (legit traffic stopped)
    /// and read where each class landed (0: no probe).
    pub probe_each: u64,
}

/// Where one class landed when sent alone, after the flood.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeFigures {
    pub sent: u64,
    /// Forwarded: a hostile datagram must never be.
    pub routed: u64,
    /// Terminated (published, or inferred as the identity's residual).
    pub terminated: i128,
    /// Drops that moved, by reason.
    pub drops: BTreeMap<String, u64>,
}

/// Sent figures of one class.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ClassFigures {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams the kernel refused (full send buffer, EMSGSIZE, …): never reached the relay.
    pub refused: u64,
}

/// The relay's counters summed over its cores, or their change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RelayCounters {
    pub packets_in: u64,
    pub routed: u64,
    /// `None`: `/stats` does not publish it.
    pub rtcp_terminated: Option<u64>,
    pub hopped_out: u64,
    pub hopped_in: u64,
    pub outputs: u64,
    pub packets_out: u64,
    pub drops: BTreeMap<String, u64>,
}

impl RelayCounters {
    fn from_core(c: &Value) -> RelayCounters {
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        RelayCounters {
            packets_in: n("packets_in"),
            routed: n("routed"),
            rtcp_terminated: c["rtcp_terminated"].as_u64(),
            hopped_out: n("hopped_out"),
            hopped_in: n("hopped_in"),
            outputs: n("outputs"),
            packets_out: n("packets_out"),
            drops: c["drops"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default(),
        }
    }

    /// One entry per core of a `/stats` document.
    pub fn per_core(stats: &Value) -> Vec<RelayCounters> {
        stats["cores"].as_array().map(|v| v.iter().map(Self::from_core).collect()).unwrap_or_default()
    }

    pub fn sum(cores: &[RelayCounters]) -> RelayCounters {
        let mut s = RelayCounters { rtcp_terminated: Some(0), ..Default::default() };
        for c in cores {
            s.packets_in += c.packets_in;
            s.routed += c.routed;
            s.rtcp_terminated = s.rtcp_terminated.zip(c.rtcp_terminated).map(|(a, b)| a + b);
            s.hopped_out += c.hopped_out;
            s.hopped_in += c.hopped_in;
            s.outputs += c.outputs;
            s.packets_out += c.packets_out;
            for (k, v) in &c.drops {
                *s.drops.entry(k.clone()).or_insert(0) += v;
            }
        }
        if cores.is_empty() {
            s.rtcp_terminated = None;
        }
        s
    }

    /// `self − before`, field by field.
    pub fn since(&self, before: &RelayCounters) -> RelayCounters {
        RelayCounters {
            packets_in: self.packets_in.saturating_sub(before.packets_in),
            routed: self.routed.saturating_sub(before.routed),
            rtcp_terminated: self
                .rtcp_terminated
                .zip(before.rtcp_terminated)
                .map(|(a, b)| a.saturating_sub(b)),
            hopped_out: self.hopped_out.saturating_sub(before.hopped_out),
            hopped_in: self.hopped_in.saturating_sub(before.hopped_in),
            outputs: self.outputs.saturating_sub(before.outputs),
            packets_out: self.packets_out.saturating_sub(before.packets_out),
            drops: self
                .drops
                .iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(before.drops.get(k).copied().unwrap_or(0))))
                .collect(),
        }
    }

    /// Σ drops of whole ingress datagrams (reasons the core crate marks as not egress; a name
    /// it does not know is counted as ingress and listed by [`Self::unknown_reasons`]).
    pub fn ingress_drops(&self) -> u64 {
        self.drops.iter().filter(|(k, _)| !is_egress_name(k)).map(|(_, v)| v).sum()
    }

    pub fn egress_drops(&self) -> u64 {
        self.drops.iter().filter(|(k, _)| is_egress_name(k)).map(|(_, v)| v).sum()
    }

    pub fn unknown_reasons(&self) -> Vec<String> {
        self.drops
            .keys()
            .filter(|k| !DropReason::ALL.iter().any(|r| r.as_str() == k.as_str()))
            .cloned()
            .collect()
    }

    /// `packets_in − routed − hopped_out − Σ ingress drops`: what the relay terminated.
    pub fn ingress_residual(&self) -> i128 {
        self.packets_in as i128 - self.routed as i128 - self.hopped_out as i128 - self.ingress_drops() as i128
    }
}

fn is_egress_name(name: &str) -> bool {
    DropReason::ALL.iter().any(|r| r.as_str() == name && r.is_egress())
}

/// The conservation checks (see the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct Conservation {
    /// Per core: `Δpackets_in − Δrouted − Δhopped_out − Σ Δingress drops`.
    pub core_residuals: Vec<i128>,
    /// `Δrtcp_terminated` when published, else the residual (inferred).
    pub terminated: i128,
    pub terminated_published: bool,
    /// The relay's identity holds on every core.
    pub relay_identity: bool,
    /// `legit sent + hostile sent − (Δpackets_in − Δhopped_in) − kernel drops on the relay's
    /// sockets`: 0 when every datagram sent is accounted for.
    pub socket_residual: i128,
    /// `Δrouted − legit sent`: > 0 means hostile datagrams were forwarded.
    pub routed_excess: i128,
    /// Σ Δingress drops + terminated: what the relay counted of the flood.
    pub hostile_counted: i128,
    /// `hostile sent − hostile_counted`: the flood's datagrams the kernel dropped (inferred).
    pub hostile_kernel_dropped: i128,
    /// `legit sent − Δrouted`: legit datagrams the relay did not route (kernel drops on its
    /// sockets when everything balances).
    pub legit_not_routed: i128,
    /// Legit copies lost at the receivers (window) minus what the kernel explains: datagrams
    /// refused at send or not routed (× the stream's receivers) and drops on the receivers'
    /// sockets. > 0 means the relay lost legit copies itself (e.g. egress drops).
    pub legit_loss_beyond_kernel: i128,
    /// Every check above holds.
    pub holds: bool,
    /// Drop reasons `/stats` named that this build's core does not know (counted as ingress).
    pub unknown_reasons: Vec<String>,
}

/// Figures of a flood run.
#[derive(Debug, Clone, Serialize)]
pub struct FloodResult {
    pub legit: RunResult,
    pub flood_factor: f64,
    /// Hostile datagrams per second asked for.
    pub flood_pps_target: f64,
    /// Sent over the flood's duration.
    pub flood_pps_sent: f64,
    pub flood_secs: f64,
    pub hostile: BTreeMap<HostileClass, ClassFigures>,
    pub hostile_sent: u64,
    pub hostile_refused: u64,
    /// Hostile datagrams sent per destination kind (shared, producer, consumer).
    pub hostile_by_destination: BTreeMap<&'static str, u64>,
    pub relay_before: RelayCounters,
    pub relay_after: RelayCounters,
    pub relay_delta: RelayCounters,
    /// Drops on the relay's own sockets (`/proc/net/udp`, by inode), over the run.
    pub kernel_relay_socket_drops: u64,
    /// Drops on the generator's receiver sockets, over the run.
    pub kernel_receiver_socket_drops: u64,
    /// `/proc/net/snmp` deltas over the run (the whole host: other processes count too).
    pub udp_rcvbuf_errors: u64,
    pub udp_in_errors: u64,
    /// `GET /stats` still answers and the pid is alive after the run.
    pub relay_alive: bool,
    /// Lines the relay's log gained during the run (None: no log given).
    pub relay_log_lines: Option<u64>,
    /// A few of them.
    pub relay_log_sample: Vec<String>,
    pub conservation: Conservation,
    /// Per class, sent alone after the flood (see [`FloodConfig::probe_each`]).
    pub probe: BTreeMap<HostileClass, ProbeFigures>,
}

/// What the hook hands back.
#[derive(Debug, Default)]
struct HookOutput {
    classes: BTreeMap<HostileClass, ClassFigures>,
    by_destination: BTreeMap<&'static str, u64>,
    secs: f64,
    after: Option<Value>,
    relay_sockets_after: BTreeMap<u64, u64>,
    receiver_drops: u64,
    probe: BTreeMap<HostileClass, ProbeFigures>,
    error: Option<String>,
}

/// xorshift64*: seeded and cheap.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// The relay's topology as the hook sees it.
#[derive(Debug, Clone)]
struct Topology {
    shared: SocketAddr,
    /// Producer transports' locals and their producers' (ssrc, payload type).
    producers: Vec<(SocketAddr, u32, u8)>,
    /// Consumer transports: (local, index of the receiver socket that is its remote, consumer
    /// SSRCs on it).
    consumers: Vec<(SocketAddr, Option<usize>, Vec<u32>)>,
}

fn api_get(api: &str, token: &Option<String>, path: &str) -> Result<Value, String> {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut r = c.get(format!("{api}{path}"));
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    let resp = r.send().map_err(|e| format!("GET {path}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {path}: {}", resp.status()));
    }
    resp.json().map_err(|e| format!("GET {path}: {e}"))
}

fn topology(
    api: &str,
    token: &Option<String>,
    router: u64,
    receivers: &[SocketAddr],
) -> Result<Topology, String> {
    let stats = api_get(api, token, "/stats")?;
    let mut shared: SocketAddr =
        stats["shared_port"].as_str().and_then(|s| s.parse().ok()).ok_or("/stats has no shared_port")?;
    if shared.ip().is_unspecified() {
        shared.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let dump = api_get(api, token, &format!("/routers/{router}"))?;
    let empty = Vec::new();
    let transports = dump["transports"].as_array().unwrap_or(&empty);
    let producers_v = dump["producers"].as_array().unwrap_or(&empty);
    let consumers_v = dump["consumers"].as_array().unwrap_or(&empty);
    let local = |t: &Value| t["local"].as_str().and_then(|s| s.parse::<SocketAddr>().ok());
    let mut producers = Vec::new();
    for p in producers_v {
        let Some(t) = transports.iter().find(|t| t["id"] == p["transport"]) else { continue };
        if let (Some(l), Some(ssrc), Some(pt)) = (local(t), p["ssrc"].as_u64(), p["payload_type"].as_u64()) {
            producers.push((l, ssrc as u32, pt as u8));
        }
    }
    let mut consumers = Vec::new();
    for t in transports.iter().filter(|t| t["consumers"].as_array().is_some_and(|c| !c.is_empty())) {
        let Some(l) = local(t) else { continue };
        let remote = t["remote"].as_str().and_then(|s| s.parse::<SocketAddr>().ok());
        let receiver = remote.and_then(|r| receivers.iter().position(|a| *a == r));
        let ssrcs = consumers_v
            .iter()
            .filter(|c| c["transport"] == t["id"])
            .filter_map(|c| c["ssrc"].as_u64().map(|s| s as u32))
            .collect();
        consumers.push((l, receiver, ssrcs));
    }
    if producers.is_empty() || consumers.is_empty() {
        return Err(format!("router {router}: no producer or consumer transports in its dump"));
    }
    Ok(Topology { shared, producers, consumers })
}

/// `socket:[inode]` of an fd of `pid` (`self` for this process).
fn socket_inodes(pid: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return out };
    for e in dir.flatten() {
        if let Ok(link) = std::fs::read_link(e.path()) {
            let l = link.to_string_lossy();
            if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(i) = i.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// `inode → drops` of every UDP socket (`/proc/net/udp` and `udp6`).
fn udp_socket_drops() -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(f) = std::fs::File::open(file) else { continue };
        for line in std::io::BufReader::new(f).lines().skip(1).map_while(Result::ok) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if let (Some(inode), Some(drops)) =
                (cols.get(9).and_then(|v| v.parse().ok()), cols.last().and_then(|v| v.parse().ok()))
            {
                out.insert(inode, drops);
            }
        }
    }
    out
}

fn drops_of(inodes: &BTreeSet<u64>, table: &BTreeMap<u64, u64>) -> BTreeMap<u64, u64> {
    inodes.iter().filter_map(|i| table.get(i).map(|d| (*i, *d))).collect()
}

fn fd_inode(s: &UdpSocket) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).ok()?;
    link.to_string_lossy().strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

fn rtp_header(b: &mut [u8], first: u8, pt: u8, seq: u16, ssrc: u32) {
    b[0] = first;
    b[1] = pt & 0x7f;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// A NACK (RFC 4585 §6.2.1): 64 FCIs, BLP 0xFFFF, about `media_ssrc`. 268 bytes.
fn nack(b: &mut [u8], media_ssrc: u32, first_pid: u16) -> usize {
    let fcis = 64usize;
    let len = 12 + 4 * fcis;
    b[0] = 0x81; // V = 2, FMT = 1 (Generic NACK)
    b[1] = 205; // RTPFB
    b[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    b[4..8].copy_from_slice(&0x5eed_0001u32.to_be_bytes());
    b[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    for i in 0..fcis {
        let at = 12 + 4 * i;
        b[at..at + 2].copy_from_slice(&first_pid.wrapping_add(17 * i as u16).to_be_bytes());
        b[at + 2..at + 4].copy_from_slice(&0xffffu16.to_be_bytes());
    }
    len
}

/// Source of a datagram: the legit sender, attacker `i`, or receiver `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Legit,
    Attacker(usize),
    Receiver(usize),
}

/// Writes one datagram of `class` into `b`: `(len, source, destination, destination kind)`.
fn build(
    class: HostileClass,
    rng: &mut Rng,
    topo: &Topology,
    b: &mut [u8],
    n: u64,
) -> Option<(usize, Source, SocketAddr, &'static str)> {
    let (plocal, ssrc, pt) = topo.producers[rng.below(topo.producers.len())];
    let consumer = &topo.consumers[rng.below(topo.consumers.len())];
    let attacker = Source::Attacker(rng.below(2));
    // Any source, the legit sender's included: a malformed packet from the right address with
    // the right SSRC must not be forwarded either.
    let any = if rng.below(3) == 0 { Source::Legit } else { attacker };
    // RTP-ish classes hit the producers' ports, the shared port and the consumers' ports.
    let (dest, kind) = match rng.below(4) {
        0 => (topo.shared, "shared"),
        1 => (consumer.0, "consumer"),
        _ => (plocal, "producer"),
    };
    let seq = n as u16;
    let out = match class {
        HostileClass::Truncated => {
            let len = 2 + rng.below(10);
            rng.fill(&mut b[..len]);
            b[0] = 0x80;
            b[1] = pt;
            (len, any, dest, kind)
        }
        HostileClass::WrongVersion => {
            let len = 12 + 100;
            rng.fill(&mut b[..len]);
            rtp_header(b, if n.is_multiple_of(2) { 0x40 } else { 0xc0 }, pt, seq, ssrc);
            (len, any, dest, kind)
        }
        HostileClass::BadPadding => {
            let len = 12 + 20;
            rng.fill(&mut b[..len]);
            rtp_header(b, 0xa0, pt, seq, ssrc);
            b[len - 1] = if n.is_multiple_of(2) { 255 } else { 0 };
            (len, any, dest, kind)
        }
        HostileClass::BadExtension => {
            let len = 12 + 4 + 8;
            rng.fill(&mut b[..len]);
            rtp_header(b, 0x90, pt, seq, ssrc);
            b[12..14].copy_from_slice(&0xbedeu16.to_be_bytes());
            let words = 3 + rng.below(0xfff0) as u16;
            b[14..16].copy_from_slice(&words.to_be_bytes());
            (len, any, dest, kind)
        }
        HostileClass::BadCsrcCount => {
            let len = 12 + 4 * rng.below(15);
            rng.fill(&mut b[..len]);
            rtp_header(b, 0x8f, pt, seq, ssrc);
            (len, any, dest, kind)
        }
        HostileClass::RtcpBadLength => {
            let len = 8 + 24 + 4 * rng.below(4);
            rng.fill(&mut b[..len]);
            b[0] = 0x81;
            b[1] = 201; // RR, one block
            let words: u16 = if n.is_multiple_of(2) { 200 } else { 1 }; // too long, or trailing bytes
            b[2..4].copy_from_slice(&words.to_be_bytes());
            b[4..8].copy_from_slice(&consumer.2.first().copied().unwrap_or(ssrc).to_be_bytes());
            (len, any, dest, kind)
        }
        HostileClass::StunLike => {
            let len = 20 + 8;
            rng.fill(&mut b[..len]);
            b[0..2].copy_from_slice(&1u16.to_be_bytes());
            b[2..4].copy_from_slice(&8u16.to_be_bytes());
            b[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes());
            (len, any, dest, kind)
        }
        HostileClass::DtlsLike => {
            let len = 13 + 60;
            rng.fill(&mut b[..len]);
            b[0] = 22;
            b[1] = 0xfe;
            b[2] = 0xfd;
            b[11..13].copy_from_slice(&60u16.to_be_bytes());
            (len, any, dest, kind)
        }
        HostileClass::LegitSsrcWrongSource => {
            let len = 12 + 200;
            rng.fill(&mut b[..len]);
            rtp_header(b, 0x80, pt, seq, ssrc);
            // Generator-marked, with a sequence number no window holds: a receiver ignores it.
            b[12..16].copy_from_slice(&MAGIC);
            b[20..28].copy_from_slice(&(u64::MAX / 2 + n).to_be_bytes());
            let (dest, kind) = if rng.below(3) == 0 { (topo.shared, "shared") } else { (plocal, "producer") };
            (len, attacker, dest, kind)
        }
        HostileClass::UnknownSsrc => {
            let len = 12 + 200;
            rng.fill(&mut b[..len]);
            let mut other = rng.next() as u32;
            while topo.producers.iter().any(|p| p.1 == other) {
                other = other.wrapping_add(1);
            }
            rtp_header(b, 0x80, pt, seq, other);
            (len, any, dest, kind)
        }
        HostileClass::Oversized => {
            let len = 2049 + rng.below(9000 - 2049);
            rng.fill(&mut b[..len]);
            rtp_header(b, 0x80, pt, seq, ssrc);
            b[12..16].copy_from_slice(&MAGIC);
            b[20..28].copy_from_slice(&(u64::MAX / 2 + n).to_be_bytes());
            (len, any, dest, kind)
        }
        HostileClass::NackSpoofed => {
            let media = consumer.2.get(rng.below(consumer.2.len())).copied().unwrap_or(ssrc);
            (nack(b, media, seq), attacker, consumer.0, "consumer")
        }
        HostileClass::NackFromConsumer => {
            let with_receiver: Vec<_> = topo.consumers.iter().filter(|c| c.1.is_some()).collect();
            let c = with_receiver.get(rng.below(with_receiver.len()))?;
            let media = c.2.get(rng.below(c.2.len())).copied()?;
            (nack(b, media, seq), Source::Receiver(c.1?), c.0, "consumer")
        }
    };
    Some(out)
}

/// Slot size of the flood's buffers (the largest class is 9000 bytes).
const SLOT: usize = 9216;
/// Datagrams per pacing tick, at most.
const TICK_MAX: usize = 256;

/// Sends the flood until `stop` (or `deadline`); then drains and reads the "after" figures.
#[allow(clippy::too_many_arguments)]
fn flood_thread(
    cx: DuringContext,
    api: &str,
    token: &Option<String>,
    pps: f64,
    consumer_nack_pps: f64,
    seed: u64,
    deadline: Instant,
    relay_inodes_before: &BTreeSet<u64>,
    pid: Option<u32>,
    probe_each: u64,
) -> HookOutput {
    let mut out = HookOutput::default();
    let receiver_addrs: Vec<SocketAddr> = cx.receivers.iter().filter_map(|r| r.local_addr().ok()).collect();
    let topo = match cx
        .router
        .ok_or_else(|| "no router".to_string())
        .and_then(|r| topology(api, token, r, &receiver_addrs))
    {
        Ok(t) => t,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let attackers: Vec<UdpSocket> = (0..2).filter_map(|_| UdpSocket::bind("127.0.0.1:0").ok()).collect();
    let Some(legit) = cx.sender.as_ref() else {
        out.error = Some("no sender socket".into());
        return out;
    };
    if attackers.len() < 2 {
        out.error = Some("cannot bind the attackers' sockets".into());
        return out;
    }
    let fd_of = |s: Source| match s {
        Source::Legit => Some(legit.as_raw_fd()),
        Source::Attacker(i) => attackers.get(i).map(|a| a.as_raw_fd()),
        Source::Receiver(i) => cx.receivers.get(i).map(|r| r.as_raw_fd()),
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut tx = Tx {
        bufs: vec![vec![0u8; SLOT]; TICK_MAX],
        batch: SendBatch::new(TICK_MAX),
        tick: Vec::with_capacity(TICK_MAX),
    };
    let general: Vec<HostileClass> =
        HostileClass::ALL.iter().copied().filter(|c| *c != HostileClass::NackFromConsumer).collect();
    let nack_share = if pps > 0.0 { (consumer_nack_pps / pps).clamp(0.0, 1.0) } else { 0.0 };
    let start = Instant::now();
    let mut n: u64 = 0;
    while !cx.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let due = (start.elapsed().as_secs_f64() * pps) as u64;
        if due <= n {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let count = ((due - n) as usize).min(TICK_MAX);
        let pick = |rng: &mut Rng| {
            let unit = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            if unit < nack_share {
                HostileClass::NackFromConsumer
            } else {
                general[rng.below(general.len())]
            }
        };
        tx.send(count, pick, &mut rng, &topo, n, &fd_of, &mut out.classes, &mut out.by_destination);
        n += count as u64;
    }
    out.secs = start.elapsed().as_secs_f64();
    out.after = drained(api, token);
    let table = udp_socket_drops();
    let mut inodes = pid.map(|p| socket_inodes(&p.to_string())).unwrap_or_default();
    inodes.extend(relay_inodes_before.iter().copied());
    out.relay_sockets_after = drops_of(&inodes, &table);
    out.receiver_drops = cx.receivers.iter().filter_map(fd_inode).filter_map(|i| table.get(&i)).sum();
    // The probe: each class alone, in small paced batches, the legit sender stopped.
    for class in HostileClass::ALL {
        if probe_each == 0 {
            break;
        }
        let Some(before) = drained(api, token) else { continue };
        let (mut classes, mut dests) = (BTreeMap::new(), BTreeMap::new());
        let mut sent = 0;
        while sent < probe_each {
            let k = (probe_each - sent).min(8) as usize;
            tx.send(k, |_: &mut Rng| class, &mut rng, &topo, n, &fd_of, &mut classes, &mut dests);
            sent += k as u64;
            n += k as u64;
            std::thread::sleep(Duration::from_millis(1));
        }
        let Some(after) = drained(api, token) else { continue };
        let d = RelayCounters::sum(&RelayCounters::per_core(&after))
            .since(&RelayCounters::sum(&RelayCounters::per_core(&before)));
        out.probe.insert(
            class,
            ProbeFigures {
                sent: classes.get(&class).map_or(0, |f: &ClassFigures| f.sent),
                routed: d.routed,
                terminated: d.rtcp_terminated.map_or_else(|| d.ingress_residual(), i128::from),
                drops: d.drops.into_iter().filter(|(_, v)| *v > 0).collect(),
            },
        );
    }
    out
}

/// `/stats` once the relay has read everything: `packets_in` unchanged over two readings 60 ms
/// apart (cores publish before each wait), within 5 s.
fn drained(api: &str, token: &Option<String>) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut last, mut stable, mut seen): (Option<u64>, u32, Option<Value>) = (None, 0, None);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(60));
        let Ok(s) = api_get(api, token, "/stats") else { continue };
        let now = RelayCounters::sum(&RelayCounters::per_core(&s)).packets_in;
        if last == Some(now) {
            stable += 1;
            if stable >= 2 {
                return Some(s);
            }
        } else {
            stable = 0;
        }
        last = Some(now);
        seen = Some(s);
    }
    seen
}

/// The flood's send buffers.
struct Tx {
    bufs: Vec<Vec<u8>>,
    batch: SendBatch,
    /// (source, class, destination kind, buffer index, len, dest)
    tick: Vec<(Source, HostileClass, &'static str, usize, usize, SocketAddr)>,
}

impl Tx {
    /// Builds `count` datagrams (classes from `pick`) and sends them, one sendmmsg per (source,
    /// class) so the result is that class's.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        count: usize,
        pick: impl Fn(&mut Rng) -> HostileClass,
        rng: &mut Rng,
        topo: &Topology,
        n: u64,
        fd_of: &dyn Fn(Source) -> Option<i32>,
        classes: &mut BTreeMap<HostileClass, ClassFigures>,
        by_destination: &mut BTreeMap<&'static str, u64>,
    ) {
        self.tick.clear();
        for k in 0..count.min(TICK_MAX) {
            let class = pick(rng);
            if let Some((len, src, dest, kind)) = build(class, rng, topo, &mut self.bufs[k], n + k as u64) {
                self.tick.push((src, class, kind, k, len, dest));
            }
        }
        self.tick.sort_by_key(|t| (t.0, t.1));
        let tick = &self.tick;
        let mut i = 0;
        while i < tick.len() {
            let (src, class) = (tick[i].0, tick[i].1);
            let j = tick[i..].iter().position(|t| (t.0, t.1) != (src, class)).map_or(tick.len(), |p| i + p);
            let Some(fd) = fd_of(src) else {
                i = j;
                continue;
            };
            let mut scope = self.batch.scope();
            for t in &tick[i..j] {
                scope.push(t.5, &[], &self.bufs[t.3][..t.4]);
            }
            let r = scope.flush(fd);
            let f = classes.entry(class).or_default();
            f.sent += r.sent as u64;
            f.refused += (r.failed + r.would_block) as u64;
            // sendmmsg sends in order and skips a refused one: the first `sent` are attributed
            // to their destinations (exact unless one in the middle was refused).
            for t in tick[i..j].iter().take(r.sent) {
                *by_destination.entry(t.2).or_insert(0) += 1;
            }
            i = j;
        }
    }
}

fn log_lines(path: &Option<PathBuf>) -> Option<Vec<String>> {
    let p = path.as_ref()?;
    let text = std::fs::read_to_string(p).unwrap_or_default();
    Some(text.lines().map(str::to_string).collect())
}

/// Runs the flood: the legitimate load of `config.legit` with the flood over its window.
pub fn flood(config: &FloodConfig) -> Result<FloodResult, String> {
    let Target::Shardcast { api, token } = &config.legit.target else {
        return Err("the flood drives shardcast only (its /stats counts the drops)".into());
    };
    let (api, token) = (api.clone(), token.clone());
    let stats_before = api_get(&api, &token, "/stats")?;
    let pid = stats_before["pid"].as_u64().map(|p| p as u32);
    let relay_before_cores = RelayCounters::per_core(&stats_before);
    let relay_inodes_before = pid.map(|p| socket_inodes(&p.to_string())).unwrap_or_default();
    let relay_sockets_before = drops_of(&relay_inodes_before, &udp_socket_drops());
    let udp_before = UdpCounters::read();
    let log_before = log_lines(&config.relay_log).map_or(0, |l| l.len());

    let (streams, _) = config.legit.profile.streams(config.legit.rate, config.legit.size, config.legit.seed);
    let legit_input_pps: f64 = streams.iter().map(|s| s.pps).sum();
    let flood_pps = legit_input_pps * config.flood_factor;
    let shared: Arc<Mutex<Option<HookOutput>>> = Arc::new(Mutex::new(None));
    let mut legit = config.legit.clone();
    let deadline = Instant::now() + legit.warmup + legit.duration + Duration::from_secs(30);
    {
        let (shared, api, token) = (shared.clone(), api.clone(), token.clone());
        let (seed, nack_pps, cpu, probe) =
            (legit.seed, config.consumer_nack_pps, config.flood_cpu, config.probe_each);
        let inodes = relay_inodes_before.clone();
        legit.during = Some(DuringHook(Arc::new(move |cx: DuringContext| {
            if let Some(c) = cpu {
                let _ = pin_current_thread(c);
            }
            let out =
                flood_thread(cx, &api, &token, flood_pps, nack_pps, seed, deadline, &inodes, pid, probe);
            if let Ok(mut g) = shared.lock() {
                *g = Some(out);
            }
            Vec::new()
        })));
    }
    let result = run(&legit)?;
    let hook = shared.lock().ok().and_then(|mut g| g.take()).ok_or("the flood never ran (no window?)")?;
    if let Some(e) = hook.error {
        return Err(format!("flood: {e}"));
    }
    let stats_after = hook.after.clone().ok_or("no /stats after the flood")?;
    let relay_alive = api_get(&api, &token, "/stats").is_ok()
        && pid.is_none_or(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
                .unwrap_or(false)
        });
    let udp = UdpCounters::read().since(&udp_before);
    let log = log_lines(&config.relay_log);
    let log_new: Vec<String> =
        log.as_ref().map(|l| l.iter().skip(log_before).cloned().collect()).unwrap_or_default();

    let after_cores = RelayCounters::per_core(&stats_after);
    let core_deltas: Vec<RelayCounters> = after_cores
        .iter()
        .enumerate()
        .map(|(i, a)| a.since(relay_before_cores.get(i).unwrap_or(&RelayCounters::default())))
        .collect();
    let relay_before = RelayCounters::sum(&relay_before_cores);
    let relay_after = RelayCounters::sum(&after_cores);
    let delta = RelayCounters::sum(&core_deltas);
    let kernel_relay: u64 = hook
        .relay_sockets_after
        .iter()
        .map(|(i, d)| d.saturating_sub(relay_sockets_before.get(i).copied().unwrap_or(0)))
        .sum();
    let hostile_sent: u64 = hook.classes.values().map(|c| c.sent).sum();
    let hostile_refused: u64 = hook.classes.values().map(|c| c.refused).sum();
    let consumer_nacks = hook.classes.get(&HostileClass::NackFromConsumer).map_or(0, |c| c.sent);

    let conservation = {
        let core_residuals: Vec<i128> = core_deltas
            .iter()
            .map(|c| c.ingress_residual() - c.rtcp_terminated.map_or(0, i128::from))
            .collect();
        let published = delta.rtcp_terminated.is_some();
        let terminated = match delta.rtcp_terminated {
            Some(t) => t as i128,
            None => delta.ingress_residual(),
        };
        let relay_identity = if published {
            core_residuals.iter().all(|r| *r == 0)
        } else {
            // Inferred: each core's residual is what it terminated, at most the NACKs the relay
            // could act on.
            core_residuals.iter().all(|r| *r >= 0) && terminated <= consumer_nacks as i128
        };
        let legit_sent = result.sent_total as i128;
        let socket_in = delta.packets_in as i128 - delta.hopped_in as i128;
        let socket_residual = legit_sent + hostile_sent as i128 - socket_in - kernel_relay as i128;
        let routed_excess = delta.routed as i128 - legit_sent;
        let hostile_counted = delta.ingress_drops() as i128 + terminated;
        let hostile_kernel_dropped = hostile_sent as i128 - hostile_counted;
        let legit_not_routed = legit_sent - delta.routed as i128;
        // A legit datagram lost before the relay routed it costs one copy per receiver.
        let fan = result.streams.iter().map(|s| s.receivers).max().unwrap_or(1) as i128;
        let legit_loss_beyond_kernel = result.lost as i128
            - (result.send_refused as i128 + legit_not_routed.max(0)) * fan
            - hook.receiver_drops as i128;
        let holds = relay_identity
            && socket_residual == 0
            && routed_excess <= 0
            && (0..=kernel_relay as i128).contains(&hostile_kernel_dropped)
            && legit_loss_beyond_kernel <= 0;
        Conservation {
            core_residuals,
            terminated,
            terminated_published: published,
            relay_identity,
            socket_residual,
            routed_excess,
            hostile_counted,
            hostile_kernel_dropped,
            legit_not_routed,
            legit_loss_beyond_kernel,
            holds,
            unknown_reasons: delta.unknown_reasons(),
        }
    };
    Ok(FloodResult {
        flood_factor: config.flood_factor,
        flood_pps_target: flood_pps,
        flood_pps_sent: if hook.secs > 0.0 { hostile_sent as f64 / hook.secs } else { 0.0 },
        flood_secs: hook.secs,
        hostile: hook.classes,
        hostile_sent,
        hostile_refused,
        hostile_by_destination: hook.by_destination,
        relay_before,
        relay_after,
        relay_delta: delta,
        kernel_relay_socket_drops: kernel_relay,
        kernel_receiver_socket_drops: hook.receiver_drops,
        udp_rcvbuf_errors: udp.rcvbuf_errors,
        udp_in_errors: udp.in_errors,
        relay_alive,
        relay_log_lines: log.map(|_| log_new.len() as u64),
        relay_log_sample: log_new.into_iter().take(5).collect(),
        conservation,
        probe: hook.probe,
        legit: result,
    })
}

/// The report: markdown tables.
pub fn flood_summary(r: &FloodResult) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let l = &r.legit;
    let _ = writeln!(
        s,
        "flood ×{:.0}: hostile {:.0} pps asked, {:.0} pps sent over {:.1} s ({} sent, {} refused by the kernel); legit {:?} at {:.0} pps in",
        r.flood_factor, r.flood_pps_target, r.flood_pps_sent, r.flood_secs, r.hostile_sent, r.hostile_refused, l.profile, l.input_pps
    );
    let _ = writeln!(s, "relay alive after the run: {}", if r.relay_alive { "yes" } else { "NO" });
    let _ = writeln!(
        s,
        "\n| legit stream | ssrc | receivers | sent | expected | delivered | lost | dup | reordered |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for st in &l.streams {
        let _ = writeln!(
            s,
            "| {} | {:#010x} | {} | {} | {} | {} | {} | {} | {} |",
            st.id,
            st.ssrc,
            st.receivers,
            st.sent,
            st.expected,
            st.delivered,
            st.lost,
            st.duplicated,
            st.reordered
        );
    }
    let _ = writeln!(
        s,
        "| all | | | {} | {} | {} | {} ({:.4} %) | {} | {} |",
        l.streams.iter().map(|x| x.sent).sum::<u64>(),
        l.expected_out,
        l.delivered,
        l.lost,
        l.loss_pct,
        l.duplicated,
        l.reordered
    );
    let _ = writeln!(s, "\n| hostile class | sent | refused | lands in (expected) |");
    let _ = writeln!(s, "|---|---:|---:|---|");
    for (c, f) in &r.hostile {
        let _ = writeln!(s, "| {} | {} | {} | {} |", c.as_str(), f.sent, f.refused, c.expected());
    }
    let dest: Vec<String> = r.hostile_by_destination.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ =
        writeln!(s, "| **total** | {} | {} | to: {} |", r.hostile_sent, r.hostile_refused, dest.join(", "));
    let _ = writeln!(s, "\n| relay counter | before | after | Δ |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let (b, a, d) = (&r.relay_before, &r.relay_after, &r.relay_delta);
    for (name, x, y, z) in [
        ("packets_in", b.packets_in, a.packets_in, d.packets_in),
        ("routed", b.routed, a.routed, d.routed),
        ("hopped_out", b.hopped_out, a.hopped_out, d.hopped_out),
        ("hopped_in", b.hopped_in, a.hopped_in, d.hopped_in),
        ("outputs", b.outputs, a.outputs, d.outputs),
        ("packets_out", b.packets_out, a.packets_out, d.packets_out),
    ] {
        let _ = writeln!(s, "| {name} | {x} | {y} | {z} |");
    }
    match d.rtcp_terminated {
        Some(t) => {
            let _ = writeln!(
                s,
                "| rtcp_terminated | {} | {} | {t} |",
                b.rtcp_terminated.unwrap_or(0),
                a.rtcp_terminated.unwrap_or(0)
            );
        }
        None => {
            let _ = writeln!(
                s,
                "| rtcp_terminated (not in /stats: inferred) | | | {} |",
                r.conservation.terminated
            );
        }
    }
    for (k, v) in &a.drops {
        let before = b.drops.get(k).copied().unwrap_or(0);
        if *v != before || *v > 0 {
            let side = if is_egress_name(k) { "egress" } else { "ingress" };
            let _ = writeln!(s, "| drops.{k} ({side}) | {before} | {v} | {} |", v - before.min(*v));
        }
    }
    let c = &r.conservation;
    let _ = writeln!(s, "\n| check | value | holds |");
    let _ = writeln!(s, "|---|---:|---|");
    let yes = |b: bool| if b { "yes" } else { "**NO**" };
    let _ = writeln!(
        s,
        "| relay identity per core: in − routed − hopped_out − Σ ingress drops − terminated | {:?}{} | {} |",
        c.core_residuals,
        if c.terminated_published { "" } else { " (terminated inferred)" },
        yes(c.relay_identity)
    );
    let _ = writeln!(s, "| sockets: legit sent + hostile sent − (in − hopped_in) − kernel drops on the relay's sockets | {} | {} |", c.socket_residual, yes(c.socket_residual == 0));
    let _ = writeln!(
        s,
        "| routed − legit sent (hostile forwarded if > 0) | {} | {} |",
        c.routed_excess,
        yes(c.routed_excess <= 0)
    );
    let _ = writeln!(
        s,
        "| hostile counted by the relay (Σ ingress drops + terminated) | {} of {} sent | |",
        c.hostile_counted, r.hostile_sent
    );
    let _ = writeln!(
        s,
        "| hostile dropped by the kernel (sent − counted), within the relay sockets' {} drops | {} | {} |",
        r.kernel_relay_socket_drops,
        c.hostile_kernel_dropped,
        yes((0..=r.kernel_relay_socket_drops as i128).contains(&c.hostile_kernel_dropped))
    );
    let _ = writeln!(s, "| legit not routed (legit sent − routed) | {} | |", c.legit_not_routed);
    let _ = writeln!(
        s,
        "| legit copies lost − (refused + not routed) × receivers − receiver socket drops ({}) | {} | {} |",
        r.kernel_receiver_socket_drops,
        c.legit_loss_beyond_kernel,
        yes(c.legit_loss_beyond_kernel <= 0)
    );
    let _ = writeln!(
        s,
        "\nkernel: drops on the relay's sockets {}, on the receivers' {}; host-wide RcvbufErrors +{}, InErrors +{}",
        r.kernel_relay_socket_drops, r.kernel_receiver_socket_drops, r.udp_rcvbuf_errors, r.udp_in_errors
    );
    if let (Some(cpu), Some(ns)) = (l.relay_cpu_pct, l.relay_ns_per_pkt) {
        let _ = writeln!(s, "relay cpu {cpu:.1}% over the window ({ns:.0} ns per delivered legit packet)");
    }
    match r.relay_log_lines {
        Some(n) => {
            let _ = writeln!(s, "relay log: {n} lines during the run");
            for line in &r.relay_log_sample {
                let _ = writeln!(s, "  {line}");
            }
        }
        None => {
            let _ = writeln!(s, "relay log: not captured (--relay-log FILE: the daemon's stderr)");
        }
    }
    if !c.unknown_reasons.is_empty() {
        let _ = writeln!(s, "reasons this build does not know (counted as ingress): {:?}", c.unknown_reasons);
    }
    if !r.probe.is_empty() {
        let _ = writeln!(s, "\n| probe: class sent alone | sent | routed | terminated | drops |");
        let _ = writeln!(s, "|---|---:|---:|---:|---|");
        for (class, p) in &r.probe {
            let d: Vec<String> = p.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let routed = if p.routed > 0 { format!("**{}**", p.routed) } else { "0".into() };
            let _ = writeln!(
                s,
                "| {} | {} | {routed} | {} | {} |",
                class.as_str(),
                p.sent,
                p.terminated,
                d.join(", ")
            );
        }
    }
    let _ = writeln!(s, "conservation: {}", if c.holds { "holds" } else { "**BROKEN**" });
    s
}
