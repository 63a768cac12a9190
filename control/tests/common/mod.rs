//! The real daemon binary as the control crate's end-to-end tests start it: spawned with stdout
//! piped, ready once its JSON ready line arrives (with a deadline), stopped by SIGTERM through the
//! `kill` utility (which keeps the tests free of unsafe code) with a deadline of its own.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A seeded xorshift generator for the race tests' interleavings (reproducible by seed).
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// True when this process runs as root (effective uid 0, from `/proc/self/status`): kernel
/// steering needs CAP_BPF. Without it, tests of it print what they skip.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
}

/// The daemon binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shardcast")
}

/// API and media on 127.0.0.1, ports picked by the kernel.
pub const LOCAL: [&str; 4] = ["--api-listen", "127.0.0.1:0", "--media-listen", "127.0.0.1:0"];

/// A running daemon and its ready line.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub ready: Value,
    /// `http://` + the API address of the ready line.
    pub api: String,
    /// The shared media port of the ready line.
    pub media: SocketAddr,
    /// Its stderr so far, when started with [`Daemon::spawn_logged`].
    log: Option<Arc<Mutex<String>>>,
}

impl Daemon {
    /// Starts `cmd` (its stdout is taken) and waits up to `within` for the ready line.
    pub fn spawn(mut cmd: Command, within: Duration) -> Result<Daemon, String> {
        let child = cmd.stdout(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
        Daemon::ready(child, within, None)
    }

    /// As [`Daemon::spawn`], keeping what the daemon writes to stderr (see [`Daemon::log`]).
    pub fn spawn_logged(mut cmd: Command, within: Duration) -> Result<Daemon, String> {
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().ok_or("stderr is piped")?;
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        Daemon::ready(child, within, Some(log))
    }

    /// Waits up to `within` for the ready line on the child's stdout.
    fn ready(mut child: Child, within: Duration, log: Option<Arc<Mutex<String>>>) -> Result<Daemon, String> {
        let stdout = child.stdout.take().ok_or("stdout is piped")?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(within).unwrap_or_default();
        let Ok(ready) = serde_json::from_str::<Value>(&line) else {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            let stderr = log.and_then(|l| l.lock().ok().map(|l| l.clone())).unwrap_or_default();
            return Err(format!("no ready line within {within:?} ({status}); stderr: {stderr}"));
        };
        let api = format!("http://{}", ready["api"].as_str().unwrap_or_default());
        let media =
            ready["media"].as_str().and_then(|m| m.parse().ok()).ok_or("ready line names the media port")?;
        Ok(Daemon { child, ready, api, media, log })
    }

    /// What the daemon wrote to stderr so far (empty unless started with `spawn_logged`).
    pub fn log(&self) -> String {
        self.log.as_ref().and_then(|l| l.lock().ok().map(|l| l.clone())).unwrap_or_default()
    }

    /// True once the stderr kept so far contains `needle` (the reader thread may lag behind the
    /// ready line), false if it does not within `deadline`.
    pub fn log_contains(&self, needle: &str, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit code within `deadline` (-1 for a signal), or `None` if it is still running.
    pub fn wait(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The daemon on 127.0.0.1 with two unpinned cores and `extra` arguments, stderr discarded.
    pub fn start(extra: &[&str]) -> Daemon {
        let mut cmd = Command::new(bin());
        cmd.args(LOCAL).args(["--cores", "2"]).args(extra).stderr(Stdio::null());
        Daemon::spawn(cmd, Duration::from_secs(20)).expect("daemon starts")
    }

    /// Sends signal `sig` (a name `kill` knows: TERM, HUP, ...).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status();
    }

    /// SIGTERM, then true if it exits successfully within 10 s (killed otherwise).
    pub fn stop(mut self) -> bool {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Daemon {
    /// A test that fails half-way leaves no daemon behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
