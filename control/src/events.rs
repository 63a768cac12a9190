//! The event bus: bounded and leaky. A slow subscriber loses events (it is told how many); the
//! control thread never waits for anyone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

/// Events as JSON values, fanned out to every subscriber.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<str>>,
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
    pub fn publish(&self, event: serde_json::Value) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Arc::from(event.to_string()));
    }

    /// A new subscriber.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
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
        for i in 0..10 {
            bus.publish(serde_json::json!({ "n": i }));
        }
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("{other:?}"),
        }
        assert_eq!(&*slow.try_recv().unwrap(), r#"{"n":6}"#);
        assert_eq!(bus.published(), 10);
    }
}
