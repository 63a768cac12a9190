//! `shardcast tune`: what on this host helps or hurts the data plane, with the fix for each; a
//! config checked against the host; the safe sysctl fixes applied (dry run unless told); and a
//! pinning config proposed for the host.
//!
//! Everything here works on [`HostFacts`], read from a root directory, so the same code runs on
//! the live host and on fixtures of other machines. The checks are grouped by what they look at:
//! `cpu` (topology, cpuset, isolation, governor, the config's pinning), `net` (NIC interrupts and
//! queues, socket buffers), `kernel` (limits, io_uring, BPF, hugepages); `apply` writes the safe
//! sysctl fixes and `propose` writes a pinning config.

pub mod host;

mod apply;
mod cpu;
mod kernel;
mod net;
mod propose;

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Config;
use crate::pinning::{CpuSet, Finding, Pinning, Severity};
use host::HostFacts;

pub use apply::{apply, SysctlChange};
pub use propose::propose;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Helps, or is as it should be.
    Ok,
    /// Would help on a dedicated host; harmless as is.
    Hint,
    /// Hurts the data plane, or stops a feature.
    Bad,
    /// Not readable here (a VM without cpufreq, a container without /sys).
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Hint => "hint",
            Status::Bad => "BAD",
            Status::Unknown => "?",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub topic: String,
    pub status: Status,
    pub fact: String,
    /// What to do (empty when nothing).
    pub fix: String,
}

fn row(topic: &str, status: Status, fact: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { topic: topic.into(), status, fact: fact.into(), fix: fix.into() }
}

/// The whole report: the host's facts, the checks, and the config's findings and pinning.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub findings: Vec<Finding>,
    pub pinning: Pinning,
    pub host: HostFacts,
}

/// glommio's io_uring memory needs this much locked memory.
pub const MEMLOCK_NEEDED: u64 = 512 << 10;
/// Below this, a burst after a scheduling stall overflows the per-CPU backlog.
pub const BACKLOG_WANTED: u64 = 5000;
/// Every transport has a socket: a media server wants many descriptors.
pub const NOFILE_WANTED: u64 = 65536;

/// What every check reads: the host, the config, and the pinning the config gets on the host.
struct Inputs<'a> {
    host: &'a HostFacts,
    config: &'a Config,
    pinning: Pinning,
    /// The CPUs of all data-plane cores.
    dp: CpuSet,
    online: CpuSet,
    allowed: CpuSet,
}

/// Checks `host` for `config` (the pinning it would get, the buffers it asks for).
pub fn report(host: &HostFacts, config: &Config) -> Report {
    let pinning = config.pinning(host);
    let findings = config.check(host);
    let x = Inputs {
        host,
        config,
        dp: pinning.data_plane.iter().flatten().copied().collect(),
        pinning,
        online: host.cpus.iter().map(|c| c.id).collect(),
        allowed: host.allowed_cpus(),
    };
    let mut checks = Vec::new();
    // The table's order: `render`, `--json` and the tests see the rows in this order.
    for check in [
        cpu::cpus,
        cpu::smt,
        cpu::numa,
        cpu::cpuset,
        cpu::isolation,
        net::nics,
        net::socket_buffers,
        net::backlog,
        kernel::memlock,
        kernel::nofile,
        kernel::io_uring,
        kernel::bpf,
        cpu::governor,
        kernel::hugepages,
        cpu::control_pinning,
    ] {
        check(&x, &mut checks);
    }
    checks.extend(findings.iter().map(finding));
    Report { checks, findings, pinning: x.pinning, host: host.clone() }
}

/// A row for one of the config's findings.
fn finding(f: &Finding) -> Check {
    row(
        &format!("config {}", f.field),
        if f.severity == Severity::Error { Status::Bad } else { Status::Hint },
        f.problem.clone(),
        f.fix.clone(),
    )
}

/// The report as a table, wrapped to a terminal's width in the fix column.
pub fn render(report: &Report) -> String {
    let w_topic = report.checks.iter().map(|c| c.topic.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    let _ = writeln!(out, "{:<w_topic$}  {:<4}  {:<50}  fix", "check", "", "fact");
    let _ = writeln!(out, "{}", "-".repeat(w_topic + 64));
    for c in &report.checks {
        let _ = writeln!(out, "{:<w_topic$}  {:<4}  {:<50}  {}", c.topic, c.status.label(), c.fact, c.fix);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn render_has_a_row_per_check() {
        let host = HostFacts::read(Path::new("/nonexistent"));
        let r = report(&host, &Config::default());
        let text = render(&r);
        assert_eq!(text.lines().count(), r.checks.len() + 2);
        assert!(r.checks.iter().any(|c| c.topic == "cpus" && c.status == Status::Unknown));
    }
}
