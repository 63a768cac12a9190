//! The load generator's accounting, tested against relays that misbehave on purpose: dropping
//! every 10th packet must read as 10 % loss, duplicating must read as duplicates, swapping
//! neighbours must read as reorders; a clean relay must read as clean.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use shardcast_benches::loadgen::target::CustomRelay;
use shardcast_benches::loadgen::{run, Profile, RunConfig, RunResult, Stream, Target};

#[derive(Clone, Copy)]
enum Misbehave {
    None,
    DropEvery(u64),
    DuplicateEvery(u64),
    SwapPairs,
}

/// A relay thread per stream: receives on its ingress, forwards to the stream's receivers.
fn relay(mode: Misbehave) -> Target {
    Target::Custom(CustomRelay(Arc::new(
        move |streams: &[Stream], _sender: SocketAddr, receivers: &[SocketAddr]| {
            let mut ingress = Vec::new();
            for s in streams {
                let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                sock.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
                ingress.push(sock.local_addr().map_err(|e| e.to_string())?);
                let dests: Vec<SocketAddr> = s.receivers.iter().map(|r| receivers[*r]).collect();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    let mut n: u64 = 0;
                    let mut held: Option<Vec<u8>> = None;
                    let mut idle = 0;
                    // Bounded: stops after 1 s without traffic.
                    while idle < 10 {
                        let Ok(len) = sock.recv(&mut buf) else {
                            idle += 1;
                            continue;
                        };
                        idle = 0;
                        n += 1;
                        let p = &buf[..len];
                        let send = |p: &[u8]| {
                            for d in &dests {
                                let _ = sock.send_to(p, d);
                            }
                        };
                        match mode {
                            Misbehave::None => send(p),
                            Misbehave::DropEvery(k) => {
                                if !n.is_multiple_of(k) {
                                    send(p)
                                }
                            }
                            Misbehave::DuplicateEvery(k) => {
                                send(p);
                                if n.is_multiple_of(k) {
                                    send(p)
                                }
                            }
                            Misbehave::SwapPairs => match held.take() {
                                None => held = Some(p.to_vec()),
                                Some(first) => {
                                    send(p);
                                    send(&first);
                                }
                            },
                        }
                    }
                });
            }
            Ok(ingress)
        },
    )))
}

fn go(mode: Misbehave) -> RunResult {
    let config = RunConfig {
        target: relay(mode),
        profile: Profile::P2p { streams: 1 },
        rate: 2000.0,
        size: 100,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        seed: 7,
        cpu: None,
        progress: false,
        during: None,
    };
    run(&config).expect("run completes")
}

#[test]
fn clean_relay_reads_clean() {
    let r = go(Misbehave::None);
    assert!(r.expected_out > 1500, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 0), "{r:?}");
    assert!(r.latency_us_p50 > 0);
}

#[test]
fn dropping_every_tenth_reads_ten_percent_loss() {
    let r = go(Misbehave::DropEvery(10));
    // The window starts at an arbitrary packet, so the count is exact to within one.
    let want = r.expected_out as f64 / 10.0;
    assert!((r.lost as f64 - want).abs() <= 1.0, "lost {} of {}", r.lost, r.expected_out);
    assert!((r.loss_pct - 10.0).abs() < 0.2, "{}", r.loss_pct);
    assert_eq!((r.duplicated, r.reordered), (0, 0));
}

#[test]
fn duplicating_reads_as_duplicates() {
    let r = go(Misbehave::DuplicateEvery(5));
    let want = r.expected_out as f64 / 5.0;
    assert!((r.duplicated as f64 - want).abs() <= 1.0, "dup {} of {}", r.duplicated, r.expected_out);
    assert_eq!(r.lost, 0);
}

#[test]
fn swapping_neighbours_reads_as_reorders() {
    let r = go(Misbehave::SwapPairs);
    let want = r.expected_out as f64 / 2.0;
    assert!((r.reordered as f64 - want).abs() <= 2.0, "reordered {} of {}", r.reordered, r.expected_out);
    // At most the held last packet is missing at the end.
    assert!(r.lost <= 1, "{r:?}");
    assert_eq!(r.duplicated, 0);
}
