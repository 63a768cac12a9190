//! The real daemon against hostile API clients (issue 12): slowloris connections do not stop a
//! well-behaved client nor a transport creation; an open API needs a token or `--insecure`; the
//! token is never printed; a second SIGTERM during a stuck shutdown exits at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

mod common;
use common::Daemon;

/// Starts the daemon (under `ulimit -n nofile` when given), keeping its stderr.
fn start(nofile: Option<u32>, extra: &[&str]) -> Daemon {
    let bin = common::bin();
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
            c
        }
        None => Command::new(bin),
    };
    if !extra.contains(&"--api-listen") {
        cmd.args(["--api-listen", "127.0.0.1:0"]);
    }
    cmd.args(["--media-listen", "127.0.0.1:0", "--cores", "2"]).args(extra);
    Daemon::spawn_logged(cmd, Duration::from_secs(20)).expect("daemon starts")
}

/// The API's address (for raw TCP clients).
fn api_addr(d: &Daemon) -> SocketAddr {
    d.ready["api"].as_str().and_then(|a| a.parse().ok()).expect("ready line names the API")
}

/// Slowloris clients: each sends one byte of a request head per second and never ends it; a
/// connection the server closes is opened again at once (a persistent attacker).
struct Slowloris {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    closed_by_server: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Slowloris {
    fn start(addr: SocketAddr, n: usize) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let closed_by_server = Arc::new(AtomicUsize::new(0));
        let (s, o, c) = (stop.clone(), opened.clone(), closed_by_server.clone());
        let head = b"GET /stats HTTP/1.1\r\nHost: shardcast\r\n";
        let open = move || -> Option<TcpStream> {
            let t = TcpStream::connect_timeout(&addr, Duration::from_millis(50)).ok()?;
            t.set_nonblocking(true).ok()?;
            o.fetch_add(1, Ordering::Relaxed);
            Some(t)
        };
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<(Option<TcpStream>, usize)> = (0..n).map(|_| (open(), 0)).collect();
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let tick = Instant::now() + Duration::from_secs(1);
                for (conn, sent) in conns.iter_mut() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    let alive = conn.as_mut().is_some_and(|t| {
                        // One more byte of a head that never ends (a header line forever).
                        let byte =
                            if *sent < head.len() { head[*sent] } else { b"X-Slow: a\r\n"[*sent % 11] };
                        let wrote = t.write(&[byte]).is_ok();
                        *sent += 1;
                        let open = match t.read(&mut buf) {
                            Ok(_) => false, // EOF, or an error response: closed by the server
                            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                        };
                        wrote && open
                    });
                    if !alive {
                        if conn.is_some() {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        *conn = open();
                        *sent = 0;
                    }
                }
                std::thread::sleep(tick.saturating_duration_since(Instant::now()));
            }
        });
        Slowloris { stop, opened, closed_by_server, thread: Some(thread) }
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn post(c: &Client, url: String, body: Value) -> (u16, Value) {
    match c.post(url).json(&body).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({ "error": e.to_string() })),
    }
}

