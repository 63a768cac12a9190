//! `pipe_to_router` through the Rust API, over real sockets: one producer piped to a router on
//! its own core and to one on the other core. Consumers in every router receive every packet,
//! rewritten with their own SSRC and contiguous numbering; pause and resume of the source reach
//! every view; a PLI from a piped consumer reaches the source's sender; closing the source, the
//! pipe or the piped router closes the chain once, with events; conservation holds on every core.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shardcast::events::ControlEvent;
use shardcast::{ApiErrorKind, Config, MediaKind, PayloadType, Shardcast, Ssrc};
use shardcast_core::drop_reason::DropReason;
use shardcast_core::ids::{ProducerId, RouterId};
use shardcast_core::testutil::rtp;

const IP: [u8; 4] = [127, 0, 0, 1];

fn receiver() -> UdpSocket {
    let opts = shardcast_dataplane::socket::SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
    let (s, _) = shardcast_dataplane::socket::bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// (seq, ssrc, counter in the payload) of everything queued on `s`.
fn drain(s: &UdpSocket) -> Vec<(u16, u32, u64)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut idle = Instant::now();
    while Instant::now() < deadline && idle.elapsed() < Duration::from_millis(100) {
        if let Ok(n) = s.recv(&mut buf) {
            if n >= 20 {
                idle = Instant::now();
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let ssrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
                out.push((seq, ssrc, u64::from_be_bytes(buf[12..20].try_into().unwrap())));
            }
        }
    }
    out
}

struct Room {
    router: RouterId,
    consumer_ssrc: u32,
    socket: UdpSocket,
    transport: shardcast::TransportInfo,
}

/// A consumer of `producer` in `router`, on its own transport and receiver.
fn consume(sc: &Shardcast, router: RouterId, producer: ProducerId) -> Room {
    let socket = receiver();
    let t = sc.create_plain_transport(router, IpAddr::from(IP), false, false).unwrap();
    sc.connect(t.id, socket.local_addr().unwrap()).unwrap();
    let c = sc.consume(t.id, producer).unwrap();
    Room { router, consumer_ssrc: c.ssrc.0, socket, transport: t }
}

fn send(sender: &UdpSocket, dest: SocketAddr, from: u64, to: u64) {
    for n in from..to {
        sender.send_to(&rtp(4242, n as u16, n as u32 * 90, 96, &n.to_be_bytes()), dest).unwrap();
        if n % 16 == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// Waits until the cores read `n` datagrams and every pipe copy pushed was taken.
fn settle(sc: &Shardcast, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c: Vec<_> = sc.cores().iter().map(|c| c.stats().counters).collect();
        let read: u64 = c.iter().map(|c| c.packets_in).sum();
        let out: u64 = c.iter().map(|c| c.piped_out).sum();
        let taken: u64 = c.iter().map(|c| c.piped_in).sum();
        if read >= n && out == taken {
            return;
        }
        assert!(Instant::now() < deadline, "not settled: read {read} of {n}, piped {out} taken {taken}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_balanced(sc: &Shardcast) {
    let mut out = 0;
    let mut taken = 0;
    for (i, core) in sc.cores().iter().enumerate() {
        let c = core.stats().counters;
        assert!(c.ingress_balanced(), "core {i}: {c:?}");
        assert!(c.egress_balanced(), "core {i}: {c:?}");
        assert_eq!(c.drops_of(DropReason::PipeRingFull), 0, "core {i}");
        out += c.piped_out;
        taken += c.piped_in;
    }
    assert_eq!(out, taken, "every pipe copy sent was taken");
}

/// Every packet `from..to`, in order, numbered contiguously, with the consumer's SSRC.
fn assert_received_all(room: &Room, from: u64, to: u64) -> u16 {
    let got = drain(&room.socket);
    let counters: Vec<u64> = got.iter().map(|g| g.2).collect();
    assert_eq!(counters, (from..to).collect::<Vec<_>>(), "router {} lost or reordered packets", room.router);
    for w in got.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1), "router {}: sequence not contiguous", room.router);
    }
    assert!(got.iter().all(|g| g.1 == room.consumer_ssrc));
    got.last().map(|g| g.0).unwrap_or(0)
}

