//! Consumer calls: consume (a fresh SSRC, the producer's payload type), close, pause/resume.

use shardcast_core::command::{Command, ConsumerOptions};
use shardcast_core::ids::{ConsumerId, ProducerId, TransportId};

use super::{Change, ConsumerEntry, Model, Op, Plan};
use crate::error::ApiError;
use crate::request::Response;

impl Model {
    pub fn consume(
        &mut self,
        transport: TransportId,
        producer: ProducerId,
        paused: bool,
    ) -> Result<Plan, ApiError> {
        let t = self.transport(transport)?;
        let p = self.producer(producer)?;
        if p.router != t.router {
            return Err(ApiError::argument(format!(
                "producer {producer} is in router {} but transport {transport} is in router {}: consume on a transport of the producer's router",
                p.router, t.router
            )));
        }
        let (router, payload_type) = (t.router, p.payload_type);
        let core = self.router(router)?.core;
        self.admit_consumer(router)?;
        let id = ConsumerId(self.id()?);
        let ssrc = self.new_ssrc();
        let command = Command::CreateConsumer {
            router,
            transport,
            consumer: id,
            options: ConsumerOptions { producer, ssrc, payload_type, paused },
        };
        let entry = ConsumerEntry { router, transport, producer, ssrc, payload_type, paused };
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(command))],
            Response::Consumer { id, ssrc, payload_type },
            Change::AddConsumer { id, entry },
        ))
    }

    pub fn close_consumer(&self, id: ConsumerId) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?;
        let core = self.router(c.router)?.core;
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(Command::CloseConsumer { router: c.router, consumer: id }))],
            Response::Done {},
            Change::RemoveConsumer(id),
        ))
    }

    pub fn set_consumer_paused(&self, id: ConsumerId, paused: bool) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?;
        let core = self.router(c.router)?.core;
        let command = if paused {
            Command::PauseConsumer { router: c.router, consumer: id }
        } else {
            Command::ResumeConsumer { router: c.router, consumer: id }
        };
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(command))],
            Response::Done {},
            Change::ConsumerPaused { id, paused },
        ))
    }
}