/// 2,000 slowloris connections (persistent: a closed one is opened again at once) against the
/// daemon: the header timeout closes them, calls and transport creations go on meanwhile, and
/// the connection cap keeps the media reserve (the log says what the descriptor table allows).
#[test]
fn slow_connections_do_not_stop_calls_nor_transport_creation() {
    let _ = shardcast_dataplane::io::raise_nofile();
    let (_, hard) = shardcast_dataplane::io::nofile_limit().unwrap();
    let (cap, why) = shardcast::http::connection_cap(4096, 16_384, hard);
    assert!(cap >= 2100, "this test needs RLIMIT_NOFILE >= 18,484 (hard limit {hard})");
    let dir = std::env::temp_dir().join(format!("shardcast-slowloris-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let toml = shardcast::config::DEFAULT_TOML.replace("[api]\n", "[api]\nheader_timeout_ms = 2000\n");
    std::fs::write(&config, toml).unwrap();
    let d = start(None, &["--config", config.to_str().unwrap()]);
    let slow = Slowloris::start(api_addr(&d), 2000);
    // Let the attackers connect and fill every slot the daemon gives them.
    let until = Instant::now() + Duration::from_secs(10);
    while slow.opened.load(Ordering::Relaxed) < 2000 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(slow.opened.load(Ordering::Relaxed), 2000);
    std::thread::sleep(Duration::from_millis(500));

    let c = Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let started = Instant::now();
    let (status, router) = post(&c, format!("{}/routers", d.api), json!({}));
    assert_eq!(status, 200, "{router}; log: {}", d.log());
    assert!(started.elapsed() < Duration::from_secs(3), "first call took {:?}", started.elapsed());
    let r = router["id"].as_u64().unwrap();
    // Then, for several header timeouts while the attack goes on, every call is answered.
    let until = Instant::now() + Duration::from_secs(5);
    let mut calls = 0;
    while Instant::now() < until {
        let started = Instant::now();
        let (status, t) = post(&c, format!("{}/routers/{r}/transports", d.api), json!({}));
        assert_eq!(status, 200, "transport creation under attack: {t}; log: {}", d.log());
        let stats = c.get(format!("{}/stats", d.api)).send().expect("stats under attack");
        assert_eq!(stats.status().as_u16(), 200);
        assert!(started.elapsed() < Duration::from_secs(3), "a call took {:?}", started.elapsed());
        calls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(calls >= 5, "{calls} rounds of calls");
    // The header timeout closed slow connections (they reconnect), and the log says what the
    // descriptor table allows.
    let closed = slow.closed_by_server.load(Ordering::Relaxed);
    assert!(closed >= 2000, "slow connections closed by the header timeout: {closed}");
    let log = d.log();
    assert!(log.contains(&format!("RLIMIT_NOFILE {hard}")), "{log}");
    if let Some(why) = why {
        assert!(log.contains(&why), "{log}");
    }
    drop(slow);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_open_api_needs_a_token_or_insecure_and_the_token_is_never_printed() {
    let bin = env!("CARGO_BIN_EXE_shardcast");
    let open = Command::new(bin)
        .args(["--api-listen", "0.0.0.0:0", "--media-listen", "127.0.0.1:0", "--cores", "1"])
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(stderr.contains("without a token") && stderr.contains("--insecure"), "{stderr}");

    let mut insecure = start(None, &["--api-listen", "0.0.0.0:0", "--insecure"]);
    assert!(insecure.log_contains("--insecure", Duration::from_secs(10)), "{}", insecure.log());
    insecure.signal("TERM");
    assert_eq!(insecure.wait(Duration::from_secs(10)), Some(0));

    let printed = Command::new(bin).args(["--token", "s3cret-t0ken", "--print-config"]).output().unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.contains("token = \"<redacted>\"") && !text.contains("s3cret"), "{text}");
}

#[test]
fn the_token_is_required_and_compared_whole() {
    let d = start(None, &["--token", "abc123"]);
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for given in [None, Some("abc12"), Some("abc1234"), Some("xbc123"), Some("")] {
        let mut r = c.get(format!("{}/stats", d.api));
        if let Some(g) = given {
            r = r.bearer_auth(g);
        }
        assert_eq!(r.send().unwrap().status().as_u16(), 401, "{given:?}");
    }
    assert_eq!(
        c.get(format!("{}/stats", d.api)).bearer_auth("abc123").send().unwrap().status().as_u16(),
        200
    );
}

/// A shutdown stuck behind a stalled core: the first SIGTERM starts it, the second exits at once.
#[test]
fn a_second_sigterm_during_shutdown_exits_at_once() {
    let dir = std::env::temp_dir().join(format!("shardcast-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let toml = shardcast::config::DEFAULT_TOML.replace("allow_test_hooks = false", "allow_test_hooks = true");
    std::fs::write(&config, toml).unwrap();
    let mut d = start(None, &["--config", config.to_str().unwrap()]);
    let c = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let (status, _) = post(&c, format!("{}/routers", d.api), json!({"core": 0}));
    assert_eq!(status, 200);
    let (status, body) =
        post(&c, format!("{}/cores/0/stall", d.api), json!({"millis": 30000, "wait": false}));
    assert_eq!(status, 200, "{body}");
    d.signal("TERM");
    // Closing the router waits for the stalled core: the daemon is still shutting down.
    assert_eq!(d.wait(Duration::from_millis(700)), None, "{}", d.log());
    let second = Instant::now();
    d.signal("TERM");
    let code = d.wait(Duration::from_secs(5));
    assert_eq!(code, Some(130), "{}", d.log());
    assert!(
        second.elapsed() < Duration::from_secs(1),
        "exited {:?} after the second signal",
        second.elapsed()
    );
    assert!(d.log_contains("second signal", Duration::from_secs(5)), "{}", d.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Past `api.max_connections` a connection waits in the kernel's accept queue; the header
/// timeout closes silent connections, which frees their slots.
#[test]
fn past_the_connection_cap_a_client_waits_for_a_slot_the_header_timeout_frees() {
    let mut config = shardcast::Config::for_tests(1);
    config.api.max_connections = 8;
    config.api.header_timeout_ms = 1000;
    let sc = shardcast::Shardcast::start(config).unwrap();
    let server = shardcast::http::HttpServer::start(sc.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut silent: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = TcpStream::connect(server.addr()).unwrap();
    ninth.write_all(b"GET /stats HTTP/1.1\r\nHost: shardcast\r\nConnection: close\r\n\r\n").unwrap();
    ninth.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut buf = [0u8; 64];
    assert!(ninth.read(&mut buf).is_err(), "served while eight connections hold every slot");
    let started = Instant::now();
    ninth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut response = Vec::new();
    let _ = ninth.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}", started.elapsed());
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "a silent connection is closed");
    }
    server.stop(Duration::from_secs(2));
    sc.shutdown(Duration::from_secs(2)).unwrap();
}
