//! The pinning config (`[cores]`) resolved against a host: which CPU each thread gets, and what
//! is wrong or merely unwise about it, each finding naming the field and the fix.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{CoresConfig, CpuChoice};
use crate::tune::host::HostFacts;

/// A set of CPU ids, ordered.
pub type CpuSet = BTreeSet<usize>;

/// Parses a kernel CPU list (`0-3,8,10-11`; empty is the empty set).
pub fn parse_cpulist(text: &str) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for part in text.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("bad CPU list {text:?}"));
        match part.split_once('-') {
            Some((a, b)) => {
                // `0-7:2` strides are rare; take the stride when present.
                let (b, stride) = match b.split_once(':') {
                    Some((b, s)) => (b, num(s)?.max(1)),
                    None => (b, 1),
                };
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b - a > 1 << 16 {
                    return Err(format!("bad CPU range {part:?} in {text:?}"));
                }
                set.extend((a..=b).step_by(stride));
            }
            None => {
                set.insert(num(part)?);
            }
        }
    }
    Ok(set)
}

/// Formats a CPU set as the kernel does (`0-3,8`).
pub fn format_cpulist(set: &CpuSet) -> String {
    let mut out = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    out.join(",")
}

/// How bad a finding is: an error stops the daemon, a warning is logged and shown by `tune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong with a config on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// The config field, dotted (`cores.data_plane`).
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl Finding {
    pub fn error(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { severity: Severity::Error, field: field.into(), problem: problem.into(), fix: fix.into() }
    }
    pub fn warning(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { severity: Severity::Warning, field: field.into(), problem: problem.into(), fix: fix.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.field, self.problem, self.fix)
    }
}

/// Where every thread runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pinning {
    /// One entry per data-plane core: its CPU, `None` when unpinned.
    pub data_plane: Vec<Option<usize>>,
    pub control: Option<usize>,
    pub api: Option<usize>,
}

