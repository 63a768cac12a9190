//! The stats document (`Request::Stats`, `GET /stats`): per-core figures from the cores'
//! published snapshots, the object counts from the model and the control plane's counters.
//! Typed; `http/` serializes it with the field names of `control/API.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;
use shardcast_core::drop_reason::DropReason;
use shardcast_dataplane::DataPlane;

use crate::controller::ControlMetrics;
use crate::model::Model;

/// The whole process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsDocument {
    pub pid: u32,
    /// The shared media port's address.
    pub shared_port: SocketAddr,
    /// `None` (JSON `null`) when kernel steering is off.
    pub kernel_steering: Option<KernelSteeringDocument>,
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    /// Live handoffs done (by calls and by the rebalancer).
    pub moves: u64,
    pub rebalancer_moves: u64,
    pub cores: Vec<CoreStatsDocument>,
}

/// The shared port's kernel steering map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KernelSteeringDocument {
    pub updates: u64,
    pub errors: u64,
}

/// One data-plane core, from its last published snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreStatsDocument {
    pub core: usize,
    /// The CPU it is pinned to (`None`: not pinned).
    pub cpu: Option<usize>,
    /// Past a reply deadline and not answered since.
    pub stalled: bool,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub routed: u64,
    /// RTCP terminated here (reports and feedback acted on), a term of the ingress balance.
    pub rtcp_terminated: u64,
    pub outputs: u64,
    pub hopped_out: u64,
    pub hopped_in: u64,
    /// Copies handed to a pipe, and copies piped producers here took from their pipes.
    pub piped_out: u64,
    pub piped_in: u64,
    /// Drops by reason name (`DropReason::as_str`), every reason present.
    pub drops: BTreeMap<&'static str, u64>,
    pub batches_applied: u64,
    pub apply_ns_max: u64,
    pub busy_ns: u64,
    pub wakeups: u64,
    pub routers: u64,
    pub ring_depth: u64,
    pub handoffs_in: u64,
    /// The longest a router was frozen on a core at a handoff (ns).
    pub freeze_ns_max: u64,
    pub barrier_failures: u64,
}

impl StatsDocument {
    /// Reads the figures now; `stalled[i]` says whether core `i` is stalled.
    pub(crate) fn collect(
        plane: &DataPlane,
        model: &Model,
        metrics: &ControlMetrics,
        stalled: &[bool],
    ) -> StatsDocument {
        let cores = plane
            .cores()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = c.stats();
                let n = &s.counters;
                CoreStatsDocument {
                    core: i,
                    cpu: c.cpu(),
                    stalled: stalled.get(i).copied().unwrap_or(false),
                    packets_in: n.packets_in,
                    bytes_in: n.bytes_in,
                    packets_out: n.packets_out,
                    bytes_out: n.bytes_out,
                    routed: n.routed,
                    rtcp_terminated: n.rtcp_terminated,
                    outputs: n.outputs,
                    hopped_out: n.hopped_out,
                    hopped_in: n.hopped_in,
                    piped_out: n.piped_out,
                    piped_in: n.piped_in,
                    drops: DropReason::ALL.iter().map(|r| (r.as_str(), n.drops_of(*r))).collect(),
                    batches_applied: s.batches_applied,
                    apply_ns_max: s.apply_ns_max,
                    busy_ns: s.busy_ns,
                    wakeups: s.wakeups,
                    routers: s.routers,
                    ring_depth: s.ring_depth,
                    handoffs_in: s.handoffs_in,
                    freeze_ns_max: s.freeze_ns_max,
                    barrier_failures: s.barrier_failures,
                }
            })
            .collect();
        StatsDocument {
            pid: std::process::id(),
            shared_port: plane.shared_addr(),
            kernel_steering: plane
                .kernel_steering()
                .map(|k| KernelSteeringDocument { updates: k.updates, errors: k.errors }),
            routers: model.routers.len(),
            transports: model.transports.len(),
            producers: model.producers.len(),
            consumers: model.consumers.len(),
            moves: metrics.moves.load(Ordering::Relaxed),
            rebalancer_moves: metrics.rebalancer_moves.load(Ordering::Relaxed),
            cores,
        }
    }
}
