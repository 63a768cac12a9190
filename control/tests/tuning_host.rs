//! `shardcast tune`'s /proc and /sys parsing against fixtures of other machines
//! (`fixtures/hosts/<name>/`), its checks, `--propose` and `--apply`, and the live host.

use std::path::{Path, PathBuf};
use std::process::Command;

use shardcast::config::Config;
use shardcast::pinning::{CpuSet, Severity};
use shardcast::tune::host::HostFacts;
use shardcast::tune::{self, Status};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts").join(name)
}

fn set(ids: &[usize]) -> CpuSet {
    ids.iter().copied().collect()
}

fn status_of(report: &tune::Report, topic: &str) -> Status {
    report.checks.iter().find(|c| c.topic == topic).unwrap_or_else(|| panic!("no {topic} row")).status
}

#[test]
fn two_socket_numa_host_with_smt_is_read_whole() {
    let h = HostFacts::read(&fixture("numa2-smt"));
    assert_eq!(h.cpus.len(), 16);
    assert_eq!((h.packages(), h.physical_cores()), (2, 8));
    assert_eq!(h.siblings_of(0), set(&[8]));
    assert_eq!(h.siblings_of(13), set(&[5]));
    assert_eq!(h.node_of(12), Some(1));
    assert_eq!(h.nodes[&0], set(&[0, 1, 2, 3, 8, 9, 10, 11]));
    assert_eq!(h.isolcpus, Some(set(&[5, 6, 7, 13, 14, 15])));
    assert_eq!(h.nohz_full, h.isolcpus);
    let nic = h.nic("ens1f0").expect("the PCI NIC is found; lo has no device");
    assert_eq!(h.nics.len(), 1);
    assert_eq!((nic.numa_node, nic.rx_queues, nic.tx_queues), (Some(1), 8, 8));
    assert_eq!(nic.irqs.len(), 9, "8 queue vectors and the misc one, not the timer");
    assert_eq!(nic.irqs.iter().find(|i| i.irq == 121).unwrap().affinity, Some(set(&[4])));
    assert_eq!(h.sysctl_u64("net.core.rmem_max"), Some(212992));
    assert_eq!(h.sysctl("kernel.io_uring_disabled"), Some("2"));
    assert_eq!(h.thp.as_deref(), Some("always"));
    assert_eq!(h.memlock.unwrap().soft, Some(65536));
    assert_eq!(h.cpu(3).unwrap().governor.as_deref(), Some("powersave"));
    assert!(!h.has_cap(shardcast::tune::host::cap::BPF));
}

#[test]
fn numa_host_report_names_what_hurts() {
    let h = HostFacts::read(&fixture("numa2-smt"));
    let mut config = Config::default();
    config.media.nic = Some("ens1f0".into());
    let r = tune::report(&h, &config);
    // The default data plane stays on the NIC's node (every allowed CPU of node 1).
    let dp: CpuSet = r.pinning.data_plane.iter().flatten().copied().collect();
    assert_eq!(dp, set(&[4, 5, 6, 7, 12, 13, 14, 15]));
    assert_eq!(r.pinning.control, Some(0));
    assert_eq!(status_of(&r, "numa"), Status::Ok);
    assert_eq!(status_of(&r, "smt"), Status::Bad, "siblings 4 and 12 are both data-plane CPUs");
    for bad in ["net.core.rmem_max", "RLIMIT_MEMLOCK", "kernel.io_uring_disabled", "bpf"] {
        assert_eq!(status_of(&r, bad), Status::Bad, "{bad}");
    }
    for hint in ["net.core.netdev_max_backlog", "cpufreq governor", "transparent hugepages", "irq ens1f0"] {
        assert_eq!(status_of(&r, hint), Status::Hint, "{hint}");
    }
    assert!(r.findings.iter().any(|f| f.field == "cores.data_plane" && f.problem.contains("SMT siblings")));
    assert!(r
        .findings
        .iter()
        .any(|f| f.field == "media.recv_buffer" && f.fix.contains("net.core.rmem_max=4194304")));
    // Off the NIC's node: a warning naming the node's CPUs.
    config.cores.data_plane = vec![1, 5];
    let r = tune::report(&h, &config);
    let numa = r.findings.iter().find(|f| f.problem.contains("NUMA node 1")).expect("numa finding");
    assert!(numa.fix.contains("4-7,12-15"), "{numa}");
    assert_eq!(status_of(&r, "numa"), Status::Bad);
    // The control CPU as a data-plane CPU's sibling.
    config.cores.data_plane = vec![8];
    let r = tune::report(&h, &config);
    assert!(
        r.findings.iter().any(|f| f.field == "cores.control" && f.problem.contains("SMT sibling")),
        "{:?}",
        r.findings
    );
}

