//! The short flood (issue 12): the real daemon, ~2 s of legitimate fan-out at a low rate with a
//! 10× hostile flood on the same ports. The daemon stays up, the legitimate streams lose nothing
//! the kernel did not drop, the conservation identities hold, and the daemon's log stays bounded.
//!
//! The daemon binary is the one cargo built beside this test (`target/<profile>/shardcast`, built
//! by `cargo test --workspace`); when it is not there (`cargo test -p shardcast-benches` alone),
//! the same daemon runs in-process (its library behind its HTTP server) and the log is not
//! captured.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardcast_benches::loadgen::flood::{flood, flood_summary, FloodConfig, HostileClass};
use shardcast_benches::loadgen::{Profile, RunConfig, Target};

/// The daemon under test.
enum Relay {
    Spawned { child: Child, api: String, log: PathBuf },
    InProcess { sc: shardcast::Shardcast, server: shardcast::http::HttpServer },
}

fn daemon_binary() -> Option<PathBuf> {
    // target/<profile>/deps/flood-<hash> → target/<profile>/shardcast
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("shardcast");
    bin.is_file().then_some(bin)
}

impl Relay {
    fn start() -> Relay {
        let Some(bin) = daemon_binary() else {
            eprintln!("no daemon binary beside the test: running it in-process");
            let sc = shardcast::Shardcast::start(shardcast::Config::for_tests(2)).expect("starts");
            let server = shardcast::http::HttpServer::start(sc.clone(), "127.0.0.1:0".parse().unwrap())
                .expect("serves");
            return Relay::InProcess { sc, server };
        };
        let log = std::env::temp_dir().join(format!("shardcast-flood-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(&bin)
            .args(["--api-listen", "127.0.0.1:0", "--media-listen", "127.0.0.1:0", "--cores", "2"])
            .args(["--log-level", "info"])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the daemon starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let ready: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                panic!("no ready line from {}: {line:?}", bin.display());
            }
        };
        let api = format!("http://{}", ready["api"].as_str().expect("ready line names the API"));
        Relay::Spawned { child, api, log }
    }

    fn api(&self) -> String {
        match self {
            Relay::Spawned { api, .. } => api.clone(),
            Relay::InProcess { server, .. } => format!("http://{}", server.addr()),
        }
    }

    fn log(&self) -> Option<PathBuf> {
        match self {
            Relay::Spawned { log, .. } => Some(log.clone()),
            Relay::InProcess { .. } => None,
        }
    }

    /// Stops it: true if it was still running and exits cleanly.
    fn stop(self) -> bool {
        match self {
            Relay::Spawned { mut child, log, .. } => {
                let alive = matches!(child.try_wait(), Ok(None));
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut clean = false;
                while Instant::now() < deadline {
                    if let Ok(Some(status)) = child.try_wait() {
                        clean = status.success();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !clean {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let _ = std::fs::remove_file(log);
                alive && clean
            }
            Relay::InProcess { sc, server } => {
                server.stop(Duration::from_secs(2));
                sc.shutdown(Duration::from_secs(5)).is_ok()
            }
        }
    }
}

#[test]
fn a_ten_fold_flood_leaves_the_legit_streams_and_the_counts_whole() {
    let relay = Relay::start();
    let config = FloodConfig {
        legit: RunConfig {
            target: Target::Shardcast { api: relay.api(), token: None },
            // 2 streams × 2 consumers, 2000 output pps = 1000 input pps.
            profile: Profile::Fanout { streams: 2, consumers: 2 },
            rate: 2000.0,
            size: 200,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(2),
            seed: 12,
            cpu: None,
            progress: false,
            during: None,
        },
        flood_factor: 10.0,
        consumer_nack_pps: 20.0,
        relay_log: relay.log(),
        flood_cpu: None,
        probe_each: 40,
    };
    let r = flood(&config).expect("the flood runs");
    eprintln!("{}", flood_summary(&r));
    let c = &r.conservation;

    assert!(r.relay_alive, "the relay went down");
    // The flood ran at (nearly) ten times the legitimate input rate, every class in it.
    let legit_window: u64 = r.legit.streams.iter().map(|s| s.sent).sum();
    assert!(legit_window > 1000, "{:?}", r.legit);
    assert!(r.hostile_sent >= 5 * legit_window, "hostile {} vs legit {legit_window}", r.hostile_sent);
    for class in HostileClass::ALL {
        assert!(r.hostile.get(&class).is_some_and(|f| f.sent > 0), "{} never sent", class.as_str());
    }
    // Conservation: the relay's identity on every core, every datagram sent accounted for, no
    // hostile datagram forwarded, the flood's datagrams counted by reason (or dropped by the
    // kernel on the relay's sockets, reported).
    assert!(c.relay_identity, "relay identity: {c:?}");
    assert_eq!(c.socket_residual, 0, "datagrams unaccounted for: {c:?}");
    assert!(c.routed_excess <= 0, "hostile datagrams were routed: {c:?}");
    assert!(
        (0..=r.kernel_relay_socket_drops as i128).contains(&c.hostile_kernel_dropped),
        "hostile sent {} vs counted {} with {} kernel drops: {c:?}",
        r.hostile_sent,
        c.hostile_counted,
        r.kernel_relay_socket_drops
    );
    // The legitimate streams lost nothing the relay dropped (the kernel's drops are reported).
    assert!(c.legit_loss_beyond_kernel <= 0, "legit lost {} beyond the kernel's drops: {c:?}", r.legit.lost);
    if r.kernel_relay_socket_drops + r.kernel_receiver_socket_drops == 0 {
        assert_eq!(r.legit.lost, 0, "{:?}", r.legit.streams);
        assert_eq!(c.hostile_counted, r.hostile_sent as i128, "{c:?}");
    }
    // Logging stayed rate-limited: a flood of ~20 000 bad datagrams writes a bounded log.
    if let Some(lines) = r.relay_log_lines {
        assert!(lines <= 50, "{lines} log lines: {:?}", r.relay_log_sample);
    }
    assert!(relay.stop(), "the daemon did not exit cleanly after the flood");
}
