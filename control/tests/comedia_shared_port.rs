//! Comedia transports on the shared media port, two cores, through the API, with kernel
//! steering on and off (issue 12, finding 6):
//! - a latched transport's RTCP (a sender report names no awaited SSRC) reaches it from
//!   whichever core the kernel hands it to: the latch installs the address steering key
//!   on the other core (and in the kernel map), as a connect does;
//! - ten comedia transports fed from one sender socket (a gateway) all latch that address and
//!   every stream flows, whichever core each router is on;
//! - `comedia_source`: a sender outside the prefix never latches.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use shardcast::{Config, MediaKind, PayloadType, Request, Response, Shardcast, Ssrc};
use shardcast_core::drop_reason::DropReason;
use shardcast_core::ids::{RouterId, TransportId};
use shardcast_core::rtcp::SenderReportRepr;
use shardcast_core::testutil::rtp;

const DEADLINE: Duration = Duration::from_secs(10);

fn socket() -> UdpSocket {
    let opts = shardcast_dataplane::socket::SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
    let (s, _) = shardcast_dataplane::socket::bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

fn start(kernel_steering: bool) -> Shardcast {
    let mut config = Config::for_tests(2);
    config.media.kernel_steering = kernel_steering;
    let sc = Shardcast::start(config).unwrap();
    if kernel_steering && !common::is_root() {
        eprintln!("kernel steering needs root (CAP_BPF): this run hops in software instead");
    }
    assert_eq!(sc.kernel_steering().is_some(), kernel_steering && common::is_root());
    sc
}

/// Datagrams received on `s` until `n` of them (or the deadline), split into (RTP, RTCP SR).
fn recv(s: &UdpSocket, n: usize) -> (usize, usize) {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 2048];
    let (mut rtp, mut sr) = (0, 0);
    while rtp + sr < n && Instant::now() < deadline {
        match s.recv(&mut buf) {
            Ok(k) if k >= 2 && buf[1] == 200 => sr += 1,
            Ok(_) => rtp += 1,
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    (rtp, sr)
}

fn drops(sc: &Shardcast, reason: DropReason) -> u64 {
    sc.cores().iter().map(|c| c.stats().counters.drops_of(reason)).sum()
}

/// Waits until every core published counters covering `packets` received datagrams, including
/// the ones carried to their owner core (a hop is counted at the receiving core first, and at the
/// owner only once it was forwarded or dropped there).
fn settle(sc: &Shardcast, packets: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let c: Vec<_> = sc.cores().iter().map(|c| c.stats().counters).collect();
        let received: u64 = c.iter().map(|c| c.packets_in).sum();
        let (out, arrived): (u64, u64) =
            (c.iter().map(|c| c.hopped_out).sum(), c.iter().map(|c| c.hopped_in).sum());
        if received >= packets && out == arrived {
            return;
        }
        assert!(Instant::now() < deadline, "counters published: {c:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The remote the model knows for `transport` (latched: `Some`). The control thread steers a
/// latched remote before it answers any later call, so once this is `Some` the steering is in.
fn remote(sc: &Shardcast, router: RouterId, transport: TransportId) -> Option<SocketAddr> {
    let dump = sc.dump_router(router).unwrap();
    dump.transports.iter().find(|t| t.id == transport).and_then(|t| t.remote)
}

fn wait_latched(sc: &Shardcast, router: RouterId, transport: TransportId) -> SocketAddr {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(r) = remote(sc, router, transport) {
            return r;
        }
        assert!(Instant::now() < deadline, "transport {transport} latched");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sender_report(ssrc: u32) -> Vec<u8> {
    let repr = SenderReportRepr {
        ssrc,
        ntp: 1 << 32,
        rtp_timestamp: 960,
        packet_count: 1,
        octet_count: 2,
        reports: Default::default(),
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf);
    buf
}

/// Rooms on alternating cores, each a comedia producer transport on the shared port and a
/// consumer on a dedicated socket; one sender socket per room.
fn latched_rtcp_reaches_its_transport(kernel_steering: bool) {
    const ROOMS: usize = 8;
    let sc = start(kernel_steering);
    let ip = IpAddr::from([127, 0, 0, 1]);
    let shared = sc.shared_addr();
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let (router, _) = sc.create_router(Some(i % 2)).unwrap();
        let t = sc.create_plain_transport(router, ip, true, true).unwrap();
        let ssrc = 7000 + i as u32;
        let p = sc.produce(t.id, MediaKind::Audio, Ssrc(ssrc), PayloadType(111)).unwrap();
        let receiver = socket();
        let ct = sc.create_plain_transport(router, ip, false, false).unwrap();
        sc.connect(ct.id, receiver.local_addr().unwrap()).unwrap();
        sc.consume(ct.id, p).unwrap();
        rooms.push((router, t.id, ssrc, socket(), receiver));
    }
    for (router, t, ssrc, sender, receiver) in &rooms {
        sender.send_to(&rtp(*ssrc, 1, 960, 111, b"latch"), shared).unwrap();
        assert_eq!(recv(receiver, 1), (1, 0));
        assert_eq!(wait_latched(&sc, *router, *t), sender.local_addr().unwrap());
    }
    for (_, _, ssrc, sender, _) in &rooms {
        sender.send_to(&sender_report(*ssrc), shared).unwrap();
    }
    for (i, (.., receiver)) in rooms.iter().enumerate() {
        assert_eq!(recv(receiver, 1), (0, 1), "room {i}: its sender report, rewritten");
    }
    settle(&sc, 2 * ROOMS as u64);
    assert_eq!(drops(&sc, DropReason::UnknownTransport), 0);
    if kernel_steering {
        let hops: u64 = sc.cores().iter().map(|c| c.stats().counters.hopped_out).sum();
        assert_eq!(hops, 0, "the kernel map has the latched addresses");
    }
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn latched_rtcp_reaches_its_transport_with_kernel_steering() {
    latched_rtcp_reaches_its_transport(true);
}

#[test]
fn latched_rtcp_reaches_its_transport_without_kernel_steering() {
    latched_rtcp_reaches_its_transport(false);
}

/// Ten comedia transports, in routers on both cores, all fed by one sender socket.
fn ten_streams_from_one_sender(kernel_steering: bool) {
    const STREAMS: u32 = 10;
    const PACKETS: u16 = 50;
    let sc = start(kernel_steering);
    let ip = IpAddr::from([127, 0, 0, 1]);
    let shared = sc.shared_addr();
    let gateway = socket();
    let mut rooms = Vec::new();
    for i in 0..STREAMS {
        let (router, _) = sc.create_router(Some(i as usize % 2)).unwrap();
        let t = sc.create_plain_transport(router, ip, true, true).unwrap();
        let p = sc.produce(t.id, MediaKind::Audio, Ssrc(9000 + i), PayloadType(111)).unwrap();
        let receiver = socket();
        let ct = sc.create_plain_transport(router, ip, false, false).unwrap();
        sc.connect(ct.id, receiver.local_addr().unwrap()).unwrap();
        sc.consume(ct.id, p).unwrap();
        rooms.push((router, t.id, receiver));
    }
    for seq in 0..PACKETS {
        for i in 0..STREAMS {
            gateway.send_to(&rtp(9000 + i, seq, u32::from(seq) * 960, 111, b"stream"), shared).unwrap();
        }
        // Paced: the point is the demux, not the socket buffers.
        std::thread::sleep(Duration::from_micros(300));
    }
    for (i, (router, t, receiver)) in rooms.iter().enumerate() {
        assert_eq!(recv(receiver, usize::from(PACKETS)), (usize::from(PACKETS), 0), "stream {i}");
        assert_eq!(remote(&sc, *router, *t), Some(gateway.local_addr().unwrap()), "stream {i}");
    }
    settle(&sc, u64::from(STREAMS) * u64::from(PACKETS));
    assert_eq!(drops(&sc, DropReason::UnknownSsrc), 0);
    assert_eq!(drops(&sc, DropReason::UnknownTransport), 0);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn ten_streams_from_one_sender_with_kernel_steering() {
    ten_streams_from_one_sender(true);
}

#[test]
fn ten_streams_from_one_sender_without_kernel_steering() {
    ten_streams_from_one_sender(false);
}

/// `comedia_source` through the API: a flood from outside the prefix never latches; the sender
/// inside it does.
#[test]
fn comedia_source_keeps_the_latch_for_the_expected_sender() {
    let sc = start(false);
    let ip = IpAddr::from([127, 0, 0, 1]);
    let (router, _) = sc.create_router(Some(1)).unwrap();
    let request = |prefix: &str| Request::CreatePlainTransport {
        router,
        listen_ip: ip,
        port: None,
        shared_port: true,
        comedia: true,
        comedia_source: Some(prefix.parse().unwrap()),
    };
    let Response::Transport { id: t, .. } = sc.call(request("127.0.0.2/32")).unwrap() else { panic!() };
    let p = sc.produce(t, MediaKind::Audio, Ssrc(4242), PayloadType(111)).unwrap();
    let receiver = socket();
    let ct = sc.create_plain_transport(router, ip, false, false).unwrap();
    sc.connect(ct.id, receiver.local_addr().unwrap()).unwrap();
    sc.consume(ct.id, p).unwrap();
    let attacker = socket();
    for seq in 0..20 {
        attacker.send_to(&rtp(4242, seq, 0, 111, b"flood"), sc.shared_addr()).unwrap();
    }
    settle(&sc, 20);
    assert_eq!(drops(&sc, DropReason::ComediaSourceRefused), 20);
    assert_eq!(remote(&sc, router, t), None);
    let opts = shardcast_dataplane::socket::SocketOptions::default();
    let (sender, _) = shardcast_dataplane::socket::bind_udp("127.0.0.2:0".parse().unwrap(), &opts).unwrap();
    sender.send_to(&rtp(4242, 100, 0, 111, b"real"), sc.shared_addr()).unwrap();
    assert_eq!(recv(&receiver, 1), (1, 0));
    assert_eq!(wait_latched(&sc, router, t), sender.local_addr().unwrap());
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