#[test]
fn proposal_for_the_numa_host_is_valid_and_clean() {
    let h = HostFacts::read(&fixture("numa2-smt"));
    let text = tune::propose(&h, Some("ens1f0"));
    let proposed = Config::parse(&text).expect("the proposal is a config");
    assert_eq!(
        proposed.cores.data_plane,
        vec![5, 6, 7],
        "isolated CPUs of the NIC's node, one per core:\n{text}"
    );
    assert_eq!(proposed.media.nic.as_deref(), Some("ens1f0"));
    let findings = proposed.check(&h);
    assert!(
        findings.iter().all(|f| !f.field.starts_with("cores")),
        "no pinning finding for the proposal: {findings:?}"
    );
}

#[test]
fn container_cpuset_is_the_allowed_set() {
    let h = HostFacts::read(&fixture("container-cpuset"));
    assert_eq!(h.cpus.len(), 8);
    assert_eq!(h.allowed, Some(set(&[2, 3])));
    assert_eq!(h.cgroup_cpuset, Some(set(&[2, 3])));
    assert!(h.nics.is_empty(), "a veth has no device");
    assert!(h.cpus.iter().all(|c| c.governor.is_none()));
    assert_eq!(h.sysctl("kernel.io_uring_disabled"), None, "absent is unknown");
    let config = Config::default();
    let p = config.pinning(&h);
    assert_eq!((p.control, p.api, p.data_plane.clone()), (Some(2), Some(2), vec![Some(3)]));
    let r = tune::report(&h, &config);
    assert_eq!(status_of(&r, "cpufreq governor"), Status::Unknown);
    assert_eq!(status_of(&r, "kernel.io_uring_disabled"), Status::Unknown);
    assert_eq!(status_of(&r, "RLIMIT_MEMLOCK"), Status::Ok, "unlimited");
    let mut outside = Config::default();
    outside.cores.data_plane = vec![1];
    let err = outside.validate_on(&h).unwrap_err();
    assert!(
        err.contains("cores.data_plane") && err.contains("cpu 1 is not in this process's allowed CPUs (2-3"),
        "{err}"
    );
    assert!(err.contains("fix: use CPUs of 2-3"), "{err}");
    outside.cores.data_plane = vec![9];
    let err = outside.validate_on(&h).unwrap_err();
    assert!(err.contains("cpu 9 does not exist on this machine (online CPUs: 0-7)"), "{err}");
    assert_eq!(
        tune::propose(&h, None).lines().filter(|l| l.starts_with("data_plane")).collect::<Vec<_>>(),
        ["data_plane = [3]"]
    );
}

#[test]
fn this_machine_fixture_matches_the_live_host_kind() {
    let h = HostFacts::read(&fixture("this-machine"));
    assert_eq!(h.cpus.len(), 2);
    assert_eq!((h.packages(), h.physical_cores()), (1, 2));
    assert!(h.siblings_of(0).is_empty());
    let nic = h.nic("eth0").expect("virtio NIC");
    assert_eq!((nic.rx_queues, nic.numa_node), (1, None));
    let names: Vec<&str> = nic.irqs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["virtio2-input.0", "virtio2-output.0"],
        "queue vectors only, found via the device's name"
    );
    assert!(h.cpus.iter().all(|c| c.governor.is_none()));
}

