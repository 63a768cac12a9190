//! `LeakyQueue`: a bounded FIFO that drops (and counts) instead of blocking or growing.
//!
//! Used wherever one side must never wait for the other (events to a slow subscriber, per-consumer
//! queues). Storage is a `heapless::Deque`, allocated inline once; pushes never allocate.

use heapless::Deque;

/// What to do with a push into a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the new item (keeps the oldest; right for ordered command-like traffic).
    DropNewest,
    /// Drop the oldest item to make room (keeps the freshest; right for live media and events).
    DropOldest,
}

/// A bounded queue of capacity `N` that never blocks its producer.
#[derive(Debug)]
pub struct LeakyQueue<T, const N: usize> {
    items: Deque<T, N>,
    overflow: Overflow,
    dropped: u64,
}

impl<T, const N: usize> LeakyQueue<T, N> {
    /// An empty queue with the given overflow policy.
    pub const fn new(overflow: Overflow) -> Self {
        Self { items: Deque::new(), overflow, dropped: 0 }
    }

    /// Pushes `item`; returns `false` if an item (new or oldest) was dropped to stay bounded.
    pub fn push(&mut self, item: T) -> bool {
        match self.items.push_back(item) {
            Ok(()) => true,
            Err(item) => {
                self.dropped += 1;
                if self.overflow == Overflow::DropOldest {
                    self.items.pop_front();
                    // Cannot fail: one slot was just freed.
                    let _ = self.items.push_back(item);
                }
                false
            }
        }
    }

    /// Removes the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Items dropped since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Capacity.
    pub const fn capacity(&self) -> usize {
        N
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_newest_keeps_oldest_and_counts() {
        let mut q: LeakyQueue<u32, 2> = LeakyQueue::new(Overflow::DropNewest);
        assert!(q.push(1));
        assert!(q.push(2));
        assert!(!q.push(3));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn drop_oldest_keeps_freshest() {
        let mut q: LeakyQueue<u32, 2> = LeakyQueue::new(Overflow::DropOldest);
        for i in 1..=5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.pop(), Some(5));
    }

    #[test]
    fn never_exceeds_capacity() {
        let mut q: LeakyQueue<u8, 4> = LeakyQueue::new(Overflow::DropOldest);
        for i in 0..100 {
            q.push(i);
            assert!(q.len() <= q.capacity());
        }
        assert_eq!(q.dropped(), 96);
    }
}