/// Resolves `[cores]` on `host` (`nic`: `media.nic`, for NUMA locality), with its findings.
pub fn resolve(cores: &CoresConfig, nic: Option<&str>, host: &HostFacts) -> (Pinning, Vec<Finding>) {
    let mut findings = Vec::new();
    let allowed = host.allowed_cpus();
    let online: CpuSet = host.cpus.iter().map(|c| c.id).collect();
    let allowed_text = if allowed.is_empty() { "unknown".to_string() } else { format_cpulist(&allowed) };
    let first = allowed.iter().next().copied();
    let nic_node = nic.and_then(|n| host.nic(n)).and_then(|n| n.numa_node);
    if let Some(name) = nic {
        if host.nic(name).is_none() && !host.nics.is_empty() {
            let known: Vec<&str> = host.nics.iter().map(|n| n.name.as_str()).collect();
            findings.push(Finding::warning(
                "media.nic",
                format!("no network device {name:?} on this host"),
                format!("name one of {known:?}, or leave media.nic out"),
            ));
        }
    }

    if !cores.pin {
        let n = if cores.data_plane.is_empty() {
            allowed.len().saturating_sub(1).max(1)
        } else {
            cores.data_plane.len()
        };
        return (Pinning { data_plane: vec![None; n], control: None, api: None }, findings);
    }

    let check_cpu = |field: &str, cpu: usize, findings: &mut Vec<Finding>| -> bool {
        if allowed.is_empty() || allowed.contains(&cpu) {
            return true;
        }
        let problem = if !online.is_empty() && !online.contains(&cpu) {
            format!("cpu {cpu} does not exist on this machine (online CPUs: {})", format_cpulist(&online))
        } else {
            format!(
                "cpu {cpu} is not in this process's allowed CPUs ({allowed_text}: taskset, a container's cpuset, \
                 Kubernetes' CPU manager or systemd's CPUAffinity= decide them)"
            )
        };
        findings.push(Finding::error(
            field,
            problem,
            format!("use CPUs of {allowed_text}, or widen the allowed set (CPUAffinity= in the unit, the container's cpuset)"),
        ));
        false
    };
    let choose = |field: &str, choice: CpuChoice, findings: &mut Vec<Finding>| match choice {
        CpuChoice::Unpinned => None,
        CpuChoice::First => first,
        CpuChoice::Cpu(c) => check_cpu(field, c, findings).then_some(c),
    };
    let control = choose("cores.control", cores.control, &mut findings);
    let api = choose("cores.api", cores.api, &mut findings);

    let data_plane: Vec<usize> = if cores.data_plane.is_empty() {
        let mut candidates: CpuSet =
            allowed.iter().copied().filter(|c| Some(*c) != control && Some(*c) != api).collect();
        if let (true, Some(node)) = (cores.nic_local, nic_node) {
            let local: CpuSet =
                candidates.iter().copied().filter(|c| host.node_of(*c) == Some(node)).collect();
            if !local.is_empty() {
                candidates = local;
            }
        }
        if candidates.is_empty() {
            let only = control.or(first).unwrap_or(0);
            findings.push(Finding::warning(
                "cores.data_plane",
                format!(
                    "the only allowed CPU{} ({allowed_text}) {} taken by the control and API threads: the data \
                     plane shares cpu {only} with them",
                    if allowed.len() == 1 { "" } else { "s" },
                    if allowed.len() == 1 { "is" } else { "are" }
                ),
                "allow the process a second CPU (taskset, CPUAffinity=), or set cores.control = \"none\"",
            ));
            candidates.insert(only);
        }
        candidates.into_iter().collect()
    } else {
        let mut seen = CpuSet::new();
        let mut ok = Vec::new();
        for &cpu in &cores.data_plane {
            if !seen.insert(cpu) {
                findings.push(Finding::error(
                    "cores.data_plane",
                    format!("cpu {cpu} is listed twice"),
                    "list each CPU once: one data-plane core per CPU",
                ));
                continue;
            }
            if check_cpu("cores.data_plane", cpu, &mut findings) {
                ok.push(cpu);
            }
        }
        if !cores.control_on_data_plane {
            for (field, cpu) in [("cores.control", control), ("cores.api", api)] {
                if let Some(c) = cpu.filter(|c| seen.contains(c)) {
                    findings.push(Finding::error(
                        field,
                        format!("cpu {c} is also a data-plane CPU (cores.data_plane)"),
                        format!(
                            "take cpu {c} out of cores.data_plane, move {field} to another CPU, or say that they \
                             share it with cores.control_on_data_plane = true"
                        ),
                    ));
                }
            }
        }
        ok
    };

    // SMT: two data-plane cores on one physical core share its execution units and caches.
    for (i, &a) in data_plane.iter().enumerate() {
        let sib = host.siblings_of(a);
        for &b in &data_plane[i + 1..] {
            if sib.contains(&b) {
                findings.push(Finding::warning(
                    "cores.data_plane",
                    format!("cpus {a} and {b} are SMT siblings (one physical core): the two data-plane cores halve each other"),
                    format!("keep one of {a} and {b}: one data-plane CPU per physical core"),
                ));
            }
        }
        for (field, cpu) in [("cores.control", control), ("cores.api", api)] {
            if let Some(c) = cpu.filter(|c| *c != a && sib.contains(c)) {
                findings.push(Finding::warning(
                    field,
                    format!(
                        "cpu {c} is the SMT sibling of data-plane cpu {a}: its work steals from that core"
                    ),
                    format!("put {field} on a CPU whose physical core has no data-plane CPU"),
                ));
            }
        }
    }
    // NUMA: a data-plane core off the NIC's node reaches its packets across the interconnect.
    if let Some(node) = nic_node {
        let off: CpuSet =
            data_plane.iter().copied().filter(|c| host.node_of(*c).is_some_and(|n| n != node)).collect();
        if !off.is_empty() {
            let local = host.nodes.get(&node).map(format_cpulist).unwrap_or_default();
            findings.push(Finding::warning(
                "cores.data_plane",
                format!(
                    "cpus {} are not on NUMA node {node}, the node of {}: packets and socket memory cross sockets",
                    format_cpulist(&off),
                    nic.unwrap_or("the NIC")
                ),
                format!("use CPUs of node {node} ({local})"),
            ));
        }
    }
    let pinning = Pinning { data_plane: data_plane.into_iter().map(Some).collect(), control, api };
    (pinning, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_round_trip() {
        let s = parse_cpulist("0-3,8,10-11\n").unwrap();
        assert_eq!(s, [0, 1, 2, 3, 8, 10, 11].into_iter().collect());
        assert_eq!(format_cpulist(&s), "0-3,8,10-11");
        assert_eq!(parse_cpulist("").unwrap(), CpuSet::new());
        assert_eq!(parse_cpulist("0-6:2").unwrap(), [0, 2, 4, 6].into_iter().collect());
        assert!(parse_cpulist("3-1").is_err() && parse_cpulist("x").is_err());
    }
}
