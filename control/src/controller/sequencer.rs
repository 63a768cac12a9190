//! The sequencer: a plan's phases sent as one `CoreBatch` per core, every reply awaited with a
//! deadline (`recv_timeout`, never a bare wait), the model committed once the owner applied it,
//! and the late replies of cores that missed a deadline (they commit or drop a parked change and
//! clear the stall). Every use of the data plane's reply type (`CoreReply`) is in this file.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use shardcast_core::command::{BatchReply, Command, Outcome};
use shardcast_dataplane::{CoreBatch, CoreOp, CoreReply};
use tracing::{info, warn};

use super::Controller;
use crate::error::ApiError;
use crate::events::ControlEvent;
use crate::model::{Op, Plan};
use crate::request::Response;

/// A core past its reply deadline: since when, and the batch whose reply ends the stall.
#[derive(Debug)]
pub(super) struct Stall {
    pub(super) since: Instant,
    seq: u64,
}

/// What became of one core's batch in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchFate {
    Applied,
    Rejected,
    /// Queued but not confirmed by the deadline (or queued on a stalled core): it applies later.
    Late(u64),
    /// Not queued: the ring was full.
    NotSent,
}

impl Controller {
    /// Takes every reply that arrived after its call gave up waiting.
    pub(super) fn drain_late_replies(&mut self) {
        while let Ok(msg) = self.plane.replies().try_recv() {
            self.on_late_reply(msg);
        }
    }

    fn on_late_reply(&mut self, msg: CoreReply) {
        let CoreReply { core, reply, .. } = msg;
        let change = self.pending.remove(&(core, reply.seq()));
        match (&reply, change) {
            (BatchReply::Applied { .. }, Some(change)) => {
                info!(core, seq = reply.seq(), "late batch applied: the model catches up");
                self.model.commit(change);
            }
            (BatchReply::Rejected { seq, index, error }, change) => {
                self.metrics.core_rejections.fetch_add(1, Ordering::Relaxed);
                warn!(
                    core,
                    seq,
                    index,
                    dropped_change = change.is_some(),
                    "core rejected a late batch: {error}"
                );
            }
            _ => {}
        }
        if let Some(s) = &self.stalled[core] {
            if reply.seq() >= s.seq {
                info!(core, stalled_ms = s.since.elapsed().as_millis() as u64, "core recovered");
                self.stalled[core] = None;
                self.metrics.stalled[core].store(0, Ordering::Relaxed);
                self.events.publish(ControlEvent::CoreRecovered { core });
            }
        }
    }

    /// Queues `op` on `core` and returns without waiting for the reply (which arrives as a late
    /// one): the stall test hook's `wait: false`.
    pub(super) fn submit_unconfirmed(&mut self, core: usize, op: CoreOp) -> Result<(), ApiError> {
        self.seqs[core] += 1;
        let batch = CoreBatch { seq: self.seqs[core], ops: vec![op] };
        if self.plane.cores()[core].submit(batch).is_err() {
            self.seqs[core] -= 1;
            return Err(ApiError::busy(format!("core {core} is busy: its command ring is full")));
        }
        Ok(())
    }

