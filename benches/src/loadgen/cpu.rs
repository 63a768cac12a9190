//! Relay CPU time from `/proc/PID/task/*/schedstat`, and the kernel's UDP drop counters.

use std::collections::BTreeMap;

/// Run-time nanoseconds per thread (by `tid`, with its name).
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub threads: BTreeMap<u32, (String, u64)>,
}

impl CpuSample {
    /// Reads every thread of `pid`; threads that vanish meanwhile are skipped.
    pub fn read(pid: u32) -> CpuSample {
        let mut threads = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return CpuSample::default() };
        for e in dir.flatten() {
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("schedstat")) else { continue };
            let Some(ns) = stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
            threads.insert(tid, (name, ns));
        }
        CpuSample { threads }
    }

    pub fn total_ns(&self) -> u64 {
        self.threads.values().map(|(_, ns)| ns).sum()
    }

    /// Per-thread-name busy nanoseconds between `self` and a later sample.
    pub fn busy_by_name(&self, later: &CpuSample) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (tid, (name, ns)) in &later.threads {
            let before = self.threads.get(tid).map_or(0, |(_, b)| *b);
            *out.entry(name.clone()).or_insert(0) += ns.saturating_sub(before);
        }
        out
    }
}

/// The kernel's UDP counters that mean "dropped by a socket, not by the relay".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCounters {
    pub in_errors: u64,
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
}

impl UdpCounters {
    pub fn read() -> UdpCounters {
        let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return UdpCounters::default() };
        let get = |field: &str| -> u64 {
            names
                .split_whitespace()
                .position(|n| n == field)
                .and_then(|i| values.split_whitespace().nth(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        UdpCounters {
            in_errors: get("InErrors"),
            rcvbuf_errors: get("RcvbufErrors"),
            sndbuf_errors: get("SndbufErrors"),
        }
    }

    pub fn since(&self, before: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_errors: self.in_errors.saturating_sub(before.in_errors),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(before.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(before.sndbuf_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = CpuSample::read(std::process::id());
        assert!(!s.threads.is_empty());
        assert!(s.total_ns() > 0);
        let _ = UdpCounters::read();
    }
}
