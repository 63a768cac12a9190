//! Live router moves through the API while media flows, and the rebalancer spreading busy routers
//! off a hot core, then settling.

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardcast::{ApiErrorKind, Config, MediaKind, PayloadType, Shardcast, Ssrc};
use shardcast_core::ids::RouterId;
use shardcast_core::testutil::rtp;

fn receiver() -> UdpSocket {
    let opts = shardcast_dataplane::socket::SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
    let (s, _) = shardcast_dataplane::socket::bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    s
}

/// A router with one producer (dedicated socket) and `consumers` consumers; returns the ingress
/// address and the receivers.
fn room(
    sc: &Shardcast,
    core: usize,
    consumers: usize,
    sender: &UdpSocket,
) -> (RouterId, std::net::SocketAddr, Vec<UdpSocket>) {
    let ip = IpAddr::from([127, 0, 0, 1]);
    let (router, _) = sc.create_router(Some(core)).unwrap();
    let t = sc.create_plain_transport(router, ip, false, false).unwrap();
    sc.connect(t.id, sender.local_addr().unwrap()).unwrap();
    let p = sc.produce(t.id, MediaKind::Audio, Ssrc(1000 + router.0), PayloadType(111)).unwrap();
    let mut rx = Vec::new();
    for _ in 0..consumers {
        let r = receiver();
        let ct = sc.create_plain_transport(router, ip, true, false).unwrap();
        sc.connect(ct.id, r.local_addr().unwrap()).unwrap();
        sc.consume(ct.id, p).unwrap();
        rx.push(r);
    }
    (router, t.local, rx)
}

fn count(s: &UdpSocket) -> Vec<u16> {
    let mut seqs = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match s.recv(&mut buf) {
            Ok(n) if n >= 12 => seqs.push(u16::from_be_bytes([buf[2], buf[3]])),
            _ => return seqs,
        }
    }
}

#[test]
fn moving_a_router_through_the_api_loses_nothing() {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (router, ingress, receivers) = room(&sc, 0, 4, &sender);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let media = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                let due = start + Duration::from_micros(n * 500);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                sender
                    .send_to(&rtp(1000 + router.0, n as u16, n as u32 * 960, 111, b"opus"), ingress)
                    .unwrap();
                n += 1;
                sent.store(n, Ordering::Relaxed);
            }
        })
    };
    let mut worst = 0;
    let mut i = 0;
    // At least 100 moves, and for at least 2,000 packets (1 s of media).
    let started = Instant::now();
    while i < 100 || (sent.load(Ordering::Relaxed) < 2000 && started.elapsed() < Duration::from_secs(20)) {
        worst = worst.max(sc.move_router(router, 1 - i % 2).unwrap());
        i += 1;
    }
    if i % 2 == 1 {
        sc.move_router(router, 0).unwrap();
        i += 1;
    }
    // Errors are clear: a missing core, a missing router; moving to where it is is a no-op.
    assert_eq!(sc.move_router(router, 7).unwrap_err().kind, ApiErrorKind::InvalidArgument);
    assert_eq!(sc.move_router(RouterId(999), 1).unwrap_err().kind, ApiErrorKind::NotFound);
    assert_eq!(sc.move_router(router, 0).unwrap(), 0);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    media.join().unwrap();
    let total = sent.load(Ordering::Relaxed);
    // Wait until the cores have forwarded everything sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sc.cores().iter().map(|c| c.stats().counters.routed).sum::<u64>() < total
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    let moves = i;
    for (i, r) in receivers.iter().enumerate() {
        let arrived = count(r);
        assert_eq!(arrived.len() as u64, total, "consumer {i} lost {}", total - arrived.len() as u64);
        // Contiguous numbering once sorted; arrival may swap a packet or two at a move (the
        // sending CPU changes, see tests/tests/handoff.rs), rarely.
        let base = arrived[0];
        let offset = |s: u16| s.wrapping_sub(base) as i16;
        let reorders = arrived.windows(2).filter(|w| offset(w[1]) < offset(w[0])).count();
        assert!(reorders <= moves / 20 + 1, "consumer {i}: {reorders} reorders in {moves} moves");
        let mut seqs = arrived.clone();
        seqs.sort_by_key(|s| offset(*s));
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "consumer {i}: gaps or duplicates");
    }
    let dump = sc.dump_router(router).unwrap();
    assert_eq!(dump.core, 0);
    eprintln!("{i} API moves under 2000 pps x 4 consumers: {total} packets, worst handoff {worst} µs");
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn the_rebalancer_spreads_busy_routers_then_settles() {
    let mut config = Config::for_tests(2);
    config.rebalancer.enabled = true;
    config.rebalancer.interval_ms = 300;
    config.rebalancer.min_interval_ms = 300;
    config.rebalancer.threshold = 0.03;
    let sc = Shardcast::start(config).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    const ROUTERS: usize = 6;
    let rooms: Vec<_> = (0..ROUTERS).map(|_| room(&sc, 0, 3, &sender)).collect();
    let targets: Vec<(u32, std::net::SocketAddr)> = rooms.iter().map(|(r, a, _)| (1000 + r.0, *a)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let media = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n: u64 = 0;
            // 6 streams × 1,500 pps, 3 consumers each: 27,000 copies/s.
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(40) {
                let due = start + Duration::from_micros(n * 666);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                for (ssrc, addr) in &targets {
                    let _ = sender.send_to(&rtp(*ssrc, n as u16, n as u32 * 960, 111, &[0; 200]), addr);
                }
                n += 1;
            }
        })
    };
    let per_core = |sc: &Shardcast| -> Vec<u64> { sc.cores().iter().map(|c| c.stats().routers).collect() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut spread_at = None;
    while Instant::now() < deadline {
        let routers = per_core(&sc);
        if routers.iter().all(|r| *r >= 2) {
            spread_at = Some(Instant::now());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let spread_at = spread_at.unwrap_or_else(|| panic!("not spread within 20 s: {:?}", per_core(&sc)));
    // Then it stops moving: within a bounded time, a 3 s window passes with no move.
    let settle_deadline = Instant::now() + Duration::from_secs(20);
    let mut moves = sc.metrics().rebalancer_moves.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        assert!(
            Instant::now() < settle_deadline,
            "the rebalancer never settled ({moves} moves, {:?})",
            per_core(&sc)
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = sc.metrics().rebalancer_moves.load(Ordering::Relaxed);
        if now != moves {
            moves = now;
            quiet_since = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    media.join().unwrap();
    let routers = per_core(&sc);
    eprintln!("rebalancer: {routers:?} after {moves} moves (spread reached in {:?})", spread_at.elapsed());
    assert!(routers.iter().all(|r| *r >= 2), "{routers:?}");
    // Six equal routers from 6:0 need three moves; more than a few means ping-pong.
    assert!((2..=5).contains(&moves), "{moves} moves");
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
