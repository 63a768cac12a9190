//! `Router`: a room. Owns its transports, producers and consumers and applies commands to them.
//!
//! Close cascade (mediasoup's `doc/closures.md`, see also `CLOSURES.md` at the repo root):
//! closing a router closes its transports; closing a transport closes the producers and consumers
//! on it; closing a producer closes its consumers (on any transport of the router). A consumer
//! switched to another producer is that producer's consumer from then on: closing the new one
//! closes it, closing the old one does not touch it.

use std::collections::HashMap;

use crate::command::{CommandError, ConsumerOptions, PlainTransportOptions, ProducerOptions, SteerKey};
use crate::consumer::Consumer;
use crate::ids::{ConsumerId, MediaKind, ProducerId, TransportId};
use crate::producer::Producer;
use crate::transport::{Remote, Transport};

/// A room: plain state, owned by exactly one core at a time, `Send` so it can be handed over.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub(crate) transports: HashMap<TransportId, Transport>,
    pub(crate) producers: HashMap<ProducerId, Producer>,
    pub(crate) consumers: HashMap<ConsumerId, Consumer>,
}

/// Result of a lookup-style mutation: the target was missing (harmless) or it was applied.
pub(crate) type Applied = Result<bool, CommandError>;

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn transport(&self, id: TransportId) -> Option<&Transport> {
        self.transports.get(&id)
    }
    pub fn producer(&self, id: ProducerId) -> Option<&Producer> {
        self.producers.get(&id)
    }
    pub fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        self.consumers.get(&id)
    }
    pub fn transports(&self) -> impl Iterator<Item = (TransportId, &Transport)> {
        self.transports.iter().map(|(k, v)| (*k, v))
    }
    pub fn producers(&self) -> impl Iterator<Item = (ProducerId, &Producer)> {
        self.producers.iter().map(|(k, v)| (*k, v))
    }
    pub fn consumers(&self) -> impl Iterator<Item = (ConsumerId, &Consumer)> {
        self.consumers.iter().map(|(k, v)| (*k, v))
    }

    /// The keys that identify this router's shared-port flows on other cores (for steering).
    pub fn shared_port_keys(&self) -> Vec<SteerKey> {
        let mut keys = Vec::new();
        for t in self.transports.values().filter(|t| t.socket.is_shared()) {
            match t.remote {
                Remote::Known(addr) => keys.push(SteerKey::Remote(addr)),
                Remote::Comedia => keys.extend(t.producers_by_ssrc.keys().map(|s| SteerKey::Ssrc(*s))),
                Remote::Unset => {}
            }
        }
        keys
    }

    pub(crate) fn create_transport(&mut self, id: TransportId, options: &PlainTransportOptions) -> Applied {
        if self.transports.contains_key(&id) {
            return Err(CommandError::state("transport id already exists"));
        }
        self.transports.insert(id, Transport::new(options));
        Ok(true)
    }

    /// What any new producer must satisfy: a valid payload type and clock rate, an unused id.
    pub(crate) fn check_new_producer(
        &self,
        id: ProducerId,
        options: &ProducerOptions,
    ) -> Result<(), CommandError> {
        if options.payload_type.0 > 127 {
            return Err(CommandError::argument("payload_type must be 0..=127"));
        }
        if options.clock_rate == 0 {
            return Err(CommandError::argument("clock_rate must be positive"));
        }
        if self.producers.contains_key(&id) {
            return Err(CommandError::state("producer id already exists"));
        }
        Ok(())
    }

    pub(crate) fn create_producer(
        &mut self,
        transport: TransportId,
        id: ProducerId,
        options: &ProducerOptions,
    ) -> Applied {
        self.check_new_producer(id, options)?;
        let Some(t) = self.transports.get_mut(&transport) else { return Ok(false) };
        if t.producers_by_ssrc.contains_key(&options.ssrc) {
            return Err(CommandError::state("a producer with this ssrc already exists on the transport"));
        }
        t.producers_by_ssrc.insert(options.ssrc, id);
        self.producers.insert(id, Producer::new(transport, options.clone()));
        Ok(true)
    }

    pub(crate) fn create_consumer(
        &mut self,
        transport: TransportId,
        id: ConsumerId,
        options: &ConsumerOptions,
    ) -> Applied {
        if options.payload_type.0 > 127 {
            return Err(CommandError::argument("payload_type must be 0..=127"));
        }
        if self.consumers.contains_key(&id) {
            return Err(CommandError::state("consumer id already exists"));
        }
        let Some(producer) = self.producers.get_mut(&options.producer) else { return Ok(false) };
        let Some(t) = self.transports.get_mut(&transport) else { return Ok(false) };
        if t.consumers_by_ssrc.contains_key(&options.ssrc) {
            return Err(CommandError::state("a consumer with this ssrc already exists on the transport"));
        }
        t.consumers_by_ssrc.insert(options.ssrc, id);
        producer.consumers.push(id);
        self.consumers.insert(id, Consumer::new(transport, options, producer.paused));
        Ok(true)
    }

    pub(crate) fn close_consumer(&mut self, id: ConsumerId) -> bool {
        let Some(c) = self.consumers.remove(&id) else { return false };
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.consumers_by_ssrc.remove(&c.ssrc());
        }
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.retain(|k| *k != id);
        }
        true
    }

    pub(crate) fn close_producer(&mut self, id: ProducerId) -> bool {
        let Some(p) = self.producers.remove(&id) else { return false };
        if let Some(t) = self.transports.get_mut(&p.transport).filter(|_| p.pipe_source.is_none()) {
            t.producers_by_ssrc.remove(&p.options.ssrc);
        }
        for c in p.consumers {
            self.close_consumer(c);
        }
        true
    }

    /// Removes a transport and everything on it; returns it so the shard can drop its indexes.
    pub(crate) fn close_transport(&mut self, id: TransportId) -> Option<Transport> {
        let t = self.transports.get(&id)?;
        let producers: Vec<ProducerId> = t.producers().collect();
        let consumers: Vec<ConsumerId> = t.consumers().collect();
        for p in producers {
            self.close_producer(p);
        }
        for c in consumers {
            self.close_consumer(c);
        }
        self.transports.remove(&id)
    }

    pub(crate) fn set_producer_paused(&mut self, id: ProducerId, paused: bool) -> bool {
        let Some(p) = self.producers.get_mut(&id) else { return false };
        p.paused = paused;
        for c in &p.consumers {
            if let Some(c) = self.consumers.get_mut(c) {
                c.producer_paused = paused;
                if !paused {
                    c.rewriter.sync();
                }
            }
        }
        true
    }

    /// Moves consumer `id` from its producer's fan-out to producer `to`'s (see
    /// [`Command::SwitchConsumerProducer`](crate::command::Command::SwitchConsumerProducer)).
    /// Validates before it mutates: another kind or clock rate is refused.
    pub(crate) fn switch_consumer_producer(&mut self, id: ConsumerId, to: ProducerId) -> Applied {
        let Some(from) = self.consumers.get(&id).map(|c| c.producer) else { return Ok(false) };
        let Some(new) = self.producers.get(&to) else { return Ok(false) };
        if from == to {
            return Ok(true);
        }
        // A consumer's producer exists while it does (closing a producer closes its consumers).
        if let Some(old) = self.producers.get(&from) {
            if old.options.kind != new.options.kind {
                return Err(CommandError::argument("the new producer's kind differs from the consumer's"));
            }
            if old.options.clock_rate != new.options.clock_rate {
                return Err(CommandError::argument(
                    "the new producer's clock_rate differs from the consumer's",
                ));
            }
        }
        if let Some(old) = self.producers.get_mut(&from) {
            old.consumers.retain(|k| *k != id);
        }
        let Some(new) = self.producers.get_mut(&to) else { return Ok(false) };
        new.consumers.push(id);
        new.keyframe_wanted |= new.options.kind == MediaKind::Video;
        let paused = new.paused;
        if let Some(c) = self.consumers.get_mut(&id) {
            c.producer = to;
            c.producer_paused = paused;
            c.rewriter.switch_source();
            // When packets were last resent to it is kept by the old producer's numbers.
            c.retransmissions.resent = None;
        }
        Ok(true)
    }

    pub(crate) fn set_consumer_paused(&mut self, id: ConsumerId, paused: bool) -> bool {
        let Some(c) = self.consumers.get_mut(&id) else { return false };
        if c.paused && !paused {
            c.rewriter.sync();
        }
        c.paused = paused;
        true
    }
}
