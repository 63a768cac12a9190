//! Committing a change the owning core confirmed, with the close cascades. Every count the
//! model keeps (routers per core, producers and consumers per router, video producers, SSRCs in
//! use) changes here and nowhere else.

use std::collections::BTreeSet;

use shardcast_core::ids::{ConsumerId, MediaKind, ProducerId, Ssrc, TransportId};

use super::{Change, Model, PipeEntry, RouterCounts, RouterEntry};

impl Model {
    /// Applies a change the owning core has confirmed. Idempotent for removals (a cascade may
    /// already have removed the object).
    pub fn commit(&mut self, change: Change) {
        match change {
            Change::Nothing => {}
            Change::AddRouter { id, core } => {
                let entry =
                    RouterEntry { core, transports: BTreeSet::new(), counts: RouterCounts::default() };
                if self.routers.insert(id, entry).is_none() {
                    self.routers_on[core] += 1;
                }
            }
            Change::RemoveRouter(id) => {
                let Some(r) = self.routers.get(&id) else { return };
                for t in r.transports.clone() {
                    self.remove_transport(t);
                }
                // Piped producers are on no transport.
                let piped: Vec<ProducerId> =
                    self.producers.iter().filter(|(_, p)| p.router == id).map(|(p, _)| *p).collect();
                for p in piped {
                    self.remove_producer(p);
                }
                if let Some(r) = self.routers.remove(&id) {
                    self.routers_on[r.core] -= 1;
                }
            }
            Change::MoveRouter { id, core } => {
                if let Some(r) = self.routers.get_mut(&id) {
                    self.routers_on[r.core] -= 1;
                    self.routers_on[core] += 1;
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
                let (Some(t), Some(r)) =
                    (self.transports.get_mut(&entry.transport), self.routers.get_mut(&entry.router))
                else {
                    return;
                };
                t.producers.insert(id);
                r.counts.producers += 1;
                if entry.kind == MediaKind::Video {
                    self.video_producers += 1;
                }
                *self.ssrcs.entry(entry.ssrc).or_insert(0) += 1;
                self.producers.insert(id, entry);
            }
            Change::AddPipe { id, entry, source } => {
                // A piped producer is a producer for the quotas: counted like one, released by
                // `remove_producer` like one.
                if !self.producers.contains_key(&source) || self.producers.contains_key(&id) {
                    return;
                }
                let Some(r) = self.routers.get_mut(&entry.router) else { return };
                r.counts.producers += 1;
                if entry.kind == MediaKind::Video {
                    self.video_producers += 1;
                }
                *self.ssrcs.entry(entry.ssrc).or_insert(0) += 1;
                self.producers.insert(id, entry);
                self.pipes.insert(id, PipeEntry { source });
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
                let (Some(t), true, Some(r)) = (
                    self.transports.get_mut(&entry.transport),
                    self.producers.contains_key(&entry.producer),
                    self.routers.get_mut(&entry.router),
                ) else {
                    return;
                };
                t.consumers.insert(id);
                r.counts.consumers += 1;
                if let Some(p) = self.producers.get_mut(&entry.producer) {
                    p.consumers.insert(id);
                }
                *self.ssrcs.entry(entry.ssrc).or_insert(0) += 1;
                self.consumers.insert(id, entry);
            }
            Change::RemoveConsumer(id) => self.remove_consumer(id),
            Change::ConsumerPaused { id, paused } => {
                if let Some(c) = self.consumers.get_mut(&id) {
                    c.paused = paused;
                }
            }
            Change::ConsumerProducer { id, producer } => {
                let (Some(c), true) = (self.consumers.get_mut(&id), self.producers.contains_key(&producer))
                else {
                    return;
                };
                let old = std::mem::replace(&mut c.producer, producer);
                if let Some(p) = self.producers.get_mut(&old) {
                    p.consumers.remove(&id);
                }
                if let Some(p) = self.producers.get_mut(&producer) {
                    p.consumers.insert(id);
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
        if let Some(r) = self.routers.get_mut(&p.router) {
            r.counts.producers -= 1;
        }
        if p.kind == MediaKind::Video {
            self.video_producers -= 1;
        }
        self.release_ssrc(p.ssrc);
    }

    fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.remove(&id) else { return };
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.consumers.remove(&id);
        }
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.remove(&id);
        }
        if let Some(r) = self.routers.get_mut(&c.router) {
            r.counts.consumers -= 1;
        }
        self.release_ssrc(c.ssrc);
    }

    fn release_ssrc(&mut self, ssrc: Ssrc) {
        if let Some(n) = self.ssrcs.get_mut(&ssrc) {
            *n -= 1;
            if *n == 0 {
                self.ssrcs.remove(&ssrc);
            }
        }
    }
}
