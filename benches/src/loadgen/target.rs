//! The relay under test: shardcast (set up through its HTTP API), the floor relay (spawned with
//! routes), or plain addresses (a relay the caller set up).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::loadgen::profile::Stream;

/// Which relay to drive.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running shardcast daemon's API (`http://127.0.0.1:PORT`), optional bearer token.
    Shardcast { api: String, token: Option<String> },
    /// Spawn the floor relay binary, optionally pinned.
    /// The floor relay; `uring`: its io_uring variant (`shardcast-floor --io uring`).
    Floor { bin: String, cpu: Option<usize>, uring: bool },
    /// Send stream `i` to `ingress[i]`; receivers must be wired by the caller.
    Addrs { ingress: Vec<SocketAddr>, pid: Option<u32> },
    /// A relay the caller starts once it knows the topology (tests: relays that drop,
    /// duplicate or reorder on purpose).
    Custom(CustomRelay),
}

/// Starts a relay for `(streams, sender, receivers)` and returns its ingress per stream.
pub type RelayStarter =
    dyn Fn(&[Stream], SocketAddr, &[SocketAddr]) -> Result<Vec<SocketAddr>, String> + Send + Sync;

/// A caller-provided relay.
#[derive(Clone)]
pub struct CustomRelay(pub std::sync::Arc<RelayStarter>);

impl std::fmt::Debug for CustomRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomRelay")
    }
}

/// A target set up for one run.
#[derive(Debug)]
pub struct Prepared {
    /// Where stream `i` is sent.
    pub ingress: Vec<SocketAddr>,
    /// The relay's pid (for CPU accounting).
    pub pid: Option<u32>,
    /// A child to stop at the end.
    pub child: Option<Child>,
    /// For shardcast: the router to close at the end.
    pub router: Option<u64>,
}

fn api_call(
    c: &reqwest::blocking::Client,
    token: &Option<String>,
    method: &str,
    url: String,
    body: Value,
) -> Result<Value, String> {
    let mut r = match method {
        "POST" => c.post(&url).json(&body),
        "DELETE" => c.delete(&url),
        _ => c.get(&url),
    };
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    let resp = r.send().map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{method} {url}: {status} {v}"));
    }
    Ok(v)
}

impl Target {
    /// Wires the topology: every stream from `sender` to every receiver of it.
    pub fn prepare(
        &self,
        streams: &[Stream],
        sender: SocketAddr,
        receivers: &[SocketAddr],
    ) -> Result<Prepared, String> {
        match self {
            Target::Custom(start) => {
                let ingress = (start.0)(streams, sender, receivers)?;
                Ok(Prepared { ingress, pid: None, child: None, router: None })
            }
            Target::Addrs { ingress, pid } => {
                if ingress.len() < streams.len() {
                    return Err(format!("{} ingress addresses for {} streams", ingress.len(), streams.len()));
                }
                Ok(Prepared { ingress: ingress.clone(), pid: *pid, child: None, router: None })
            }
            Target::Floor { bin, cpu, uring } => {
                let mut cmd = Command::new(bin);
                if *uring {
                    cmd.args(["--io", "uring"]);
                }
                if let Some(c) = cpu {
                    cmd.args(["--cpu", &c.to_string()]);
                }
                for s in streams {
                    let dests: Vec<String> = s.receivers.iter().map(|r| receivers[*r].to_string()).collect();
                    cmd.args(["--route", &format!("127.0.0.1:0={}", dests.join(","))]);
                }
                let mut child = cmd
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start {bin}: {e}"))?;
                let stdout = child.stdout.take().ok_or("no stdout")?;
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = BufReader::new(stdout).read_line(&mut line);
                    let _ = tx.send(line);
                });
                let line =
                    rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "floor relay did not start")?;
                let v: Value = serde_json::from_str(&line).map_err(|e| format!("floor: {e}: {line}"))?;
                let ingress = v["ingress"]
                    .as_array()
                    .ok_or("floor: no ingress")?
                    .iter()
                    .filter_map(|a| a.as_str()?.parse().ok())
                    .collect();
                Ok(Prepared {
                    ingress,
                    pid: v["pid"].as_u64().map(|p| p as u32),
                    child: Some(child),
                    router: None,
                })
            }
            Target::Shardcast { api, token } => {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?;
                let stats = api_call(&c, token, "GET", format!("{api}/stats"), json!({}))?;
                let pid = stats["pid"].as_u64().map(|p| p as u32);
                let router = api_call(&c, token, "POST", format!("{api}/routers"), json!({}))?["id"]
                    .as_u64()
                    .ok_or("no router id")?;
                let connect = |t: u64, to: SocketAddr| {
                    api_call(
                        &c,
                        token,
                        "POST",
                        format!("{api}/transports/{t}/connect"),
                        json!({"ip": to.ip().to_string(), "port": to.port()}),
                    )
                };
                let mut ingress = Vec::new();
                let mut producers = Vec::new();
                for s in streams {
                    let t =
                        api_call(&c, token, "POST", format!("{api}/routers/{router}/transports"), json!({}))?;
                    let (tid, local) = (
                        t["id"].as_u64().ok_or("no id")?,
                        t["local"].as_str().ok_or("no local")?.to_string(),
                    );
                    connect(tid, sender)?;
                    let kind = if s.video { "video" } else { "audio" };
                    let p = api_call(
                        &c,
                        token,
                        "POST",
                        format!("{api}/transports/{tid}/producers"),
                        json!({"kind": kind, "ssrc": s.ssrc, "payload_type": s.payload_type}),
                    )?;
                    producers.push(p["id"].as_u64().ok_or("no producer id")?);
                    ingress.push(local.parse().map_err(|e| format!("{e}"))?);
                }
                let mut out_transports = Vec::new();
                for r in receivers {
                    let t =
                        api_call(&c, token, "POST", format!("{api}/routers/{router}/transports"), json!({}))?;
                    let tid = t["id"].as_u64().ok_or("no id")?;
                    connect(tid, *r)?;
                    out_transports.push(tid);
                }
                for (s, p) in streams.iter().zip(&producers) {
                    for r in &s.receivers {
                        api_call(
                            &c,
                            token,
                            "POST",
                            format!("{api}/transports/{}/consumers", out_transports[*r]),
                            json!({"producer_id": p}),
                        )?;
                    }
                }
                Ok(Prepared { ingress, pid, child: None, router: Some(router) })
            }
        }
    }

    /// Stops what `prepare` started.
    pub fn finish(&self, mut prepared: Prepared) {
        if let Some(mut child) = prepared.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let (Target::Shardcast { api, token }, Some(r)) = (self, prepared.router) {
            if let Ok(c) = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build() {
                let _ = api_call(&c, token, "DELETE", format!("{api}/routers/{r}"), json!({}));
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Shardcast { .. } => "shardcast",
            Target::Floor { uring: false, .. } => "floor",
            Target::Floor { uring: true, .. } => "floor-uring",
            Target::Addrs { .. } => "addrs",
            Target::Custom(_) => "custom",
        }
    }
}
