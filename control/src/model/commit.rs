//! Committing a change the owning core confirmed, with the close cascades.

use std::collections::BTreeSet;

use shardcast_core::ids::{ConsumerId, ProducerId, TransportId};

use super::{Change, Model, PipeEntry, RouterEntry};

impl Model {
    /// Applies a change the owning core has confirmed. Idempotent for removals (a cascade may
    /// already have removed the object).
    pub fn commit(&mut self, change: Change) {
        match change {
            Change::Nothing => {}
            Change::AddRouter { id, core } => {
                self.routers.insert(id, RouterEntry { core, transports: BTreeSet::new() });
            }
            Change::RemoveRouter(id) => {
                let Some(r) = self.routers.remove(&id) else { return };
                for t in r.transports {
                    self.remove_transport(t);
                }
                // Piped producers are on no transport.
                let piped: Vec<ProducerId> =
                    self.producers.iter().filter(|(_, p)| p.router == id).map(|(p, _)| *p).collect();
                for p in piped {
                    self.remove_producer(p);
                }
            }
            Change::MoveRouter { id, core } => {
                if let Some(r) = self.routers.get_mut(&id) {
                    r.core = core;
                }
            }
            Change::AddTransport { id, entry } => {
                if let Some(r) = self.routers.get_mut(&entry.router) {
                    r.transports.insert(id);
                    self.transports.insert(id, entry);
                }
            }
            Change::Connect { id, remote } => {
                if let Some(t) = self.transports.get_mut(&id) {
                    t.remote = Some(remote);
                    t.remote_key = true;
                }
            }
            Change::RemoveTransport(id) => self.remove_transport(id),
            Change::AddProducer { id, entry } => {
                if let Some(t) = self.transports.get_mut(&entry.transport) {
                    t.producers.insert(id);
                    self.producers.insert(id, entry);
                }
            }
            Change::AddPipe { id, entry, source } => {
                if self.producers.contains_key(&source) && self.routers.contains_key(&entry.router) {
                    self.producers.insert(id, entry);
                    self.pipes.insert(id, PipeEntry { source });
                }
            }
            Change::RemoveProducer(id) => self.remove_producer(id),
            Change::ProducerPaused { id, paused } => {
                // A piped producer follows its source.
                for p in std::iter::once(id).chain(self.piped_of(id)) {
                    if let Some(p) = self.producers.get_mut(&p) {
                        p.paused = paused;
                    }
                }
            }
            Change::AddConsumer { id, entry } => {
                let (Some(t), true) =
                    (self.transports.get_mut(&entry.transport), self.producers.contains_key(&entry.producer))
                else {
                    return;
                };
                t.consumers.insert(id);
                if let Some(p) = self.producers.get_mut(&entry.producer) {
                    p.consumers.insert(id);
                }
                self.consumers.insert(id, entry);
            }
            Change::RemoveConsumer(id) => self.remove_consumer(id),
            Change::ConsumerPaused { id, paused } => {
                if let Some(c) = self.consumers.get_mut(&id) {
                    c.paused = paused;
                }
            }
        }
    }

    /// Removes a transport and its cascade (its producers with their consumers, its consumers).
    fn remove_transport(&mut self, id: TransportId) {
        let Some(t) = self.transports.remove(&id) else { return };
        for p in &t.producers {
            self.remove_producer(*p);
        }
        for c in &t.consumers {
            self.remove_consumer(*c);
        }
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.remove(&id);
        }
    }

    fn remove_producer(&mut self, id: ProducerId) {
        let Some(p) = self.producers.remove(&id) else { return };
        for c in &p.consumers {
            self.remove_consumer(*c);
        }
        self.pipes.remove(&id);
        for piped in self.piped_of(id) {
            self.remove_producer(piped);
        }
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.remove(&id);
        }
    }

    fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.remove(&id) else { return };
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.consumers.remove(&id);
        }
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.remove(&id);
        }
    }
}