#[test]
fn live_host_facts_agree_with_the_kernel() {
    let h = HostFacts::current();
    let allowed: CpuSet = shardcast_dataplane::io::allowed_cpus().unwrap().into_iter().collect();
    assert_eq!(h.allowed, Some(allowed.clone()));
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let online = shardcast::pinning::parse_cpulist(&online).unwrap();
    assert_eq!(h.cpus.iter().map(|c| c.id).collect::<CpuSet>(), online);
    assert_eq!(
        h.sysctl("net.core.rmem_max"),
        std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok().as_deref().map(str::trim)
    );
    let (soft, _) = shardcast_dataplane::io::nofile_limit().unwrap();
    assert_eq!(h.nofile.unwrap().soft, Some(soft));
}

fn tune_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardcast")).arg("tune").args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn tune_runs_here_and_prints_this_machines_facts() {
    let (code, out, err) = tune_cmd(&["--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json is JSON");
    let ncpu = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|t| shardcast::pinning::parse_cpulist(&t).unwrap().len())
        .unwrap();
    assert_eq!(v["host"]["cpus"].as_array().unwrap().len(), ncpu);
    let cpus = v["checks"].as_array().unwrap().iter().find(|c| c["topic"] == "cpus").unwrap();
    assert!(cpus["fact"].as_str().unwrap().starts_with(&format!("{ncpu} online")), "{cpus}");
    let (code, table, _) = tune_cmd(&[]);
    assert_eq!(code, 0);
    for topic in ["cpuset", "isolcpus", "net.core.rmem_max", "RLIMIT_MEMLOCK", "bpf", "control pinning"] {
        assert!(table.lines().any(|l| l.starts_with(topic)), "{topic} row in\n{table}");
    }
}

#[test]
fn tune_config_with_errors_exits_1_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("shardcast-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[cores]\ndata_plane = [1, 1]\n").unwrap();
    let root = fixture("container-cpuset");
    let (code, out, _) = tune_cmd(&["--root", root.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("config cores.data_plane") && out.contains("listed twice"), "{out}");
    assert!(out.contains("not in this process's allowed CPUs"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn apply_is_a_dry_run_unless_committed_and_touches_only_sysctls() {
    let root = std::env::temp_dir().join(format!("shardcast-apply-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    copy_dir(&fixture("numa2-smt").join("proc"), &root.join("proc"));
    let rmem = root.join("proc/sys/net/core/rmem_max");
    let uring = root.join("proc/sys/kernel/io_uring_disabled");
    let (code, out, err) = tune_cmd(&["--root", root.to_str().unwrap(), "--apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("would set (dry run; --commit writes): net.core.rmem_max 212992 -> 4194304"),
        "{out}"
    );
    assert!(out.contains("net.core.netdev_max_backlog 1000 -> 5000"), "{out}");
    assert_eq!(std::fs::read_to_string(&rmem).unwrap(), "212992\n", "a dry run changes nothing");
    let (code, out, err) = tune_cmd(&["--root", root.to_str().unwrap(), "--apply", "--commit", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let changes = v["apply"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| c["applied"] == true));
    assert_eq!(std::fs::read_to_string(&rmem).unwrap(), "4194304\n");
    assert_eq!(
        std::fs::read_to_string(&uring).unwrap(),
        "2\n",
        "security sysctls are reported, never changed"
    );
    // Applied once, there is nothing left to change, and nothing is ever lowered.
    let h = HostFacts::read(&root);
    assert!(tune::apply(&root, &h, &Config::default(), true).is_empty());
    let _ = std::fs::remove_dir_all(&root);
    assert!(Config::default().check(&h).iter().all(|f| f.severity != Severity::Error));
}
