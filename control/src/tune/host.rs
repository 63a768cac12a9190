//! What the host says about itself, read from `/proc` and `/sys` under a root directory (`/` on
//! the real machine; a fixture directory in tests). Pure reading and parsing: an absent or
//! unreadable file is "unknown" (`None`), never an error or a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pinning::{format_cpulist, parse_cpulist, CpuSet};

/// One online CPU and where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub id: usize,
    /// `topology/core_id`: CPUs with the same package and core id are SMT siblings.
    pub core_id: Option<u32>,
    /// `topology/physical_package_id`: the socket.
    pub package: Option<u32>,
    /// `topology/thread_siblings_list`, this CPU included.
    pub siblings: Option<CpuSet>,
    /// `cpufreq/scaling_governor` (absent in most VMs).
    pub governor: Option<String>,
}

/// A network interface backed by a device (virtual ones such as `lo`, bridges and veths have no
/// `device` and are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    pub name: String,
    /// `device/numa_node` (-1 or absent: unknown).
    pub numa_node: Option<usize>,
    pub rx_queues: usize,
    pub tx_queues: usize,
    /// The NIC's interrupts from `/proc/interrupts`, with `/proc/irq/N/smp_affinity_list`.
    pub irqs: Vec<Irq>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Irq {
    pub irq: u32,
    pub name: String,
    pub affinity: Option<CpuSet>,
}

/// A resource limit's soft and hard values (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The sysctls `shardcast tune` reads (and, for some, may set).
pub const SYSCTLS: &[&str] = &[
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.netdev_max_backlog",
    "kernel.io_uring_disabled",
    "kernel.unprivileged_bpf_disabled",
];

/// Capability bits (`linux/capability.h`).
pub mod cap {
    pub const NET_ADMIN: u32 = 12;
    pub const IPC_LOCK: u32 = 14;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_NICE: u32 = 23;
    pub const SYS_RESOURCE: u32 = 24;
    pub const BPF: u32 = 39;
}

/// Everything read from one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFacts {
    /// Online CPUs (`/sys/devices/system/cpu/online`, else the `cpuN` directories), by id.
    pub cpus: Vec<Cpu>,
    /// The process's allowed CPUs: `sched_getaffinity` on the live host, `Cpus_allowed_list`
    /// of `/proc/self/status` in a fixture.
    pub allowed: Option<CpuSet>,
    /// cgroup v2 `cpuset.cpus.effective` (a container's or a systemd slice's cpuset).
    pub cgroup_cpuset: Option<CpuSet>,
    /// NUMA node → its CPUs.
    pub nodes: BTreeMap<usize, CpuSet>,
    /// `isolcpus=` and `nohz_full=` of `/proc/cmdline` (the CPU lists; flags dropped).
    pub isolcpus: Option<CpuSet>,
    pub nohz_full: Option<CpuSet>,
    pub cmdline_known: bool,
    pub nics: Vec<Nic>,
    /// `SYSCTLS` → value (trimmed).
    pub sysctls: BTreeMap<String, Option<String>>,
    /// `transparent_hugepage/enabled`'s selected word.
    pub thp: Option<String>,
    /// `CapEff` of `/proc/self/status`.
    pub cap_eff: Option<u64>,
    pub memlock: Option<Limit>,
    pub nofile: Option<Limit>,
}

impl HostFacts {
    /// Reads the host whose `/proc` and `/sys` are under `root`.
    pub fn read(root: &Path) -> HostFacts {
        let r = Reader { root: root.to_path_buf() };
        let status = r.text("proc/self/status");
        let field = |name: &str| -> Option<String> {
            status
                .as_deref()?
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
        };
        let cmdline = r.text("proc/cmdline");
        let limits = r.text("proc/self/limits");
        let mut sysctls = BTreeMap::new();
        for name in SYSCTLS {
            sysctls.insert(name.to_string(), r.text(&sysctl_path(name)).map(|v| v.trim().to_string()));
        }
        HostFacts {
            cpus: r.cpus(),
            allowed: field("Cpus_allowed_list").and_then(|v| parse_cpulist(&v).ok()),
            cgroup_cpuset: r
                .text("sys/fs/cgroup/cpuset.cpus.effective")
                .and_then(|v| parse_cpulist(v.trim()).ok()),
            nodes: r.nodes(),
            isolcpus: cmdline.as_deref().and_then(|c| cmdline_cpus(c, "isolcpus")),
            nohz_full: cmdline.as_deref().and_then(|c| cmdline_cpus(c, "nohz_full")),
            cmdline_known: cmdline.is_some(),
            nics: r.nics(),
            sysctls,
            thp: r.text("sys/kernel/mm/transparent_hugepage/enabled").and_then(|t| selected_word(&t)),
            cap_eff: field("CapEff").and_then(|v| u64::from_str_radix(&v, 16).ok()),
            memlock: limits.as_deref().and_then(|l| limit(l, "Max locked memory")),
            nofile: limits.as_deref().and_then(|l| limit(l, "Max open files")),
        }
    }

