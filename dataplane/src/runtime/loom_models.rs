//! loom models of the data plane's cross-thread protocols, run by `.ci/run` as
//! `RUSTFLAGS="--cfg loom" cargo test -p shardcast-dataplane --release --lib loom`.
//!
//! What is the code that runs, model-checked as it is (its atomics come from `crate::sync`,
//! loom's here): the doorbell's pending/re-arm flag (`ring::WakeFlag`), the handoff barrier
//! (`handoff::Barrier`) and the bounded push of a marker (`handoff::push_bounded`).
//!
//! What is a stand-in: the rings. They are `crossbeam::queue::ArrayQueue`, which loom cannot see
//! into, so the models use [`Ring`], a bounded single-producer single-consumer queue whose only
//! guarantees are release (push) / acquire (pop) on each slot and a full ring refusing — weaker
//! than `ArrayQueue`, so what holds over it holds over the real one. The protocols around the
//! rings are modelled step for step as the run loop does them (push, then signal; re-arm, then
//! poll; a full ring gives the item back), not by calling the run loop. The epoll wait is a
//! counter of wake-up bytes (the kernel's stream: sequentially consistent).
//!
//! Not checked: more than one producer per ring (three or more cores, or the control thread
//! and a core pushing into the same ring — a core's hop ring has one producer per other core),
//! `ArrayQueue`'s own algorithm, the sockets and the wall clock (the barrier's deadline runs on
//! a virtual clock that moves 100 ms per empty poll).

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::handoff::{push_bounded, Barrier, BARRIER_DEADLINE};
use crate::ring::WakeFlag;

/// The stand-in ring: bounded SPSC, release/acquire only (see the module documentation).
struct Ring {
    slots: Box<[AtomicUsize]>,
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            slots: (0..capacity).map(|_| AtomicUsize::new(0)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Producer side; gives `v` back when full.
    fn push(&self, v: usize) -> Result<(), usize> {
        let t = self.tail.load(Ordering::Relaxed);
        if t - self.head.load(Ordering::Acquire) == self.slots.len() {
            return Err(v);
        }
        self.slots[t % self.slots.len()].store(v, Ordering::Relaxed);
        self.tail.store(t + 1, Ordering::Release);
        Ok(())
    }

    /// Consumer side.
    fn pop(&self) -> Option<usize> {
        let h = self.head.load(Ordering::Relaxed);
        if h == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let v = self.slots[h % self.slots.len()].load(Ordering::Relaxed);
        self.head.store(h + 1, Ordering::Release);
        Some(v)
    }
}

/// A core's doorbell as the models see it: the real flag, and the stream's bytes.
struct Bell {
    flag: WakeFlag,
    bytes: AtomicUsize,
    /// Bytes written, and re-arms done (the core's).
    written: AtomicUsize,
    rearms: AtomicUsize,
}

impl Bell {
    fn new() -> Bell {
        Bell {
            flag: WakeFlag::new(),
            bytes: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            rearms: AtomicUsize::new(0),
        }
    }

    /// `Doorbell::ring`, after the item was pushed.
    fn ring(&self) {
        if self.flag.should_signal() {
            self.bytes.fetch_add(1, Ordering::SeqCst);
            // The swap that said "signal" read the re-arm (or the initial state) it follows, so
            // it sees that re-arm's count: one byte per re-arm at most, however many pushes.
            let written = self.written.fetch_add(1, Ordering::Relaxed) + 1;
            assert!(written <= self.rearms.load(Ordering::Acquire) + 1, "more wake-ups than re-arms");
        }
    }

    /// `Doorbell::rearm`.
    fn rearm(&self) {
        self.rearms.fetch_add(1, Ordering::Relaxed);
        self.flag.rearm();
    }

