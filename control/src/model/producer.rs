//! Producer calls: produce (validated, steered by SSRC on a shared comedia transport), close,
//! pause/resume.

use std::collections::BTreeSet;

use shardcast_core::command::{Command, ProducerOptions, SteerKey};
use shardcast_core::ids::{MediaKind, PayloadType, ProducerId, Ssrc, TransportId};

use super::{Change, Model, Op, Plan, ProducerEntry};
use crate::error::ApiError;
use crate::request::Response;

impl Model {
    pub fn produce(
        &mut self,
        transport: TransportId,
        kind: MediaKind,
        ssrc: Ssrc,
        payload_type: PayloadType,
        clock_rate: Option<u32>,
        paused: bool,
    ) -> Result<Plan, ApiError> {
        if payload_type.0 > 127 {
            return Err(ApiError::argument(format!("payload_type {} is not 0..=127", payload_type.0)));
        }
        if ssrc.0 == 0 {
            return Err(ApiError::argument("ssrc must be non-zero"));
        }
        let clock_rate = clock_rate.unwrap_or(match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        });
        if clock_rate == 0 {
            return Err(ApiError::argument("clock_rate must be positive"));
        }
        let t = self.transport(transport)?;
        if t.producers.iter().any(|p| self.producers.get(p).is_some_and(|p| p.ssrc == ssrc)) {
            return Err(ApiError::state(format!(
                "transport {transport} already has a producer with ssrc {}",
                ssrc.0
            )));
        }
        let shared_comedia = t.socket.is_shared() && t.comedia && t.remote.is_none();
        if shared_comedia
            && self.producers.values().any(|p| {
                p.ssrc == ssrc
                    && self.transports.get(&p.transport).is_some_and(|o| o.socket.is_shared() && o.comedia)
            })
        {
            return Err(ApiError::state(format!(
                "ssrc {} is already awaited on the shared port by another comedia transport; use another ssrc or connect the transport",
                ssrc.0
            )));
        }
        let router = t.router;
        let core = self.router(router)?.core;
        self.admit_producer(router, kind)?;
        let id = ProducerId(self.id()?);
        let mut ops = vec![(
            core,
            Op::Route(Command::CreateProducer {
                router,
                transport,
                producer: id,
                options: ProducerOptions { kind, ssrc, payload_type, clock_rate, paused },
            }),
        )];
        if shared_comedia {
            ops.extend(self.steer(router, core, SteerKey::Ssrc(ssrc), true));
        }
        let entry = ProducerEntry {
            router,
            transport,
            kind,
            ssrc,
            payload_type,
            clock_rate,
            paused,
            consumers: BTreeSet::new(),
        };
        Ok(Plan::one(core, ops, Response::Producer { id }, Change::AddProducer { id, entry }))
    }

    pub fn close_producer(&self, id: ProducerId) -> Result<Plan, ApiError> {
        let p = self.producer(id)?;
        let core = self.router(p.router)?.core;
        let mut ops = vec![(core, Op::Route(Command::CloseProducer { router: p.router, producer: id }))];
        ops.extend(self.pipes_closed_with([id].iter()));
        if let Some(t) = self.transports.get(&p.transport) {
            if t.socket.is_shared() && t.comedia {
                ops.extend(self.steer(p.router, core, SteerKey::Ssrc(p.ssrc), false));
            }
        }
        Ok(Plan::one(core, ops, Response::Done {}, Change::RemoveProducer(id)))
    }

    pub fn set_producer_paused(&self, id: ProducerId, paused: bool) -> Result<Plan, ApiError> {
        let p = self.producer(id)?;
        if let Some(source) = self.pipes.get(&id).map(|e| e.source) {
            return Err(ApiError::state(format!(
                "producer {id} is piped from producer {source} and follows its pause: pause or resume producer {source}"
            )));
        }
        let core = self.router(p.router)?.core;
        let command = if paused {
            Command::PauseProducer { router: p.router, producer: id }
        } else {
            Command::ResumeProducer { router: p.router, producer: id }
        };
        // Its piped producers change in the same phase: every view agrees once it returns.
        let mut ops = vec![(core, Op::Route(command))];
        ops.extend(self.pipes_paused_with(id, paused));
        Ok(Plan::one(core, ops, Response::Done {}, Change::ProducerPaused { id, paused }))
    }
}
