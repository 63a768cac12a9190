//! The event bus: bounded and leaky. A slow subscriber loses events (it is told how many); the
//! control thread never waits for anyone. Events are typed; `http/` serializes them for
//! `/events` (`{"event": "<name>", ...}`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use tokio::sync::broadcast;

/// What the control plane announces, once every core a call affects has applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ControlEvent {
    /// A comedia transport latched its remote on its first valid packet.
    TransportLatched { transport: TransportId, remote: SocketAddr, core: usize },
    /// A core missed a reply deadline.
    CoreStalled { core: usize },
    /// A stalled core answered again.
    CoreRecovered { core: usize },
    /// A live handoff finished; `move_us` as in `Response::Moved` (spelled `handoff_us` on the
    /// wire, as it always was).
    RouterMoved {
        router: RouterId,
        core: usize,
        #[serde(rename = "handoff_us")]
        move_us: u64,
    },
    /// The producer of `consumer` was paused.
    ConsumerProducerPaused { consumer: ConsumerId, producer: ProducerId },
    /// The producer of `consumer` was resumed.
    ConsumerProducerResumed { consumer: ConsumerId, producer: ProducerId },
    /// A producer was closed, and its consumers with it.
    ProducerClosed { producer: ProducerId, consumers_closed: Vec<ConsumerId> },
}

/// Events fanned out to every subscriber.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<ControlEvent>>,
    published: Arc<AtomicU64>,
    lagged: Arc<AtomicU64>,
}

impl EventBus {
    /// A bus keeping at most `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx, published: Arc::default(), lagged: Arc::default() }
    }

    /// Publishes without waiting; with no subscriber the event is simply gone.
    pub fn publish(&self, event: ControlEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Arc::new(event));
    }

    /// A new subscriber.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ControlEvent>> {
        self.tx.subscribe()
    }

    /// Counts events a slow subscriber lost.
    pub fn count_lagged(&self, n: u64) {
        self.lagged.fetch_add(n, Ordering::Relaxed);
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_loses_events_and_is_told() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        for core in 0..10 {
            bus.publish(ControlEvent::CoreStalled { core });
        }
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("{other:?}"),
        }
        assert_eq!(*slow.try_recv().unwrap(), ControlEvent::CoreStalled { core: 6 });
        assert_eq!(bus.published(), 10);
    }
}
