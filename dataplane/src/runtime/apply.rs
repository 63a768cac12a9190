//! Command application: the batches the control thread queues in the core's ring, applied
//! between packet batches, each whole or not at all, each with one [`CoreReply`].
//!
//! How a batch stays whole: its socket operations and test hooks are checked first, against the
//! socket table as the batch would leave it, without changing anything; then its routing
//! commands go to the `Shard` as one batch (which applies them whole or undoes them); only then
//! are the socket operations applied, and they can no longer fail. The live-handoff operations
//! travel alone (a router pushed into another core's import ring cannot be taken back by a
//! later refusal) and undo themselves when they fail.

use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::Sender;
use crossbeam::queue::ArrayQueue;
use shardcast_core::command::{
    BatchReply, Command, CommandBatch, CommandError, ErrorKind, Outcome, SocketId,
};

use super::state::CoreState;
use crate::plane::{CoreBatch, CoreHandle, CoreOp, CoreReply};
use crate::ring::Doorbell;

/// The core's end of the control → core ring, and what applying batches cost.
pub(super) struct Commands {
    ring: Arc<ArrayQueue<CoreBatch>>,
    /// Rung by the control thread when it queues a batch; re-armed by the run loop.
    pub(super) doorbell: Arc<Doorbell>,
    replies: Sender<CoreReply>,
    /// Accept the test hooks (`CoreOp::Stall`, `CoreOp::Panic`).
    allow_test_hooks: bool,
    pub(super) batches_applied: u64,
    pub(super) apply_ns_total: u64,
    pub(super) apply_ns_max: u64,
}

impl Commands {
    pub(super) fn new(handle: &CoreHandle, replies: Sender<CoreReply>, allow_test_hooks: bool) -> Commands {
        Commands {
            ring: handle.ring.clone(),
            doorbell: handle.doorbell.clone(),
            replies,
            allow_test_hooks,
            batches_applied: 0,
            apply_ns_total: 0,
            apply_ns_max: 0,
        }
    }
}

const fn refusal(kind: ErrorKind, message: &'static str) -> CommandError {
    CommandError { kind, message }
}

impl CoreState {
    /// Applies every batch waiting in the ring, in order, each whole, each with one reply; takes
    /// imports first and forwards carried datagrams after.
    pub(super) fn poll_commands(&mut self) {
        // Outputs point into the receive slots and name sockets a command may move or close:
        // they leave first.
        self.flush_outputs();
        self.poll_imports();
        while let Some(batch) = self.commands.ring.pop() {
            self.apply_batch(batch);
        }
        self.poll_hops();
    }

    fn apply_batch(&mut self, batch: CoreBatch) {
        let started = Instant::now();
        let reply = self.apply_whole(batch);
        let apply_ns = started.elapsed().as_nanos() as u64;
        let c = &mut self.commands;
        c.batches_applied += 1;
        c.apply_ns_total += apply_ns;
        c.apply_ns_max = c.apply_ns_max.max(apply_ns);
        // The reply channel is sized for every batch the ring can hold; a send can only fail if
        // the control plane is gone, and then there is nobody to answer.
        let _ = c.replies.try_send(CoreReply { core: self.index, reply, apply_ns });
        self.publish();
    }