    /// The live host: `/`, with the allowed set from `sched_getaffinity` (which is what the
    /// kernel enforces on this thread; call it before pinning anything).
    pub fn current() -> HostFacts {
        let mut h = HostFacts::read(Path::new("/"));
        if let Ok(cpus) = shardcast_dataplane::io::allowed_cpus() {
            h.allowed = Some(cpus.into_iter().collect());
        }
        h
    }

    /// The CPUs the process may use: the allowed set, else every online CPU.
    pub fn allowed_cpus(&self) -> CpuSet {
        match &self.allowed {
            Some(a) => a.clone(),
            None => self.cpus.iter().map(|c| c.id).collect(),
        }
    }

    pub fn cpu(&self, id: usize) -> Option<&Cpu> {
        self.cpus.iter().find(|c| c.id == id)
    }

    /// The SMT siblings of `cpu`, itself excluded (empty when unknown or without SMT).
    pub fn siblings_of(&self, cpu: usize) -> CpuSet {
        let Some(c) = self.cpu(cpu) else { return CpuSet::new() };
        let mut s = match &c.siblings {
            Some(s) => s.clone(),
            None => self
                .cpus
                .iter()
                .filter(|o| o.core_id.is_some() && o.core_id == c.core_id && o.package == c.package)
                .map(|o| o.id)
                .collect(),
        };
        s.remove(&cpu);
        s
    }

    /// The NUMA node of `cpu`, when the host has node directories.
    pub fn node_of(&self, cpu: usize) -> Option<usize> {
        self.nodes.iter().find(|(_, cpus)| cpus.contains(&cpu)).map(|(n, _)| *n)
    }

    pub fn nic(&self, name: &str) -> Option<&Nic> {
        self.nics.iter().find(|n| n.name == name)
    }

    /// Whether the effective capability set has `bit` (unknown: false).
    pub fn has_cap(&self, bit: u32) -> bool {
        self.cap_eff.is_some_and(|c| c & (1u64 << bit) != 0)
    }

    pub fn sysctl(&self, name: &str) -> Option<&str> {
        self.sysctls.get(name).and_then(|v| v.as_deref())
    }

    pub fn sysctl_u64(&self, name: &str) -> Option<u64> {
        self.sysctl(name).and_then(|v| v.parse().ok())
    }

    /// Physical cores (package, core id) of the online CPUs.
    pub fn physical_cores(&self) -> usize {
        let known: std::collections::BTreeSet<_> =
            self.cpus.iter().filter_map(|c| Some((c.package?, c.core_id?))).collect();
        if known.is_empty() {
            self.cpus.len()
        } else {
            known.len()
        }
    }

    pub fn packages(&self) -> usize {
        let p: std::collections::BTreeSet<_> = self.cpus.iter().filter_map(|c| c.package).collect();
        p.len().max(1)
    }
}

/// `net.core.rmem_max` → `proc/sys/net/core/rmem_max`.
pub fn sysctl_path(name: &str) -> String {
    format!("proc/sys/{}", name.replace('.', "/"))
}

struct Reader {
    root: PathBuf,
}

