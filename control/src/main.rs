//! The shardcast daemon, and `shardcast tune`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shardcast::config::Config;
use shardcast::http::HttpServer;
use shardcast::logging::Logging;
use shardcast::pinning::Severity;
use shardcast::tune::{self, host::HostFacts};
use shardcast::{sdnotify, Shardcast};
use tracing::{error, info, warn};

/// shardcast: an SFU media data plane that uses every core.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect this host: what helps or hurts the data plane, with the fix for each.
    Tune(TuneArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML config file (default: the embedded one, see --print-config). SIGHUP re-reads it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP API address (overrides api.listen).
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// Shared media port address (overrides media.listen).
    #[arg(long)]
    media_listen: Option<SocketAddr>,
    /// Number of data-plane cores, unpinned (overrides cores.data_plane).
    #[arg(long)]
    cores: Option<usize>,
    /// Bearer token required on every API call.
    #[arg(long)]
    token: Option<String>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long)]
    log_level: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Serve the API on a non-loopback address without a token (refused otherwise).
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Args)]
struct TuneArgs {
    /// Check this config against the host (default: the embedded one). Exit status 1 when it
    /// has errors.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Machine-readable output: the facts, the checks, the config's findings and pinning.
    #[arg(long)]
    json: bool,
    /// Apply the safe sysctl fixes (socket-buffer maxima, backlog). A dry run unless --commit.
    #[arg(long)]
    apply: bool,
    /// With --apply: write the sysctls (needs root), and list what changed.
    #[arg(long, requires = "apply")]
    commit: bool,
    /// Print a pinning config proposed for this host.
    #[arg(long)]
    propose: bool,
    /// The network interface media arrives on (overrides media.nic).
    #[arg(long)]
    nic: Option<String>,
    /// Read /proc and /sys under this directory instead of / (fixtures of other machines).
    #[arg(long, hide = true, default_value = "/")]
    root: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Tune(args)) => run_tune(&args),
        None => run_daemon(&cli.run),
    }
}

/// The config file (or the embedded default) with the command line's overrides.
fn effective_config(args: &RunArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(a) = args.api_listen {
        config.api.listen = a;
    }
    if let Some(m) = args.media_listen {
        config.media.listen = m;
    }
    if let Some(n) = args.cores {
        config.cores.data_plane = (0..n.max(1)).collect();
        config.cores.pin = false;
    }
    if let Some(t) = &args.token {
        config.api.token = Some(t.clone());
    }
    if let Some(l) = &args.log_level {
        config.log_level.clone_from(l);
    }
    Ok(config)
}

fn run_daemon(args: &RunArgs) -> ExitCode {
    // Read before anything is pinned: the allowed CPU set is the process's.
    let host = HostFacts::current();
    let config = match effective_config(args).and_then(|c| c.validate_on(&host).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("shardcast: {line}");
            }
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        let mut shown = config.clone();
        if shown.api.token.is_some() {
            shown.api.token = Some("<redacted>".into());
        }
        match toml::to_string(&shown) {
            Ok(t) => print!("{t}"),
            Err(e) => eprintln!("shardcast: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    let logging = match Logging::init(&config.log_level, config.log_format) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shardcast: {e}");
            return ExitCode::from(2);
        }
    };
    for f in config.check(&host).into_iter().filter(|f| f.severity == Severity::Warning) {
        warn!(field = %f.field, fix = %f.fix, "{}", f.problem);
    }

    // glommio registers io_uring memory: it needs RLIMIT_MEMLOCK >= 512 KiB.
    match shardcast_dataplane::io::raise_memlock(8 << 20) {
        Ok(limit) if limit >= tune::MEMLOCK_NEEDED => {}
        _ => {
            let (cur, _) = shardcast_dataplane::io::memlock_limit().unwrap_or((0, 0));
            if cur < tune::MEMLOCK_NEEDED {
                error!(
                    "RLIMIT_MEMLOCK is {cur} bytes; glommio needs at least {}: run `ulimit -l 8192`, or \
                     LimitMEMLOCK=8M in the systemd unit",
                    tune::MEMLOCK_NEEDED
                );
                return ExitCode::from(1);
            }
        }
    }

    // API connections and media sockets share one descriptor table: raise it, keep a reserve
    // for media, and refuse an open API (non-loopback without a token) unless asked for.
    // The running config keeps the configured value (a SIGHUP reload compares against it).
    let mut connection_cap = config.api.max_connections;
    match shardcast_dataplane::io::raise_nofile() {
        Ok((before, after)) => {
            info!("RLIMIT_NOFILE {after} (was {before})");
            let api = &config.api;
            let (cap, why) =
                shardcast::http::connection_cap(api.max_connections, api.media_fd_reserve, after);
            connection_cap = cap;
            if let Some(why) = why {
                warn!("{why}");
            }
        }
        Err(e) => warn!(
            "cannot raise RLIMIT_NOFILE ({e}): API connections and media sockets share the current limit"
        ),
    }
    if !config.api.listen.ip().is_loopback() && config.api.token.is_none() {
        if !args.insecure {
            error!("the API would listen on {} without a token: set --token (or api.token), listen on loopback, or pass --insecure", config.api.listen);
            return ExitCode::from(2);
        }
        warn!(
            "the API listens on {} without a token (--insecure): anyone who reaches it controls the daemon",
            config.api.listen
        );
    }

    let pinning = config.pinning(&host);
    info!(cores = ?pinning.data_plane, control = ?pinning.control, api = ?pinning.api,
          media = %config.media.listen, api_listen = %config.api.listen, "starting");
    let mut started = config.clone();
    started.api.max_connections = connection_cap;
    let sc = match Shardcast::start(started) {
        Ok(sc) => sc,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    // The HTTP thread and its blocking pool inherit this thread's affinity.
    if let Some(cpu) = pinning.api {
        if let Err(e) = shardcast_dataplane::io::pin_current_thread(cpu) {
            warn!("cannot pin the API thread to cpu {cpu}: {e}");
        }
    }
    let server = match HttpServer::start(sc.clone(), config.api.listen) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot serve the API on {}: {e}", config.api.listen);
            let _ = sc.shutdown(Duration::from_secs(2));
            return ExitCode::from(1);
        }
    };
    // Handlers first, then the ready line: a supervisor (or a test) may signal as soon as it reads it.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install the signal handlers: {e}");
            server.stop(Duration::from_secs(2));
            let _ = sc.shutdown(Duration::from_secs(2));
            return ExitCode::from(1);
        }
    };
    let ready = serde_json::json!({
        "api": server.addr().to_string(),
        "media": sc.shared_addr().to_string(),
        "pid": std::process::id(),
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{ready}");
    let _ = out.flush();
    drop(out);
    info!(api = %server.addr(), media = %sc.shared_addr(), "ready");
    let status =
        format!("READY=1\nSTATUS=serving the API on {}, media on {}", server.addr(), sc.shared_addr());
    if let Err(e) = sdnotify::notify(&status) {
        warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
    }

    let mut running = config;
    signals.wait(|| reload(args, &host, &mut running, &logging, &sc));
    info!("shutting down (a second SIGTERM or SIGINT exits at once)");
    let _ = sdnotify::notify("STOPPING=1");
    server.stop(Duration::from_secs(2));
    match sc.shutdown(Duration::from_secs(3)) {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            warn!("{e}");
            ExitCode::from(1)
        }
    }
}

