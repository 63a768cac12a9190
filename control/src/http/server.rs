//! The HTTP server's thread: a current-thread tokio runtime serving the API until stopped.
//!
//! Hostile clients are bounded by hyper's and tower's settings, not by hand-written timers:
//! hyper's `header_read_timeout` closes a connection whose request head does not arrive within
//! `api.header_timeout_ms` of the connection waiting for it (accepted, or its previous response
//! sent: slowloris and idle keep-alive connections alike); tower-http's `TimeoutLayer` answers
//! 408 to a request (body and call) not done within `api.request_timeout_ms`; a semaphore of
//! `api.max_connections` permits is taken before each `accept`, so past the cap connections wait
//! in the kernel's accept queue and take no descriptor of ours.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tracing::warn;

use crate::api::Shardcast;

/// Connections the kernel queues for us while every permit is taken.
const ACCEPT_BACKLOG: u32 = 1024;

/// The API connection cap under RLIMIT_NOFILE `nofile`: `max_connections`, lowered so that
/// `media_fd_reserve` descriptors stay free for media sockets; when the reserve does not fit at
/// all (it leaves fewer than 64), API connections get at most a quarter of the table. Returns the cap and, when it had to
/// lower it, what to log.
pub fn connection_cap(
    max_connections: usize,
    media_fd_reserve: usize,
    nofile: u64,
) -> (usize, Option<String>) {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    let budget = nofile.saturating_sub(media_fd_reserve);
    if budget >= max_connections {
        return (max_connections, None);
    }
    let quarter = (nofile / 4).max(1);
    // The reserve fits when it leaves a useful number of connections.
    let fits = budget >= quarter.min(64);
    let why = if fits {
        format!(
            "API connections capped at {budget} (api.max_connections {max_connections}): RLIMIT_NOFILE {nofile} keeps \
             api.media_fd_reserve {media_fd_reserve} descriptors for media sockets"
        )
    } else {
        format!(
            "RLIMIT_NOFILE {nofile} cannot hold api.media_fd_reserve {media_fd_reserve}: API connections capped at \
             {}, media sockets get the other {} descriptors (raise LimitNOFILE= / ulimit -n)",
            quarter.min(max_connections),
            nofile - quarter.min(max_connections)
        )
    };
    let cap = if fits { budget } else { quarter.min(max_connections) };
    (cap, Some(why))
}

/// A running HTTP server on its own thread.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (port 0: any) and serves the API until `stop`, with the limits of
    /// `sc.config().api`.
    pub fn start(sc: Shardcast, addr: SocketAddr) -> std::io::Result<HttpServer> {
        let api = sc.config().api.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = {
            // The listener registers with this runtime's reactor.
            let _entered = runtime.enter();
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(ACCEPT_BACKLOG)?
        };
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new().name("shardcast-http".into()).spawn(move || {
            runtime.block_on(async move {
                let app = super::router(sc);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_millis(api.header_timeout_ms));
                let permits = Arc::new(Semaphore::new(api.max_connections));
                let mut stop_accepting = stopped.clone();
                loop {
                    let permit = tokio::select! {
                        p = permits.clone().acquire_owned() => p,
                        _ = stop_accepting.changed() => break,
                    };
                    let Ok(permit) = permit else { break };
                    let stream = tokio::select! {
                        s = listener.accept() => s,
                        _ = stop_accepting.changed() => break,
                    };
                    let stream = match stream {
                        Ok((s, _)) => s,
                        Err(e) => {
                            // EMFILE/ENFILE or a connection reset before accept: wait a little
                            // rather than spin on a full descriptor table.
                            warn!("accepting an API connection: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let connection =
                        http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                    let mut stopping = stopped.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        tokio::pin!(connection);
                        tokio::select! {
                            _ = connection.as_mut() => {}
                            _ = stopping.changed() => {
                                // Finish the request in flight, close idle connections now.
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                            }
                        }
                    });
                }
                // Connections finish their request (the thread's owner waits with a deadline).
                let _ = permits.acquire_many(api.max_connections as u32).await;
            });
        })?;
        Ok(HttpServer { addr, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections; waits at most `deadline` for in-flight requests.
    pub fn stop(mut self, deadline: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let until = std::time::Instant::now() + deadline;
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_the_media_reserve() {
        assert_eq!(connection_cap(4096, 16_384, 1 << 20), (4096, None));
        let (cap, why) = connection_cap(4096, 16_384, 20_000);
        assert_eq!(cap, 20_000 - 16_384);
        assert!(why.unwrap().contains("api.media_fd_reserve 16384"));
        // A reserve that does not fit: a quarter of the table, and a log line that says so.
        let (cap, why) = connection_cap(4096, 16_384, 2048);
        assert_eq!(cap, 512);
        assert!(why.unwrap().contains("media sockets get the other 1536"));
        assert_eq!(connection_cap(8, 16_384, 2048).0, 8);
    }
}
