//! The daemon's configuration: TOML with an embedded default, overridden by the CLI.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Placement, Quotas};

/// The embedded default: runs on a fresh machine.
pub const DEFAULT_TOML: &str = include_str!("../../tuning/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cores: CoresConfig,
    pub media: MediaConfig,
    pub api: ApiConfig,
    pub rebalancer: RebalancerConfig,
    #[serde(default = "default_log")]
    pub log_level: String,
    /// Capacity of each control → core ring, in batches.
    #[serde(default = "default_ring")]
    pub ring_capacity: usize,
    /// How new routers are placed on cores: "least_loaded" (fewest routers) or "round_robin".
    #[serde(default)]
    pub placement: Placement,
    /// Seed for consumer SSRC allocation.
    #[serde(default = "default_seed")]
    pub seed: u32,
    /// Enables test hooks (`StallCore`); never in production.
    #[serde(default)]
    pub allow_test_hooks: bool,
    /// How many objects the daemon and each router may hold (`model::Quotas`).
    #[serde(default)]
    pub quotas: Quotas,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresConfig {
    /// CPUs of the data-plane cores, one core each. Empty: every CPU but the control one.
    #[serde(default)]
    pub data_plane: Vec<usize>,
    /// Pin the data-plane cores (false: `data_plane.len()` unpinned cores).
    #[serde(default = "yes")]
    pub pin: bool,
    /// CPU of the control thread (none: not pinned).
    #[serde(default)]
    pub control: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Address of the shared media port (SO_REUSEPORT on every core); port 0 picks one.
    pub listen: SocketAddr,
    /// Range for per-transport ports; (0, 0): ephemeral ports.
    pub port_range: (u16, u16),
    pub recv_buffer: usize,
    pub send_buffer: usize,
    /// Steer shared-port flows to their owner core in the kernel (reuseport eBPF; needs root or
    /// CAP_BPF, else a warning and software hops). Absent: on.
    #[serde(default = "default_true")]
    pub kernel_steering: bool,
    /// Addresses API callers may give as a transport's `listen_ip`. Empty (the default): the
    /// shared port's IP (`listen`) and loopback. Explicit transport ports must lie in
    /// `port_range`; nothing binds below 1024.
    #[serde(default)]
    pub allowed_listen_ips: Vec<IpAddr>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Bearer token required on every call when set.
    #[serde(default)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalancerConfig {
    pub enabled: bool,
    pub interval_ms: u64,
    /// Move when the busy fraction of the hottest and coldest core differ by more than this.
    pub threshold: f64,
    /// At least this long between two moves (hysteresis).
    pub min_interval_ms: u64,
}

fn default_log() -> String {
    "info".into()
}
fn default_ring() -> usize {
    256
}
fn default_seed() -> u32 {
    0x5eed
}
fn yes() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        // The embedded default is part of the binary and tested below.
        Config::from_toml(DEFAULT_TOML).expect("embedded default config is valid")
    }
}

impl Config {
    /// Parses and validates a TOML config.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| format!("config: {e}"))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a config file.
    pub fn load(path: &PathBuf) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::from_toml(&text)
    }

    /// Checks what TOML's types cannot.
    pub fn validate(&self) -> Result<(), String> {
        let cpus = available_cpus();
        for c in self.cores.data_plane.iter().chain(self.cores.control.iter()) {
            if self.cores.pin && *c >= cpus {
                return Err(format!("cpu {c} does not exist on this machine ({cpus} cpus)"));
            }
        }
        let (lo, hi) = self.media.port_range;
        if lo > hi || (lo == 0) != (hi == 0) {
            return Err(format!(
                "media.port_range ({lo}, {hi}) must be (low, high) with low <= high, or (0, 0)"
            ));
        }
        if self.api.core_deadline_ms == 0 || self.api.request_deadline_ms == 0 {
            return Err("api deadlines must be positive".into());
        }
        if self.ring_capacity == 0 || self.api.queue == 0 || self.api.event_buffer == 0 {
            return Err("ring_capacity, api.queue and api.event_buffer must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.rebalancer.threshold) {
            return Err("rebalancer.threshold is a fraction of one core, 0..=1".into());
        }
        if lo != 0 && lo < 1024 {
            return Err(format!("media.port_range ({lo}, {hi}) must not include privileged ports (< 1024)"));
        }
        let api = &self.api;
        if api.header_timeout_ms == 0 || api.max_connections == 0 {
            return Err("api.header_timeout_ms and api.max_connections must be positive".into());
        }
        if api.request_timeout_ms <= api.request_deadline_ms {
            return Err(format!(
                "api.request_timeout_ms ({}) must exceed api.request_deadline_ms ({}): a call waits that long for the control thread",
                api.request_timeout_ms, api.request_deadline_ms
            ));
        }
        Ok(())
    }

    /// The data-plane cores: `Some(cpu)` when pinned.
    pub fn data_plane_cpus(&self) -> Vec<Option<usize>> {
        let mut cpus = self.cores.data_plane.clone();
        if cpus.is_empty() {
            let n = available_cpus();
            cpus = (0..n).filter(|c| Some(*c) != self.cores.control).collect();
            if cpus.is_empty() {
                cpus.push(0);
            }
        }
        cpus.into_iter().map(|c| self.cores.pin.then_some(c)).collect()
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
            cores: CoresConfig { data_plane: (0..cores).collect(), pin: false, control: None },
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
    fn placement_policy_is_read() {
        assert_eq!(Config::default().placement, Placement::LeastLoaded);
        let rr = DEFAULT_TOML.replace("placement = \"least_loaded\"", "placement = \"round_robin\"");
        assert_eq!(Config::from_toml(&rr).unwrap().placement, Placement::RoundRobin);
    }
}