/// SIGHUP: re-reads the config; applies `log_level` and `[rebalancer]` when they are the only
/// changes, and refuses (keeping the running config) when a field that needs a restart changed.
fn reload(args: &RunArgs, host: &HostFacts, running: &mut Config, logging: &Logging, sc: &Shardcast) {
    let new = match effective_config(args).and_then(|c| c.validate_on(host).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            error!("reload refused, the running config is kept: {}", e.replace('\n', "; "));
            return;
        }
    };
    let changed = match running.reload_to(&new) {
        Ok(c) => c,
        Err(e) => {
            error!("reload refused: {e}");
            let _ = sdnotify::notify("READY=1\nSTATUS=reload refused (see the log)");
            return;
        }
    };
    if changed.contains(&"log_level") {
        if let Err(e) = logging.set_level(&new.log_level) {
            error!("reload: {e}");
            return;
        }
    }
    if changed.contains(&"rebalancer") {
        if let Err(e) = sc.set_rebalancer(new.rebalancer.clone()) {
            error!("reload: rebalancer: {e}");
            return;
        }
    }
    *running = new;
    info!(changed = ?changed, "config reloaded");
    let _ = sdnotify::notify("READY=1\nSTATUS=config reloaded");
}

fn run_tune(args: &TuneArgs) -> ExitCode {
    let live = args.root == Path::new("/");
    let host = if live { HostFacts::current() } else { HostFacts::read(&args.root) };
    let mut config = match &args.config {
        Some(path) => {
            match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| Config::parse(&t)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("shardcast tune: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        None => Config::default(),
    };
    if let Some(nic) = &args.nic {
        config.media.nic = Some(nic.clone());
    }
    if args.propose {
        print!("{}", tune::propose(&host, config.media.nic.as_deref()));
        return ExitCode::SUCCESS;
    }
    let report = tune::report(&host, &config);
    let changes = if args.apply { tune::apply(&args.root, &host, &config, args.commit) } else { Vec::new() };
    if args.json {
        let out = serde_json::json!({
            "checks": report.checks,
            "findings": report.findings,
            "pinning": report.pinning,
            "host": report.host,
            "apply": args.apply.then_some(serde_json::json!({ "commit": args.commit, "changes": changes })),
        });
        println!("{out:#}");
    } else {
        print!("{}", tune::render(&report));
        if args.apply {
            println!();
            if changes.is_empty() {
                println!("--apply: nothing to change");
            }
            for c in &changes {
                let verb = match (&c.error, c.applied) {
                    (Some(e), _) => format!("FAILED ({e})"),
                    (None, true) => "set".to_string(),
                    (None, false) => "would set (dry run; --commit writes)".to_string(),
                };
                println!("{verb}: {} {} -> {}", c.name, c.from, c.to);
            }
        }
    }
    let errors = report.findings.iter().any(|f| f.severity == Severity::Error);
    let failed = changes.iter().any(|c| c.error.is_some());
    if (errors && args.config.is_some()) || failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment `install` returns (before the ready line).
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let _guard = rt.enter();
        let term = signal(SignalKind::terminate())?;
        let int = signal(SignalKind::interrupt())?;
        let hup = signal(SignalKind::hangup())?;
        drop(_guard);
        Ok(Signals { rt, term, int, hup })
    }

    /// Blocks until SIGTERM or SIGINT, calling `on_hup` at each SIGHUP. Then a thread keeps
    /// watching: a second SIGTERM or SIGINT during the shutdown exits the process at once (a
    /// shutdown stuck behind a stalled core must not need SIGKILL); the handlers stay installed
    /// throughout, so no signal falls between two registrations.
    fn wait(self, mut on_hup: impl FnMut()) {
        let Signals { rt, mut term, mut int, mut hup } = self;
        rt.block_on(async {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => on_hup(),
                }
            }
        });
        let second = move || {
            rt.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            error!("second signal during shutdown: exiting now");
            std::process::exit(130);
        };
        if std::thread::Builder::new().name("shardcast-signals".into()).spawn(second).is_err() {
            error!("cannot watch for a second signal during shutdown");
        }
    }
}
