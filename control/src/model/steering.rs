//! Shared-port steering: every core but a flow's owner points the flow's key at the owner.

use shardcast_core::command::{Command, SteerKey};
use shardcast_core::ids::RouterId;

use super::{Model, Op, TransportEntry};

impl Model {
    /// Steering ops: on every core but `owner`, point `key` at `owner` (or remove it).
    pub(super) fn steer(&self, router: RouterId, owner: usize, key: SteerKey, add: bool) -> Vec<(usize, Op)> {
        (0..self.cores)
            .filter(|c| *c != owner)
            .map(|c| {
                let core = add.then_some(owner as u16);
                (c, Op::Route(Command::SetSteering { router, key, core }))
            })
            .collect()
    }

    pub(super) fn transport_keys(&self, t: &TransportEntry) -> Vec<SteerKey> {
        if !t.socket.is_shared() {
            return Vec::new();
        }
        let mut keys: Vec<SteerKey> =
            t.remote.filter(|_| t.remote_key).map(SteerKey::Remote).into_iter().collect();
        if t.comedia {
            keys.extend(
                t.producers.iter().filter_map(|p| self.producers.get(p)).map(|p| SteerKey::Ssrc(p.ssrc)),
            );
        }
        keys
    }
}
