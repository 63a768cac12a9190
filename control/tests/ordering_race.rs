//! The race users hit in mediasoup, made impossible: concurrent API clients pause/resume a
//! producer and create/pause/resume/close its consumers in random interleavings while media flows.
//! After every call returns, the wire agrees with it: no packet sent after a pause returned (and
//! before the next resume began) reaches any consumer; every packet sent while the producer and a
//! consumer were surely active reaches that consumer; every consumer's sequence numbers are
//! contiguous. Afterwards every view agrees (consumer `producer_paused` = producer `paused`).

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::Rng;

use shardcast::{Config, MediaKind, PayloadType, Shardcast, Ssrc};
use shardcast_core::testutil::rtp;

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

/// A range of sender counters `(after, before)`: packets with `after < n < before`.
type Window = (u64, u64);

struct ConsumerLog {
    socket: UdpSocket,
    ssrc: u32,
    created: u64,
    closed: Option<u64>,
    paused: Vec<Window>,
    active: Vec<Window>,
}

/// A receiver with an 8 MiB buffer: it is drained only at the end of the run.
fn receiver() -> UdpSocket {
    let opts = shardcast_dataplane::socket::SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
    let (s, _) = shardcast_dataplane::socket::bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    s
}

fn drain(s: &UdpSocket) -> Vec<(u16, u32, u64)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    // Called after the cores forwarded everything (see `settle`): read until the queue is empty.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut idle = Instant::now();
    while Instant::now() < deadline && idle.elapsed() < Duration::from_millis(20) {
        match s.recv(&mut buf) {
            Ok(n) if n >= 20 => {
                idle = Instant::now();
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let ssrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
                out.push((seq, ssrc, u64::from_be_bytes(buf[12..20].try_into().unwrap())));
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    out
}

/// Waits until the cores have read every packet sent up to `n`, so a window edge recorded now
/// is not blurred by packets still queued in the kernel when the next call applies.
fn settle(sc: &Shardcast, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let read: u64 = sc.cores().iter().map(|c| c.stats().counters.packets_in).sum();
        if read >= n {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("the cores did not read packet {n} within 5 s");
}

#[test]
fn concurrent_clients_never_leave_views_disagreeing() {
    race(false);
}

/// The same, while a fifth client moves the router between the two cores non-stop: calls
/// issued during a move apply before or after it, never lost, and the wire still agrees.
#[test]
fn concurrent_clients_and_live_moves_keep_every_view_consistent() {
    race(true);
}

fn race(with_moves: bool) {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    let ip = IpAddr::from(LOCALHOST);
    let (router, _) = sc.create_router(None).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t_in = sc.create_plain_transport(router, ip, false, false).unwrap();
    sc.connect(t_in.id, sender.local_addr().unwrap()).unwrap();
    let producer = sc.produce(t_in.id, MediaKind::Video, Ssrc(4242), PayloadType(96)).unwrap();

    // Media: a paced sender whose payload is its counter.
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let media = {
        let (counter, stop, dest) = (counter.clone(), stop.clone(), t_in.local);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 1;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                let due = start + Duration::from_micros(n * 500);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                counter.store(n, Ordering::SeqCst);
                let _ = sender.send_to(&rtp(4242, n as u16, n as u32 * 90, 96, &n.to_be_bytes()), dest);
                n += 1;
            }
        })
    };
    let now = |c: &AtomicU64| c.load(Ordering::SeqCst);

    // The pauser: toggles the producer, recording when it was surely paused / surely active.
    let moving = Arc::new(AtomicBool::new(with_moves));
    let mover = {
        let (sc, moving) = (sc.clone(), moving.clone());
        std::thread::spawn(move || {
            let mut moves = 0u32;
            let mut to = 1;
            while moving.load(Ordering::Relaxed) {
                sc.move_router(router, to).unwrap();
                moves += 1;
                to = 1 - to;
                std::thread::sleep(Duration::from_millis(2));
            }
            moves
        })
    };
    let pauser = {
        let (sc, counter) = (sc.clone(), counter.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(7);
            let (mut paused, mut active) = (Vec::new(), Vec::new());
            let mut active_since = now(&counter);
            for _ in 0..25 {
                std::thread::sleep(Duration::from_millis(5 + rng.below(20)));
                let before_pause = now(&counter);
                settle(&sc, before_pause);
                active.push((active_since, before_pause));
                sc.pause_producer(producer).unwrap();
                let paused_since = now(&counter);
                std::thread::sleep(Duration::from_millis(5 + rng.below(20)));
                let before_resume = now(&counter);
                settle(&sc, before_resume);
                paused.push((paused_since, before_resume));
                sc.resume_producer(producer).unwrap();
                active_since = now(&counter);
            }
            std::thread::sleep(Duration::from_millis(20));
            active.push((active_since, now(&counter)));
            (paused, active)
        })
    };

    // Consumer clients: create, pause/resume, close their consumers at random.
    let clients: Vec<_> = (0..3u64)
        .map(|k| {
            let (sc, counter) = (sc.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(1000 + k);
                let mut logs: Vec<(ConsumerLog, shardcast_core::ids::ConsumerId, Option<u64>)> = Vec::new();
                for _ in 0..30 {
                    std::thread::sleep(Duration::from_millis(rng.below(15)));
                    let open: Vec<usize> = logs
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| l.0.closed.is_none())
                        .map(|(i, _)| i)
                        .collect();
                    match rng.below(4) {
                        0 | 1 if open.len() < 6 => {
                            let socket = receiver();
                            let t = sc.create_plain_transport(router, ip, false, false).unwrap();
                            sc.connect(t.id, socket.local_addr().unwrap()).unwrap();
                            let c = sc.consume(t.id, producer).unwrap();
                            let created = now(&counter);
                            let log = ConsumerLog {
                                socket,
                                ssrc: c.ssrc.0,
                                created,
                                closed: None,
                                paused: Vec::new(),
                                active: Vec::new(),
                            };
                            logs.push((log, c.id, Some(created)));
                        }
                        2 if !open.is_empty() => {
                            let i = open[rng.below(open.len() as u64) as usize];
                            let (log, id, active_since) = &mut logs[i];
                            match active_since.take() {
                                Some(since) => {
                                    let before = now(&counter);
                                    settle(&sc, before);
                                    log.active.push((since, before));
                                    sc.pause_consumer(*id).unwrap();
                                    log.paused.push((now(&counter), u64::MAX));
                                }
                                None => {
                                    let before = now(&counter);
                                    settle(&sc, before);
                                    if let Some(w) = log.paused.last_mut() {
                                        w.1 = before;
                                    }
                                    sc.resume_consumer(*id).unwrap();
                                    *active_since = Some(now(&counter));
                                }
                            }
                        }
                        _ if !open.is_empty() => {
                            let i = open[rng.below(open.len() as u64) as usize];
                            let (log, id, active_since) = &mut logs[i];
                            if let Some(since) = active_since.take() {
                                let before = now(&counter);
                                settle(&sc, before);
                                log.active.push((since, before));
                            }
                            sc.close_consumer(*id).unwrap();
                            log.closed = Some(now(&counter));
                        }
                        _ => {}
                    }
                }
                logs
            })
        })
        .collect();

    let (producer_paused, producer_active) = pauser.join().unwrap();
    let mut logs: Vec<_> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    moving.store(false, Ordering::Relaxed);
    let moves = mover.join().unwrap();
    assert_eq!(moves > 20, with_moves, "{moves} moves");
    let end = now(&counter);
    for (log, _, since) in logs.iter_mut() {
        if let Some(s) = since.take() {
            log.active.push((s, end));
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    media.join().unwrap();
    settle(&sc, now(&counter));

    // Every view agrees.
    let dump = sc.dump_router(router).unwrap();
    let producer_is_paused = dump.producers[0].paused;
    for c in &dump.consumers {
        assert_eq!(c.producer_paused, producer_is_paused, "{c:?}");
    }

    let inside = |n: u64, w: &Window| w.0 < n && n < w.1;
    let mut checked = 0;
    for (log, _, _) in &logs {
        let got = drain(&log.socket);
        // Contiguous numbering in send order (the sender's counter). Arrival order may differ by
        // a packet at a router move: the sending CPU changes (see tests/tests/handoff.rs).
        let mut in_send_order = got.clone();
        in_send_order.sort_by_key(|g| g.2);
        let seqs: Vec<u16> = in_send_order.iter().map(|g| g.0).collect();
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], pair[0].wrapping_add(1), "consumer {}: sequence not contiguous", log.ssrc);
        }
        let received: std::collections::BTreeSet<u64> = got.iter().map(|g| g.2).collect();
        for &(_, ssrc, n) in &got {
            assert_eq!(ssrc, log.ssrc);
            assert!(!producer_paused.iter().any(|w| inside(n, w)), "packet {n} of a paused producer arrived: windows {producer_paused:?} consumer created {} got {:?}", log.created, got.iter().map(|g| g.2).collect::<Vec<_>>());
            assert!(!log.paused.iter().any(|w| inside(n, w)), "packet {n} reached a paused consumer");
            assert!(log.closed.is_none_or(|c| n <= c + 1), "packet {n} reached a closed consumer");
        }
        // Packets sent while both were surely active all arrived.
        for a in &log.active {
            for p in &producer_active {
                let (lo, hi) = (a.0.max(p.0), a.1.min(p.1));
                for n in lo + 1..hi {
                    assert!(
                        received.contains(&n),
                        "consumer {}: packet {n} sent while active was lost; active {:?} producer active {:?} got {:?}",
                        log.ssrc,
                        log.active,
                        producer_active,
                        got.iter().map(|g| g.2).filter(|x| x.abs_diff(n) < 5).collect::<Vec<_>>()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "the test checked too little ({checked} packets)");
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