#[test]
fn one_producer_piped_to_its_core_and_the_other_reaches_every_consumer() {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    let mut events = sc.events().subscribe();
    let (r1, _) = sc.create_router(Some(0)).unwrap();
    let (r2, _) = sc.create_router(Some(0)).unwrap();
    let (r3, _) = sc.create_router(Some(1)).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let t_in = sc.create_plain_transport(r1, IpAddr::from(IP), false, false).unwrap();
    sc.connect(t_in.id, sender.local_addr().unwrap()).unwrap();
    let p = sc.produce(t_in.id, MediaKind::Video, Ssrc(4242), PayloadType(96)).unwrap();

    let q2 = sc.pipe_to_router(p, r2).unwrap();
    let q3 = sc.pipe_to_router(p, r3).unwrap();
    assert_eq!(sc.pipe_to_router(p, r3).unwrap(), q3, "a second call returns the same pipe");
    assert_ne!(q2, q3);
    let e = sc.pipe_to_router(p, r1).unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::InvalidArgument, "{e}");
    let e = sc.pipe_to_router(q2, r3).unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::InvalidArgument, "a piped producer is not piped again: {e}");
    let rooms = [consume(&sc, r1, p), consume(&sc, r2, q2), consume(&sc, r3, q3)];

    // The dumps name the pipe at both ends.
    let d2 = sc.dump_router(r2).unwrap();
    let piped = d2.producers.iter().find(|x| x.id == q2).unwrap();
    assert_eq!(piped.transport, None);
    assert_eq!(piped.piped_from.map(|f| (f.router, f.producer)), Some((r1, p)));
    assert_eq!(piped.ssrc, Ssrc(4242));
    let d1 = sc.dump_router(r1).unwrap();
    let to: BTreeSet<_> = d1.producers[0].piped_to.iter().map(|t| (t.router, t.producer)).collect();
    assert_eq!(to, BTreeSet::from([(r2, q2), (r3, q3)]));

    // Media reaches all three consumers, each with its own numbering.
    send(&sender, t_in.local, 1, 2001);
    settle(&sc, 2000);
    for room in &rooms {
        assert_received_all(room, 1, 2001);
    }
    assert_balanced(&sc);

    // Moves turn same-core pipes into cross-core ones and back; nothing is lost or renumbered.
    let mut sent = 2001;
    for (router, core) in [(r3, 0), (r1, 1), (r2, 1), (r3, 1), (r1, 0), (r2, 0)] {
        sc.move_router(router, core).unwrap();
        send(&sender, t_in.local, sent, sent + 100);
        settle(&sc, sent + 99);
        for room in &rooms {
            assert_received_all(room, sent, sent + 100);
        }
        sent += 100;
    }
    assert_balanced(&sc);

    // Pause of the source: every view agrees once the call returns, and nothing flows.
    sc.pause_producer(p).unwrap();
    let e = sc.pause_producer(q3).unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::InvalidState, "a piped producer follows its source: {e}");
    let late = consume(&sc, r3, q3);
    for r in [r1, r2, r3] {
        let d = sc.dump_router(r).unwrap();
        assert!(d.producers.iter().all(|x| x.paused), "{d:?}");
        assert!(d.consumers.iter().all(|c| c.producer_paused), "{d:?}");
    }
    send(&sender, t_in.local, 2601, 2701);
    settle(&sc, 2700);
    for room in rooms.iter().chain([&late]) {
        assert!(drain(&room.socket).is_empty(), "router {} forwarded while paused", room.router);
    }
    sc.resume_producer(p).unwrap();
    send(&sender, t_in.local, 2701, 2801);
    settle(&sc, 2800);
    for room in rooms.iter().chain([&late]) {
        assert_received_all(room, 2701, 2801);
    }
    for r in [r1, r2, r3] {
        let d = sc.dump_router(r).unwrap();
        assert!(d.producers.iter().all(|x| !x.paused) && d.consumers.iter().all(|c| !c.producer_paused));
    }

    // A PLI from the consumer on the other core reaches the producer's sender, as the source's.
    let mut pli = [0u8; 12];
    shardcast_core::rtcp::PliRepr { sender_ssrc: 1, media_ssrc: rooms[2].consumer_ssrc }.emit(&mut pli);
    rooms[2].socket.send_to(&pli, rooms[2].transport.local).unwrap();
    let mut buf = [0u8; 64];
    let n = sender.recv(&mut buf).expect("the PLI reaches the sender");
    let got = shardcast_core::rtcp::Pli::new_checked(&buf[..n]).unwrap();
    assert_eq!(got.media_ssrc(), 4242);

    // The sender's SR reaches every consumer, on every core, rewritten with its own SSRC.
    let mut sr = [0u8; 28];
    shardcast_core::rtcp::SenderReportRepr {
        ssrc: 4242,
        ntp: 5 << 32,
        rtp_timestamp: 90,
        packet_count: 1,
        octet_count: 1,
        reports: Default::default(),
    }
    .emit(&mut sr);
    sender.send_to(&sr, t_in.local).unwrap();
    settle(&sc, 2802);
    for room in rooms.iter().chain([&late]) {
        let n = room.socket.recv(&mut buf).unwrap_or_else(|e| panic!("an SR in router {}: {e}", room.router));
        let got = shardcast_core::rtcp::SenderReport::new_checked(&buf[..n]).unwrap();
        assert_eq!((got.ssrc(), got.ntp()), (room.consumer_ssrc, 5 << 32), "router {}", room.router);
    }

    // Closing the pipe to r2 (its piped producer) leaves the rest flowing.
    sc.close_producer(q2).unwrap();
    assert!(sc.dump_router(r1).unwrap().producers[0].piped_to.iter().all(|t| t.producer != q2));
    send(&sender, t_in.local, 2801, 2901);
    settle(&sc, 2902);
    assert_received_all(&rooms[0], 2801, 2901);
    assert!(drain(&rooms[1].socket).is_empty());
    assert_received_all(&rooms[2], 2801, 2901);
    assert_received_all(&late, 2801, 2901);

    // Closing the source closes the chain on the other core once, with events.
    while events.try_recv().is_ok() {}
    sc.close_producer(p).unwrap();
    let d3 = sc.dump_router(r3).unwrap();
    assert!(d3.producers.is_empty() && d3.consumers.is_empty(), "{d3:?}");
    let mut closed = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let ControlEvent::ProducerClosed { producer, consumers_closed } = &*e {
            closed.push((*producer, consumers_closed.len()));
        }
    }
    closed.sort();
    assert_eq!(closed, vec![(p, 1), (q3, 2)]);
    send(&sender, t_in.local, 2901, 2951);
    std::thread::sleep(Duration::from_millis(50));
    for room in rooms.iter().chain([&late]) {
        assert!(drain(&room.socket).is_empty());
    }
    assert_balanced(&sc);
    sc.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn closing_the_piped_router_or_the_source_router_ends_the_pipe_once() {
    let sc = Shardcast::start(Config::for_tests(2)).unwrap();
    let mut events = sc.events().subscribe();
    let (r1, _) = sc.create_router(Some(0)).unwrap();
    let (r2, _) = sc.create_router(Some(1)).unwrap();
    let (r3, _) = sc.create_router(Some(1)).unwrap();
    let t_in = sc.create_plain_transport(r1, IpAddr::from(IP), false, false).unwrap();
    sc.connect(t_in.id, "127.0.0.1:9".parse().unwrap()).unwrap();
    let p = sc.produce(t_in.id, MediaKind::Audio, Ssrc(77), PayloadType(111)).unwrap();
    let q2 = sc.pipe_to_router(p, r2).unwrap();
    let q3 = sc.pipe_to_router(p, r3).unwrap();
    let _c3 = consume(&sc, r3, q3);
    // Closing r2 takes its piped producer and the source stops feeding it.
    sc.close_router(r2).unwrap();
    let closed: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match &*e {
            ControlEvent::ProducerClosed { producer, .. } => Some(*producer),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![q2]);
    let d1 = sc.dump_router(r1).unwrap();
    assert_eq!(d1.producers[0].piped_to.iter().map(|t| t.producer).collect::<Vec<_>>(), vec![q3]);
    assert_eq!(sc.dump_router(r2).unwrap_err().kind, ApiErrorKind::NotFound);
    // A new pipe to r2 after it is gone is refused; the pipe to r3 is re-used.
    assert_eq!(sc.pipe_to_router(p, r2).unwrap_err().kind, ApiErrorKind::NotFound);
    assert_eq!(sc.pipe_to_router(p, r3).unwrap(), q3);
    // Closing the source's router closes the piped producer on the other core, with an event.
    sc.close_router(r1).unwrap();
    let d3 = sc.dump_router(r3).unwrap();
    assert!(d3.producers.is_empty() && d3.consumers.is_empty(), "{d3:?}");
    let mut closed = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let ControlEvent::ProducerClosed { producer, consumers_closed } = &*e {
            closed.push((*producer, consumers_closed.len()));
        }
    }
    assert_eq!(closed, vec![(q3, 1)]);
    // The piped router is movable again once its pipes are gone.
    sc.move_router(r3, 0).unwrap();
    sc.shutdown(Duration::from_secs(5)).unwrap();
}
