//! NACK amplification (issue 12, finding 1), over real sockets: a NACK asks for up to 17 packets
//! per 4-byte FCI entry, so a peer of a consumer's transport — or anyone spoofing its address —
//! could turn a few bytes into a flood toward that address. What NACKs draw is bounded by the
//! consumer's retransmission budget (a share of the media forwarded to it, plus one burst), a
//! packet is resent at most once per interval, and the excess is counted under named reasons;
//! a consumer asking honestly, one lost packet at a time, is still answered.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shardcast_core::drop_reason::{Counters, DropReason};
use shardcast_core::ids::RouterId;
use shardcast_core::rtcp::NackRepr;
use shardcast_core::shard::RtcpLimits;
use shardcast_core::testutil::Room;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(1);
/// Media packets: 12-byte header + 1000 bytes, like a video packet.
const MEDIA_LEN: u64 = 1012;

/// A NACK about `media_ssrc` with 64 FCI entries at recent PIDs (`newest`, 16 and 32 before
/// it, repeated), every bitmask bit set: 268 bytes asking for 1,088 packets.
fn storm_nack(media_ssrc: u32, newest: u16) -> Vec<u8> {
    let mut repr = NackRepr { sender_ssrc: 9, media_ssrc, ..Default::default() };
    for k in 0..64u16 {
        repr.pairs.push((newest.wrapping_sub(16 * (k % 3)), 0xFFFF)).unwrap();
    }
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut b);
    assert_eq!(b.len(), 268);
    b
}

/// A NACK for one lost packet.
fn one_nack(media_ssrc: u32, seq: u16) -> Vec<u8> {
    let repr = NackRepr::from_lost(9, media_ssrc, &[seq]);
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut b);
    b
}

/// The core's counters once it has handled at least `packets_in` datagrams and they stopped
/// changing for 200 ms (a datagram the kernel dropped never arrives: hence "at least").
fn settled(plane: &mut Plane, packets_in: u64) -> Counters {
    let deadline = Instant::now() + DEADLINE;
    let mut last = Counters::default();
    let mut still_since = Instant::now();
    loop {
        // A batch makes the core publish its counters.
        plane.apply(0, Vec::new());
        let c = plane.plane.cores()[0].stats().counters;
        if c != last {
            still_since = Instant::now();
        }
        let still = still_since.elapsed() >= Duration::from_millis(200);
        if (c.packets_in >= packets_in && still && c.egress_balanced()) || Instant::now() > deadline {
            return c;
        }
        last = c;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a receiving peer saw: media packets (first arrival of a sequence number) and
/// retransmissions (any later arrival), in packets and bytes; the newest sequence number.
#[derive(Default)]
struct Seen {
    newest: AtomicU32,
    media: AtomicU64,
    resent: AtomicU64,
    resent_bytes: AtomicU64,
}

/// Receives on `peer` until `stop`, sorting media from retransmissions.
fn receive(peer: &Peer, seen: &Seen, stop: &AtomicBool) {
    let mut firsts = HashSet::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, _)) = peer.socket.recv_from(&mut buf) else { continue };
        if len < 12 || buf[1] & 0x7f != 96 {
            continue;
        }
        let seq = header(&buf[..len]).seq;
        if firsts.insert(seq) {
            seen.media.fetch_add(1, Ordering::Relaxed);
            seen.newest.store(u32::from(seq), Ordering::Relaxed);
        } else {
            seen.resent.fetch_add(1, Ordering::Relaxed);
            seen.resent_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
    }
}

