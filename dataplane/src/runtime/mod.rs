//! The data plane's cores: one glommio `LocalExecutor` per data-plane CPU, pinned, whose one task
//! is the core's run loop over the sockets and routers (`Shard`) it owns.
//!
//! [`DataPlane::start`] binds the shared port and starts the cores; the rest of this folder is one
//! core, one concern per file:
//! - `state.rs`: what a core owns (`CoreState`, made of the parts below as
//!   plain fields), its socket table and the figures it publishes;
//! - `run_loop.rs`: the loop — receive and forward, take turns between sockets, wait in
//!   `epoll_wait`;
//! - `apply.rs`: command batches, each applied whole or not at all, with one reply;
//! - `handoff.rs`: the live handoff, top to bottom (export, import ring, barrier markers, the
//!   kernel-steering switch);
//! - `hop.rs`: datagrams carried between cores through their bounded hop rings;
//! - `pipe.rs`: pipes' packets (media, feedback, sender reports) carried in the same rings;
//! - `egress.rs`: the output buffer and the sends, one `sendmmsg` run per egress socket;
//! - `panic_policy.rs`: a panic on a core aborts the process, logged with the core's name.
//!
//! Nothing here is shared with other cores but the rings and the published statistics (stored
//! between batches, never per packet).

mod apply;
mod egress;
mod handoff;
mod hop;
#[cfg(test)]
#[cfg(loom)]
mod loom_models;
mod panic_policy;
mod pipe;
mod run_loop;
mod state;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;
use crossbeam::queue::ArrayQueue;

pub(crate) use handoff::RouterExport;
pub(crate) use hop::HopPacket;
use hop::Peer;
use state::{CoreState, Wiring};

use crate::plane::{CoreEvent, CoreHandle, CoreReply, CoreStats, DataPlaneConfig};
use crate::ring::Doorbell;
use crate::socket::bind_udp;
use crate::steering::{KernelSteering, KernelSteeringStats};

/// The running data plane: one pinned executor thread per core.
#[derive(Debug)]
pub struct DataPlane {
    cores: Vec<CoreHandle>,
    replies: Receiver<CoreReply>,
    events: Receiver<CoreEvent>,
    shared_addr: SocketAddr,
    kernel: Option<Arc<KernelSteering>>,
    stop: Arc<AtomicBool>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl DataPlane {
    /// Binds the shared port on every core and starts the cores; returns once each is running.
    pub fn start(config: DataPlaneConfig) -> std::io::Result<DataPlane> {
        panic_policy::install();
        let n = config.cpus.len().max(1);
        let mut opts = config.socket_options.clone();
        opts.reuse_port = true;
        let (first, _) = bind_udp(config.shared_addr, &opts)?;
        let shared_addr = first.local_addr()?;
        let mut shared = vec![first];
        // One after the other, in core order: socket `i` of the reuseport group is core `i`'s,
        // which the kernel steering relies on.
        for _ in 1..n {
            shared.push(bind_udp(shared_addr, &opts)?.0);
        }
        let mut stray = vec![0u64; n];
        let kernel = if config.kernel_steering && n > 1 {
            match KernelSteering::start(&shared, &mut stray) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    tracing::warn!(
                        "shared port {shared_addr}: no kernel steering ({e}); datagrams landing on \
                         the wrong core are carried to their owner in software"
                    );
                    None
                }
            }
        } else {
            None
        };
        let (reply_tx, replies) = crossbeam::channel::bounded(n * (config.ring_capacity + 1));
        let (event_tx, events) = crossbeam::channel::bounded(config.event_capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = crossbeam::channel::bounded::<Result<(), String>>(n);
        let mut cores = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        let mut doorbell_rxs = Vec::with_capacity(n);
        for index in 0..n {
            let (doorbell, doorbell_rx) = Doorbell::pair()?;
            doorbell_rxs.push(doorbell_rx);
            cores.push(CoreHandle {
                index,
                cpu: config.cpus.get(index).copied().flatten(),
                ring: Arc::new(ArrayQueue::new(config.ring_capacity.max(1))),
                hops: Arc::new(ArrayQueue::new(config.hop_capacity.max(1))),
                imports: Arc::new(ArrayQueue::new(64)),
                doorbell: Arc::new(doorbell),
                stats: Arc::new(CoreStats::default()),
            });
        }
        for ((index, shared_socket), doorbell_rx) in shared.into_iter().enumerate().zip(doorbell_rxs) {
            let placement = match cores[index].cpu {
                Some(c) => glommio::Placement::Fixed(c),
                None => glommio::Placement::Unbound,
            };
            let wiring = Wiring {
                handle: cores[index].clone(),
                peers: cores
                    .iter()
                    .map(|c| Peer {
                        hops: c.hops.clone(),
                        imports: c.imports.clone(),
                        doorbell: c.doorbell.clone(),
                    })
                    .collect(),
                replies: reply_tx.clone(),
                events: event_tx.clone(),
                kernel: kernel.clone(),
                recv_batch: config.recv_batch,
                allow_test_hooks: config.allow_test_hooks,
                rtcp_limits: config.rtcp_limits,
                shared: shared_socket,
                stray: stray[index],
            };
            let stop = stop.clone();
            let ready = ready_tx.clone();
            let sched_policy = config.sched_policy;
            let handle = glommio::LocalExecutorBuilder::new(placement)
                .name(&format!("shardcast-core-{index}"))
                .io_memory(1 << 20)
                .spawn(move || async move {
                    panic_policy::enter_core(index);
                    if let Err(e) = crate::io::set_current_thread_policy(sched_policy) {
                        let _ = ready.send(Err(format!("core {index}: cores.data_plane_policy: {e}")));
                        return;
                    }
                    let mut core = match CoreState::new(wiring, doorbell_rx.as_raw_fd()) {
                        Ok(core) => core,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    core.run(&doorbell_rx, &stop);
                    core.sockets.clear();
                })
                .map_err(|e| std::io::Error::other(format!("core {index}: cannot start executor: {e}")))?;
            threads.push(handle);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            match ready_rx.recv_timeout(left) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Err(std::io::Error::other("a core did not start within 10 s")),
            }
        }
        Ok(DataPlane { cores, replies, events, shared_addr, kernel, stop, threads })
    }

