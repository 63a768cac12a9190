//! Consumer calls: consume (a fresh SSRC, the producer's payload type), close, pause/resume,
//! and switching its producer (same router, kind and clock rate; it keeps its SSRC and payload
//! type).

use shardcast_core::command::{Command, ConsumerOptions};
use shardcast_core::ids::{ConsumerId, MediaKind, ProducerId, TransportId};

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

impl Model {
    /// Re-points consumer `id` at `producer`: one command to the router's core
    /// (`Command::SwitchConsumerProducer`). To the producer it follows: nothing to do (200).
    ///
    /// Another router's producer is the caller's mistake (400, as for `consume`): objects never
    /// change router, so no later state would make the call valid. So are another kind and
    /// another clock rate (400, naming `producer_id`): the receiver has one decoder and one RTP
    /// clock for the consumer's SSRC.
    pub fn switch_consumer_producer(&self, id: ConsumerId, producer: ProducerId) -> Result<Plan, ApiError> {
        let c = self.consumer(id)?;
        let new = self.producer(producer)?;
        if new.router != c.router {
            return Err(ApiError::argument(format!(
                "producer_id: producer {producer} is in router {} but consumer {id} is in router {}: switch to a producer of the consumer's router",
                new.router, c.router
            )));
        }
        if c.producer == producer {
            return Ok(Plan {
                phases: Vec::new(),
                response: Response::Done {},
                change: Change::Nothing,
                owner: 0,
            });
        }
        let old = self.producer(c.producer)?;
        if old.kind != new.kind {
            return Err(ApiError::argument(format!(
                "producer_id: producer {producer} is {} but consumer {id} consumes {} (producer {}): switch to a producer of the same kind",
                kind_name(new.kind),
                kind_name(old.kind),
                c.producer
            )));
        }
        if old.clock_rate != new.clock_rate {
            return Err(ApiError::argument(format!(
                "producer_id: producer {producer}'s clock_rate is {} but consumer {id}'s is {} (producer {}): its receiver has one RTP clock",
                new.clock_rate, old.clock_rate, c.producer
            )));
        }
        let core = self.router(c.router)?.core;
        let command = Command::SwitchConsumerProducer { router: c.router, consumer: id, producer };
        Ok(Plan::one(
            core,
            vec![(core, Op::Route(command))],
            Response::Done {},
            Change::ConsumerProducer { id, producer },
        ))
    }
}

/// A kind as the API spells it.
fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}
