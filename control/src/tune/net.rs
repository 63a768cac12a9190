//! The network checks: each NIC's queue interrupts and RSS queues, the socket-buffer maxima and
//! the backlog.

use super::host::{cap, Nic};
use super::{row, Check, Inputs, Status, BACKLOG_WANTED};
use crate::pinning::{format_cpulist, CpuSet};

/// Every NIC media may arrive on (`media.nic`, else all): its IRQs and its RSS queues.
pub(super) fn nics(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let nics: Vec<&Nic> = match x.config.media.nic.as_deref() {
        Some(name) => x.host.nic(name).into_iter().collect(),
        None => x.host.nics.iter().collect(),
    };
    if nics.is_empty() {
        out.push(row("nic", Status::Unknown, "no network device found (set media.nic)", ""));
    }
    for nic in nics {
        out.push(irqs(x, nic));
        out.push(rss(x, nic));
    }
}

/// Whether the NIC's queue interrupts (and their softirq work) land on data-plane CPUs.
fn irqs(x: &Inputs<'_>, nic: &Nic) -> Check {
    let dp = &x.dp;
    let on_dp: Vec<u32> = nic
        .irqs
        .iter()
        .filter(|i| i.affinity.as_ref().is_some_and(|a| !dp.is_empty() && a.is_subset(dp)))
        .map(|i| i.irq)
        .collect();
    let spread: Vec<u32> = nic
        .irqs
        .iter()
        .filter(|i| i.affinity.as_ref().is_some_and(|a| !a.is_disjoint(dp) && !a.is_subset(dp)))
        .map(|i| i.irq)
        .collect();
    let topic = format!("irq {}", nic.name);
    let housekeeping: CpuSet = x.allowed.difference(dp).copied().collect();
    let target = if housekeeping.is_empty() {
        "a CPU outside the data plane".to_string()
    } else {
        format_cpulist(&housekeeping)
    };
    if nic.irqs.is_empty() {
        row(&topic, Status::Unknown, "no queue interrupts found in /proc/interrupts", "")
    } else if on_dp.is_empty() && spread.is_empty() {
        row(&topic, Status::Ok, format!("{} queue IRQs, none on data-plane CPUs", nic.irqs.len()), "")
    } else {
        let mut irqs = on_dp.clone();
        irqs.extend(&spread);
        row(
            &topic,
            Status::Hint,
            format!("{} of {} queue IRQs may run on data-plane CPUs: {irqs:?}", irqs.len(), nic.irqs.len()),
            format!(
                "their softirq work competes with the core: echo {target} > /proc/irq/N/smp_affinity_list (and keep irqbalance off those IRQs)"
            ),
        )
    }
}

/// Whether the NIC has an RSS queue per data-plane core.
fn rss(x: &Inputs<'_>, nic: &Nic) -> Check {
    let cores = x.pinning.data_plane.len();
    let queues = nic.rx_queues;
    row(
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
    )
}

/// `net.core.rmem_max` and `wmem_max` against the buffers the config asks for.
pub(super) fn socket_buffers(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let (host, media) = (x.host, &x.config.media);
    let forced = host.has_cap(cap::NET_ADMIN);
    for (name, want) in [("net.core.rmem_max", media.recv_buffer), ("net.core.wmem_max", media.send_buffer)] {
        let want = want as u64;
        out.push(match host.sysctl_u64(name) {
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
}

/// `net.core.netdev_max_backlog` against [`BACKLOG_WANTED`].
pub(super) fn backlog(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let backlog = "net.core.netdev_max_backlog";
    out.push(match x.host.sysctl_u64(backlog) {
        None => row(backlog, Status::Unknown, "unreadable", ""),
        Some(v) if v >= BACKLOG_WANTED => row(backlog, Status::Ok, v.to_string(), ""),
        Some(v) => row(
            backlog,
            Status::Hint,
            format!("{v}: a burst after a stall overflows it"),
            format!("sysctl -w {backlog}={BACKLOG_WANTED} (--apply)"),
        ),
    });
}
