//! The CPU checks: how many, SMT and NUMA, the cpuset, isolation, the frequency governor, and
//! where the config puts the control thread.

use super::{row, Check, Inputs, Status};
use crate::pinning::{format_cpulist, CpuSet, Pinning};

/// How many CPUs are online, on how many cores and sockets.
pub(super) fn cpus(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let (host, online) = (x.host, &x.online);
    if host.cpus.is_empty() {
        out.push(row("cpus", Status::Unknown, "no /sys/devices/system/cpu", ""));
        return;
    }
    out.push(row(
        "cpus",
        if online.len() > 1 { Status::Ok } else { Status::Hint },
        format!(
            "{} online ({}), {} physical core(s), {} socket(s)",
            online.len(),
            format_cpulist(online),
            host.physical_cores(),
            host.packages()
        ),
        if online.len() > 1 { "" } else { "one CPU: the data plane shares it with the control thread" },
    ));
}

/// SMT sibling groups, and whether two data-plane CPUs share a physical core.
pub(super) fn smt(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let (host, dp) = (x.host, &x.dp);
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
        out.push(row("smt", Status::Unknown, "no topology files", ""));
    } else if smt.is_empty() {
        out.push(row("smt", Status::Ok, "no SMT siblings", ""));
    } else {
        let shared = dp.iter().any(|a| host.siblings_of(*a).iter().any(|b| dp.contains(b)));
        out.push(row(
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
}

/// The NUMA nodes, and whether the data plane stays on the NIC's.
pub(super) fn numa(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let (host, dp) = (x.host, &x.dp);
    if host.nodes.is_empty() {
        out.push(row("numa", Status::Unknown, "no /sys/devices/system/node", ""));
    } else if host.nodes.len() == 1 {
        out.push(row("numa", Status::Ok, "one NUMA node", ""));
    } else {
        let nodes: Vec<String> =
            host.nodes.iter().map(|(n, s)| format!("node{n}: {}", format_cpulist(s))).collect();
        let nic = x.config.media.nic.as_deref().and_then(|n| host.nic(n));
        let (status, fix) = match nic.and_then(|n| n.numa_node) {
            Some(node) if dp.iter().all(|c| host.node_of(*c) == Some(node)) => (Status::Ok, String::new()),
            Some(node) => {
                (Status::Bad, format!("keep the data plane on node {node}, the NIC's (cores.data_plane)"))
            }
            None => (Status::Hint, "set media.nic so the data plane stays on the NIC's node".to_string()),
        };
        out.push(row("numa", status, nodes.join(", "), fix));
    }
}

/// The CPUs this process may run on (taskset, a container's cgroup, `CPUAffinity=`).
pub(super) fn cpuset(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let (host, online, allowed) = (x.host, &x.online, &x.allowed);
    let fact = match (&host.allowed, &host.cgroup_cpuset) {
        (Some(a), Some(g)) => format!(
            "allowed {} of {} (cgroup cpuset {})",
            format_cpulist(a),
            format_cpulist(online),
            format_cpulist(g)
        ),
        (Some(a), None) => format!("allowed {} of {}", format_cpulist(a), format_cpulist(online)),
        (None, _) => "unknown".into(),
    };
    let restricted = !allowed.is_empty() && !online.is_empty() && allowed != online;
    out.push(row(
        "cpuset",
        if host.allowed.is_none() { Status::Unknown } else { Status::Ok },
        fact,
        if restricted {
            "a cpuset is in force (taskset, container, CPUAffinity=): shardcast pins inside it"
        } else {
            ""
        },
    ));
}

/// `isolcpus` and `nohz_full` on the kernel command line, against the data-plane CPUs.
pub(super) fn isolation(x: &Inputs<'_>, out: &mut Vec<Check>) {
    out.push(isolated(x, "isolcpus", &x.host.isolcpus));
    out.push(isolated(x, "nohz_full", &x.host.nohz_full));
}

fn isolated(x: &Inputs<'_>, name: &str, set: &Option<CpuSet>) -> Check {
    let dp = &x.dp;
    match set {
        _ if !x.host.cmdline_known => row(name, Status::Unknown, "no /proc/cmdline", ""),
        None => row(
            name,
            Status::Hint,
            "not set",
            format!(
                "dedicated hosts: boot with {name}={} so nothing else runs on the data-plane CPUs (tuning/dedicated.toml)",
                if dp.is_empty() { "<data-plane cpus>".to_string() } else { format_cpulist(dp) }
            ),
        ),
        Some(s) if !dp.is_empty() && dp.is_subset(s) => row(name, Status::Ok, format_cpulist(s), ""),
        Some(s) => row(
            name,
            Status::Hint,
            format!("{} (data plane on {})", format_cpulist(s), format_cpulist(dp)),
            format!("put cores.data_plane inside {}", format_cpulist(s)),
        ),
    }
}

/// The cpufreq governors, and whether a data-plane CPU wakes up slow.
pub(super) fn governor(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let governors: std::collections::BTreeMap<&str, CpuSet> =
        x.host.cpus.iter().fold(Default::default(), |mut m, cpu| {
            if let Some(g) = &cpu.governor {
                m.entry(g.as_str()).or_default().insert(cpu.id);
            }
            m
        });
    if governors.is_empty() {
        out.push(row("cpufreq governor", Status::Unknown, "no cpufreq (a VM, or the firmware decides)", ""));
        return;
    }
    let slow: CpuSet =
        governors.iter().filter(|(g, _)| **g != "performance").flat_map(|(_, s)| s.iter().copied()).collect();
    let fact: Vec<String> = governors.iter().map(|(g, s)| format!("{g} on {}", format_cpulist(s))).collect();
    let hurts = !slow.is_disjoint(&x.dp);
    out.push(row(
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

/// Where the config puts the control and API threads, against the data plane.
pub(super) fn control_pinning(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let pinning = &x.pinning;
    let shares = pinning.control.is_some_and(|c| x.dp.contains(&c));
    out.push(match pinning.control {
        None => row(
            "control pinning",
            Status::Hint,
            format!("control thread unpinned; data plane on {}", show_dp(pinning)),
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
                show_dp(pinning)
            ),
            "",
        ),
    });
}

fn show_dp(p: &Pinning) -> String {
    let set: CpuSet = p.data_plane.iter().flatten().copied().collect();
    if set.is_empty() {
        format!("{} unpinned core(s)", p.data_plane.len())
    } else {
        format_cpulist(&set)
    }
}
