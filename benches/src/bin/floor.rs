//! `shardcast-floor`: the kernel-floor relay. No parsing, no state: recvmmsg(64) per readable
//! ingress socket, then one sendmmsg per batch and destination set, iovecs pointing into the
//! receive buffers. It uses the same batched-syscall code as shardcast (`dataplane::io`), so the
//! ratio between the two is the price of shardcast's work, not of a different syscall path.
//! `--io uring` runs the same relay on io_uring (`dataplane::io::UringRelay`), so the two syscall
//! paths can be measured side by side (`benches/compare.sh io`).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use shardcast_dataplane::io::{
    pin_current_thread, poll_readable, stop_on_signals, RecvBatch, SendBatch, UringCounts, UringRelay,
};
use shardcast_dataplane::socket::{bind_udp, SocketOptions};

/// A minimal recvmmsg/sendmmsg relay, configured with routes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Pin the relay to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Datagrams per recvmmsg.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// BIND=DEST[,DEST...]: datagrams arriving on BIND go to every DEST (repeatable).
    #[arg(long = "route", required = true)]
    routes: Vec<String>,
    /// Stop after this many seconds (default: on SIGTERM/SIGINT only).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// The syscall path: `mmsg` (poll + recvmmsg + sendmmsg, as shardcast) or `uring`
    /// (multishot recvmsg on provided buffers, one sendmsg SQE per output).
    #[arg(long, value_enum, default_value = "mmsg")]
    io: IoPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IoPath {
    Mmsg,
    Uring,
}

fn parse_route(s: &str) -> Result<(SocketAddr, Vec<SocketAddr>), String> {
    let (bind, dests) =
        s.split_once('=').ok_or_else(|| format!("route `{s}`: expected BIND=DEST[,DEST...]"))?;
    let bind = bind.parse().map_err(|e| format!("route `{s}`: {e}"))?;
    let dests = dests
        .split(',')
        .map(|d| d.parse().map_err(|e| format!("route `{s}`: {e}")))
        .collect::<Result<_, _>>()?;
    Ok((bind, dests))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let routes: Vec<(SocketAddr, Vec<SocketAddr>)> = match cli.routes.iter().map(|r| parse_route(r)).collect()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shardcast-floor: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(cpu) = cli.cpu {
        if let Err(e) = pin_current_thread(cpu) {
            eprintln!("shardcast-floor: cannot pin to cpu {cpu}: {e}");
        }
    }
    let opts = SocketOptions { reuse_port: false, recv_buffer: 8 << 20, send_buffer: 8 << 20 };
    let mut sockets: Vec<UdpSocket> = Vec::new();
    for (bind, _) in &routes {
        match bind_udp(*bind, &opts) {
            Ok((s, _)) => sockets.push(s),
            Err(e) => {
                eprintln!("shardcast-floor: bind {bind}: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    }
    let ingress: Vec<String> =
        sockets.iter().map(|s| s.local_addr().map(|a| a.to_string()).unwrap_or_default()).collect();
    println!("{}", serde_json::json!({"pid": std::process::id(), "ingress": ingress}));
    let _ = std::io::stdout().flush();

    let stop = stop_on_signals();
    let until = cli.duration_secs.map(|s| Instant::now() + Duration::from_secs(s));
    if cli.io == IoPath::Uring {
        let fds: Vec<_> = sockets.iter().map(|s| s.as_raw_fd()).collect();
        let dests: Vec<Vec<SocketAddr>> = routes.iter().map(|(_, d)| d.clone()).collect();
        let mut relay = match UringRelay::new(&fds, &dests, 4096, 2048, 8192) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("shardcast-floor: io_uring: {e}");
                return std::process::ExitCode::from(1);
            }
        };
        let mut total = UringCounts::default();
        while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
            match relay.poll(Duration::from_millis(100)) {
                Ok(c) => {
                    total.received += c.received;
                    total.sent += c.sent;
                    total.errors += c.errors;
                }
                Err(e) => {
                    eprintln!("shardcast-floor: io_uring: {e}");
                    return std::process::ExitCode::from(1);
                }
            }
        }
        return report(total.received, total.sent, total.errors);
    }
    let fds: Vec<_> = sockets.iter().map(|s| s.as_raw_fd()).collect();
    let mut ready = vec![false; fds.len()];
    let mut recv = RecvBatch::new(cli.batch, 2048);
    let mut send = SendBatch::new(1024);
    let (mut received, mut sent, mut errors) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        if poll_readable(&fds, &mut ready, Duration::from_millis(100)).unwrap_or(0) == 0 {
            continue;
        }
        for (i, fd) in fds.iter().enumerate().filter(|(i, _)| ready[*i]) {
            loop {
                let n = recv.recv(*fd).unwrap_or(0);
                if n == 0 {
                    break;
                }
                received += n as u64;
                let mut scope = send.scope();
                for k in 0..n {
                    let (data, _) = recv.get(k);
                    for dest in &routes[i].1 {
                        if !scope.push(*dest, &[], data) {
                            let r = scope.flush(*fd);
                            sent += r.sent as u64;
                            errors += (r.failed + r.would_block) as u64;
                            scope.push(*dest, &[], data);
                        }
                    }
                }
                let r = scope.flush(*fd);
                sent += r.sent as u64;
                errors += (r.failed + r.would_block) as u64;
            }
        }
    }
    report(received, sent, errors)
}

/// The exit line the load generator reads.
fn report(received: u64, sent: u64, errors: u64) -> std::process::ExitCode {
    // The reader may be gone (the load generator closed the pipe): never panic on exit.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::json!({"received": received, "sent": sent, "send_errors": errors})
    );
    std::process::ExitCode::SUCCESS
}
