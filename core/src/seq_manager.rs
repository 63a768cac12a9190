//! `SeqManager`: maps a producer's sequence numbers onto a consumer's contiguous output sequence.
//!
//! Modelled on mediasoup's `RTC::SeqManager`. The output sequence of a consumer must stay contiguous
//! when the consumer is paused and resumed, when the producer it follows is paused, when the source
//! is replaced, and across the 16-bit wrap-around. The manager keeps an offset (`out = in + base`);
//! a *sync* makes the next input packet continue right after the highest sequence sent so far.
//! Packets that arrive out of order are mapped with the same offset, so a late packet keeps its
//! place; packets older than the last sync are refused (they belong to the previous offset).

use crate::ids::SeqNo;

/// How far behind the newest input a packet may arrive and still be forwarded.
const SYNC_WINDOW: u16 = 0x4000;

/// True when `a` is newer than `b` in RFC 3550 serial-number arithmetic (half-range rule).
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Per-consumer sequence rewriter.
#[derive(Debug, Clone, Default)]
pub struct SeqManager {
    /// Added (wrapping) to every input sequence number.
    base: u16,
    /// Highest output sequence number produced so far.
    max_output: u16,
    /// Highest input sequence number seen since the last sync.
    max_input: u16,
    /// The first input sequence number after the last sync; anything older is refused.
    sync_input: u16,
    started: bool,
    sync_pending: bool,
}

impl SeqManager {
    /// A manager that has produced nothing yet: the first input keeps its sequence number.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next input packet will be numbered `max_output + 1` (pause/resume, source switch).
    pub fn sync(&mut self) {
        if self.started {
            self.sync_pending = true;
        }
    }

    /// Maps an input sequence number; `None` when the packet predates the last sync (drop it).
    pub fn input(&mut self, input: SeqNo) -> Option<SeqNo> {
        let input = input.0;
        if !self.started {
            self.started = true;
            self.base = 0;
            self.max_input = input;
            self.sync_input = input;
            self.max_output = input;
            return Some(SeqNo(input));
        }
        if self.sync_pending {
            self.sync_pending = false;
            self.base = self.max_output.wrapping_add(1).wrapping_sub(input);
            self.max_input = input;
            self.sync_input = input;
            self.max_output = input.wrapping_add(self.base);
            return Some(SeqNo(self.max_output));
        }
        if input != self.sync_input && !seq_newer(input, self.sync_input) {
            return None;
        }
        let output = input.wrapping_add(self.base);
        if seq_newer(input, self.max_input) {
            self.max_input = input;
            self.max_output = output;
            // Keep the refusal point within a quarter of the sequence space behind the newest
            // input: serial-number comparison only works within half the space, so a fixed sync
            // point would start refusing every packet 32,768 packets later.
            if self.max_input.wrapping_sub(self.sync_input) > SYNC_WINDOW {
                self.sync_input = self.max_input.wrapping_sub(SYNC_WINDOW);
            }
        }
        Some(SeqNo(output))
    }

    /// Highest output sequence number produced so far (`None` before the first packet).
    pub fn max_output(&self) -> Option<SeqNo> {
        self.started.then_some(SeqNo(self.max_output))
    }

    /// Maps an output sequence number (e.g. from a consumer's NACK) back to the input sequence.
    pub fn output_to_input(&self, output: SeqNo) -> SeqNo {
        SeqNo(output.0.wrapping_sub(self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a table-driven scenario.
    enum Step {
        In(u16, Option<u16>),
        Sync,
    }
    use Step::*;

    fn run(steps: &[Step]) {
        let mut m = SeqManager::new();
        for (i, s) in steps.iter().enumerate() {
            match s {
                In(input, expected) => {
                    assert_eq!(m.input(SeqNo(*input)).map(|s| s.0), *expected, "step {i}")
                }
                Sync => m.sync(),
            }
        }
    }

    #[test]
    fn passthrough_in_order() {
        run(&[In(100, Some(100)), In(101, Some(101)), In(102, Some(102))]);
    }

    #[test]
    fn wraps_around() {
        run(&[In(65534, Some(65534)), In(65535, Some(65535)), In(0, Some(0)), In(1, Some(1))]);
    }

    #[test]
    fn pause_resume_continues_after_gap() {
        // Packets 3..=9 were not forwarded while paused; output stays contiguous.
        run(&[In(1, Some(1)), In(2, Some(2)), Sync, In(10, Some(3)), In(11, Some(4))]);
    }

    #[test]
    fn sync_across_wrap() {
        run(&[In(65535, Some(65535)), Sync, In(500, Some(0)), In(501, Some(1))]);
    }

    #[test]
    fn source_switch_to_lower_numbers() {
        run(&[In(40000, Some(40000)), In(40001, Some(40001)), Sync, In(7, Some(40002)), In(8, Some(40003))]);
    }

    #[test]
    fn reordered_packet_keeps_its_place() {
        run(&[In(10, Some(10)), In(12, Some(12)), In(11, Some(11)), In(13, Some(13))]);
    }

    #[test]
    fn packet_older_than_sync_is_refused() {
        run(&[In(10, Some(10)), Sync, In(20, Some(11)), In(19, None), In(21, Some(12))]);
    }

    #[test]
    fn sync_before_start_is_noop() {
        run(&[Sync, In(5, Some(5)), In(6, Some(6))]);
    }

    #[test]
    fn output_to_input_inverts() {
        let mut m = SeqManager::new();
        m.input(SeqNo(10));
        m.sync();
        let out = m.input(SeqNo(1000)).unwrap();
        assert_eq!(out, SeqNo(11));
        assert_eq!(m.output_to_input(SeqNo(11)), SeqNo(1000));
        assert_eq!(m.max_output(), Some(SeqNo(11)));
    }

    #[test]
    fn long_runs_and_many_wraps_are_never_refused() {
        let mut m = SeqManager::new();
        for i in 0..300_000u32 {
            let seq = (i as u16).wrapping_add(1234);
            assert_eq!(m.input(SeqNo(seq)), Some(SeqNo(seq)), "packet {i}");
        }
        // After a sync, too.
        m.sync();
        let base = m.input(SeqNo(7)).unwrap().0;
        for i in 1..200_000u32 {
            assert_eq!(m.input(SeqNo((i as u16).wrapping_add(7))), Some(SeqNo(base.wrapping_add(i as u16))));
        }
    }

    #[test]
    fn very_late_packets_are_refused_not_misnumbered() {
        let mut m = SeqManager::new();
        for s in 0..20_000u16 {
            m.input(SeqNo(s));
        }
        // 17,000 packets late: outside the window.
        assert_eq!(m.input(SeqNo(2_999)), None);
        // 1,000 late: still forwarded in place.
        assert_eq!(m.input(SeqNo(19_000)), Some(SeqNo(19_000)));
    }

    #[test]
    fn serial_arithmetic() {
        assert!(seq_newer(1, 0));
        assert!(seq_newer(0, 65535));
        assert!(!seq_newer(65535, 0));
        assert!(!seq_newer(5, 5));
    }
}
