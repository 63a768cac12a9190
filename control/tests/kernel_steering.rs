//! The shared media port's kernel steering through the real API: with two cores, routers on both,
//! and every producer on the shared port (remote-address and comedia/SSRC keys), the control
//! plane's steering reaches the kernel and no datagram is carried between cores; moving a router
//! through the API keeps every packet, in order.

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use shardcast::{Config, MediaKind, PayloadType, Shardcast, Ssrc};
use shardcast_core::ids::RouterId;
use shardcast_core::testutil::rtp;

const ROOMS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(10);

fn socket() -> UdpSocket {
    let opts = shardcast_dataplane::socket::SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
    let (s, _) = shardcast_dataplane::socket::bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    s
}

/// Receives `n` datagrams (within the deadline) and returns their payloads' first two bytes.
fn recv_seqs(s: &UdpSocket, n: usize) -> Vec<u16> {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 2048];
    let mut seqs = Vec::new();
    while seqs.len() < n && Instant::now() < deadline {
        match s.recv(&mut buf) {
            Ok(k) if k >= 14 => seqs.push(u16::from_be_bytes([buf[12], buf[13]])),
            _ => std::thread::yield_now(),
        }
    }
    seqs
}

fn hops(sc: &Shardcast) -> u64 {
    sc.cores().iter().map(|c| c.stats().counters.hopped_out).sum()
}

#[test]
fn steering_reaches_the_kernel_and_nothing_hops() {
    if !common::is_root() {
        eprintln!("skipped: kernel steering needs root (CAP_BPF for the reuseport eBPF program)");
        return;
    }
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    assert!(sc.kernel_steering().is_some(), "kernel steering loads with two cores (tests run as root)");
    let ip = IpAddr::from([127, 0, 0, 1]);
    let shared = sc.shared_addr();
    let mut rooms: Vec<(RouterId, u32, UdpSocket, UdpSocket)> = Vec::new();
    for i in 0..ROOMS {
        let (router, core) = sc.create_router(Some(i % 2)).unwrap();
        assert_eq!(core, i % 2);
        let sender = socket();
        // Half the producers have a known remote (address key), half are comedia (SSRC key).
        let comedia = i % 4 >= 2;
        let t = sc.create_plain_transport(router, ip, true, comedia).unwrap();
        assert_eq!(t.local, shared);
        if !comedia {
            sc.connect(t.id, sender.local_addr().unwrap()).unwrap();
        }
        let ssrc = 7000 + i as u32;
        let p = sc.produce(t.id, MediaKind::Audio, Ssrc(ssrc), PayloadType(111)).unwrap();
        let receiver = socket();
        receiver.set_nonblocking(true).unwrap();
        let ct = sc.create_plain_transport(router, ip, false, false).unwrap();
        sc.connect(ct.id, receiver.local_addr().unwrap()).unwrap();
        sc.consume(ct.id, p).unwrap();
        rooms.push((router, ssrc, sender, receiver));
    }
    let send = |from: u16, to: u16| {
        for seq in from..to {
            for (_, ssrc, sender, _) in &rooms {
                sender
                    .send_to(&rtp(*ssrc, seq, u32::from(seq) * 960, 111, &seq.to_be_bytes()), shared)
                    .unwrap();
            }
        }
    };
    send(0, 100);
    for (i, (_, _, _, receiver)) in rooms.iter().enumerate() {
        assert_eq!(
            recv_seqs(receiver, 100),
            (0..100).collect::<Vec<_>>(),
            "room {i}: every packet, in order"
        );
    }
    // Counters are published between batches: wait until they account for every datagram.
    let deadline = Instant::now() + DEADLINE;
    while sc.cores().iter().map(|c| c.stats().counters.packets_in).sum::<u64>() < (ROOMS * 100) as u64 {
        assert!(Instant::now() < deadline, "counters published");
        std::thread::sleep(Duration::from_millis(2));
    }
    // 8 flows over 2 sockets by hash alone would put about half on the wrong core.
    assert_eq!(hops(&sc), 0, "no datagram was carried between cores");
    let ks = sc.kernel_steering().unwrap();
    assert_eq!(ks.errors, 0, "{ks:?}");
    assert!(ks.updates >= ROOMS as u64, "{ks:?}");

    // A move through the API, there and back: every packet still arrives once, in order.
    let (router, ..) = &rooms[0];
    for (to, range) in [(1, 100..200), (0, 200..300)] {
        sc.move_router(*router, to).unwrap();
        send(range.start, range.end);
        for (i, (_, _, _, receiver)) in rooms.iter().enumerate() {
            assert_eq!(recv_seqs(receiver, 100), range.clone().collect::<Vec<_>>(), "room {i} after a move");
        }
    }
    let ingress: u64 = sc.cores().iter().map(|c| c.stats().counters.packets_in).sum();
    assert!(hops(&sc) < ingress / 10, "hops {} of {ingress}", hops(&sc));
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
