//! The daemon's configuration: TOML with an embedded default, overridden by the CLI.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shardcast_core::shard::RtcpLimits;
use shardcast_dataplane::io::SchedPolicy;

use crate::model::{Placement, Quotas};
use crate::pinning::{self, Pinning};
use crate::tune::host::HostFacts;

mod check;
mod reload;
pub use reload::RELOADABLE;

/// The embedded default: runs on a fresh machine.
pub const DEFAULT_TOML: &str = include_str!("../../../tuning/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub cores: CoresConfig,
    pub media: MediaConfig,
    pub api: ApiConfig,
    pub rebalancer: RebalancerConfig,
    pub rtcp: RtcpConfig,
    /// error, warn, info, debug or trace, or an `EnvFilter` directive (`info,shardcast=debug`).
    pub log_level: String,
    /// "text" (coloured only on a terminal) or "json" (one object per line, for log shippers).
    pub log_format: LogFormat,
    /// Capacity of each control → core ring, in batches.
    pub ring_capacity: usize,
    /// How new routers are placed on cores: "least_loaded" (fewest routers) or "round_robin".
    pub placement: Placement,
    /// Seed for consumer SSRC allocation.
    pub seed: u32,
    /// Enables test hooks (`StallCore`); never in production.
    pub allow_test_hooks: bool,
    /// How many objects the daemon and each router may hold (`model::Quotas`).
    pub quotas: Quotas,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A thread's CPU: a CPU id, "first" (the lowest CPU the process may use) or "none" (not pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CpuChoiceRepr", into = "CpuChoiceRepr")]
pub enum CpuChoice {
    Cpu(usize),
    First,
    Unpinned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum CpuChoiceRepr {
    Cpu(i64),
    Word(String),
}

impl TryFrom<CpuChoiceRepr> for CpuChoice {
    type Error = String;
    fn try_from(r: CpuChoiceRepr) -> Result<Self, String> {
        match r {
            CpuChoiceRepr::Cpu(n) => {
                usize::try_from(n).map(CpuChoice::Cpu).map_err(|_| format!("cpu {n} is negative"))
            }
            CpuChoiceRepr::Word(w) if w == "first" => Ok(CpuChoice::First),
            CpuChoiceRepr::Word(w) if w == "none" => Ok(CpuChoice::Unpinned),
            CpuChoiceRepr::Word(w) => Err(format!(
                "{w:?}: expected a CPU id, \"first\" (the lowest allowed CPU) or \"none\" (not pinned)"
            )),
        }
    }
}

impl From<CpuChoice> for CpuChoiceRepr {
    fn from(c: CpuChoice) -> Self {
        match c {
            CpuChoice::Cpu(n) => CpuChoiceRepr::Cpu(n as i64),
            CpuChoice::First => CpuChoiceRepr::Word("first".into()),
            CpuChoice::Unpinned => CpuChoiceRepr::Word("none".into()),
        }
    }
}

/// A thread kind's scheduling policy: "other" (SCHED_OTHER) or `{ fifo = 1..99 }` (SCHED_FIFO at
/// that priority; needs CAP_SYS_NICE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Other,
    Fifo(u8),
}

impl From<Policy> for SchedPolicy {
    fn from(p: Policy) -> SchedPolicy {
        match p {
            Policy::Other => SchedPolicy::Other,
            Policy::Fifo(n) => SchedPolicy::Fifo(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoresConfig {
    /// CPUs of the data-plane cores, one core each. Empty: every allowed CPU but the control
    /// and API ones (on `media.nic`'s NUMA node when it is known and `nic_local`).
    pub data_plane: Vec<usize>,
    /// Pin the threads (false: `data_plane.len()` unpinned cores, nothing pinned).
    pub pin: bool,
    /// CPU of the control thread.
    pub control: CpuChoice,
    /// CPU of the HTTP API thread (and its blocking pool).
    pub api: CpuChoice,
    /// The control or API CPU may also be a data-plane CPU (say so: it costs the core latency).
    pub control_on_data_plane: bool,
    /// Keep the default data-plane CPUs on `media.nic`'s NUMA node.
    pub nic_local: bool,
    /// Scheduling policy of the data-plane core threads.
    pub data_plane_policy: Policy,
    /// Scheduling policy of the control thread.
    pub control_policy: Policy,
}

impl Default for CoresConfig {
    fn default() -> Self {
        CoresConfig {
            data_plane: Vec::new(),
            pin: true,
            control: CpuChoice::First,
            api: CpuChoice::First,
            control_on_data_plane: false,
            nic_local: true,
            data_plane_policy: Policy::Other,
            control_policy: Policy::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address of the shared media port (SO_REUSEPORT on every core); port 0 picks one.
    pub listen: SocketAddr,
    /// Range for per-transport ports; (0, 0): ephemeral ports.
    pub port_range: (u16, u16),
    pub recv_buffer: usize,
    pub send_buffer: usize,
    /// A buffer the kernel would clamp (above `net.core.rmem_max`/`wmem_max` without
    /// CAP_NET_ADMIN) is an error instead of a warning.
    pub require_buffers: bool,
    /// Steer shared-port flows to their owner core in the kernel (reuseport eBPF; needs root or
    /// CAP_BPF, else a warning and software hops).
    pub kernel_steering: bool,
    /// The network interface media arrives on (`eth0`), for NUMA placement and `shardcast tune`.
    pub nic: Option<String>,
    /// Addresses API callers may give as a transport's `listen_ip`. Empty (the default): the
    /// shared port's IP (`listen`) and loopback. Explicit transport ports must lie in
    /// `port_range`; nothing binds below 1024.
    #[serde(default)]
    pub allowed_listen_ips: Vec<IpAddr>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 40000)),
            port_range: (40100, 40999),
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
            require_buffers: false,
            kernel_steering: true,
            nic: None,
            allowed_listen_ips: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Bearer token required on every call when set.
    pub token: Option<String>,
    /// How long a core may take to apply a batch before the call fails naming it.
    pub core_deadline_ms: u64,
    /// How long an API caller waits for the control thread.
    pub request_deadline_ms: u64,
    pub max_body_bytes: usize,
    /// Events kept per subscriber before the oldest are dropped.
    pub event_buffer: usize,
    /// API calls queued for the control thread before callers get "busy".
    pub queue: usize,
    /// A request's head must arrive within this, counted from when the connection waits for it
    /// (accepted, or the previous response sent): a slow or silent connection is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// A request (its body and the call) must be answered within this, else 408.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Open API connections at most; more wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// File descriptors kept for media sockets: `max_connections` is lowered at start so that
    /// RLIMIT_NOFILE minus the connections leaves at least this many.
    #[serde(default = "default_media_fd_reserve")]
    pub media_fd_reserve: usize,
}

fn default_header_timeout() -> u64 {
    5_000
}
fn default_request_timeout() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    4_096
}
fn default_media_fd_reserve() -> usize {
    // The default transports quota (one socket each) plus the cores' own descriptors.
    Quotas::default().transports + 384
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            token: None,
            core_deadline_ms: 1000,
            request_deadline_ms: 3000,
            max_body_bytes: 65536,
            event_buffer: 1024,
            queue: 1024,
            header_timeout_ms: default_header_timeout(),
            request_timeout_ms: default_request_timeout(),
            max_connections: default_max_connections(),
            media_fd_reserve: default_media_fd_reserve(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RebalancerConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    /// Move when the busy fraction of the hottest and coldest core differ by more than this.
    pub threshold: f64,
    /// At least this long between two moves (hysteresis).
    pub min_interval_ms: u64,
}

impl Default for RebalancerConfig {
    fn default() -> Self {
        RebalancerConfig { enabled: true, interval_ms: 1000, threshold: 0.25, min_interval_ms: 5000 }
    }
}

/// What peers' RTCP may make a core send (issue 12: NACK amplification); each excess is counted
/// under its own drop reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtcpConfig {
    /// A packet is resent to one consumer, and a sequence number asked of its producer, at most
    /// once per this interval (or the consumer's RTT, if longer).
    pub nack_interval_ms: u64,
    /// Retransmissions to a consumer are at most this fraction of the media bytes forwarded to
    /// it (plus the burst).
    pub retransmission_share: f64,
    /// Retransmission bytes a consumer may draw at once after a quiet period.
    pub retransmission_burst_bytes: u32,
    /// Most retransmissions one incoming RTCP datagram may draw.
    pub retransmissions_per_datagram: u32,
    /// A producer's sender reports are fanned out at most once per this interval.
    pub sender_report_interval_ms: u64,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        let l = RtcpLimits::default();
        RtcpConfig {
            nack_interval_ms: l.nack_interval_us / 1000,
            retransmission_share: f64::from(l.retransmission_share_permille) / 1000.0,
            retransmission_burst_bytes: l.retransmission_burst_bytes,
            retransmissions_per_datagram: l.retransmissions_per_datagram,
            sender_report_interval_ms: l.sender_report_interval_us / 1000,
        }
    }
}

impl RtcpConfig {
    /// The cores' limits.
    pub fn limits(&self) -> RtcpLimits {
        RtcpLimits {
            nack_interval_us: self.nack_interval_ms.saturating_mul(1000),
            retransmission_share_permille: (self.retransmission_share.clamp(0.0, 1.0) * 1000.0).round()
                as u32,
            retransmission_burst_bytes: self.retransmission_burst_bytes,
            retransmissions_per_datagram: self.retransmissions_per_datagram,
            sender_report_interval_us: self.sender_report_interval_ms.saturating_mul(1000),
        }
    }
}

/// The defaults of every field; `tuning/default.toml` spells them out (a test keeps them equal).
impl Default for Config {
    fn default() -> Self {
        Config {
            cores: CoresConfig::default(),
            media: MediaConfig::default(),
            api: ApiConfig::default(),
            rebalancer: RebalancerConfig::default(),
            rtcp: RtcpConfig::default(),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            ring_capacity: 256,
            placement: Placement::LeastLoaded,
            seed: 24301,
            allow_test_hooks: false,
            quotas: Quotas::default(),
        }
    }
}

impl Config {
    /// Parses a TOML config (every field optional) without checking it against the host.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| format!("config: {e}"))
    }

    /// Parses and validates a TOML config against this host.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let c = Config::parse(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Where each thread runs on `host`.
    pub fn pinning(&self, host: &HostFacts) -> Pinning {
        pinning::resolve(&self.cores, self.media.nic.as_deref(), host).0
    }

    /// The data-plane cores on this host: `Some(cpu)` when pinned.
    pub fn data_plane_cpus(&self) -> Vec<Option<usize>> {
        self.pinning(&HostFacts::current()).data_plane
    }

    /// The control thread's CPU on this host (`None`: not pinned).
    pub fn control_cpu(&self) -> Option<usize> {
        self.pinning(&HostFacts::current()).control
    }

    /// The data-plane threads' scheduling policy.
    pub fn data_plane_policy(&self) -> SchedPolicy {
        self.cores.data_plane_policy.into()
    }

    pub fn core_deadline(&self) -> Duration {
        Duration::from_millis(self.api.core_deadline_ms)
    }

    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.api.request_deadline_ms)
    }

    /// A config for tests and embedding: `cores` unpinned cores, everything on 127.0.0.1 with
    /// ephemeral ports, rebalancer off.
    pub fn for_tests(cores: usize) -> Config {
        let mut c = Config {
            cores: CoresConfig { data_plane: (0..cores).collect(), pin: false, ..CoresConfig::default() },
            ..Config::default()
        };
        c.media.listen = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 0);
        c.media.port_range = (0, 0);
        c.api.listen = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 0);
        c.rebalancer.enabled = false;
        c.allow_test_hooks = true;
        c
    }
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_round_trips() {
        let c = Config::default();
        assert_eq!(
            Config::from_toml(DEFAULT_TOML).unwrap(),
            c,
            "tuning/default.toml spells out the defaults"
        );
        let again = Config::from_toml(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(c, again);
        assert!(!c.data_plane_cpus().is_empty());
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let bad = DEFAULT_TOML.replace("port_range = [40100, 40999]", "port_range = [500, 10]");
        assert!(Config::from_toml(&bad).unwrap_err().contains("port_range"));
        let unknown = format!("{DEFAULT_TOML}\nbogus = 1\n");
        assert!(Config::from_toml(&unknown).unwrap_err().contains("bogus"));
        let cpu = DEFAULT_TOML.replace("data_plane = []", "data_plane = [4096]");
        assert!(Config::from_toml(&cpu).unwrap_err().contains("cpu 4096"));
        let policy = DEFAULT_TOML.replace("placement = \"least_loaded\"", "placement = \"random\"");
        let err = Config::from_toml(&policy).unwrap_err();
        assert!(err.contains("random") && err.contains("least_loaded"), "{err}");
    }

    #[test]
    fn rtcp_limits_are_read_and_checked() {
        assert_eq!(Config::default().rtcp.limits(), RtcpLimits::default());
        let c = Config::from_toml("[rtcp]\nretransmission_share = 0.1\nnack_interval_ms = 250\n").unwrap();
        let l = c.rtcp.limits();
        assert_eq!((l.retransmission_share_permille, l.nack_interval_us), (100, 250_000));
        assert_eq!(l.retransmission_burst_bytes, RtcpLimits::default().retransmission_burst_bytes);
        let err = Config::from_toml("[rtcp]\nretransmission_share = 2.0\n").unwrap_err();
        assert!(err.contains("rtcp.retransmission_share"), "{err}");
    }

    #[test]
    fn placement_policy_is_read() {
        assert_eq!(Config::default().placement, Placement::LeastLoaded);
        let rr = DEFAULT_TOML.replace("placement = \"least_loaded\"", "placement = \"round_robin\"");
        assert_eq!(Config::from_toml(&rr).unwrap().placement, Placement::RoundRobin);
    }
}