    /// Sends the plan's phases in order; commits its change once the owner has applied phase 0
    /// (or parks it until the owner's late reply).
    pub(super) fn execute(&mut self, plan: Plan) -> Result<Response, ApiError> {
        let Plan { phases, response, change, owner } = plan;
        if phases.is_empty() {
            self.model.commit(change);
            return Ok(response);
        }
        let mut change = Some(change);
        for phase in phases {
            let mut ops = Vec::with_capacity(phase.len());
            for (core, op) in phase {
                let op = match op {
                    Op::Route(c) => CoreOp::Route(c),
                    Op::AttachSocket(id) => match self.sockets.remove(&id) {
                        Some(socket) => CoreOp::AttachSocket { id, socket },
                        None => {
                            return Err(ApiError::state(format!("internal: socket {id:?} was not bound")))
                        }
                    },
                    Op::DetachSocket(id) => CoreOp::DetachSocket { id },
                    Op::HandOff { router, to } => CoreOp::HandOff { router, to: to as u16 },
                    Op::ConfirmImport { router } => CoreOp::ConfirmImport { router },
                };
                ops.push((core, op));
            }
            let (fates, error) = self.execute_phase(ops);
            if let Some(change) = change.take() {
                match fates.get(&owner) {
                    Some(BatchFate::Applied) => self.model.commit(change),
                    Some(BatchFate::Late(seq)) => {
                        self.pending.insert((owner, *seq), change);
                    }
                    // Refused or never queued: the owner did not change, neither does the model.
                    Some(BatchFate::Rejected | BatchFate::NotSent) | None => {}
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(response)
    }

    /// Sends one batch per core and waits for every reply, with a deadline. Returns what became
    /// of each core's batch and the first error, if any.
    pub(super) fn execute_phase(
        &mut self,
        ops: Vec<(usize, CoreOp)>,
    ) -> (BTreeMap<usize, BatchFate>, Option<ApiError>) {
        let mut per_core: BTreeMap<usize, Vec<CoreOp>> = BTreeMap::new();
        for (core, op) in ops {
            per_core.entry(core).or_default().push(op);
        }
        let mut waiting: BTreeMap<usize, u64> = BTreeMap::new();
        let mut fates: BTreeMap<usize, BatchFate> = BTreeMap::new();
        let mut error: Option<ApiError> = None;
        for (core, ops) in per_core {
            let only_steering = ops.iter().all(|o| matches!(o, CoreOp::Route(Command::SetSteering { .. })));
            self.seqs[core] += 1;
            let seq = self.seqs[core];
            match self.plane.cores()[core].submit(CoreBatch { seq, ops }) {
                Ok(()) => {
                    if self.stalled[core].is_none() {
                        waiting.insert(core, seq);
                    } else {
                        fates.insert(core, BatchFate::Late(seq));
                    }
                }
                Err(_) => {
                    self.seqs[core] -= 1;
                    fates.insert(core, BatchFate::NotSent);
                    if only_steering {
                        // A steering update for a core that is not the owner: losing it only
                        // costs that core's misdirected packets (counted as unknown_transport).
                        self.metrics.steering_lost.fetch_add(1, Ordering::Relaxed);
                        warn!(core, "steering update lost: ring full");
                    } else {
                        error.get_or_insert(ApiError::busy(format!(
                            "core {core} is busy: its command ring is full"
                        )));
                    }
                }
            }
        }
        let deadline = Instant::now() + self.config.core_deadline();
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.plane.replies().recv_timeout(left) {
                Ok(CoreReply { core, reply, .. }) => {
                    if waiting.get(&core) == Some(&reply.seq()) {
                        waiting.remove(&core);
                        match reply {
                            BatchReply::Applied { outcomes, .. } => {
                                fates.insert(core, BatchFate::Applied);
                                if outcomes.contains(&Outcome::NotFound) {
                                    tracing::debug!(core, "batch applied with not-found outcomes");
                                }
                            }
                            BatchReply::Rejected { index, error: e, .. } => {
                                fates.insert(core, BatchFate::Rejected);
                                self.metrics.core_rejections.fetch_add(1, Ordering::Relaxed);
                                warn!(core, index, "core rejected a batch the model accepted: {e}");
                                error.get_or_insert(ApiError::state(format!("core {core} refused: {e}")));
                            }
                        }
                    } else {
                        self.on_late_reply(CoreReply { core, reply, apply_ns: 0 });
                    }
                }
                Err(_) => break,
            }
        }
        for (core, seq) in waiting {
            fates.insert(core, BatchFate::Late(seq));
            self.metrics.deadline_misses[core].fetch_add(1, Ordering::Relaxed);
            self.metrics.stalled[core].store(1, Ordering::Relaxed);
            warn!(core, seq, "core missed its deadline");
            if self.stalled[core].is_none() {
                self.stalled[core] = Some(Stall { since: Instant::now(), seq });
                self.events.publish(ControlEvent::CoreStalled { core });
            }
            error.get_or_insert(ApiError::core(format!(
                "core {core} did not apply batch {seq} within {} ms; it stays queued in order and applies when the core recovers",
                self.config.core_deadline().as_millis()
            )));
        }
        (fates, error)
    }
}
