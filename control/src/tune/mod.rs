//! `shardcast tune`: what on this host helps or hurts the data plane, with the fix for each; a
//! config checked against the host; the safe sysctl fixes applied (dry run unless told); and a
//! pinning config proposed for the host.
//!
//! Everything here works on [`HostFacts`], read from a root directory, so the same code runs on
//! the live host and on fixtures of other machines.

pub mod host;

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::pinning::{format_cpulist, CpuSet, Finding, Pinning, Severity};
use host::{cap, HostFacts};

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

/// Checks `host` for `config` (the pinning it would get, the buffers it asks for).
pub fn report(host: &HostFacts, config: &Config) -> Report {
    let pinning = config.pinning(host);
    let findings = config.check(host);
    let dp: CpuSet = pinning.data_plane.iter().flatten().copied().collect();
    let mut c = Vec::new();
    let online: CpuSet = host.cpus.iter().map(|c| c.id).collect();
    let allowed = host.allowed_cpus();

    // CPUs and topology.
    if host.cpus.is_empty() {
        c.push(row("cpus", Status::Unknown, "no /sys/devices/system/cpu", ""));
    } else {
        c.push(row(
            "cpus",
            if online.len() > 1 { Status::Ok } else { Status::Hint },
            format!(
                "{} online ({}), {} physical core(s), {} socket(s)",
                online.len(),
                format_cpulist(&online),
                host.physical_cores(),
                host.packages()
            ),
            if online.len() > 1 { "" } else { "one CPU: the data plane shares it with the control thread" },
        ));
    }
    let smt: Vec<String> = host
        .cpus
        .iter()
        .filter(|cpu| !host.siblings_of(cpu.id).is_empty())
        .filter(|cpu| host.siblings_of(cpu.id).iter().all(|s| *s > cpu.id))
        .map(|cpu| {
            let mut s = host.siblings_of(cpu.id);
            s.insert(cpu.id);
            format_cpulist(&s)
        })
        .collect();
    if host.cpus.iter().all(|c| c.siblings.is_none() && c.core_id.is_none()) {
        c.push(row("smt", Status::Unknown, "no topology files", ""));
    } else if smt.is_empty() {
        c.push(row("smt", Status::Ok, "no SMT siblings", ""));
    } else {
        let shared = dp.iter().any(|a| host.siblings_of(*a).iter().any(|b| dp.contains(b)));
        c.push(row(
            "smt",
            if shared { Status::Bad } else { Status::Hint },
            format!("SMT on: sibling groups {}", smt.join(" ")),
            if shared {
                "two data-plane cores share a physical core: use one CPU per core (shardcast tune --propose)"
            } else {
                "one data-plane CPU per physical core; leave its sibling idle or to housekeeping"
            },
        ));
    }
    if host.nodes.is_empty() {
        c.push(row("numa", Status::Unknown, "no /sys/devices/system/node", ""));
    } else if host.nodes.len() == 1 {
        c.push(row("numa", Status::Ok, "one NUMA node", ""));
    } else {
        let nodes: Vec<String> =
            host.nodes.iter().map(|(n, s)| format!("node{n}: {}", format_cpulist(s))).collect();
        let nic = config.media.nic.as_deref().and_then(|n| host.nic(n));
        let (status, fix) = match nic.and_then(|n| n.numa_node) {
            Some(node) if dp.iter().all(|c| host.node_of(*c) == Some(node)) => (Status::Ok, String::new()),
            Some(node) => {
                (Status::Bad, format!("keep the data plane on node {node}, the NIC's (cores.data_plane)"))
            }
            None => (Status::Hint, "set media.nic so the data plane stays on the NIC's node".to_string()),
        };
        c.push(row("numa", status, nodes.join(", "), fix));
    }
    // The cpuset.
    let fact = match (&host.allowed, &host.cgroup_cpuset) {
        (Some(a), Some(g)) => format!(
            "allowed {} of {} (cgroup cpuset {})",
            format_cpulist(a),
            format_cpulist(&online),
            format_cpulist(g)
        ),
        (Some(a), None) => format!("allowed {} of {}", format_cpulist(a), format_cpulist(&online)),
        (None, _) => "unknown".into(),
    };
    let restricted = !allowed.is_empty() && !online.is_empty() && allowed != online;
    c.push(row(
        "cpuset",
        if host.allowed.is_none() { Status::Unknown } else { Status::Ok },
        fact,
        if restricted {
            "a cpuset is in force (taskset, container, CPUAffinity=): shardcast pins inside it"
        } else {
            ""
        },
    ));
    // Isolation.
    let iso = |name: &str, set: &Option<CpuSet>| -> Check {
        match set {
            _ if !host.cmdline_known => row(name, Status::Unknown, "no /proc/cmdline", ""),
            None => row(
                name,
                Status::Hint,
                "not set",
                format!(
                    "dedicated hosts: boot with {name}={} so nothing else runs on the data-plane CPUs (tuning/dedicated.toml)",
                    if dp.is_empty() { "<data-plane cpus>".to_string() } else { format_cpulist(&dp) }
                ),
            ),
            Some(s) if !dp.is_empty() && dp.is_subset(s) => row(name, Status::Ok, format_cpulist(s), ""),
            Some(s) => row(
                name,
                Status::Hint,
                format!("{} (data plane on {})", format_cpulist(s), format_cpulist(&dp)),
                format!("put cores.data_plane inside {}", format_cpulist(s)),
            ),
        }
    };
    c.push(iso("isolcpus", &host.isolcpus));
    c.push(iso("nohz_full", &host.nohz_full));
    // NICs: IRQ affinity and RSS queues.
    let nics: Vec<&host::Nic> = match config.media.nic.as_deref() {
        Some(name) => host.nic(name).into_iter().collect(),
        None => host.nics.iter().collect(),
    };
    if nics.is_empty() {
        c.push(row("nic", Status::Unknown, "no network device found (set media.nic)", ""));
    }
    for nic in nics {
        let on_dp: Vec<u32> = nic
            .irqs
            .iter()
            .filter(|i| i.affinity.as_ref().is_some_and(|a| !dp.is_empty() && a.is_subset(&dp)))
            .map(|i| i.irq)
            .collect();
        let spread: Vec<u32> = nic
            .irqs
            .iter()
            .filter(|i| i.affinity.as_ref().is_some_and(|a| !a.is_disjoint(&dp) && !a.is_subset(&dp)))
            .map(|i| i.irq)
            .collect();
        let topic = format!("irq {}", nic.name);
        let housekeeping: CpuSet = allowed.difference(&dp).copied().collect();
        let target = if housekeeping.is_empty() {
            "a CPU outside the data plane".to_string()
        } else {
            format_cpulist(&housekeeping)
        };
        if nic.irqs.is_empty() {
            c.push(row(&topic, Status::Unknown, "no queue interrupts found in /proc/interrupts", ""));
        } else if on_dp.is_empty() && spread.is_empty() {
            c.push(row(
                &topic,
                Status::Ok,
                format!("{} queue IRQs, none on data-plane CPUs", nic.irqs.len()),
                "",
            ));
        } else {
            let mut irqs = on_dp.clone();
            irqs.extend(&spread);
            c.push(row(
                &topic,
                Status::Hint,
                format!("{} of {} queue IRQs may run on data-plane CPUs: {irqs:?}", irqs.len(), nic.irqs.len()),
                format!(
                    "their softirq work competes with the core: echo {target} > /proc/irq/N/smp_affinity_list (and keep irqbalance off those IRQs)"
                ),
            ));
        }
        let cores = pinning.data_plane.len();
        let queues = nic.rx_queues;
        c.push(row(
            &format!("rss {}", nic.name),
            if queues == 0 {
                Status::Unknown
            } else if queues >= cores {
                Status::Ok
            } else {
                Status::Hint
            },
            format!(
                "{queues} rx / {} tx queue(s), {cores} data-plane core(s){}",
                nic.tx_queues,
                nic.numa_node.map(|n| format!(", NUMA node {n}")).unwrap_or_default()
            ),
            if queues > 0 && queues < cores {
                format!("ethtool -L {} combined {cores} (one RSS queue per data-plane core)", nic.name)
            } else {
                String::new()
            },
        ));
    }
    // Socket buffers.
    let forced = host.has_cap(cap::NET_ADMIN);
    for (name, want) in
        [("net.core.rmem_max", config.media.recv_buffer), ("net.core.wmem_max", config.media.send_buffer)]
    {
        let want = want as u64;
        c.push(match host.sysctl_u64(name) {
            None => row(name, Status::Unknown, "unreadable", ""),
            Some(v) if v >= want => row(name, Status::Ok, format!("{v} (>= the {want} asked)"), ""),
            Some(v) if forced => {
                row(name, Status::Ok, format!("{v}; CAP_NET_ADMIN forces the {want} asked past it"), "")
            }
            Some(v) => row(
                name,
                Status::Bad,
                format!("{v}: the {want}-byte buffers asked are clamped to it"),
                format!("sysctl -w {name}={want} (--apply)"),
            ),
        });
    }
    let backlog = "net.core.netdev_max_backlog";
    c.push(match host.sysctl_u64(backlog) {
        None => row(backlog, Status::Unknown, "unreadable", ""),
        Some(v) if v >= BACKLOG_WANTED => row(backlog, Status::Ok, v.to_string(), ""),
        Some(v) => row(
            backlog,
            Status::Hint,
            format!("{v}: a burst after a stall overflows it"),
            format!("sysctl -w {backlog}={BACKLOG_WANTED} (--apply)"),
        ),
    });
    // Limits.
    let raise_memlock = host.has_cap(cap::IPC_LOCK) || host.has_cap(cap::SYS_RESOURCE);
    c.push(match host.memlock {
        None => row("RLIMIT_MEMLOCK", Status::Unknown, "unreadable", ""),
        Some(l) if l.soft.is_none_or(|s| s >= MEMLOCK_NEEDED) => {
            row("RLIMIT_MEMLOCK", Status::Ok, l.to_string(), "")
        }
        Some(l) if raise_memlock || l.hard.is_none_or(|h| h >= MEMLOCK_NEEDED) => {
            row("RLIMIT_MEMLOCK", Status::Ok, format!("{l}; shardcast raises it at start"), "")
        }
        Some(l) => row(
            "RLIMIT_MEMLOCK",
            Status::Bad,
            format!("{l}: glommio needs {MEMLOCK_NEEDED}"),
            "LimitMEMLOCK=8M in the unit, or ulimit -l 8192",
        ),
    });
    c.push(match host.nofile {
        None => row("RLIMIT_NOFILE", Status::Unknown, "unreadable", ""),
        Some(l) if l.soft.is_none_or(|s| s >= NOFILE_WANTED) => {
            row("RLIMIT_NOFILE", Status::Ok, l.to_string(), "")
        }
        Some(l) => row(
            "RLIMIT_NOFILE",
            Status::Hint,
            format!("{l}: one descriptor per transport socket"),
            format!("LimitNOFILE={NOFILE_WANTED} in the unit, or ulimit -n {NOFILE_WANTED}"),
        ),
    });
    // io_uring and BPF.
    let uring = "kernel.io_uring_disabled";
    c.push(match host.sysctl(uring) {
        None => row(uring, Status::Unknown, "absent (kernel < 6.6: io_uring is on)", ""),
        Some("0") => row(uring, Status::Ok, "0: io_uring enabled", ""),
        Some("1") if host.has_cap(cap::SYS_ADMIN) => {
            row(uring, Status::Ok, "1: io_uring for privileged processes, and this one is", "")
        }
        Some(v) => row(
            uring,
            Status::Bad,
            format!("{v}: glommio's executor cannot create its io_uring"),
            format!("sysctl -w {uring}=0 (or 1 with kernel.io_uring_group)"),
        ),
    });
    let bpf = host.has_cap(cap::BPF) || host.has_cap(cap::SYS_ADMIN);
    let unpriv = host.sysctl("kernel.unprivileged_bpf_disabled").unwrap_or("?").to_string();
    c.push(row(
        "bpf",
        if !config.media.kernel_steering || bpf { Status::Ok } else { Status::Bad },
        format!(
            "CAP_BPF {}, kernel.unprivileged_bpf_disabled = {unpriv}",
            if bpf { "present" } else { "absent" }
        ),
        if bpf || !config.media.kernel_steering {
            String::new()
        } else {
            "kernel steering needs CAP_BPF: AmbientCapabilities=CAP_BPF in the unit, else datagrams hop between cores".into()
        },
    ));
    // Frequency governor.
    let governors: std::collections::BTreeMap<&str, CpuSet> =
        host.cpus.iter().fold(Default::default(), |mut m, cpu| {
            if let Some(g) = &cpu.governor {
                m.entry(g.as_str()).or_default().insert(cpu.id);
            }
            m
        });
    if governors.is_empty() {
        c.push(row("cpufreq governor", Status::Unknown, "no cpufreq (a VM, or the firmware decides)", ""));
    } else {
        let slow: CpuSet = governors
            .iter()
            .filter(|(g, _)| **g != "performance")
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        let fact: Vec<String> =
            governors.iter().map(|(g, s)| format!("{g} on {}", format_cpulist(s))).collect();
        let hurts = !slow.is_disjoint(&dp);
        c.push(row(
            "cpufreq governor",
            if hurts { Status::Hint } else { Status::Ok },
            fact.join(", "),
            if hurts {
                "cpupower frequency-set -g performance (a waking core otherwise starts slow)"
            } else {
                ""
            },
        ));
    }
    c.push(match host.thp.as_deref() {
        None => row("transparent hugepages", Status::Unknown, "unreadable", ""),
        Some("always") => row(
            "transparent hugepages",
            Status::Hint,
            "always: khugepaged compaction can stall a core",
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
        ),
        Some(v) => row("transparent hugepages", Status::Ok, v, ""),
    });
    // The config's pinning.
    let shares = pinning.control.is_some_and(|c| dp.contains(&c));
    let ctl = match pinning.control {
        None => row(
            "control pinning",
            Status::Hint,
            format!("control thread unpinned; data plane on {}", show_dp(&pinning)),
            "set cores.control to a CPU outside cores.data_plane",
        ),
        Some(c) if shares => row(
            "control pinning",
            Status::Hint,
            format!("control thread on cpu {c}, a data-plane CPU"),
            "give the control thread its own CPU when the host has two",
        ),
        Some(c) => row(
            "control pinning",
            Status::Ok,
            format!(
                "control on cpu {c}, API on {}, data plane on {}",
                pinning.api.map_or("any".to_string(), |a| a.to_string()),
                show_dp(&pinning)
            ),
            "",
        ),
    };
    c.push(ctl);
    for f in &findings {
        c.push(row(
            &format!("config {}", f.field),
            if f.severity == Severity::Error { Status::Bad } else { Status::Hint },
            f.problem.clone(),
            f.fix.clone(),
        ));
    }
    Report { checks: c, findings, pinning, host: host.clone() }
}

