//! The shardcast daemon.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use shardcast::http::HttpServer;
use shardcast::{Config, Shardcast};
use tracing::{error, info, warn};

/// shardcast: an SFU media data plane that uses every core.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (default: the embedded one, see --print-config).
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("shardcast: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(a) = cli.api_listen {
        config.api.listen = a;
    }
    if let Some(m) = cli.media_listen {
        config.media.listen = m;
    }
    if let Some(n) = cli.cores {
        config.cores.data_plane = (0..n.max(1)).collect();
        config.cores.pin = false;
    }
    if let Some(t) = cli.token {
        config.api.token = Some(t);
    }
    if let Some(l) = cli.log_level {
        config.log_level = l;
    }
    if let Err(e) = config.validate() {
        eprintln!("shardcast: {e}");
        return std::process::ExitCode::from(2);
    }
    if cli.print_config {
        let mut shown = config.clone();
        if shown.api.token.is_some() {
            shown.api.token = Some("<redacted>".into());
        }
        match toml::to_string(&shown) {
            Ok(t) => print!("{t}"),
            Err(e) => eprintln!("shardcast: {e}"),
        }
        return std::process::ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    // glommio registers io_uring memory: it needs RLIMIT_MEMLOCK >= 512 KiB.
    const MEMLOCK_NEEDED: u64 = 512 << 10;
    match shardcast_dataplane::io::raise_memlock(8 << 20) {
        Ok(limit) if limit >= MEMLOCK_NEEDED => {}
        _ => {
            let (cur, _) = shardcast_dataplane::io::memlock_limit().unwrap_or((0, 0));
            if cur < MEMLOCK_NEEDED {
                error!("RLIMIT_MEMLOCK is {cur} bytes; glommio needs at least {MEMLOCK_NEEDED}: run `ulimit -l 8192` (or as root)");
                return std::process::ExitCode::from(1);
            }
        }
    }

    // API connections and media sockets share one descriptor table: raise it, keep a reserve
    // for media, and refuse an open API (non-loopback without a token) unless asked for.
    match shardcast_dataplane::io::raise_nofile() {
        Ok((before, after)) => {
            info!("RLIMIT_NOFILE {after} (was {before})");
            let api = &mut config.api;
            let (cap, why) =
                shardcast::http::connection_cap(api.max_connections, api.media_fd_reserve, after);
            api.max_connections = cap;
            if let Some(why) = why {
                warn!("{why}");
            }
        }
        Err(e) => warn!(
            "cannot raise RLIMIT_NOFILE ({e}): API connections and media sockets share the current limit"
        ),
    }
    if !config.api.listen.ip().is_loopback() && config.api.token.is_none() {
        if !cli.insecure {
            error!("the API would listen on {} without a token: set --token (or api.token), listen on loopback, or pass --insecure", config.api.listen);
            return std::process::ExitCode::from(2);
        }
        warn!(
            "the API listens on {} without a token (--insecure): anyone who reaches it controls the daemon",
            config.api.listen
        );
    }

    info!(cores = ?config.data_plane_cpus(), media = %config.media.listen, api = %config.api.listen, "starting");
    let sc = match Shardcast::start(config.clone()) {
        Ok(sc) => sc,
        Err(e) => {
            error!("cannot start: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let server = match HttpServer::start(sc.clone(), config.api.listen) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot serve the API on {}: {e}", config.api.listen);
            let _ = sc.shutdown(Duration::from_secs(2));
            return std::process::ExitCode::from(1);
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

    let signals = signals();
    let _ = signals.recv();
    info!("shutting down (a second SIGTERM or SIGINT exits at once)");
    server.stop(Duration::from_secs(2));
    match sc.shutdown(Duration::from_secs(3)) {
        Ok(()) => {
            info!("stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            warn!("{e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Watches SIGTERM and SIGINT on a thread of its own: the first is sent on the returned channel
/// (the orderly shutdown), a second one exits the process at once (a shutdown stuck behind a
/// stalled core must not need SIGKILL). The handlers stay installed throughout, so no signal
/// falls between two registrations.
fn signals() -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let watch = move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            let _ = tx.send(());
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                let _ = tx.send(());
                return;
            };
            for seen in 0.. {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                if seen > 0 {
                    error!("second signal during shutdown: exiting now");
                    std::process::exit(130);
                }
                let _ = tx.send(());
            }
        });
    };
    if std::thread::Builder::new().name("shardcast-signals".into()).spawn(watch).is_err() {
        error!("cannot start the signal thread");
    }
    rx
}