    pub fn cores(&self) -> &[CoreHandle] {
        &self.cores
    }
    pub fn shared_addr(&self) -> SocketAddr {
        self.shared_addr
    }
    /// The kernel steering of the shared port: `None` when it is off (one core, disabled, or the
    /// program could not be loaded — the start-up log says why).
    pub fn kernel_steering(&self) -> Option<KernelSteeringStats> {
        self.kernel.as_ref().map(|k| k.stats())
    }
    /// A handle on the kernel steering that outlives the data plane's owner (for metrics).
    pub fn kernel_steering_handle(&self) -> Option<Arc<KernelSteering>> {
        self.kernel.clone()
    }
    /// The core the kernel steers `key`'s datagrams to, if it steers them (tests, diagnostics).
    pub fn kernel_steered_to(&self, key: &shardcast_core::command::SteerKey) -> Option<u16> {
        self.kernel.as_ref().and_then(|k| k.lookup(key))
    }
    /// One reply per submitted batch, from every core.
    pub fn replies(&self) -> &Receiver<CoreReply> {
        &self.replies
    }
    /// Events from every core (leaky: a full channel drops, counted per core).
    pub fn events(&self) -> &Receiver<CoreEvent> {
        &self.events
    }

    /// Stops every core; `Err` lists the cores that did not stop before the deadline (their
    /// threads are left behind, never waited on forever).
    pub fn shutdown(self, deadline: Duration) -> Result<(), Vec<usize>> {
        self.stop.store(true, Ordering::Release);
        for c in &self.cores {
            c.doorbell.ring();
        }
        let until = Instant::now() + deadline;
        let (done_tx, done_rx) = crossbeam::channel::bounded(self.threads.len());
        for (i, t) in self.threads.into_iter().enumerate() {
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let _ = t.join();
                let _ = done_tx.send(i);
            });
        }
        let mut stopped = vec![false; self.cores.len()];
        for _ in 0..self.cores.len() {
            match done_rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(i) => stopped[i] = true,
                Err(_) => break,
            }
        }
        let stuck: Vec<usize> = stopped.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i).collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(stuck)
        }
    }
}