impl Reader {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn text(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path(rel)).ok()
    }

    fn trimmed(&self, rel: &str) -> Option<String> {
        self.text(rel).map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
    }

    fn numbered_dirs(&self, rel: &str, prefix: &str) -> Vec<usize> {
        let Ok(dir) = std::fs::read_dir(self.path(rel)) else { return Vec::new() };
        let mut ids: Vec<usize> =
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix(prefix)?.parse().ok()).collect();
        ids.sort_unstable();
        ids
    }

    fn cpus(&self) -> Vec<Cpu> {
        let base = "sys/devices/system/cpu";
        let ids: Vec<usize> =
            match self.trimmed(&format!("{base}/online")).and_then(|t| parse_cpulist(&t).ok()) {
                Some(online) => online.into_iter().collect(),
                None => self.numbered_dirs(base, "cpu"),
            };
        ids.into_iter()
            .map(|id| {
                let t = |f: &str| self.trimmed(&format!("{base}/cpu{id}/{f}"));
                Cpu {
                    id,
                    core_id: t("topology/core_id").and_then(|v| v.parse().ok()),
                    package: t("topology/physical_package_id").and_then(|v| v.parse().ok()),
                    siblings: t("topology/thread_siblings_list").and_then(|v| parse_cpulist(&v).ok()),
                    governor: t("cpufreq/scaling_governor"),
                }
            })
            .collect()
    }

    fn nodes(&self) -> BTreeMap<usize, CpuSet> {
        let base = "sys/devices/system/node";
        self.numbered_dirs(base, "node")
            .into_iter()
            .filter_map(|n| {
                let cpus = self.trimmed(&format!("{base}/node{n}/cpulist")).unwrap_or_default();
                Some((n, parse_cpulist(&cpus).ok()?))
            })
            .collect()
    }

    fn nics(&self) -> Vec<Nic> {
        let Ok(dir) = std::fs::read_dir(self.path("sys/class/net")) else { return Vec::new() };
        let mut names: Vec<String> = dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        names.sort();
        let interrupts = self.text("proc/interrupts").map(|t| parse_interrupts(&t)).unwrap_or_default();
        names
            .into_iter()
            .filter_map(|name| {
                let dev = self.path(&format!("sys/class/net/{name}/device"));
                if !dev.exists() {
                    return None;
                }
                // The device's own name (virtio2, 0000:3b:00.0) and its PCI address, which
                // interrupt names carry instead of the interface's.
                let real = std::fs::canonicalize(&dev).unwrap_or(dev.clone());
                let dev_name = real.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
                let pci = [real.as_path(), real.parent().unwrap_or(&real)]
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str())
                    .find(|n| is_pci_address(n))
                    .map(str::to_string);
                let queues = self.path(&format!("sys/class/net/{name}/queues"));
                let count = |prefix: &str| {
                    std::fs::read_dir(&queues)
                        .map(|d| {
                            d.filter(|e| {
                                e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
                            })
                            .count()
                        })
                        .unwrap_or(0)
                };
                let numa_node = self
                    .trimmed(&format!("sys/class/net/{name}/device/numa_node"))
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(|v| usize::try_from(v).ok());
                let irqs = interrupts
                    .iter()
                    .filter(|(_, chip, action)| irq_belongs(&name, &dev_name, pci.as_deref(), chip, action))
                    .map(|(irq, _, action)| Irq {
                        irq: *irq,
                        name: action.clone(),
                        affinity: self
                            .trimmed(&format!("proc/irq/{irq}/smp_affinity_list"))
                            .and_then(|v| parse_cpulist(&v).ok()),
                    })
                    .collect();
                Some(Nic { name, numa_node, rx_queues: count("rx-"), tx_queues: count("tx-"), irqs })
            })
            .collect()
    }
}