fn show_dp(p: &Pinning) -> String {
    let set: CpuSet = p.data_plane.iter().flatten().copied().collect();
    if set.is_empty() {
        format!("{} unpinned core(s)", p.data_plane.len())
    } else {
        format_cpulist(&set)
    }
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

/// One sysctl change `--apply` makes (or would make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlChange {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Done (`--commit`), or only shown.
    pub applied: bool,
    /// Why writing failed, when it did.
    pub error: Option<String>,
}

/// The safe fixes: raise (never lower) the socket-buffer maxima to what `config` asks and the
/// backlog to [`BACKLOG_WANTED`]. Only `/proc/sys` under `root` is written, and only with
/// `commit`; security sysctls (io_uring, BPF) are reported, never changed.
pub fn apply(root: &Path, host: &HostFacts, config: &Config, commit: bool) -> Vec<SysctlChange> {
    let wanted = [
        ("net.core.rmem_max", config.media.recv_buffer as u64),
        ("net.core.wmem_max", config.media.send_buffer as u64),
        ("net.core.netdev_max_backlog", BACKLOG_WANTED),
    ];
    wanted
        .into_iter()
        .filter_map(|(name, want)| {
            let now = host.sysctl_u64(name)?;
            if now >= want {
                return None;
            }
            let mut change = SysctlChange {
                name: name.into(),
                from: now.to_string(),
                to: want.to_string(),
                applied: false,
                error: None,
            };
            if commit {
                let path = root.join(host::sysctl_path(name));
                match std::fs::write(&path, format!("{want}\n")) {
                    Ok(()) => change.applied = true,
                    Err(e) => change.error = Some(format!("{}: {e}", path.display())),
                }
            }
            Some(change)
        })
        .collect()
}