    /// The core's wait: returns once a wake-up byte arrived (and drains it), or once the
    /// producer is `done` (it pushed `accepted` items, all rung) and no byte is there — then a
    /// core that has `received` fewer than `accepted` would sleep forever with work in its
    /// ring: a lost wake-up.
    fn wait(&self, done: &AtomicBool, accepted: &AtomicUsize, received: usize) {
        loop {
            if self.bytes.swap(0, Ordering::SeqCst) > 0 {
                return;
            }
            if done.load(Ordering::Acquire) && self.bytes.load(Ordering::SeqCst) == 0 {
                let accepted = accepted.load(Ordering::Relaxed);
                assert_eq!(received, accepted, "lost wake-up: the core sleeps with work in its ring");
                return;
            }
            thread::yield_now();
        }
    }
}

/// The consumer's side of every ring model: re-arm, poll everything, stop once the producer is
/// done and everything it pushed arrived, else wait for the doorbell (`CoreState::run`).
fn consume(ring: &Ring, bell: &Bell, done: &AtomicBool, accepted: &AtomicUsize) -> Vec<usize> {
    let mut got = Vec::new();
    loop {
        bell.rearm();
        while let Some(item) = ring.pop() {
            got.push(item);
        }
        if done.load(Ordering::Acquire) && got.len() == accepted.load(Ordering::Relaxed) {
            return got;
        }
        bell.wait(done, accepted, got.len());
    }
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

/// The control → core ring and its doorbell: every batch submitted is applied exactly once, in
/// order, or given back to the caller when the ring is full ("core busy"); the core never
/// sleeps with a batch in its ring; at most one wake-up byte is outstanding.
#[test]
fn loom_control_ring_batches_applied_once_in_order_or_refused_and_no_lost_wakeup() {
    for capacity in [1, 2] {
        builder().check(move || {
            const BATCHES: usize = 3;
            let ring = Arc::new(Ring::new(capacity));
            let bell = Arc::new(Bell::new());
            let done = Arc::new(AtomicBool::new(false));
            let accepted = Arc::new(AtomicUsize::new(0));
            let control = {
                let (ring, bell, done, accepted) =
                    (ring.clone(), bell.clone(), done.clone(), accepted.clone());
                thread::spawn(move || {
                    let mut refused = Vec::new();
                    for seq in 1..=BATCHES {
                        // `CoreHandle::submit`: push, then ring; a full ring gives it back.
                        match ring.push(seq) {
                            Ok(()) => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                                bell.ring();
                            }
                            Err(back) => refused.push(back),
                        }
                    }
                    done.store(true, Ordering::Release);
                    refused
                })
            };
            // The core's run loop: re-arm, poll the ring, wait.
            let applied = consume(&ring, &bell, &done, &accepted);
            let refused = control.join().unwrap();
            assert!(applied.windows(2).all(|w| w[0] < w[1]), "in order: {applied:?}");
            let mut all: Vec<usize> = applied.iter().chain(&refused).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (1..=BATCHES).collect::<Vec<_>>(), "applied {applied:?}, refused {refused:?}");
            if capacity >= BATCHES {
                assert!(refused.is_empty());
            }
        });
    }
}

/// The doorbell alone, as the core uses it between `epoll_wait`s: with two items queued one
/// after the other, the core, which sleeps whenever its ring looks empty, always wakes for the
/// second. This is the property the two fences of `WakeFlag` exist for.
#[test]
fn loom_doorbell_wakeup_is_never_lost() {
    builder().check(|| {
        let ring = Arc::new(Ring::new(2));
        let bell = Arc::new(Bell::new());
        let done = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let producer = {
            let (ring, bell, done, accepted) = (ring.clone(), bell.clone(), done.clone(), accepted.clone());
            thread::spawn(move || {
                for item in 1..=2 {
                    ring.push(item).expect("room for both");
                    accepted.fetch_add(1, Ordering::Relaxed);
                    bell.ring();
                }
                done.store(true, Ordering::Release);
            })
        };
        let got = consume(&ring, &bell, &done, &accepted);
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2]);
    });
}

