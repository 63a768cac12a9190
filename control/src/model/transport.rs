//! Plain-transport calls: create (on a bound socket or the shared port), connect, close.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use shardcast_core::command::{Command, IpPrefix, PlainTransportOptions, SocketId, SteerKey};
use shardcast_core::ids::{RouterId, TransportId};

use super::{Change, Model, Op, Plan, TransportEntry};
use crate::error::ApiError;
use crate::request::Response;

impl Model {
    /// The socket and steering cleanup of a transport that goes away (with its router or alone).
    pub(super) fn transport_cleanup(&self, t: &TransportEntry, core: usize) -> Vec<(usize, Op)> {
        let mut ops = Vec::new();
        for key in self.transport_keys(t) {
            ops.extend(self.steer(t.router, core, key, false));
        }
        if !t.socket.is_shared() {
            ops.push((core, Op::DetachSocket(t.socket)));
        }
        ops.extend(self.pipes_closed_with(&t.producers));
        ops
    }

    /// `socket` and `local` come from the controller, which bound the socket (or `SocketId::SHARED`).
    pub fn create_transport(
        &mut self,
        router: RouterId,
        socket: SocketId,
        local: SocketAddr,
        comedia: bool,
        comedia_source: Option<IpPrefix>,
    ) -> Result<Plan, ApiError> {
        check_comedia_source(comedia, comedia_source)?;
        let core = self.router(router)?.core;
        self.admit_transport(router)?;
        let id = TransportId(self.id()?);
        let entry = TransportEntry {
            router,
            socket,
            local,
            remote: None,
            remote_key: false,
            comedia,
            comedia_source,
            producers: BTreeSet::new(),
            consumers: BTreeSet::new(),
        };
        let mut ops = Vec::new();
        if !socket.is_shared() {
            ops.push((core, Op::AttachSocket(socket)));
        }
        ops.push((
            core,
            Op::Route(Command::CreatePlainTransport {
                router,
                transport: id,
                options: PlainTransportOptions { socket, remote: None, comedia, comedia_source },
            }),
        ));
        Ok(Plan::one(core, ops, Response::Transport { id, local }, Change::AddTransport { id, entry }))
    }

    pub fn connect_transport(&self, id: TransportId, remote: SocketAddr) -> Result<Plan, ApiError> {
        let t = self.transport(id)?;
        if t.remote.is_some() {
            return Err(ApiError::state(format!(
                "transport {id} is already connected (or latched); create a new transport for another remote"
            )));
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(ApiError::argument("remote must be a concrete ip and a non-zero port"));
        }
        if t.socket.is_shared()
            && self.transports.values().any(|o| o.socket.is_shared() && o.remote == Some(remote))
        {
            return Err(ApiError::state(format!(
                "{remote} is already used by another shared-port transport: the shared port tells flows apart by remote address"
            )));
        }
        let core = self.router(t.router)?.core;
        let mut ops =
            vec![(core, Op::Route(Command::ConnectTransport { router: t.router, transport: id, remote }))];
        if t.socket.is_shared() {
            ops.extend(self.steer(t.router, core, SteerKey::Remote(remote), true));
        }
        Ok(Plan::one(core, ops, Response::Done {}, Change::Connect { id, remote }))
    }

    /// A comedia transport latched `remote` (an event from its core): the model learns it, and on
    /// the shared port, when no other transport there uses `remote`, the plan makes it the
    /// transport's address steering key on every other core, as [`Self::connect_transport`]
    /// does. `None`: nothing to send.
    pub fn latched(&mut self, id: TransportId, remote: SocketAddr) -> Option<Plan> {
        let shared_by_another = self
            .transports
            .iter()
            .any(|(other, o)| *other != id && o.socket.is_shared() && o.remote == Some(remote));
        let t = self.transports.get_mut(&id)?;
        if t.remote.is_some() {
            return None;
        }
        t.remote = Some(remote);
        if !t.socket.is_shared() || shared_by_another {
            return None;
        }
        t.remote_key = true;
        let router = t.router;
        let core = self.router(router).ok()?.core;
        let ops = self.steer(router, core, SteerKey::Remote(remote), true);
        Some(Plan::one(core, ops, Response::Done {}, Change::Nothing)).filter(|p| !p.phases[0].is_empty())
    }

    pub fn close_transport(&self, id: TransportId) -> Result<Plan, ApiError> {
        let t = self.transport(id)?;
        let core = self.router(t.router)?.core;
        let mut ops = vec![(core, Op::Route(Command::CloseTransport { router: t.router, transport: id }))];
        ops.extend(self.transport_cleanup(t, core));
        Ok(Plan::one(core, ops, Response::Done {}, Change::RemoveTransport(id)))
    }
}

/// `comedia_source` restricts who may latch, so it needs `comedia` (checked before a socket is
/// bound, and again when the transport is planned).
pub(crate) fn check_comedia_source(comedia: bool, comedia_source: Option<IpPrefix>) -> Result<(), ApiError> {
    if comedia_source.is_some() && !comedia {
        return Err(ApiError::argument("comedia_source needs comedia: true (it restricts who may latch)"));
    }
    Ok(())
}
