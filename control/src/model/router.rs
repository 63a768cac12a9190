//! Router calls: create (placed), close (with everything in it), move (live handoff).

use shardcast_core::command::{Command, SteerKey};
use shardcast_core::ids::RouterId;

use super::{Change, Model, Op, Plan};
use crate::error::ApiError;
use crate::request::Response;

impl Model {
    pub fn create_router(&mut self, core: Option<usize>, stalled: &[bool]) -> Result<Plan, ApiError> {
        self.admit_router()?;
        let core = match core {
            Some(c) if c >= self.cores => {
                return Err(ApiError::argument(format!(
                    "core {c} does not exist: use 0..{} or leave it out",
                    self.cores
                )))
            }
            Some(c) => c,
            None => self.place(stalled)?,
        };
        let id = RouterId(self.id()?);
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(Command::CreateRouter { router: id }))],
            Response::Router { id, core },
            Change::AddRouter { id, core },
        ))
    }

    pub fn close_router(&self, id: RouterId) -> Result<Plan, ApiError> {
        let r = self.router(id)?;
        let mut ops = vec![(r.core, Op::Route(Command::CloseRouter { router: id }))];
        for t in r.transports.iter().filter_map(|t| self.transports.get(t)) {
            ops.extend(self.transport_cleanup(t, r.core));
        }
        // Its piped producers (on no transport): their sources stop feeding them.
        let piped: Vec<_> =
            self.pipes.keys().filter(|p| self.producers.get(p).is_some_and(|p| p.router == id)).collect();
        ops.extend(self.pipes_closed_with(piped));
        Ok(Plan::one(r.core, ops, Response::Done {}, Change::RemoveRouter(id)))
    }

    /// Moves a router to `to`: phase 1 freezes and hands it over on its owner, phase 2 confirms
    /// the import on `to` and re-points steering on every other core. The change (the router's
    /// new core) commits once the old owner has handed it over.
    pub fn move_router(&self, id: RouterId, to: usize) -> Result<Plan, ApiError> {
        if to >= self.cores {
            return Err(ApiError::argument(format!("core {to} does not exist: use 0..{}", self.cores)));
        }
        let r = self.router(id)?;
        if r.core == to {
            return Ok(Plan {
                phases: Vec::new(),
                response: Response::Moved { id, core: to, move_us: 0 },
                change: Change::Nothing,
                owner: to,
            });
        }
        let mut phase2 = vec![(to, Op::ConfirmImport { router: id })];
        let keys: Vec<SteerKey> = r
            .transports
            .iter()
            .filter_map(|t| self.transports.get(t))
            .flat_map(|t| self.transport_keys(t))
            .collect();
        for key in keys {
            for c in (0..self.cores).filter(|c| *c != to && *c != r.core) {
                phase2.push((c, Op::Route(Command::SetSteering { router: id, key, core: Some(to as u16) })));
            }
        }
        let mut phases = vec![vec![(r.core, Op::HandOff { router: id, to })], phase2];
        // Then the routers at the other end of its pipes reach it on `to` (the old owner
        // re-pointed its own at the handoff and carries on what was in flight to it). A phase of
        // its own: an import travels alone in its batch.
        let retarget = self.pipes_moved_with(id, to);
        if !retarget.is_empty() {
            phases.push(retarget);
        }
        Ok(Plan {
            phases,
            response: Response::Moved { id, core: to, move_us: 0 },
            change: Change::MoveRouter { id, core: to },
            owner: r.core,
        })
    }
}
