//! A config checked against a host: every error names the field and the fix; warnings say what
//! is unwise (`shardcast tune --config` shows both).

use super::*;
use crate::pinning::{Finding, Severity};
use crate::tune::host::cap;

impl Config {
    /// Checks the config against this host: `Err` lists every error (field, problem, fix).
    pub fn validate(&self) -> Result<(), String> {
        self.validate_on(&HostFacts::current())
    }

    /// Checks the config against `host`.
    pub fn validate_on(&self, host: &HostFacts) -> Result<(), String> {
        let errors: Vec<String> = self
            .check(host)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Everything wrong (errors) or unwise (warnings) with this config on `host`.
    pub fn check(&self, host: &HostFacts) -> Vec<Finding> {
        let (_, mut out) = pinning::resolve(&self.cores, self.media.nic.as_deref(), host);
        let (lo, hi) = self.media.port_range;
        if lo > hi || (lo == 0) != (hi == 0) {
            out.push(Finding::error(
                "media.port_range",
                format!("({lo}, {hi}) is not a range"),
                "write [low, high] with low <= high, or [0, 0] for ephemeral ports",
            ));
        }
        for (field, v) in [
            ("api.core_deadline_ms", self.api.core_deadline_ms),
            ("api.request_deadline_ms", self.api.request_deadline_ms),
        ] {
            if v == 0 {
                out.push(Finding::error(
                    field,
                    "api deadlines must be positive",
                    "set it to a number of milliseconds > 0",
                ));
            }
        }
        for (field, v) in [
            ("ring_capacity", self.ring_capacity),
            ("api.queue", self.api.queue),
            ("api.event_buffer", self.api.event_buffer),
        ] {
            if v == 0 {
                out.push(Finding::error(
                    field,
                    "must be positive",
                    "set it to 1 or more (the default is in tuning/default.toml)",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.rtcp.retransmission_share) {
            out.push(Finding::error(
                "rtcp.retransmission_share",
                "is a fraction of a consumer's media bytes",
                "use a value in 0..=1 (above 1, NACKs could draw more than the stream itself)",
            ));
        }
        if !(0.0..=1.0).contains(&self.rebalancer.threshold) {
            out.push(Finding::error(
                "rebalancer.threshold",
                "is a fraction of one core",
                "use a value in 0..=1",
            ));
        }
        if lo != 0 && lo < 1024 {
            out.push(Finding::error(
                "media.port_range",
                format!("({lo}, {hi}) includes privileged ports (< 1024)"),
                "use ports from 1024 up",
            ));
        }
        let api = &self.api;
        for (field, v) in [
            ("api.header_timeout_ms", api.header_timeout_ms),
            ("api.max_connections", api.max_connections as u64),
        ] {
            if v == 0 {
                out.push(Finding::error(field, "must be positive", "set it to 1 or more"));
            }
        }
        if api.request_timeout_ms <= api.request_deadline_ms {
            out.push(Finding::error(
                "api.request_timeout_ms",
                format!("{} does not exceed api.request_deadline_ms ({}), which a call may wait for the control thread", api.request_timeout_ms, api.request_deadline_ms),
                "make it larger than api.request_deadline_ms",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            out.push(Finding::error(
                "log_level",
                format!("{:?}: {e}", self.log_level),
                "use error, warn, info, debug or trace",
            ));
        }
        for (field, policy) in [
            ("cores.data_plane_policy", self.cores.data_plane_policy),
            ("cores.control_policy", self.cores.control_policy),
        ] {
            if let Policy::Fifo(p) = policy {
                if !(1..=99).contains(&p) {
                    out.push(Finding::error(
                        field,
                        format!("SCHED_FIFO priority {p} is outside 1..=99"),
                        "use { fifo = 1 } .. { fifo = 99 }; 10-50 leaves room for the kernel's own threads",
                    ));
                } else if !host.has_cap(cap::SYS_NICE) {
                    out.push(Finding::warning(field, "SCHED_FIFO needs CAP_SYS_NICE, which this process lacks (unless RLIMIT_RTPRIO allows it, the cores will not start)", "AmbientCapabilities=CAP_SYS_NICE in the unit, or use \"other\""));
                }
            }
        }
        let forced = host.has_cap(cap::NET_ADMIN);
        for (field, want, sysctl) in [
            ("media.recv_buffer", self.media.recv_buffer, "net.core.rmem_max"),
            ("media.send_buffer", self.media.send_buffer, "net.core.wmem_max"),
        ] {
            if let Some(max) = host.sysctl_u64(sysctl) {
                if want as u64 > max && !forced {
                    let problem = format!("{want} bytes is above {sysctl} = {max}, and without CAP_NET_ADMIN (SO_RCVBUFFORCE/SO_SNDBUFFORCE) the kernel clamps it to {max}");
                    let fix = format!("sysctl -w {sysctl}={want} (shardcast tune --apply), or grant CAP_NET_ADMIN, or lower {field}");
                    out.push(if self.media.require_buffers {
                        Finding::error(field, problem, fix)
                    } else {
                        Finding::warning(field, problem, fix)
                    });
                }
            }
        }
        out
    }
}