/// The inter-core packet ring: every datagram carried is either forwarded by the owner, in the
/// order carried, or dropped and counted `ring_full` — `hopped_out + ring_full = carried`,
/// `hopped_in = hopped_out` — and the owner never sleeps with a datagram in its ring.
#[test]
fn loom_hop_ring_conserves_and_orders_datagrams() {
    builder().check(|| {
        const CARRIED: usize = 3;
        let ring = Arc::new(Ring::new(2));
        let bell = Arc::new(Bell::new());
        let done = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let from = {
            let (ring, bell, done, accepted) = (ring.clone(), bell.clone(), done.clone(), accepted.clone());
            thread::spawn(move || {
                // `Hops::carry`: push; on success ring and count hopped_out, else ring_full.
                let (mut hopped_out, mut ring_full) = (0, 0);
                for datagram in 1..=CARRIED {
                    match ring.push(datagram) {
                        Ok(()) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            bell.ring();
                            hopped_out += 1;
                        }
                        Err(_) => ring_full += 1,
                    }
                }
                done.store(true, Ordering::Release);
                (hopped_out, ring_full)
            })
        };
        let forwarded = consume(&ring, &bell, &done, &accepted);
        let (hopped_out, ring_full) = from.join().unwrap();
        assert_eq!(hopped_out + ring_full, CARRIED);
        assert_eq!(forwarded.len(), hopped_out, "hopped_in = hopped_out");
        assert!(forwarded.windows(2).all(|w| w[0] < w[1]), "in carried order: {forwarded:?}");
    });
}

/// Items in the hop rings of the barrier model: datagrams are `1..`, the marker is `MARKER`.
const MARKER: usize = usize::MAX;

/// The handoff barrier (steps 2–5 of `handoff`): the importer raises its barrier and sends its
/// marker through the old owner's ring; the old owner, still carrying the router's datagrams to
/// the importer, sends the marker back behind them. Checked: when the importer reads its
/// sockets again because the marker came home, every datagram the old owner carried before it
/// was forwarded first; otherwise the barrier was lifted by its deadline and counted; the
/// importer is never left behind the barrier for good.
#[test]
fn loom_handoff_barrier_marker_orders_carried_datagrams_and_deadline_lifts_it() {
    builder().check(|| {
        let to_importer = Arc::new(Ring::new(2));
        let to_owner = Arc::new(Ring::new(2));
        let owner = {
            let (to_importer, to_owner) = (to_importer.clone(), to_owner.clone());
            thread::spawn(move || {
                // Datagrams of the moved router that landed here keep being carried.
                let mut carried_before_marker = Vec::new();
                let mut next = 1;
                loop {
                    if let Some(item) = to_owner.pop() {
                        assert_eq!(item, MARKER);
                        // `on_marker`: back to its origin, behind what was carried.
                        let back = push_bounded(MARKER, 3, |m| to_importer.push(m)).is_ok();
                        return (carried_before_marker, back);
                    }
                    if next <= 2 {
                        if push_bounded(next, 1, |d| to_importer.push(d)).is_ok() {
                            carried_before_marker.push(next);
                        }
                        next += 1;
                    }
                    thread::yield_now();
                }
            })
        };
        // The importer: `poll_imports` raises the barrier and sends the marker.
        let t0 = std::time::Instant::now();
        let mut now = t0;
        let mut barrier = Barrier::new(now);
        let mut failures = 0;
        barrier.raise(now);
        if push_bounded(MARKER, 3, |m| to_owner.push(m)).is_err() {
            barrier.lower();
            failures += 1;
        }
        let mut forwarded = Vec::new();
        let mut came_home = false;
        while barrier.is_up() {
            match to_importer.pop() {
                Some(MARKER) => {
                    barrier.lower();
                    came_home = true;
                }
                Some(d) => forwarded.push(d),
                None => {
                    // The run loop's barrier wait: a virtual 100 ms per empty poll.
                    now += std::time::Duration::from_millis(100);
                    if barrier.lift_expired(now) {
                        failures += 1;
                    }
                    thread::yield_now();
                }
            }
        }
        // The importer reads its sockets now.
        let read_sockets_after = forwarded.clone();
        let (carried_before_marker, marker_sent_back) = owner.join().unwrap();
        if came_home {
            assert!(marker_sent_back);
            assert_eq!(failures, 0);
            assert_eq!(
                read_sockets_after, carried_before_marker,
                "everything carried before the marker was forwarded before the sockets were read"
            );
        } else {
            assert_eq!(failures, 1, "a barrier lifted without its marker is counted");
            assert!(now.duration_since(t0) > BARRIER_DEADLINE, "lifted only past the deadline");
        }
    });
}
