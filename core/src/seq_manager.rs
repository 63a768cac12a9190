//! `SeqManager`: maps a producer's sequence numbers onto a consumer's contiguous output sequence.
//!
//! Modelled on mediasoup's `RTC::SeqManager`. The output sequence of a consumer must stay contiguous
//! when the consumer is paused and resumed, when the producer it follows is paused, when the source
//! is replaced, and across the 16-bit wrap-around. The manager keeps an offset (`out = in + base`);
//! a *sync* makes the next input packet continue right after the highest sequence sent so far.
//! Packets that arrive out of order are mapped with the same offset, so a late packet keeps its
//! place; packets older than the last sync are refused (they belong to the previous offset).
//!
//! Mapping back (for NACKs) is exact or refused: an output number maps to the input with the
//! offset it was sent under. A sync from the same source (a resume) keeps the segment before it
//! mappable; a source switch forgets it, since those inputs are another producer's numbers.

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
    /// The pending sync starts another source: earlier outputs stop mapping back.
    source_change_pending: bool,
    /// The segment before the last sync, from the same source, so its outputs still map back.
    previous: Option<Segment>,
}

/// Outputs `first..=last` (serial order) sent under offset `base` (the current segment is open
/// past `last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    first: u16,
    last: u16,
    base: u16,
}

impl Segment {
    fn input_of(&self, output: u16) -> Option<SeqNo> {
        let within = self.last.wrapping_sub(output) <= self.last.wrapping_sub(self.first);
        within.then_some(SeqNo(output.wrapping_sub(self.base)))
    }
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

    /// A [`sync`](Self::sync) after which the inputs are another source's numbers: what was
    /// sent before it no longer maps back ([`output_to_input`](Self::output_to_input)).
    pub fn switch_source(&mut self) {
        if self.started {
            self.sync_pending = true;
            self.source_change_pending = true;
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
            let ended = self.current();
            self.previous = (!self.source_change_pending).then_some(ended);
            self.source_change_pending = false;
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
                // Outputs this far back are out of any store; the segment before is dropped
                // so its numbers can never alias the current one's.
                self.previous = None;
            }
        }
        Some(SeqNo(output))
    }

    /// Highest output sequence number produced so far (`None` before the first packet).
    pub fn max_output(&self) -> Option<SeqNo> {
        self.started.then_some(SeqNo(self.max_output))
    }

    /// Maps an output sequence number (e.g. from a consumer's NACK) back to the input sequence
    /// it was (or, past the newest, will be) sent for. `None` when it precedes the first output,
    /// was sent before a source switch (a pending one too: the consumer already follows the new
    /// source), or before the segment preceding the last sync.
    pub fn output_to_input(&self, output: SeqNo) -> Option<SeqNo> {
        if !self.started || self.source_change_pending {
            return None;
        }
        // A number past the newest output maps as its packet will be (a loss upstream the
        // consumer saw before the next packet); what precedes the segment is the one before.
        let current = self.current();
        if output.0.wrapping_sub(current.first) < 0x8000 {
            return Some(SeqNo(output.0.wrapping_sub(current.base)));
        }
        self.previous.and_then(|p| p.input_of(output.0))
    }

    /// The outputs since the last sync (within the window).
    fn current(&self) -> Segment {
        Segment { first: self.sync_input.wrapping_add(self.base), last: self.max_output, base: self.base }
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
        assert_eq!(m.output_to_input(SeqNo(11)), Some(SeqNo(1000)));
        assert_eq!(m.max_output(), Some(SeqNo(11)));
    }

    #[test]
    fn output_to_input_keeps_the_segment_before_a_resume() {
        let mut m = SeqManager::new();
        for s in 10..=12 {
            m.input(SeqNo(s));
        }
        m.sync();
        // Pending resume, same source: the outputs sent so far still map back.
        assert_eq!(m.output_to_input(SeqNo(11)), Some(SeqNo(11)));
        assert_eq!(m.input(SeqNo(50)), Some(SeqNo(13)));
        m.input(SeqNo(51));
        // Each output maps with the offset it was sent under.
        assert_eq!(m.output_to_input(SeqNo(12)), Some(SeqNo(12)));
        assert_eq!(m.output_to_input(SeqNo(10)), Some(SeqNo(10)));
        assert_eq!(m.output_to_input(SeqNo(13)), Some(SeqNo(50)));
        assert_eq!(m.output_to_input(SeqNo(14)), Some(SeqNo(51)));
        // Before the first output: never sent. Past the newest: as it will be sent.
        assert_eq!(m.output_to_input(SeqNo(9)), None);
        assert_eq!(m.output_to_input(SeqNo(15)), Some(SeqNo(52)));
        // Only one segment back is kept.
        m.sync();
        m.input(SeqNo(90));
        assert_eq!(m.output_to_input(SeqNo(13)), Some(SeqNo(50)));
        assert_eq!(m.output_to_input(SeqNo(12)), None);
    }

    #[test]
    fn output_to_input_forgets_what_was_sent_before_a_source_switch() {
        let mut m = SeqManager::new();
        for s in 100..=104 {
            m.input(SeqNo(s));
        }
        m.switch_source();
        // Already refused while the switch is pending: the consumer follows the new source.
        assert_eq!(m.output_to_input(SeqNo(104)), None);
        assert_eq!(m.input(SeqNo(60_000)), Some(SeqNo(105)));
        assert_eq!(m.input(SeqNo(60_001)), Some(SeqNo(106)));
        for old in 100..=104 {
            assert_eq!(m.output_to_input(SeqNo(old)), None, "{old} was the old source's");
        }
        assert_eq!(m.output_to_input(SeqNo(105)), Some(SeqNo(60_000)));
        assert_eq!(m.output_to_input(SeqNo(106)), Some(SeqNo(60_001)));
        // A resume after the switch keeps the new source's segment only.
        m.sync();
        assert_eq!(m.input(SeqNo(60_100)), Some(SeqNo(107)));
        assert_eq!(m.output_to_input(SeqNo(106)), Some(SeqNo(60_001)));
        assert_eq!(m.output_to_input(SeqNo(104)), None);
    }

    #[test]
    fn a_switch_before_the_first_packet_changes_nothing() {
        let mut m = SeqManager::new();
        m.switch_source();
        assert_eq!(m.input(SeqNo(7)), Some(SeqNo(7)));
        assert_eq!(m.output_to_input(SeqNo(7)), Some(SeqNo(7)));
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