fn is_pci_address(s: &str) -> bool {
    // dddd:bb:dd.f
    let b = s.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

/// Whether an interrupt (`chip` column and action name) is one of this NIC's queues: named after
/// the interface (`eth0-TxRx-3`), after its device (`virtio2-input.0`), or after its PCI address
/// (`mlx5_comp3@pci:0000:3b:00.0`); configuration vectors are not queues.
fn irq_belongs(iface: &str, dev: &str, pci: Option<&str>, chip: &str, action: &str) -> bool {
    if action.ends_with("-config") || action.ends_with("-async") {
        return false;
    }
    let by_iface = action.split(['-', '@', ' ']).next() == Some(iface);
    let by_dev = !dev.is_empty() && action.starts_with(&format!("{dev}-"));
    let by_pci = pci.is_some_and(|p| {
        action.contains(&format!("pci:{p}")) || (chip.contains(p) && !dev.starts_with("virtio"))
    });
    by_iface || by_dev || by_pci
}

/// `/proc/interrupts` → (irq number, chip and hw columns, action name) for numbered lines.
pub fn parse_interrupts(text: &str) -> Vec<(u32, String, String)> {
    let mut lines = text.lines();
    let ncpu = lines.next().map(|h| h.split_whitespace().count()).unwrap_or(0);
    lines
        .filter_map(|l| {
            let (num, rest) = l.trim_start().split_once(':')?;
            let irq: u32 = num.trim().parse().ok()?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() <= ncpu + 1 {
                return None;
            }
            let tail = &fields[ncpu..];
            let action = tail.last()?.to_string();
            let chip = tail[..tail.len() - 1].join(" ");
            Some((irq, chip, action))
        })
        .collect()
}

/// The CPU list of `key=` on a kernel command line (`isolcpus=managed_irq,domain,2-7` → 2-7).
pub fn cmdline_cpus(cmdline: &str, key: &str) -> Option<CpuSet> {
    let value = cmdline
        .split_whitespace()
        .take_while(|w| *w != "--")
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?;
    let list = value
        .split(',')
        .filter(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(",");
    parse_cpulist(&list).ok().filter(|s| !s.is_empty())
}

/// `always [madvise] never` → `madvise`.
fn selected_word(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_string())
}

/// A row of `/proc/self/limits`: `Max locked memory   8388608   8388608   bytes`.
fn limit(text: &str, name: &str) -> Option<Limit> {
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    let mut f = rest.split_whitespace();
    let value = |v: Option<&str>| -> Option<Option<u64>> {
        match v? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some(Limit { soft: value(f.next())?, hard: value(f.next())? })
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |x: Option<u64>| x.map_or("unlimited".to_string(), |n| n.to_string());
        write!(f, "{} (hard {})", v(self.soft), v(self.hard))
    }
}

/// For messages: `0-3,8`.
pub fn show(set: &CpuSet) -> String {
    format_cpulist(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupts_columns_are_split() {
        let text = "           CPU0       CPU1\n 38:          0       2607 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\nNMI:  0 0 Non-maskable interrupts\n";
        let rows = parse_interrupts(text);
        assert_eq!(
            rows,
            vec![(38, "PCI-MSIX-0000:00:03.0 1-edge".to_string(), "virtio2-input.0".to_string())]
        );
        assert!(irq_belongs("eth0", "virtio2", Some("0000:00:03.0"), &rows[0].1, &rows[0].2));
        assert!(!irq_belongs(
            "eth0",
            "virtio2",
            Some("0000:00:03.0"),
            "PCI-MSIX-0000:00:03.0 0-edge",
            "virtio2-config"
        ));
        assert!(irq_belongs(
            "ens1f0",
            "0000:3b:00.0",
            Some("0000:3b:00.0"),
            "IR-PCI-MSI-0000:3b:00.0 3-edge",
            "ens1f0-TxRx-3"
        ));
        assert!(irq_belongs(
            "ens1f0",
            "0000:3b:00.0",
            Some("0000:3b:00.0"),
            "IR-PCI-MSIX",
            "mlx5_comp3@pci:0000:3b:00.0"
        ));
    }

    #[test]
    fn cmdline_lists_drop_flags() {
        let c = "BOOT_IMAGE=/vmlinuz isolcpus=managed_irq,domain,2-5,7 nohz_full=2-7 quiet -- isolcpus=0";
        assert_eq!(cmdline_cpus(c, "isolcpus").unwrap(), [2, 3, 4, 5, 7].into_iter().collect());
        assert_eq!(cmdline_cpus(c, "nohz_full").unwrap(), (2..=7).collect());
        assert_eq!(cmdline_cpus("quiet", "isolcpus"), None);
    }

    #[test]
    fn limits_and_thp_parse() {
        let l = "Limit Soft Hard Units\nMax open files            1024                 524288               files\nMax locked memory         unlimited            unlimited            bytes\n";
        assert_eq!(limit(l, "Max open files"), Some(Limit { soft: Some(1024), hard: Some(524288) }));
        assert_eq!(limit(l, "Max locked memory"), Some(Limit { soft: None, hard: None }));
        assert_eq!(selected_word("always [madvise] never\n").as_deref(), Some("madvise"));
    }

    #[test]
    fn a_missing_root_is_all_unknown() {
        let h = HostFacts::read(Path::new("/nonexistent/shardcast-host"));
        assert!(h.cpus.is_empty() && h.allowed.is_none() && h.nics.is_empty() && h.thp.is_none());
        assert!(h.sysctls.values().all(Option::is_none));
        assert_eq!(h.allowed_cpus(), CpuSet::new());
    }
}