/// A `[cores]` (and `media.nic`) config for `host`: the control and API threads on the first
/// allowed CPU outside `isolcpus` (on the NIC's node when known), the data plane on one CPU per
/// physical core of the rest (isolated ones first), never a sibling of the control CPU.
pub fn propose(host: &HostFacts, nic: Option<&str>) -> String {
    let allowed = host.allowed_cpus();
    let nic = nic.or_else(|| (host.nics.len() == 1).then(|| host.nics[0].name.as_str()));
    let node = nic.and_then(|n| host.nic(n)).and_then(|n| n.numa_node);
    let local = |c: &usize| node.is_none_or(|n| host.node_of(*c).is_none_or(|m| m == n));
    let isolated = host.isolcpus.clone().unwrap_or_default();
    let control = allowed
        .iter()
        .copied()
        .filter(local)
        .find(|c| !isolated.contains(c))
        .or_else(|| allowed.iter().next().copied());
    let mut used = CpuSet::new();
    if let Some(c) = control {
        used.insert(c);
        used.extend(host.siblings_of(c));
    }
    let mut order: Vec<usize> = allowed.iter().copied().filter(local).collect();
    order.sort_by_key(|c| !isolated.contains(c));
    let mut dp = Vec::new();
    for c in order {
        if used.contains(&c) {
            continue;
        }
        dp.push(c);
        used.insert(c);
        used.extend(host.siblings_of(c));
    }
    let mut out = String::new();
    let _ = writeln!(out, "# Proposed by `shardcast tune --propose` for this host:");
    let _ = writeln!(
        out,
        "# {} allowed CPU(s) {}, {} physical core(s){}{}.",
        allowed.len(),
        format_cpulist(&allowed),
        host.physical_cores(),
        node.map(|n| format!(", NIC {} on NUMA node {n}", nic.unwrap_or("?"))).unwrap_or_default(),
        if isolated.is_empty() { String::new() } else { format!(", isolcpus {}", format_cpulist(&isolated)) }
    );
    let _ = writeln!(out, "[cores]");
    if dp.is_empty() {
        let _ = writeln!(out, "# One usable CPU: the data plane shares it with the control thread.");
        let only = control.unwrap_or(0);
        let _ = writeln!(
            out,
            "data_plane = [{only}]\ncontrol = {only}\napi = {only}\ncontrol_on_data_plane = true"
        );
    } else {
        let list: Vec<String> = dp.iter().map(|c| c.to_string()).collect();
        let _ =
            writeln!(out, "# One per physical core; SMT siblings and the control CPU's core are left out.");
        let _ = writeln!(out, "data_plane = [{}]", list.join(", "));
        match control {
            Some(c) => {
                let _ = writeln!(out, "control = {c}\napi = {c}");
            }
            None => {
                let _ = writeln!(out, "control = \"none\"\napi = \"none\"");
            }
        }
    }
    if let Some(n) = nic {
        let _ = writeln!(out, "\n[media]\nnic = \"{n}\"");
    }
    out
}

#[cfg(test)]
mod tests {
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