/// The attacker of a consumer transport sends 10,000 storm NACKs a second for a second, from the
/// consumer's connected address, while the producer streams ~2 Mbit/s of video and a second
/// consumer NACKs one packet every 50 ms. The attacked consumer gets at most its budget; the
/// excess is counted; the honest consumer's NACKs are all answered.
#[test]
fn a_nack_storm_draws_at_most_the_retransmission_budget() {
    let mut plane = Plane::start(1);
    let limits = RtcpLimits::default();
    let (producer, attacked, honest) = (Peer::new(), Peer::new(), Peer::new());
    let (in_sock, in_addr) = plane.socket(0);
    let (out_sock, out_addr) = plane.socket(0);
    let (honest_sock, honest_addr) = plane.socket(0);
    let room = Room::new(R)
        .producer(1, in_sock, producer.addr(), 1111, 96)
        .consumer(2, out_sock, attacked.addr(), 1, 2222, 96)
        .consumer(3, honest_sock, honest.addr(), 1, 3333, 96);
    plane.route(0, room.commands());

    let (attacked_seen, honest_seen) = (Seen::default(), Seen::default());
    let (stop_media, stop_rx) = (AtomicBool::new(false), AtomicBool::new(false));
    let sent_bytes = AtomicU64::new(0);
    let (mut storm_sent, mut honest_asked, mut honest_last) = (0u64, 0u64, None);
    std::thread::scope(|s| {
        s.spawn(|| receive(&attacked, &attacked_seen, &stop_rx));
        s.spawn(|| receive(&honest, &honest_seen, &stop_rx));
        // The producer: one packet every 4 ms until told to stop (bounded by the deadline).
        s.spawn(|| {
            let deadline = Instant::now() + DEADLINE;
            let mut seq = 0u16;
            while !stop_media.load(Ordering::Relaxed) && Instant::now() < deadline {
                producer.send(in_addr, &rtp(1111, seq, u32::from(seq) * 3000, 96, &[7; 1000]));
                sent_bytes.fetch_add(MEDIA_LEN, Ordering::Relaxed);
                seq = seq.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(4));
            }
        });
        let wait = Instant::now() + DEADLINE;
        while attacked_seen.media.load(Ordering::Relaxed) < 50
            || honest_seen.media.load(Ordering::Relaxed) < 50
        {
            assert!(Instant::now() < wait, "media reached the consumers");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The storm: 10 NACKs per millisecond tick, 10,000 in all, within a deadline.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3);
        for tick in 0..1000u32 {
            let newest = attacked_seen.newest.load(Ordering::Relaxed) as u16;
            let nack = storm_nack(2222, newest);
            for _ in 0..10 {
                attacked.send(out_addr, &nack);
                storm_sent += 1;
            }
            // Every 50 ms the honest consumer "lost" a recent packet it has not asked for yet
            // (under load the producer may not have sent a new one): one NACK for it.
            let seq = (honest_seen.newest.load(Ordering::Relaxed) as u16).wrapping_sub(2);
            if tick % 50 == 0 && honest_last != Some(seq) {
                honest.send(honest_addr, &one_nack(3333, seq));
                honest_asked += 1;
                honest_last = Some(seq);
            }
            if Instant::now() > deadline {
                break;
            }
            if let Some(wait) =
                (start + Duration::from_millis(u64::from(tick) + 1)).checked_duration_since(Instant::now())
            {
                std::thread::sleep(wait);
            }
        }
        // The honest consumer's NACKs are all answered (it asked one packet per 50 ms).
        let wait = Instant::now() + DEADLINE;
        while honest_seen.resent.load(Ordering::Relaxed) < honest_asked && Instant::now() < wait {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop_media.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        stop_rx.store(true, Ordering::Relaxed);
    });
    let c = settled(&mut plane, 0);
    let media_bytes = sent_bytes.load(Ordering::Relaxed);
    let budget = media_bytes * u64::from(limits.retransmission_share_permille) / 1000
        + u64::from(limits.retransmission_burst_bytes);
    let (resent, resent_bytes) =
        (attacked_seen.resent.load(Ordering::Relaxed), attacked_seen.resent_bytes.load(Ordering::Relaxed));
    println!(
        "storm: {storm_sent} NACKs ({} bytes) drew {resent} retransmissions ({resent_bytes} bytes); \
         media {media_bytes} bytes, budget {budget} bytes; honest consumer: {honest_asked} asked, {} answered",
        storm_sent * 268,
        honest_seen.resent.load(Ordering::Relaxed)
    );
    assert!(storm_sent >= 5_000, "the storm was sent ({storm_sent})");
    assert!(resent > 0, "some of the storm was answered");
    assert!(
        resent_bytes <= budget,
        "{resent_bytes} bytes retransmitted to the attacked address, budget {budget}"
    );
    // The core's own count (both consumers) is within both budgets.
    assert!(c.retransmitted * MEDIA_LEN <= 2 * budget, "{c:?}");
    // What the storm asked beyond the budget is counted under the NACK limits' reasons.
    let refused = c.drops_of(DropReason::RetransmissionTooSoon)
        + c.drops_of(DropReason::RetransmissionOverBudget)
        + c.drops_of(DropReason::RetransmissionOverNackCap);
    assert!(c.drops_of(DropReason::RetransmissionTooSoon) > 0, "{c:?}");
    assert!(c.drops_of(DropReason::RetransmissionOverBudget) > 0, "{c:?}");
    assert!(refused >= c.rtcp_terminated.saturating_sub(honest_asked) * 100, "{c:?}");
    assert_eq!(honest_seen.resent.load(Ordering::Relaxed), honest_asked, "honest NACKs answered");
    assert!(c.ingress_balanced() && c.egress_balanced(), "{c:?}");
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}

