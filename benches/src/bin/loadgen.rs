//! `shardcast-loadgen`: drives shardcast or the kernel-floor relay with seeded RTP load and
//! reports delivery, loss, latency and the relay's CPU cost per packet.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shardcast_benches::loadgen::flood::{flood, flood_summary, FloodConfig};
use shardcast_benches::loadgen::report::{median, summary, svg, Series};
use shardcast_benches::loadgen::run::DuringHook;
use shardcast_benches::loadgen::{run, DuringContext, Profile, RunConfig, RunResult, Target};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// One run against one target.
    Run(RunArgs),
    /// Binary search of the maximum rate with loss below a threshold (RFC 2544 style).
    Search {
        #[command(flatten)]
        run: RunArgs,
        #[arg(long, default_value_t = 10_000.0)]
        min: f64,
        #[arg(long, default_value_t = 400_000.0)]
        max: f64,
        #[arg(long, default_value_t = 0.1)]
        loss_threshold: f64,
        #[arg(long, default_value_t = 7)]
        steps: u32,
    },
    /// Moves shardcast's router between cores 0 and 1 back and forth while the load runs:
    /// prints handoff time, the forwarding gap receivers saw, loss and moves per second.
    Handoff {
        #[command(flatten)]
        run: RunArgs,
        /// Pause between moves (ms).
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
    /// API calls per second and their latency while the load runs (create + close a router on
    /// core 0, back to back), plus the cores' command-apply time.
    Api {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Hostile input: legitimate streams at `--legit-rate` while a seeded mix of hostile
    /// datagrams at `--flood-factor` × the legitimate packet rate hits the same ports; reports
    /// delivery per stream, the relay's drops by reason, the kernel's socket drops, the
    /// conservation checks, and whether the relay is still up.
    Flood {
        #[command(flatten)]
        run: RunArgs,
        /// Legitimate rate (p2p: input pps; fanout: output pps); overrides --rate.
        #[arg(long, default_value_t = 20_000.0)]
        legit_rate: f64,
        /// Hostile datagrams per second, as a multiple of the legitimate input rate.
        #[arg(long, default_value_t = 10.0)]
        flood_factor: f64,
        /// NACK storms from the consumers' own addresses (datagrams/s, part of the flood).
        #[arg(long, default_value_t = 10.0)]
        consumer_nack_pps: f64,
        /// The daemon's stderr, redirected to this file: lines written during the run are counted.
        #[arg(long)]
        relay_log: Option<PathBuf>,
        /// Pin the flood thread to this CPU (default: --cpu).
        #[arg(long)]
        flood_cpu: Option<usize>,
        /// After the flood, send this many of each class alone and show where each landed.
        #[arg(long, default_value_t = 200)]
        probe_each: u64,
    },
    /// shardcast vs the floor relay, side by side, on a list of rates: prints the table and
    /// writes an SVG plot.
    Compare {
        #[command(flatten)]
        run: RunArgs,
        /// Comma-separated rates.
        #[arg(long, value_delimiter = ',', default_value = "20000,50000,100000")]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Comma-separated targets, in run order; ratios are to `floor`.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "floor,shardcast")]
        targets: Vec<TargetName>,
        /// Where to write the plot.
        #[arg(long, default_value = "ladder.svg")]
        svg: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProfileName {
    P2p,
    Fanout,
    Conference,
}

fn label(t: TargetName) -> &'static str {
    match t {
        TargetName::Shardcast => "shardcast",
        TargetName::Floor => "floor",
        TargetName::FloorUring => "floor-uring",
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TargetName {
    Shardcast,
    Floor,
    /// The floor relay on io_uring (multishot recvmsg, provided buffers, one sendmsg SQE each).
    FloorUring,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "shardcast")]
    target: TargetName,
    /// shardcast's API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8700")]
    api: String,
    #[arg(long)]
    token: Option<String>,
    /// Path of the floor relay binary (default: next to this one).
    #[arg(long)]
    floor_bin: Option<String>,
    /// CPU for the floor relay.
    #[arg(long)]
    floor_cpu: Option<usize>,
    #[arg(long, value_enum, default_value = "p2p")]
    profile: ProfileName,
    #[arg(long, default_value_t = 1)]
    streams: usize,
    #[arg(long, default_value_t = 10)]
    consumers: usize,
    /// Conference size (for `search --profile conference`: the upper bound).
    #[arg(long, default_value_t = 10)]
    participants: usize,
    /// p2p: input pps; fanout: output pps.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// RTP payload bytes.
    #[arg(long, default_value_t = 1000)]
    size: usize,
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pin the generator to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Also write the JSON result here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl RunArgs {
    fn config(&self, target: TargetName, rate: f64) -> RunConfig {
        let floor_bin = self.floor_bin.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("shardcast-floor").to_string_lossy().into_owned()))
                .unwrap_or_else(|| "shardcast-floor".into())
        });
        let target = match target {
            TargetName::Shardcast => Target::Shardcast { api: self.api.clone(), token: self.token.clone() },
            TargetName::Floor => Target::Floor { bin: floor_bin, cpu: self.floor_cpu, uring: false },
            TargetName::FloorUring => Target::Floor { bin: floor_bin, cpu: self.floor_cpu, uring: true },
        };
        let profile = match self.profile {
            ProfileName::P2p => Profile::P2p { streams: self.streams },
            ProfileName::Fanout => Profile::Fanout { streams: self.streams, consumers: self.consumers },
            ProfileName::Conference => Profile::Conference { participants: self.participants },
        };
        let total = self.duration_secs + self.warmup_secs;
        RunConfig {
            target,
            profile,
            rate,
            size: self.size,
            warmup: Duration::from_secs_f64(self.warmup_secs),
            duration: Duration::from_secs_f64(self.duration_secs),
            seed: self.seed,
            cpu: self.cpu,
            progress: total > 3.0 && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            during: None,
        }
    }
}

