//! Where a new router goes: the configured policy, never a stalled core.

use serde::{Deserialize, Serialize};

use super::Model;
use crate::error::ApiError;

/// How new routers are placed on cores (stalled cores are always skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The core owning the fewest routers (lowest index on a tie).
    #[default]
    LeastLoaded,
    /// Cores in turn.
    RoundRobin,
}

impl Model {
    /// Picks a core for a new router per the placement policy, skipping stalled cores.
    pub(super) fn place(&mut self, stalled: &[bool]) -> Result<usize, ApiError> {
        let usable = |c: &usize| !stalled.get(*c).copied().unwrap_or(false);
        let core = match self.placement {
            Placement::LeastLoaded => {
                let loads = self.routers_per_core();
                (0..self.cores).filter(usable).min_by_key(|c| loads[*c])
            }
            Placement::RoundRobin => {
                let start = self.next_core;
                (0..self.cores).map(|i| (start + i) % self.cores).find(usable)
            }
        };
        let core = core.ok_or_else(|| {
            ApiError::core("every core is stalled; retry once one answers again (see /stats)")
        })?;
        self.next_core = (core + 1) % self.cores;
        Ok(core)
    }
}
