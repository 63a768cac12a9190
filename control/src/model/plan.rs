//! What a valid call becomes: per-core operations in phases, the response and the model change.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use shardcast_core::command::{Command, SocketId};
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId, TransportId};

use super::entry::{ConsumerEntry, ProducerEntry, TransportEntry};
use crate::request::Response;

/// An operation for one core, before sockets are attached (the controller owns those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Route(Command),
    /// Attach the socket the controller bound for this transport.
    AttachSocket(SocketId),
    DetachSocket(SocketId),
    HandOff {
        router: RouterId,
        to: usize,
    },
    ConfirmImport {
        router: RouterId,
    },
}

/// A change to the model, committed once the owning core has applied the plan's first phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing to change (a no-op move).
    Nothing,
    AddRouter {
        id: RouterId,
        core: usize,
    },
    /// Removes the router and everything in it.
    RemoveRouter(RouterId),
    MoveRouter {
        id: RouterId,
        core: usize,
    },
    AddTransport {
        id: TransportId,
        entry: TransportEntry,
    },
    Connect {
        id: TransportId,
        remote: SocketAddr,
    },
    /// Removes the transport, its producers (and their consumers) and its consumers.
    RemoveTransport(TransportId),
    AddProducer {
        id: ProducerId,
        entry: ProducerEntry,
    },
    /// A pipe: piped producer `id` (no transport) fed by `source`.
    AddPipe {
        id: ProducerId,
        entry: ProducerEntry,
        source: ProducerId,
    },
    /// Removes the producer and its consumers (and its pipes: piped producers it feeds close).
    RemoveProducer(ProducerId),
    ProducerPaused {
        id: ProducerId,
        paused: bool,
    },
    AddConsumer {
        id: ConsumerId,
        entry: ConsumerEntry,
    },
    RemoveConsumer(ConsumerId),
    ConsumerPaused {
        id: ConsumerId,
        paused: bool,
    },
    /// The consumer follows `producer` from now on.
    ConsumerProducer {
        id: ConsumerId,
        producer: ProducerId,
    },
}

/// What a valid request turns into: phases of per-core operations (each phase is confirmed by
/// every core before the next is sent), the response, and the change to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub phases: Vec<Vec<(usize, Op)>>,
    pub response: Response,
    /// Committed when `owner` has applied phase 0.
    pub change: Change,
    /// The core that owns the router the plan is about (before the plan), the one whose
    /// `Applied` reply commits the change.
    pub owner: usize,
}

impl Plan {
    pub(super) fn one(owner: usize, ops: Vec<(usize, Op)>, response: Response, change: Change) -> Self {
        Plan { phases: vec![ops], response, change, owner }
    }

    /// Every core this plan touches.
    pub fn cores(&self) -> BTreeSet<usize> {
        self.phases.iter().flatten().map(|(c, _)| *c).collect()
    }
}
