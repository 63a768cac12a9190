//! One run: wire the target, send paced RTP for warmup + window, receive everything, account.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use shardcast_dataplane::io::{pin_current_thread, poll_readable, RecvBatch, SendBatch};
use shardcast_dataplane::socket::{bind_udp, SocketOptions};

use crate::loadgen::account::SeqTracker;
use crate::loadgen::cpu::{CpuSample, UdpCounters};
use crate::loadgen::profile::{Profile, Stream};
use crate::loadgen::target::Target;

/// Marks the generator's payloads.
pub const MAGIC: [u8; 4] = *b"SCLG";
const PAYLOAD_HEADER: usize = 24;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    pub profile: Profile,
    /// p2p: input pps; fanout: output pps (ignored by conference).
    pub rate: f64,
    /// RTP payload bytes (at least 24).
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
    /// Pin the generator's threads to this CPU.
    pub cpu: Option<usize>,
    /// Show a progress bar (long runs on a terminal).
    pub progress: bool,
    /// Work to do during the measured window (e.g. move the router back and forth, or flood
    /// the relay's ports), given a [`DuringContext`]; returns samples (e.g. handoff µs).
    pub during: Option<DuringHook>,
}

/// See [`RunConfig::during`].
#[derive(Clone)]
pub struct DuringHook(pub Arc<DuringFn>);

/// `context -> samples`.
pub type DuringFn = dyn Fn(DuringContext) -> Vec<u64> + Send + Sync;

/// What a [`DuringHook`] is given when the measured window starts.
#[derive(Debug)]
pub struct DuringContext {
    /// The router shardcast created for the run.
    pub router: Option<u64>,
    /// Set once the legitimate sender has sent its last packet.
    pub stop: Arc<AtomicBool>,
    /// Where stream `i` is sent.
    pub ingress: Vec<SocketAddr>,
    /// A clone of the legitimate sender's socket (same address): a hook may send from it.
    pub sender: Option<UdpSocket>,
    /// Clones of the receiver sockets, in receiver order (a hook may send from a consumer's own
    /// address; the run's receiver thread still reads everything that arrives on them).
    pub receivers: Vec<UdpSocket>,
}

/// One stream's figures over the window (summed over its receivers).
#[derive(Debug, Clone, Serialize)]
pub struct StreamFigures {
    pub id: u32,
    pub ssrc: u32,
    pub receivers: usize,
    /// Packets of the stream sent in the window.
    pub sent: u64,
    /// `sent` × receivers.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl std::fmt::Debug for DuringHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DuringHook")
    }
}

/// Figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub target: String,
    pub profile: Profile,
    pub rate: f64,
    pub size: usize,
    pub window_secs: f64,
    pub input_pps: f64,
    pub expected_out: u64,
    pub delivered: u64,
    pub delivered_pps: f64,
    pub lost: u64,
    pub loss_pct: f64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Packets sent more than 1 ms behind schedule (the generator was descheduled).
    pub late_sends: u64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_p999: u64,
    pub latency_us_max: u64,
    /// Relay CPU over the window, percent of one CPU (None: no pid).
    pub relay_cpu_pct: Option<f64>,
    /// Relay CPU nanoseconds per delivered packet.
    pub relay_ns_per_pkt: Option<f64>,
    /// Busy percent per relay thread name.
    pub relay_threads: Vec<(String, f64)>,
    pub udp_in_errors: u64,
    pub udp_rcvbuf_errors: u64,
    pub udp_sndbuf_errors: u64,
    /// Largest gap between two consecutive arrivals at one consumer (µs).
    pub max_gap_us: u64,
    /// Samples returned by the `during` hook (e.g. handoff durations, µs).
    pub during_samples: Vec<u64>,
    /// Datagrams the kernel accepted from the sender over the whole run (warmup included).
    pub sent_total: u64,
    /// Datagrams the kernel refused (full send buffer, or refused one by one): never sent, so
    /// counted as lost by the receivers' accounting.
    pub send_refused: u64,
    /// Per stream, over the window.
    pub streams: Vec<StreamFigures>,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn packet(buf: &mut [u8], s: &Stream, seq: u64) -> usize {
    let len = 12 + s.size.max(PAYLOAD_HEADER);
    buf[0] = 0x80;
    buf[1] = s.payload_type;
    buf[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    let clock = if s.video { 90_000.0 } else { 48_000.0 };
    buf[4..8].copy_from_slice(&((seq as f64 * clock / s.pps) as u64 as u32).to_be_bytes());
    buf[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
    buf[12..16].copy_from_slice(&MAGIC);
    buf[16..20].copy_from_slice(&s.id.to_be_bytes());
    buf[20..28].copy_from_slice(&seq.to_be_bytes());
    buf[28..36].copy_from_slice(&now_ns().to_be_bytes());
    len
}

/// Parses a generator packet: `(stream id, seq, send time ns)`.
pub fn parse(p: &[u8]) -> Option<(u32, u64, u64)> {
    if p.len() < 12 + PAYLOAD_HEADER || p[0] >> 6 != 2 || p[12..16] != MAGIC {
        return None;
    }
    let id = u32::from_be_bytes(p[16..20].try_into().ok()?);
    let seq = u64::from_be_bytes(p[20..28].try_into().ok()?);
    let sent = u64::from_be_bytes(p[28..36].try_into().ok()?);
    Some((id, seq, sent))
}

fn socket(buffer: usize) -> Result<UdpSocket, String> {
    let opts = SocketOptions { reuse_port: false, recv_buffer: buffer, send_buffer: buffer };
    bind_udp("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?, &opts)
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
}

/// Runs one load: returns its figures.
pub fn run(config: &RunConfig) -> Result<RunResult, String> {
    if let Some(cpu) = config.cpu {
        let _ = pin_current_thread(cpu);
    }
    let (streams, receivers_n) = config.profile.streams(config.rate, config.size, config.seed);
    let sender = socket(8 << 20)?;
    let receivers: Vec<UdpSocket> = (0..receivers_n).map(|_| socket(16 << 20)).collect::<Result<_, _>>()?;
    let receiver_addrs: Vec<SocketAddr> = receivers.iter().filter_map(|r| r.local_addr().ok()).collect();
    let prepared =
        config.target.prepare(&streams, sender.local_addr().map_err(|e| e.to_string())?, &receiver_addrs)?;
    let result =
        drive(config, &streams, &sender, &receivers, &prepared.ingress, prepared.pid, prepared.router);
    config.target.finish(prepared);
    result
}

fn drive(
    config: &RunConfig,
    streams: &[Stream],
    sender: &UdpSocket,
    receivers: &[UdpSocket],
    ingress: &[SocketAddr],
    pid: Option<u32>,
    router: Option<u64>,
) -> Result<RunResult, String> {
    let total = config.warmup + config.duration;
    // Per stream: sequence numbers sent before the window, and in it.
    let window_first: Arc<Vec<AtomicU64>> =
        Arc::new(streams.iter().map(|_| AtomicU64::new(u64::MAX)).collect());
    let window_end: Arc<Vec<AtomicU64>> = Arc::new(streams.iter().map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);

    // The receiver: every consumer socket, batched receive, accounting after the fact.
    let rx_done = done.clone();
    let fds: Vec<_> = receivers.iter().map(|r| r.as_raw_fd()).collect();
    let cpu = config.cpu;
    let receiver = std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            let _ = pin_current_thread(cpu);
        }
        let mut log: Vec<(u32, u32, u64, u64, u64)> = Vec::with_capacity(1 << 20);
        let mut ready = vec![false; fds.len()];
        let mut batch = RecvBatch::new(64, 2048);
        // Kernel receive timestamps: latency is not inflated by this thread's scheduling.
        let stamped = fds.iter().all(|fd| batch.enable_timestamps(*fd).is_ok());
        let mut quiet_since: Option<Instant> = None;
        loop {
            if rx_done.load(Ordering::Relaxed) {
                let q = *quiet_since.get_or_insert_with(Instant::now);
                if q.elapsed() > Duration::from_millis(300) {
                    break;
                }
            }
            if poll_readable(&fds, &mut ready, Duration::from_millis(10)).unwrap_or(0) == 0 {
                continue;
            }
            let at = now_ns();
            for (i, fd) in fds.iter().enumerate().filter(|(i, _)| ready[*i]) {
                while let Ok(n) = batch.recv(*fd) {
                    if n == 0 {
                        break;
                    }
                    for k in 0..n {
                        if let Some((id, seq, sent)) = parse(batch.get(k).0) {
                            let at = if stamped {
                                batch.timestamp(k).map_or(at, |t| t.as_nanos() as u64)
                            } else {
                                at
                            };
                            log.push((i as u32, id, seq, at.saturating_sub(sent), at));
                        }
                    }
                }
            }
        }
        log
    });

    // The sender: absolute-deadline pacing, small sendmmsg batches, late sends counted.
    let mut next: Vec<f64> = vec![0.0; streams.len()];
    let mut seqs: Vec<u64> = vec![0; streams.len()];
    let mut bufs: Vec<[u8; 1600]> = vec![[0u8; 1600]; 64];
    let mut batch = SendBatch::new(64);
    let fd = sender.as_raw_fd();
    let bar = config.progress.then(|| {
        let b = indicatif::ProgressBar::new(total.as_secs());
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} s")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    while Instant::now() < start {
        std::hint::spin_loop();
    }
    let mut cpu_before: Option<(CpuSample, UdpCounters, Instant)> = None;
    let hook_stop = Arc::new(AtomicBool::new(false));
    let mut hook_thread: Option<std::thread::JoinHandle<Vec<u64>>> = None;
    let mut cpu_after: Option<(CpuSample, UdpCounters, Instant)> = None;
    let (mut sent_total, mut send_refused) = (0u64, 0u64);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= total {
            break;
        }
        if cpu_before.is_none() && elapsed >= config.warmup {
            for (i, s) in seqs.iter().enumerate() {
                window_first[i].store(*s, Ordering::Relaxed);
            }
            cpu_before =
                Some((pid.map(CpuSample::read).unwrap_or_default(), UdpCounters::read(), Instant::now()));
            if let Some(hook) = &config.during {
                let context = DuringContext {
                    router,
                    stop: hook_stop.clone(),
                    ingress: ingress.to_vec(),
                    sender: sender.try_clone().ok(),
                    receivers: receivers.iter().filter_map(|r| r.try_clone().ok()).collect(),
                };
                let hook = hook.clone();
                hook_thread = Some(std::thread::spawn(move || (hook.0)(context)));
            }
        }
        if let Some(b) = &bar {
            b.set_position(elapsed.as_secs());
        }
        let t = elapsed.as_secs_f64();
        let mut n = 0usize;
        let mut soonest = f64::MAX;
        {
            let mut lens = [0usize; 64];
            for (i, s) in streams.iter().enumerate() {
                while next[i] <= t && n < 64 {
                    if t - next[i] > 0.001 {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    lens[n] = packet(&mut bufs[n], s, seqs[i]);
                    seqs[i] += 1;
                    next[i] += 1.0 / s.pps;
                    n += 1;
                }
                soonest = soonest.min(next[i]);
            }
            let mut scope = batch.scope();
            for (b, len) in bufs.iter().zip(lens.iter()).take(n) {
                let id = u32::from_be_bytes([b[16], b[17], b[18], b[19]]) as usize;
                scope.push(ingress[id], &[], &b[..*len]);
            }
            if n > 0 {
                let r = scope.flush(fd);
                sent_total += r.sent as u64;
                send_refused += (r.failed + r.would_block) as u64;
            }
        }
        if n == 0 {
            let wait = soonest - start.elapsed().as_secs_f64();
            if wait > 0.0002 {
                std::thread::sleep(Duration::from_secs_f64(wait - 0.0001));
            }
        }
    }
    for (i, s) in seqs.iter().enumerate() {
        window_end[i].store(*s, Ordering::Relaxed);
    }
    cpu_after.get_or_insert((
        pid.map(CpuSample::read).unwrap_or_default(),
        UdpCounters::read(),
        Instant::now(),
    ));
    hook_stop.store(true, Ordering::Relaxed);
    let during_samples = hook_thread.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    done.store(true, Ordering::Relaxed);
    let log = receiver.join().map_err(|_| "receiver thread panicked")?;

    // Accounting: only sequence numbers sent inside the window.
    let mut trackers: Vec<Vec<Option<SeqTracker>>> = vec![vec![None; streams.len()]; receivers.len()];
    for (i, s) in streams.iter().enumerate() {
        let first = window_first[i].load(Ordering::Relaxed);
        let end = window_end[i].load(Ordering::Relaxed);
        for r in &s.receivers {
            trackers[*r][i] = Some(SeqTracker::new(first, end.saturating_sub(first)));
        }
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut last_arrival: std::collections::HashMap<(u32, u32), u64> = std::collections::HashMap::new();
    let mut max_gap_ns = 0u64;
    for (r, id, seq, lat_ns, at) in &log {
        if let Some(prev) = last_arrival.insert((*r, *id), *at) {
            max_gap_ns = max_gap_ns.max(at.saturating_sub(prev));
        }
        if let Some(Some(t)) = trackers.get_mut(*r as usize).and_then(|v| v.get_mut(*id as usize)) {
            if t.record(*seq) {
                let _ = hist.record((lat_ns / 1000).max(1));
            }
        }
    }
    let (mut expected, mut delivered, mut dup, mut reo) = (0, 0, 0, 0);
    for t in trackers.iter().flatten().flatten() {
        expected += t.expected();
        delivered += t.delivered;
        dup += t.duplicated;
        reo += t.reordered;
    }
    let per_stream = streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut f = StreamFigures {
                id: s.id,
                ssrc: s.ssrc,
                receivers: s.receivers.len(),
                sent: window_end[i]
                    .load(Ordering::Relaxed)
                    .saturating_sub(window_first[i].load(Ordering::Relaxed)),
                expected: 0,
                delivered: 0,
                lost: 0,
                duplicated: 0,
                reordered: 0,
            };
            for t in trackers.iter().filter_map(|r| r[i].as_ref()) {
                f.expected += t.expected();
                f.delivered += t.delivered;
                f.lost += t.lost();
                f.duplicated += t.duplicated;
                f.reordered += t.reordered;
            }
            f
        })
        .collect();
    let (before, after) = (cpu_before.ok_or("the window never started")?, cpu_after.ok_or("no end sample")?);
    let window = after.2.duration_since(before.2).as_secs_f64();
    let relay_ns = after.0.total_ns().saturating_sub(before.0.total_ns());
    let udp = after.1.since(&before.1);
    let input: u64 = (0..streams.len())
        .map(|i| {
            window_end[i].load(Ordering::Relaxed).saturating_sub(window_first[i].load(Ordering::Relaxed))
        })
        .sum();
    let mut threads: Vec<(String, f64)> = before
        .0
        .busy_by_name(&after.0)
        .into_iter()
        .map(|(n, ns)| (n, ns as f64 / (window * 1e9) * 100.0))
        .filter(|(_, pct)| *pct >= 0.05)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(RunResult {
        target: config.target.name().into(),
        profile: config.profile,
        rate: config.rate,
        size: config.size,
        window_secs: window,
        input_pps: input as f64 / window,
        expected_out: expected,
        delivered,
        delivered_pps: delivered as f64 / window,
        lost: expected - delivered,
        loss_pct: if expected == 0 { 0.0 } else { (expected - delivered) as f64 * 100.0 / expected as f64 },
        duplicated: dup,
        reordered: reo,
        late_sends: late.load(Ordering::Relaxed),
        latency_us_p50: hist.value_at_quantile(0.5),
        latency_us_p99: hist.value_at_quantile(0.99),
        latency_us_p999: hist.value_at_quantile(0.999),
        latency_us_max: hist.max(),
        relay_cpu_pct: pid.map(|_| relay_ns as f64 / (window * 1e9) * 100.0),
        relay_ns_per_pkt: pid.filter(|_| delivered > 0).map(|_| relay_ns as f64 / delivered as f64),
        relay_threads: threads,
        udp_in_errors: udp.in_errors,
        udp_rcvbuf_errors: udp.rcvbuf_errors,
        udp_sndbuf_errors: udp.sndbuf_errors,
        max_gap_us: max_gap_ns / 1000,
        during_samples,
        sent_total,
        send_refused,
        streams: per_stream,
    })
}