/// The finding's measurement: 300 packets of video forwarded, then 200 NACKs of 268 bytes (64
/// FCI entries at recent PIDs, every bitmask bit set). Unbounded, they drew ~111 retransmissions
/// each; now the consumer's budget bounds them: fewer retransmissions than NACKs.
#[test]
fn two_hundred_storm_nacks_draw_fewer_packets_than_they_are() {
    let mut plane = Plane::start(1);
    let limits = RtcpLimits::default();
    let (producer, consumer) = (Peer::new(), Peer::new());
    let (in_sock, in_addr) = plane.socket(0);
    let (out_sock, out_addr) = plane.socket(0);
    let room = Room::new(R).producer(1, in_sock, producer.addr(), 1111, 96).consumer(
        2,
        out_sock,
        consumer.addr(),
        1,
        2222,
        96,
    );
    plane.route(0, room.commands());
    for seq in 0..300u16 {
        producer.send(in_addr, &rtp(1111, seq, u32::from(seq) * 3000, 96, &[7; 1000]));
    }
    assert_eq!(consumer.recv_n(300, DEADLINE).len(), 300);
    let attack = |to: SocketAddr| {
        for i in 0..200u16 {
            consumer.send(to, &storm_nack(2222, 299 - (i % 40)));
        }
    };
    attack(out_addr);
    let c = settled(&mut plane, 300 + 200);
    let got = consumer.drain(Duration::from_millis(300));
    let bytes: u64 = got.iter().map(|p| p.len() as u64).sum();
    println!(
        "200 NACKs ({} bytes) drew {} retransmissions ({bytes} bytes): x{:.2} packets, x{:.2} bytes",
        200 * 268,
        got.len(),
        got.len() as f64 / 200.0,
        bytes as f64 / (200.0 * 268.0)
    );
    let budget = 300 * MEDIA_LEN * u64::from(limits.retransmission_share_permille) / 1000
        + u64::from(limits.retransmission_burst_bytes);
    assert!(bytes <= budget, "{bytes} > {budget}");
    assert!(got.len() < 200, "{} retransmissions for 200 NACKs", got.len());
    assert_eq!(c.retransmitted, got.len() as u64, "{c:?}");
    assert!(
        c.drops_of(DropReason::RetransmissionTooSoon) + c.drops_of(DropReason::RetransmissionOverBudget) > 0
    );
    assert!(c.ingress_balanced() && c.egress_balanced(), "{c:?}");
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
