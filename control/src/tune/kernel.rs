//! The kernel checks: resource limits, io_uring and BPF, transparent hugepages.

use super::host::cap;
use super::{row, Check, Inputs, Status, MEMLOCK_NEEDED, NOFILE_WANTED};

/// `RLIMIT_MEMLOCK`, which glommio's io_uring needs (shardcast raises it when it may).
pub(super) fn memlock(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let host = x.host;
    let raise = host.has_cap(cap::IPC_LOCK) || host.has_cap(cap::SYS_RESOURCE);
    out.push(match host.memlock {
        None => row("RLIMIT_MEMLOCK", Status::Unknown, "unreadable", ""),
        Some(l) if l.soft.is_none_or(|s| s >= MEMLOCK_NEEDED) => {
            row("RLIMIT_MEMLOCK", Status::Ok, l.to_string(), "")
        }
        Some(l) if raise || l.hard.is_none_or(|h| h >= MEMLOCK_NEEDED) => {
            row("RLIMIT_MEMLOCK", Status::Ok, format!("{l}; shardcast raises it at start"), "")
        }
        Some(l) => row(
            "RLIMIT_MEMLOCK",
            Status::Bad,
            format!("{l}: glommio needs {MEMLOCK_NEEDED}"),
            "LimitMEMLOCK=8M in the unit, or ulimit -l 8192",
        ),
    });
}

/// `RLIMIT_NOFILE`: one descriptor per transport socket.
pub(super) fn nofile(x: &Inputs<'_>, out: &mut Vec<Check>) {
    out.push(match x.host.nofile {
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
}

/// `kernel.io_uring_disabled`: whether glommio's executor can create its ring.
pub(super) fn io_uring(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let uring = "kernel.io_uring_disabled";
    out.push(match x.host.sysctl(uring) {
        None => row(uring, Status::Unknown, "absent (kernel < 6.6: io_uring is on)", ""),
        Some("0") => row(uring, Status::Ok, "0: io_uring enabled", ""),
        Some("1") if x.host.has_cap(cap::SYS_ADMIN) => {
            row(uring, Status::Ok, "1: io_uring for privileged processes, and this one is", "")
        }
        Some(v) => row(
            uring,
            Status::Bad,
            format!("{v}: glommio's executor cannot create its io_uring"),
            format!("sysctl -w {uring}=0 (or 1 with kernel.io_uring_group)"),
        ),
    });
}

/// CAP_BPF, which kernel steering needs.
pub(super) fn bpf(x: &Inputs<'_>, out: &mut Vec<Check>) {
    let host = x.host;
    let steering = x.config.media.kernel_steering;
    let bpf = host.has_cap(cap::BPF) || host.has_cap(cap::SYS_ADMIN);
    let unpriv = host.sysctl("kernel.unprivileged_bpf_disabled").unwrap_or("?").to_string();
    out.push(row(
        "bpf",
        if !steering || bpf { Status::Ok } else { Status::Bad },
        format!("CAP_BPF {}, kernel.unprivileged_bpf_disabled = {unpriv}", if bpf { "present" } else { "absent" }),
        if bpf || !steering {
            String::new()
        } else {
            "kernel steering needs CAP_BPF: AmbientCapabilities=CAP_BPF in the unit, else datagrams hop between cores".into()
        },
    ));
}

/// Transparent hugepages: `always` lets khugepaged stall a core.
pub(super) fn hugepages(x: &Inputs<'_>, out: &mut Vec<Check>) {
    out.push(match x.host.thp.as_deref() {
        None => row("transparent hugepages", Status::Unknown, "unreadable", ""),
        Some("always") => row(
            "transparent hugepages",
            Status::Hint,
            "always: khugepaged compaction can stall a core",
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
        ),
        Some(v) => row("transparent hugepages", Status::Ok, v, ""),
    });
}
