//! `shardcast tune --propose`: a pinning config for the host.

use std::fmt::Write as _;

use super::host::HostFacts;
use crate::pinning::{format_cpulist, CpuSet};

/// A `[cores]` (and `media.nic`) config for `host`: the control and API threads on the first
/// allowed CPU outside `isolcpus` (on the NIC's node when known), the data plane on one CPU per
/// physical core of the rest (isolated ones first), never a sibling of the control CPU.
pub fn propose(host: &HostFacts, nic: Option<&str>) -> String {
    let allowed = host.allowed_cpus();
    let nic = nic.or_else(|| (host.nics.len() == 1).then(|| host.nics[0].name.as_str()));
    let node = nic.and_then(|n| host.nic(n)).and_then(|n| n.numa_node);
    let local: CpuSet = allowed
        .iter()
        .copied()
        .filter(|c| node.is_none_or(|n| host.node_of(*c).is_none_or(|m| m == n)))
        .collect();
    let isolated = host.isolcpus.clone().unwrap_or_default();
    let control =
        local.iter().copied().find(|c| !isolated.contains(c)).or_else(|| allowed.iter().next().copied());
    let dp = data_plane(host, &local, &isolated, control);

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
    write_cores(&mut out, &dp, control);
    if let Some(n) = nic {
        let _ = writeln!(out, "\n[media]\nnic = \"{n}\"");
    }
    out
}

/// One CPU per physical core of `local`, isolated ones first, none on the control CPU's core.
fn data_plane(host: &HostFacts, local: &CpuSet, isolated: &CpuSet, control: Option<usize>) -> Vec<usize> {
    let mut used = CpuSet::new();
    if let Some(c) = control {
        used.insert(c);
        used.extend(host.siblings_of(c));
    }
    let mut order: Vec<usize> = local.iter().copied().collect();
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
    dp
}

/// The `[cores]` fields: the data plane, and the control and API threads.
fn write_cores(out: &mut String, dp: &[usize], control: Option<usize>) {
    if dp.is_empty() {
        let _ = writeln!(out, "# One usable CPU: the data plane shares it with the control thread.");
        let only = control.unwrap_or(0);
        let _ = writeln!(
            out,
            "data_plane = [{only}]\ncontrol = {only}\napi = {only}\ncontrol_on_data_plane = true"
        );
        return;
    }
    let list: Vec<String> = dp.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(out, "# One per physical core; SMT siblings and the control CPU's core are left out.");
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
