//! Pipes between routers of this process (`POST /producers/{P}/pipe`, mediasoup's
//! `pipeToRouter`): a source producer of one router feeds a *piped producer* of another, which is
//! consumed there like a local producer.
//!
//! The model keeps each piped producer's source (`Model::pipes`); (source, router) names at most
//! one pipe, so a second call for the pair returns the first one's piped producer, and since the
//! control thread handles calls one at a time two clients racing create one pipe. A piped
//! producer has no transport (`PIPE_TRANSPORT`) and follows its source: the source's pause,
//! resume and close are planned as commands for both routers' cores in the same phase, so every
//! view changes in the one global command order; pausing a piped producer directly is refused.
//! Closing the source (or its transport or router) closes its piped producers; closing a piped
//! producer (the pipe) or its router removes the pipe from its source. A router with pipes moves
//! like any other: the old owner re-points its own routers' pipes at the handoff and carries on
//! what was in flight to it (`core/src/shard/pipe.rs`), and the move's second phase re-points the
//! pipes of the routers on other cores (`RetargetPipes`).

use std::collections::BTreeSet;

use shardcast_core::command::{Command, PipeEnd, ProducerOptions};
use shardcast_core::ids::{ProducerId, RouterId};
use shardcast_core::shard::PIPE_TRANSPORT;

use super::{Change, Model, Op, Plan, ProducerEntry};
use crate::error::ApiError;
use crate::request::Response;

/// A pipe, keyed in `Model::pipes` by its piped producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeEntry {
    /// The producer it carries.
    pub source: ProducerId,
}

impl Model {
    /// Pipes `producer` to `router`, or returns the pipe that already does.
    pub fn pipe_to_router(&mut self, producer: ProducerId, router: RouterId) -> Result<Plan, ApiError> {
        let p = self.producer(producer)?.clone();
        let to_core = self.router(router)?.core;
        if let Some(source) = self.pipes.get(&producer).map(|e| e.source) {
            return Err(ApiError::argument(format!(
                "producer {producer} is itself piped from producer {source}: pipe producer {source} instead"
            )));
        }
        if p.router == router {
            return Err(ApiError::argument(format!(
                "producer {producer} is already in router {router}: consume it there"
            )));
        }
        let response = |id| Response::Pipe { id, router, source: producer };
        if let Some(existing) = self.piped_in(producer, router) {
            return Ok(Plan {
                phases: Vec::new(),
                response: response(existing),
                change: Change::Nothing,
                owner: to_core,
            });
        }
        if self.piped_of(producer).len() >= shardcast_core::shard::MAX_PIPES {
            return Err(ApiError::state(format!(
                "producer {producer} has the most pipes a producer may have ({})",
                shardcast_core::shard::MAX_PIPES
            )));
        }
        // A piped producer counts against the producer quotas of its router and the daemon.
        self.admit_producer(router, p.kind)?;
        let from_core = self.router(p.router)?.core;
        let id = ProducerId(self.id()?);
        let options = ProducerOptions {
            kind: p.kind,
            ssrc: p.ssrc,
            payload_type: p.payload_type,
            clock_rate: p.clock_rate,
            paused: p.paused,
        };
        let create = Command::CreatePipedProducer {
            router,
            producer: id,
            options,
            source: PipeEnd { router: p.router, producer, core: from_core as u16 },
        };
        let add = Command::AddPipe {
            router: p.router,
            producer,
            target: PipeEnd { router, producer: id, core: to_core as u16 },
        };
        // The receiving end first: once the source sends, the piped producer exists.
        let phases = if from_core == to_core {
            vec![vec![(to_core, Op::Route(create)), (from_core, Op::Route(add))]]
        } else {
            vec![vec![(to_core, Op::Route(create))], vec![(from_core, Op::Route(add))]]
        };
        let entry = ProducerEntry {
            router,
            transport: PIPE_TRANSPORT,
            kind: p.kind,
            ssrc: p.ssrc,
            payload_type: p.payload_type,
            clock_rate: p.clock_rate,
            paused: p.paused,
            consumers: Default::default(),
        };
        Ok(Plan {
            phases,
            response: response(id),
            change: Change::AddPipe { id, entry, source: producer },
            owner: to_core,
        })
    }

    /// The piped producer carrying `source` into `router`, if any.
    pub fn piped_in(&self, source: ProducerId, router: RouterId) -> Option<ProducerId> {
        self.pipes
            .iter()
            .filter(|(_, e)| e.source == source)
            .map(|(id, _)| *id)
            .find(|id| self.producers.get(id).is_some_and(|p| p.router == router))
    }

    /// The piped producers `source` feeds.
    pub fn piped_of(&self, source: ProducerId) -> Vec<ProducerId> {
        self.pipes.iter().filter(|(_, e)| e.source == source).map(|(id, _)| *id).collect()
    }

    /// The routers at the other end of pipes into or out of `router`.
    pub fn pipe_peers(&self, router: RouterId) -> BTreeSet<RouterId> {
        let router_of = |p: &ProducerId| self.producers.get(p).map(|p| p.router);
        self.pipes
            .iter()
            .filter_map(|(piped, e)| match (router_of(piped), router_of(&e.source)) {
                (Some(a), Some(b)) if a == router => Some(b),
                (Some(a), Some(b)) if b == router => Some(a),
                _ => None,
            })
            .collect()
    }

    /// A move of `router` to core `to`: every router at the other end of its pipes is told
    /// (second phase, with the import).
    pub(super) fn pipes_moved_with(&self, router: RouterId, to: usize) -> Vec<(usize, Op)> {
        self.pipe_peers(router)
            .into_iter()
            .filter_map(|peer| {
                let core = self.core_of_router(peer)?;
                Some((
                    core,
                    Op::Route(Command::RetargetPipes { router: peer, moved: router, core: to as u16 }),
                ))
            })
            .collect()
    }

    /// The operations that keep pipes whole when `producers` close: their piped producers close
    /// (on their routers' cores) and, for those that are piped, their sources stop feeding them.
    pub(super) fn pipes_closed_with<'a>(
        &self,
        producers: impl IntoIterator<Item = &'a ProducerId>,
    ) -> Vec<(usize, Op)> {
        let mut ops = Vec::new();
        for id in producers {
            for piped in self.piped_of(*id) {
                let Some((router, core)) = self.router_and_core(piped) else { continue };
                ops.push((core, Op::Route(Command::CloseProducer { router, producer: piped })));
            }
            if let Some(source) = self.pipes.get(id).map(|e| e.source) {
                let Some((router, core)) = self.router_and_core(source) else { continue };
                ops.push((core, Op::Route(Command::RemovePipe { router, producer: source, target: *id })));
            }
        }
        ops
    }

    /// Pause or resume of `source` for each of its piped producers (same phase as the source's).
    pub(super) fn pipes_paused_with(&self, source: ProducerId, paused: bool) -> Vec<(usize, Op)> {
        self.piped_of(source)
            .into_iter()
            .filter_map(|piped| {
                let (router, core) = self.router_and_core(piped)?;
                let command = if paused {
                    Command::PauseProducer { router, producer: piped }
                } else {
                    Command::ResumeProducer { router, producer: piped }
                };
                Some((core, Op::Route(command)))
            })
            .collect()
    }

    fn router_and_core(&self, producer: ProducerId) -> Option<(RouterId, usize)> {
        let router = self.producers.get(&producer)?.router;
        Some((router, self.core_of_router(router)?))
    }
}
