//! The real daemon as an operator runs it: under `taskset -c 1`, with every shipped profile that
//! fits, refusing bad pinning, logging plain text to files and JSON on request, telling systemd
//! it is ready, reloading on SIGHUP, at SCHED_FIFO when asked; and the systemd unit verifies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shardcast::config::{Config, Policy};
use shardcast::tune::host::{cap, HostFacts};

mod common;
use common::{bin, Daemon, LOCAL};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shardcast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `cmd` and waits for its ready line.
fn start(cmd: Command) -> Result<Daemon, String> {
    Daemon::spawn(cmd, Duration::from_secs(15))
}

fn two_cpus() -> bool {
    let ok =
        shardcast_dataplane::io::allowed_cpus().map(|c| c.contains(&0) && c.contains(&1)).unwrap_or(false);
    if !ok {
        println!("skipped: needs CPUs 0 and 1");
    }
    ok
}

fn wait_for(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn starts_under_taskset_with_a_config_pinning_that_cpu_and_with_the_default() {
    if !two_cpus() {
        return;
    }
    let dir = tmp("taskset");
    let cfg = dir.join("cpu1.toml");
    std::fs::write(&cfg, "[cores]\ndata_plane = [1]\ncontrol = 1\napi = 1\ncontrol_on_data_plane = true\n")
        .unwrap();
    for config in [Some(&cfg), None] {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "1", bin()]).args(LOCAL).stderr(Stdio::null());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let d = start(cmd).unwrap_or_else(|e| panic!("{config:?}: {e}"));
        // Every thread stays inside the cpuset.
        let pid = d.child.id();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap_or_default();
            if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list")) {
                assert!(l.ends_with("\t1"), "{l}");
            }
        }
        assert!(d.stop());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_invalid_pinning_config_is_refused_naming_field_and_fix() {
    let dir = tmp("invalid");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[cores]\ndata_plane = [4095]\n").unwrap();
    let out = Command::new(bin()).arg("--config").arg(&cfg).args(LOCAL).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cores.data_plane: cpu 4095 does not exist on this machine")
            && err.contains("fix: use CPUs of"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_shipped_profile_that_fits_starts() {
    let host = HostFacts::current();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning");
    let mut started = 0;
    for name in ["default.toml", "dedicated.toml", "shared-host.toml", "benchmark.toml"] {
        let path = dir.join(name);
        let config = Config::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let fifo = matches!(config.cores.data_plane_policy, Policy::Fifo(_));
        if let Err(e) = config.validate_on(&host) {
            println!("skipped {name}: does not fit this machine: {e}");
            continue;
        }
        if fifo && !host.has_cap(cap::SYS_NICE) {
            println!("skipped {name}: SCHED_FIFO needs CAP_SYS_NICE");
            continue;
        }
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&path).args(LOCAL).stderr(Stdio::null());
        let d = start(cmd).unwrap_or_else(|e| panic!("{name}: {e}"));
        if fifo {
            // Field 41 of a thread's stat is its policy: 1 = SCHED_FIFO.
            let pid = d.child.id();
            let policies: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .filter_map(|t| {
                    let t = t.ok()?.path();
                    let comm = std::fs::read_to_string(t.join("comm")).ok()?.trim().to_string();
                    let stat = std::fs::read_to_string(t.join("stat")).ok()?;
                    let after = stat.rsplit_once(')')?.1;
                    Some((comm, after.split_whitespace().nth(38)?.to_string()))
                })
                .collect();
            // glommio's helper thread of each executor is named alike but starts before the
            // policy is set: count the FIFO ones, one per data-plane core.
            let fifo_cores =
                policies.iter().filter(|(c, p)| c.starts_with("shardcast-core") && p == "1").count();
            assert_eq!(fifo_cores, config.pinning(&host).data_plane.len(), "{name}: {policies:?}");
            assert!(policies.iter().any(|(c, p)| c == "shardcast-contr" && p == "0"), "{policies:?}");
        }
        assert!(d.stop(), "{name} stops cleanly");
        started += 1;
    }
    assert!(started >= 2, "default and shared-host fit any machine");
}

#[test]
fn sched_fifo_without_cap_sys_nice_fails_naming_it() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        println!("skipped: no setpriv (util-linux)");
        return;
    }
    let dir = tmp("fifo");
    let cfg = dir.join("fifo.toml");
    std::fs::write(&cfg, "[cores]\npin = false\ndata_plane = [0]\ndata_plane_policy = { fifo = 10 }\n")
        .unwrap();
    let out = Command::new("setpriv")
        .args(["--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--"])
        .arg(bin())
        .arg("--config")
        .arg(&cfg)
        .args(LOCAL)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(0) || err.contains("setpriv:") {
        println!("skipped: cannot drop CAP_SYS_NICE here ({err})");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cores.data_plane_policy") && err.contains("CAP_SYS_NICE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn logs_to_a_file_are_plain_and_json_logs_parse() {
    let dir = tmp("logs");
    let text_log = dir.join("text.log");
    let mut cmd = Command::new(bin());
    cmd.args(LOCAL).args(["--cores", "1"]).stderr(std::fs::File::create(&text_log).unwrap());
    let d = start(cmd).unwrap();
    assert!(d.stop());
    let text = std::fs::read_to_string(&text_log).unwrap();
    assert!(text.contains("ready"), "{text}");
    assert!(!text.contains('\x1b'), "no escape codes in a file: {text:?}");

    let cfg = dir.join("json.toml");
    std::fs::write(&cfg, "log_format = \"json\"\n").unwrap();
    let json_log = dir.join("json.log");
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(&cfg)
        .args(LOCAL)
        .args(["--cores", "1"])
        .stderr(std::fs::File::create(&json_log).unwrap());
    let d = start(cmd).unwrap();
    assert!(d.stop());
    let lines: Vec<Value> = std::fs::read_to_string(&json_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let ready = lines.iter().find(|v| v["message"] == "ready").expect("a ready event");
    assert_eq!(ready["level"], "INFO");
    assert!(ready["api"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{ready}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tells_systemd_it_is_ready_and_reloads_on_sighup() {
    let dir = tmp("notify");
    let sock_path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cfg = dir.join("live.toml");
    std::fs::write(&cfg, "log_level = \"info\"\n[cores]\npin = false\ndata_plane = [0]\n").unwrap();
    let log = dir.join("log");
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(&cfg)
        .args(LOCAL)
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(std::fs::File::create(&log).unwrap());
    let d = start(cmd).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert!(msg.contains(d.ready["api"].as_str().unwrap()), "{msg}");

    // Safe changes apply.
    std::fs::write(
        &cfg,
        "log_level = \"debug\"\n[cores]\npin = false\ndata_plane = [0]\n[rebalancer]\nthreshold = 0.5\n",
    )
    .unwrap();
    d.signal("HUP");
    let text = wait_for(&log, "config reloaded");
    assert!(
        text.contains("config reloaded") && text.contains("log_level") && text.contains("rebalancer"),
        "{text}"
    );
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // A change that needs a restart is refused, and the daemon keeps running.
    std::fs::write(
        &cfg,
        "log_level = \"debug\"\n[cores]\npin = false\ndata_plane = [0, 1]\n[rebalancer]\nthreshold = 0.5\n",
    )
    .unwrap();
    d.signal("HUP");
    let text = wait_for(&log, "reload refused");
    assert!(text.contains("reload refused: cores.data_plane changed: these need a restart"), "{text}");
    let api = d.ready["api"].as_str().unwrap().to_string();
    assert!(std::net::TcpStream::connect(api).is_ok(), "still serving");
    assert!(d.stop());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing: install the `systemd` package (apt-get install -y systemd); .ci/run does");
    };
    assert!(out.status.success());
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/shardcast.service"))
            .unwrap();
    for needed in [
        "Type=notify",
        "LimitMEMLOCK=",
        "LimitNOFILE=",
        "CAP_BPF",
        "CAP_NET_ADMIN",
        "Restart=on-failure",
        "CPUAffinity=",
        "ExecReload=",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    // Verify it as installed: ExecStart must name an executable, so point it at this build.
    let dir = tmp("unit");
    let path = dir.join("shardcast.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/shardcast", bin())).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = err.lines().filter(|l| l.contains("shardcast.service")).collect();
    assert!(out.status.success() && about_unit.is_empty(), "systemd-analyze verify: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
