//! Live router handoff between two cores while media flows: a router with 1 producer (on the
//! shared port) → 10 consumers (dedicated sockets) at 20,000 output pps is moved back and forth
//! 1,000 times. Every consumer must see every packet exactly once, contiguous sequence numbers,
//! monotonic timestamps and an unchanged SSRC; nothing may be dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardcast_core::command::{BatchReply, Command, Outcome, SocketId, SteerKey};
use shardcast_core::ids::RouterId;
use shardcast_core::testutil::Room;
use shardcast_dataplane::CoreOp;
use shardcast_tests::{header, rtp, Peer, Plane, DEADLINE};

const R: RouterId = RouterId(3);
const CONSUMERS: u32 = 10;
const MOVES: usize = 1000;
const INPUT_PPS: u64 = 2000;

#[test]
fn thousand_moves_under_load_lose_nothing() {
    moves(true);
}

/// The producer on its own socket too: that socket moves with the router (it joins the importing
/// core's epoll set at once, and must not be read before the handoff barrier lifts).
#[test]
fn thousand_moves_with_a_dedicated_producer_socket() {
    moves(false);
}

/// The two tests each load both CPUs; run them one after the other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn moves(producer_on_shared_port: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut plane = Plane::start(2);
    let shared = plane.shared_addr();
    let (producer_socket, ingress) =
        if producer_on_shared_port { (SocketId::SHARED, shared) } else { plane.socket(0) };
    let sender = Peer::new();
    let receivers: Vec<Peer> = (0..CONSUMERS).map(|_| Peer::new()).collect();
    let mut room = Room::new(R).producer(1, producer_socket, sender.addr(), 42, 96);
    for (i, r) in receivers.iter().enumerate() {
        let (sock, _) = plane.socket(0);
        room = room.consumer(10 + i as u32, sock, r.addr(), 1, 7000 + i as u32, 96);
    }
    plane.route(0, room.commands());
    plane.route(
        1,
        vec![Command::SetSteering { router: R, key: SteerKey::Remote(sender.addr()), core: Some(0) }],
    );

    // A paced sender, bounded in time, stopped when the moves are done.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender_thread = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq: u64 = 0;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                let due = start + Duration::from_micros(seq * 1_000_000 / INPUT_PPS);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let s = seq as u16;
                sender.send(ingress, &rtp(42, s, (seq as u32).wrapping_mul(3000), 96, &seq.to_be_bytes()));
                seq += 1;
                sent.store(seq, Ordering::Relaxed);
            }
        })
    };

    let started = Instant::now();
    let mut moves = 0usize;
    // At least MOVES moves, and for long enough that ≥ 20,000 copies are forwarded.
    while moves < MOVES
        || (sent.load(Ordering::Relaxed) < 2_100 && started.elapsed() < Duration::from_secs(30))
    {
        let i = moves;
        moves += 1;
        let (from, to) = (i % 2, 1 - i % 2);
        let reply = plane.apply(from, vec![CoreOp::HandOff { router: R, to: to as u16 }]);
        assert_eq!(
            reply,
            BatchReply::Applied { seq: reply.seq(), outcomes: vec![Outcome::Applied] },
            "move {i}"
        );
        let reply = plane.apply(to, vec![CoreOp::ConfirmImport { router: R }]);
        assert_eq!(
            reply,
            BatchReply::Applied { seq: reply.seq(), outcomes: vec![Outcome::Applied] },
            "move {i}"
        );
    }
    let moves_per_sec = moves as f64 / started.elapsed().as_secs_f64();
    // Keep media flowing a little after the last move, then stop.
    let after = sent.load(Ordering::Relaxed) + 200;
    let deadline = Instant::now() + DEADLINE;
    while sent.load(Ordering::Relaxed) < after && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    sender_thread.join().unwrap();
    let total = sent.load(Ordering::Relaxed) as usize;
    assert!(total * CONSUMERS as usize >= 20_000, "at least 20k output packets ({total} in)");

    // Arrival order may differ from forwarding order by a packet or two right at a move: the
    // kernel hands loopback (like a NIC's per-CPU queues) datagrams sent from different CPUs to
    // the receiver through per-CPU backlogs, and a move changes the sending CPU. So the check is
    // on the numbering shardcast assigned: every packet exactly once, sequence numbers
    // contiguous in send order, timestamps monotonic; arrival reorders are counted and must be
    // rare and adjacent.
    let mut reorders = 0usize;
    for (i, r) in receivers.iter().enumerate() {
        let got = r.recv_n(total, DEADLINE);
        assert_eq!(
            got.len(),
            total,
            "consumer {i}: lost {}; cores: {:?} / {:?}",
            total - got.len(),
            plane.plane.cores()[0].stats(),
            plane.plane.cores()[1].stats()
        );
        let mut by_index: Vec<Option<shardcast_tests::Header>> = vec![None; total];
        let mut last_index: Option<u64> = None;
        for p in &got {
            let h = header(p);
            assert_eq!(h.ssrc, 7000 + i as u32);
            let index = u64::from_be_bytes(p[12..20].try_into().unwrap());
            if let Some(last) = last_index {
                if index < last {
                    reorders += 1;
                    // Usually 1–2 apart; a per-CPU backlog delayed by the VM's scheduler held
                    // 4–9 packets (2–4.5 ms at 2,000 pps) in about 1 run of 14 on this 2-vCPU box.
                    assert!(last - index <= 16, "consumer {i}: packet {index} arrived after {last}");
                }
            }
            last_index = Some(last_index.map_or(index, |l| l.max(index)));
            let slot = by_index.get_mut(index as usize).expect("index sent");
            assert!(slot.is_none(), "consumer {i}: packet {index} twice");
            *slot = Some(h);
        }
        let first = by_index[0].expect("packet 0");
        for (k, h) in by_index.iter().enumerate() {
            let h = h.expect("every packet once");
            assert_eq!(h.seq, first.seq.wrapping_add(k as u16), "consumer {i}: contiguous numbering");
            assert!(
                k == 0 || h.ts.wrapping_sub(by_index[k - 1].unwrap().ts) as i32 > 0,
                "monotonic timestamps"
            );
        }
        assert!(r.drain(Duration::from_millis(50)).is_empty(), "consumer {i}: duplicates");
    }
    assert!(reorders <= moves / 20, "{reorders} arrival reorders for {moves} moves");
    let (a, b) = (plane.plane.cores()[0].stats(), plane.plane.cores()[1].stats());
    let mut all = a.counters;
    all.add(&b.counters);
    assert_eq!(all.ingress_drops() + all.egress_drops(), 0, "{a:?}\n{b:?}");
    eprintln!(
        "handoff: {moves} moves, {moves_per_sec:.0} moves/s, freeze max {} µs, {total} packets in, hops {}, arrival reorders {reorders}, barriers given up {}",
        a.freeze_ns_max.max(b.freeze_ns_max) / 1000,
        all.hopped_out,
        a.barrier_failures + b.barrier_failures
    );
    plane.plane.shutdown(DEADLINE).expect("cores stop");
}
