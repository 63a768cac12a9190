//! Per-(consumer, stream) sequence accounting over a window of expected sequence numbers.

/// Tracks which of `expected` sequence numbers (`first..first + expected`) arrived.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    first: u64,
    expected: u64,
    seen: Vec<u64>,
    /// Distinct sequence numbers received.
    pub delivered: u64,
    /// Copies of a sequence number already received.
    pub duplicated: u64,
    /// Arrivals with a sequence number below the highest already received.
    pub reordered: u64,
    highest: Option<u64>,
}

impl SeqTracker {
    pub fn new(first: u64, expected: u64) -> Self {
        Self {
            first,
            expected,
            seen: vec![0; expected.div_ceil(64) as usize],
            delivered: 0,
            duplicated: 0,
            reordered: 0,
            highest: None,
        }
    }

    /// Records an arrival; sequence numbers outside the window are ignored (returns false).
    pub fn record(&mut self, seq: u64) -> bool {
        if seq < self.first || seq >= self.first + self.expected {
            return false;
        }
        let i = seq - self.first;
        let (word, bit) = ((i / 64) as usize, i % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicated += 1;
            return true;
        }
        self.seen[word] |= 1 << bit;
        self.delivered += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        true
    }

    /// Expected but never received.
    pub fn lost(&self) -> u64 {
        self.expected - self.delivered
    }

    pub fn expected(&self) -> u64 {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_reorders() {
        let mut t = SeqTracker::new(100, 10);
        for s in [100, 101, 103, 102, 102, 105, 99, 110, 109] {
            t.record(s);
        }
        assert_eq!(t.delivered, 6);
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.lost(), 4);
    }
}