    /// Applies `batch` whole, or nothing of it (see the module documentation).
    fn apply_whole(&mut self, batch: CoreBatch) -> BatchReply {
        let CoreBatch { seq, ops } = batch;
        let rejected = |index, error| BatchReply::Rejected { seq, index, error };
        let alone = |op: &CoreOp| matches!(op, CoreOp::HandOff { .. } | CoreOp::ConfirmImport { .. });
        if ops.len() > 1 {
            if let Some(index) = ops.iter().position(alone) {
                let error =
                    refusal(ErrorKind::InvalidArgument, "a handoff operation travels alone in its batch");
                return rejected(index, error);
            }
        }
        let mut outcomes = vec![Outcome::Applied; ops.len()];
        let mut commands = Vec::new();
        let mut command_at = Vec::new();
        let mut others = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                CoreOp::Route(c) => {
                    commands.push(c);
                    command_at.push(i);
                }
                other => others.push((i, other)),
            }
        }
        if let Err((index, error)) = self.check(&others) {
            return rejected(index, error);
        }
        if !commands.is_empty() {
            let batch = CommandBatch { seq, commands };
            match self.shard.apply_batch(&batch) {
                BatchReply::Applied { outcomes: applied, .. } => {
                    for (&i, o) in command_at.iter().zip(applied) {
                        outcomes[i] = o;
                    }
                    self.steer_new_flows(&batch.commands);
                }
                BatchReply::Rejected { index, error, .. } => return rejected(command_at[index], error),
            }
        }
        for (i, op) in others {
            match self.apply_checked(op) {
                Ok(o) => outcomes[i] = o,
                // Only a lone handoff operation can fail here, and it undid itself.
                Err(error) => return rejected(i, error),
            }
        }
        BatchReply::Applied { seq, outcomes }
    }

    /// Checks a batch's socket operations and test hooks against the socket table as the batch
    /// would leave it, changing nothing. `ops` are `(index in the batch, op)`, in batch order.
    fn check(&self, ops: &[(usize, CoreOp)]) -> Result<(), (usize, CommandError)> {
        // Sockets the ops checked so far attach (`true`) or detach (`false`), latest last.
        let mut changed: Vec<(SocketId, bool)> = Vec::new();
        for (i, op) in ops {
            let attached = |id: SocketId| {
                changed
                    .iter()
                    .rev()
                    .find(|(s, _)| *s == id)
                    .map_or_else(|| self.sockets.contains(id), |c| c.1)
            };
            match op {
                CoreOp::AttachSocket { id, .. } => {
                    if id.is_shared() || attached(*id) {
                        return Err((*i, refusal(ErrorKind::InvalidState, "socket id already attached")));
                    }
                    changed.push((*id, true));
                }
                CoreOp::DetachSocket { id } => {
                    if id.is_shared() {
                        let error = refusal(ErrorKind::InvalidArgument, "the shared port cannot be detached");
                        return Err((*i, error));
                    }
                    changed.push((*id, false));
                }
                CoreOp::Stall(_) | CoreOp::Panic if !self.commands.allow_test_hooks => {
                    return Err((*i, refusal(ErrorKind::InvalidArgument, "test hooks are disabled")));
                }
                // The handoff operations travel alone and check themselves.
                CoreOp::Stall(_)
                | CoreOp::Panic
                | CoreOp::Route(_)
                | CoreOp::HandOff { .. }
                | CoreOp::ConfirmImport { .. } => {}
            }
        }
        Ok(())
    }

    /// Applies one operation `check` accepted (a routing command was applied with the shard's
    /// batch already).
    fn apply_checked(&mut self, op: CoreOp) -> Result<Outcome, CommandError> {
        Ok(match op {
            CoreOp::Route(_) => Outcome::Applied,
            CoreOp::AttachSocket { id, socket } => {
                self.attach_socket(id, socket);
                Outcome::Applied
            }
            // Dropping the socket closes it.
            CoreOp::DetachSocket { id } => match self.sockets.remove(id) {
                Some(_) => Outcome::Applied,
                None => Outcome::NotFound,
            },
            CoreOp::Stall(d) => {
                std::thread::sleep(d);
                Outcome::Applied
            }
            // The panic policy (`panic_policy`) aborts the process here.
            CoreOp::Panic => panic!("{}", crate::plane::PANIC_HOOK_MESSAGE),
            CoreOp::HandOff { router, to } => self.hand_off(router, to)?,
            CoreOp::ConfirmImport { router } => self.confirm_import(router),
        })
    }

    /// The kernel map follows the tables once they changed (see `steering`): new flows only — a
    /// moving flow is switched by the handoff.
    fn steer_new_flows(&self, commands: &[Command]) {
        let Some(k) = &self.kernel else { return };
        for c in commands {
            if let Command::SetSteering { key, core, .. } = c {
                k.steer_new(key, *core);
            }
        }
    }
}
