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
        match toml::to_string(&config) {
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

    wait_for_signal();
    info!("shutting down");
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

/// Blocks until SIGTERM or SIGINT.
fn wait_for_signal() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
}
