//! The default quotas filled through the Rust API — 10,000 routers holding 100,000 consumers —
//! cost nothing per loop pass: an idle core stays idle, the control thread stays idle, and a
//! busy core's ns/packet does not move (a core used to count its routers on every pass). The
//! 10,001st router and the 100,001st consumer are refused naming their quota, changing nothing.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shardcast::{ApiErrorKind, Config, MediaKind, PayloadType, Request, Response, Shardcast, Ssrc};
use shardcast_core::ids::{ProducerId, RouterId, TransportId};
use shardcast_core::testutil::rtp;

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Run time (ns) of this process's threads whose name starts with `prefix`.
fn threads_ns(prefix: &str) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir("/proc/self/task").expect("procfs").flatten() {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

fn transport(sc: &Shardcast, router: RouterId, shared_port: bool) -> (TransportId, SocketAddr) {
    let t = sc.create_plain_transport(router, LOCALHOST, shared_port, false).unwrap();
    (t.id, t.local)
}

/// A router on core 1 forwarding one stream to one receiver: returns the core's ns per packet
/// over `packets` datagrams sent at ~4,000 pps (one packet per loop pass).
struct Stream {
    sender: UdpSocket,
    to: SocketAddr,
    receiver: UdpSocket,
    ssrc: u32,
    seq: u16,
}

impl Stream {
    fn new(sc: &Shardcast) -> Stream {
        let (router, _) = sc.create_router(Some(1)).unwrap();
        let (ingress, to) = transport(sc, router, false);
        let (egress, _) = transport(sc, router, false);
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        sc.connect(egress, receiver.local_addr().unwrap()).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sc.connect(ingress, sender.local_addr().unwrap()).unwrap();
        let producer = sc.produce(ingress, MediaKind::Audio, Ssrc(0xabc), PayloadType(111)).unwrap();
        sc.consume(egress, producer).unwrap();
        Stream { sender, to, receiver, ssrc: 0xabc, seq: 0 }
    }

    /// CPU time of the core threads (their run time from schedstat, not the cores' wall-clock
    /// busy time, which a loaded machine inflates by preempting them) per packet received.
    fn ns_per_packet(&mut self, sc: &Shardcast, packets: u32) -> f64 {
        let before = sc.cores()[1].stats();
        let cpu_before = threads_ns("shardcast-core");
        let mut buf = [0u8; 2048];
        let mut received = 0;
        for i in 0..packets {
            self.seq = self.seq.wrapping_add(1);
            let p = rtp(self.ssrc, self.seq, u32::from(self.seq) * 960, 111, &[0u8; 160]);
            self.sender.send_to(&p, self.to).unwrap();
            std::thread::sleep(Duration::from_micros(250));
            if i % 16 == 15 {
                while self.receiver.recv(&mut buf).is_ok() {
                    received += 1;
                    if received % 16 == 0 {
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let cpu = threads_ns("shardcast-core") - cpu_before;
        let after = sc.cores()[1].stats();
        let n = after.counters.packets_in - before.counters.packets_in;
        assert!(n >= u64::from(packets) * 9 / 10, "core 1 saw {n} of {packets} packets");
        cpu as f64 / n as f64
    }

    /// The median of three measurements (this machine's cores are shared with other work).
    fn median_ns_per_packet(&mut self, sc: &Shardcast) -> f64 {
        let mut v: Vec<f64> = (0..3).map(|_| self.ns_per_packet(sc, 1500)).collect();
        v.sort_by(f64::total_cmp);
        v[1]
    }
}

fn call(sc: &Shardcast, r: Request) -> Response {
    sc.call(r).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_hundred_thousand_consumers_cost_nothing_per_loop_pass() {
    let test_started = Instant::now();
    let config = Config::for_tests(2);
    let quotas = config.quotas.clone();
    let sc = Shardcast::start(config).unwrap();
    let mut stream = Stream::new(&sc);
    stream.ns_per_packet(&sc, 400); // warm-up
    let baseline = stream.median_ns_per_packet(&sc);

    // Fill the router and consumer quotas: 10,000 routers (the stream's included), each with a
    // shared-port transport, one audio producer and ten consumers (100,000 minus the stream's).
    let per_router = quotas.consumers / quotas.routers;
    let mut last: Option<(TransportId, ProducerId)> = None;
    let mut consumers = 1;
    for i in 1..quotas.routers {
        let (router, _) = sc.create_router(None).unwrap();
        let (t, _) = transport(&sc, router, true);
        let producer = sc.produce(t, MediaKind::Audio, Ssrc(0x10_0000 + i as u32), PayloadType(111)).unwrap();
        let n = if i == quotas.routers - 1 { quotas.consumers - consumers } else { per_router };
        for _ in 0..n {
            call(&sc, Request::Consume { transport: t, producer, paused: false });
        }
        consumers += n;
        last = Some((t, producer));
    }
    let built = test_started.elapsed();
    let stats = match call(&sc, Request::Stats) {
        Response::Stats(s) => serde_json::to_value(&s).unwrap(),
        other => panic!("{other:?}"),
    };
    let routers: u64 =
        stats["cores"].as_array().unwrap().iter().map(|c| c["routers"].as_u64().unwrap()).sum();
    assert_eq!(routers, quotas.routers as u64, "{stats}");

    // Past the quotas: refused naming them, nothing changes.
    let e = sc.create_router(None).unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::QuotaExceeded);
    assert_eq!(e.quota.map(|q| (q.quota, q.limit)), Some(("routers", quotas.routers)));
    let (t, producer) = last.unwrap();
    let e = sc.consume(t, producer).unwrap_err();
    assert_eq!(e.quota.map(|q| (q.quota, q.limit)), Some(("consumers", quotas.consumers)));

    // Idle: the cores (core 0 holds half the routers) and the control thread use almost nothing.
    std::thread::sleep(Duration::from_millis(300));
    let (cores, control) = (threads_ns("shardcast-core"), threads_ns("shardcast-contro"));
    std::thread::sleep(Duration::from_secs(1));
    let cores = threads_ns("shardcast-core") - cores;
    let control = threads_ns("shardcast-contro") - control;
    assert!(cores < 50_000_000, "idle cores used {} ms of CPU in 1 s", cores / 1_000_000);
    assert!(control < 50_000_000, "the idle control thread used {} ms in 1 s", control / 1_000_000);

    // Busy: core 1 holds 5,000 routers now; its cost per packet is what it was. The bound catches
    // a cost per loop pass that walks the objects at this scale (100,000 consumers: hundreds of µs
    // per pass, at one packet per pass); it is loose because a loaded 2-core machine (CI runs other
    // test binaries' builds beside it) moves the figure by up to 3× between two measurements. The
    // figure is printed; the per-packet cost target belongs to the benchmarks (BENCHMARKS.md).
    let loaded = stream.median_ns_per_packet(&sc);
    assert!(
        loaded < baseline * 4.0 + 50_000.0,
        "ns/packet {baseline:.0} with one router, {loaded:.0} with {routers} routers"
    );
    eprintln!(
        "built in {built:?}; ns/packet {baseline:.0} -> {loaded:.0}; test {:?}",
        test_started.elapsed()
    );
    sc.shutdown(Duration::from_secs(20)).unwrap();
}