fn emit(r: &RunResult, json: &Option<PathBuf>) {
    eprintln!("{}", summary(r));
    let line = serde_json::to_string(r).unwrap_or_default();
    println!("RESULT {line}");
    if let Some(p) = json {
        if let Err(e) = std::fs::write(p, format!("{line}\n")) {
            eprintln!("cannot write {}: {e}", p.display());
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(a) => match run(&a.config(a.target, a.rate)) {
            Ok(r) => emit(&r, &a.json),
            Err(e) => {
                eprintln!("shardcast-loadgen: {e}");
                return std::process::ExitCode::from(1);
            }
        },
        Cmd::Search { run: a, min, max, loss_threshold, steps } => {
            // Conference: search the number of participants (consumers = P × (P − 1) × 2 streams);
            // otherwise the rate.
            let conference = matches!(a.profile, ProfileName::Conference);
            let (mut lo, mut hi) = if conference { (2.0, a.participants.max(3) as f64) } else { (min, max) };
            let mut best: Option<RunResult> = None;
            for _ in 0..steps {
                let rate = if conference { ((lo + hi) / 2.0).round() } else { (lo + hi) / 2.0 };
                if conference && (rate <= lo || rate >= hi) {
                    break;
                }
                let mut config = a.config(a.target, rate);
                if conference {
                    config.profile = Profile::Conference { participants: rate as usize };
                }
                match run(&config) {
                    Ok(r) => {
                        eprintln!("{}", summary(&r));
                        if r.loss_pct < loss_threshold {
                            lo = rate;
                            best = Some(r);
                        } else {
                            hi = rate;
                        }
                    }
                    Err(e) => {
                        eprintln!("shardcast-loadgen: {e}");
                        return std::process::ExitCode::from(1);
                    }
                }
            }
            match best {
                Some(r) => {
                    if let Profile::Conference { participants } = r.profile {
                        println!(
                            "max conference with loss < {loss_threshold}%: {participants} participants = {} consumers (audio + video), {:.0} output pps",
                            participants * (participants - 1) * 2,
                            r.delivered_pps
                        );
                    } else {
                        println!("max rate with loss < {loss_threshold}%: {:.0}", r.rate);
                    }
                    emit(&r, &a.json);
                }
                None => eprintln!("no rate in [{min}, {max}] had loss < {loss_threshold}%"),
            }
        }
        Cmd::Handoff { run: a, interval_ms } => {
            let mut config = a.config(TargetName::Shardcast, a.rate);
            let (api, token) = (a.api.clone(), a.token.clone());
            config.during = Some(DuringHook(Arc::new(move |cx: DuringContext| {
                let (router, stop) = (cx.router, cx.stop);
                let mut samples = Vec::new();
                let Some(router) = router else { return samples };
                let Ok(client) =
                    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build()
                else {
                    return samples;
                };
                let mut core = 1;
                while !stop.load(Ordering::Relaxed) {
                    let mut req = client
                        .post(format!("{api}/routers/{router}/move"))
                        .json(&serde_json::json!({"core": core}));
                    if let Some(t) = &token {
                        req = req.header("Authorization", format!("Bearer {t}"));
                    }
                    match req.send().ok().and_then(|r| r.json::<serde_json::Value>().ok()) {
                        Some(v) if v["move_us"].is_u64() => samples.push(v["move_us"].as_u64().unwrap_or(0)),
                        other => {
                            eprintln!("move failed: {other:?}");
                            break;
                        }
                    }
                    core = 1 - core;
                    if interval_ms > 0 {
                        std::thread::sleep(Duration::from_millis(interval_ms));
                    }
                }
                samples
            })));
            match run(&config) {
                Ok(r) => {
                    let mut moves: Vec<f64> = r.during_samples.iter().map(|v| *v as f64).collect();
                    let n = moves.len();
                    moves.sort_by(|a, b| a.total_cmp(b));
                    let q = |f: f64| {
                        moves.get(((n as f64 * f) as usize).min(n.saturating_sub(1))).copied().unwrap_or(0.0)
                    };
                    eprintln!("{}", summary(&r));
                    println!(
                        "handoff: {n} moves in {:.1} s ({:.0}/s); move call p50/p99/max {:.0}/{:.0}/{:.0} µs; receivers' max gap {} µs; latency p99/max {}/{} µs; lost {} of {}, dup {}",
                        r.window_secs,
                        n as f64 / r.window_secs,
                        q(0.5),
                        q(0.99),
                        moves.last().copied().unwrap_or(0.0),
                        r.max_gap_us,
                        r.latency_us_p99,
                        r.latency_us_max,
                        r.lost,
                        r.expected_out,
                        r.duplicated
                    );
                    emit(&r, &a.json);
                }
                Err(e) => {
                    eprintln!("shardcast-loadgen: {e}");
                    return std::process::ExitCode::from(1);
                }
            }
        }
        Cmd::Api { run: a } => {
            let mut config = a.config(TargetName::Shardcast, a.rate);
            let (api, token) = (a.api.clone(), a.token.clone());
            config.during = Some(DuringHook(Arc::new(move |cx: DuringContext| {
                let stop = cx.stop;
                let mut samples = Vec::new();
                let Ok(client) =
                    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build()
                else {
                    return samples;
                };
                let auth = |r: reqwest::blocking::RequestBuilder| match &token {
                    Some(t) => r.header("Authorization", format!("Bearer {t}")),
                    None => r,
                };
                while !stop.load(Ordering::Relaxed) {
                    let t0 = std::time::Instant::now();
                    let created =
                        auth(client.post(format!("{api}/routers")).json(&serde_json::json!({"core": 0})))
                            .send()
                            .ok()
                            .and_then(|r| r.json::<serde_json::Value>().ok());
                    samples.push(t0.elapsed().as_micros() as u64);
                    let Some(id) = created.and_then(|v| v["id"].as_u64()) else { break };
                    let t1 = std::time::Instant::now();
                    if auth(client.delete(format!("{api}/routers/{id}"))).send().is_err() {
                        break;
                    }
                    samples.push(t1.elapsed().as_micros() as u64);
                }
                samples
            })));
            match run(&config) {
                Ok(r) => {
                    let mut v = r.during_samples.clone();
                    v.sort_unstable();
                    let n = v.len();
                    let q = |f: f64| {
                        v.get(((n as f64 * f) as usize).min(n.saturating_sub(1))).copied().unwrap_or(0)
                    };
                    eprintln!("{}", summary(&r));
                    let stats: serde_json::Value = reqwest::blocking::get(format!("{}/stats", a.api))
                        .ok()
                        .and_then(|r| r.json().ok())
                        .unwrap_or_default();
                    let core0 = &stats["cores"][0];
                    println!(
                        "api: {n} calls in {:.1} s ({:.0}/s) under {:.0} delivered pps; call latency p50/p99/max {}/{}/{} µs; core 0 apply max {} µs",
                        r.window_secs,
                        n as f64 / r.window_secs,
                        r.delivered_pps,
                        q(0.5),
                        q(0.99),
                        v.last().copied().unwrap_or(0),
                        core0["apply_ns_max"].as_u64().unwrap_or(0) / 1000,
                    );
                    emit(&r, &a.json);
                }
                Err(e) => {
                    eprintln!("shardcast-loadgen: {e}");
                    return std::process::ExitCode::from(1);
                }
            }
        }
        Cmd::Flood {
            run: a,
            legit_rate,
            flood_factor,
            consumer_nack_pps,
            relay_log,
            flood_cpu,
            probe_each,
        } => {
            let config = FloodConfig {
                legit: a.config(TargetName::Shardcast, legit_rate),
                flood_factor,
                consumer_nack_pps,
                relay_log,
                flood_cpu: flood_cpu.or(a.cpu),
                probe_each,
            };
            match flood(&config) {
                Ok(r) => {
                    println!("{}", flood_summary(&r));
                    let line = serde_json::to_string(&r).unwrap_or_default();
                    if let Some(p) = &a.json {
                        if let Err(e) = std::fs::write(p, format!("{line}\n")) {
                            eprintln!("cannot write {}: {e}", p.display());
                        }
                    }
                    if !(r.relay_alive && r.conservation.holds) {
                        return std::process::ExitCode::from(2);
                    }
                }
                Err(e) => {
                    eprintln!("shardcast-loadgen: {e}");
                    return std::process::ExitCode::from(1);
                }
            }
        }
        Cmd::Compare { run: a, rates, reps, targets, svg: path } => {
            let mut rows = Vec::new();
            let mut series: Vec<Series> = Vec::new();
            for target in targets {
                let mut points = Vec::new();
                for &rate in &rates {
                    let mut results = Vec::new();
                    for _ in 0..reps.max(1) {
                        match run(&a.config(target, rate)) {
                            Ok(r) => {
                                eprintln!("{}", summary(&r));
                                results.push(r);
                            }
                            Err(e) => eprintln!("shardcast-loadgen: {e}"),
                        }
                    }
                    if results.is_empty() {
                        continue;
                    }
                    let mut ns: Vec<f64> = results.iter().filter_map(|r| r.relay_ns_per_pkt).collect();
                    let mut loss: Vec<f64> = results.iter().map(|r| r.loss_pct).collect();
                    let mut p99: Vec<f64> = results.iter().map(|r| r.latency_us_p99 as f64).collect();
                    let (ns_min, ns_max) =
                        ns.iter().fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
                    let ns_med = if ns.is_empty() { f64::NAN } else { median(&mut ns) };
                    let loss_med = median(&mut loss);
                    points.push((rate, ns_med, loss_med));
                    rows.push((
                        label(target).to_string(),
                        rate,
                        ns_med,
                        ns_min,
                        ns_max,
                        loss_med,
                        median(&mut p99),
                    ));
                }
                series.push((label(target).to_string(), points));
            }
            println!("| target | rate | relay ns/pkt (median [min..max]) | × floor | loss % | p99 µs |");
            println!("|---|---:|---:|---:|---:|---:|");
            for (t, rate, ns, lo, hi, loss, p99) in &rows {
                let floor = rows.iter().find(|r| r.0 == "floor" && r.1 == *rate).map(|r| r.2);
                let ratio = floor.map_or("-".to_string(), |f| format!("{:.2}", ns / f));
                println!("| {t} | {rate:.0} | {ns:.0} [{lo:.0}..{hi:.0}] | {ratio} | {loss:.3} | {p99:.0} |");
            }
            let title = format!("{:?}: relay CPU per delivered packet and loss vs offered rate", a.profile);
            if let Err(e) = std::fs::write(&path, svg(&title, &series)) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
