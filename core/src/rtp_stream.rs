//! `RtpStreamRecv`: the sequence-number check of a producer's incoming stream, RFC 3550
//! Appendix A.1's `update_seq` as mediasoup's `RtpStream::UpdateSeq` implements it.
//!
//! A packet up to [`MAX_DROPOUT`] ahead of the highest sequence number seen is in order (a gap
//! is loss); up to [`MAX_MISORDER`] behind it is late or duplicated, and passes (the consumers'
//! `SeqManager`s place it). Anything else is a jump: one such packet alone is an *outlier*,
//! dropped without moving the stream (a spoofed or stray packet must not re-sync it); only when
//! the very next packet follows it (`bad_seq`, RFC 3550 A.1) is it a restarted sender, and the
//! stream re-syncs on that second packet.

use crate::ids::SeqNo;

/// How far ahead of the highest sequence number a packet is still in order (RFC 3550 A.1,
/// mediasoup `MaxDropout`).
pub const MAX_DROPOUT: u16 = 3000;
/// How far behind the highest sequence number a packet is still late rather than a jump
/// (RFC 3550 A.1, mediasoup `MaxMisorder`).
pub const MAX_MISORDER: u16 = 1500;

/// What [`RtpStreamRecv::update_seq`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// In order, late within `MAX_MISORDER`, or a duplicate: forward it.
    Accepted,
    /// The second of two consecutive packets after a jump: the sender restarted its numbering.
    /// Forward it; the consumers continue their output from here (a source switch).
    Resynced,
    /// A lone jump: drop it; the stream stays where it was.
    Outlier,
}

/// A producer's receive-side sequence state.
#[derive(Debug, Clone, Default)]
pub struct RtpStreamRecv {
    started: bool,
    /// Highest sequence number accepted.
    max_seq: u16,
    /// The sequence number that would confirm the last outlier (RFC 3550 A.1 `bad_seq`).
    bad_seq: Option<u16>,
}

impl RtpStreamRecv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one packet's sequence number and updates the stream (RFC 3550 A.1 `update_seq`).
    pub fn update_seq(&mut self, seq: SeqNo) -> SeqCheck {
        let seq = seq.0;
        if !self.started {
            self.init(seq);
            return SeqCheck::Accepted;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            self.max_seq = seq;
            SeqCheck::Accepted
        } else if udelta <= 0u16.wrapping_sub(MAX_MISORDER) {
            // A very large jump: believe it only if the next packet follows it.
            if self.bad_seq == Some(seq) {
                self.init(seq);
                SeqCheck::Resynced
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                SeqCheck::Outlier
            }
        } else {
            // Late or duplicate, within MAX_MISORDER.
            SeqCheck::Accepted
        }
    }

    /// Highest sequence number accepted (`None` before the first packet).
    pub fn max_seq(&self) -> Option<SeqNo> {
        self.started.then_some(SeqNo(self.max_seq))
    }

    fn init(&mut self, seq: u16) {
        self.started = true;
        self.max_seq = seq;
        self.bad_seq = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(stream: &mut RtpStreamRecv, seqs: &[u16]) -> Vec<SeqCheck> {
        seqs.iter().map(|s| stream.update_seq(SeqNo(*s))).collect()
    }

    #[test]
    fn in_order_gaps_late_and_wrap_are_accepted() {
        let mut s = RtpStreamRecv::new();
        let r = run(&mut s, &[65000, 65001, 65535, 0, 2999, 1500, 5998, 4499]);
        assert!(r.iter().all(|c| *c == SeqCheck::Accepted), "{r:?}");
        assert_eq!(s.max_seq(), Some(SeqNo(5998)));
    }

    #[test]
    fn a_lone_jump_is_an_outlier_and_does_not_move_the_stream() {
        let mut s = RtpStreamRecv::new();
        run(&mut s, &[100, 101]);
        // The finding's attack: one packet at max + 0x7FFF.
        assert_eq!(s.update_seq(SeqNo(101u16.wrapping_add(0x7fff))), SeqCheck::Outlier);
        assert_eq!(s.max_seq(), Some(SeqNo(101)));
        assert_eq!(run(&mut s, &[102, 103]), [SeqCheck::Accepted; 2]);
        // Just past the dropout, and just past the misorder window behind: jumps too.
        assert_eq!(s.update_seq(SeqNo(103 + MAX_DROPOUT)), SeqCheck::Outlier);
        assert_eq!(s.update_seq(SeqNo(103u16.wrapping_sub(MAX_MISORDER))), SeqCheck::Outlier);
        assert_eq!(s.update_seq(SeqNo(103u16.wrapping_sub(MAX_MISORDER - 1))), SeqCheck::Accepted);
    }

    #[test]
    fn two_consecutive_packets_after_a_jump_resync() {
        let mut s = RtpStreamRecv::new();
        run(&mut s, &[40000, 40001]);
        assert_eq!(run(&mut s, &[7, 8, 9]), [SeqCheck::Outlier, SeqCheck::Resynced, SeqCheck::Accepted]);
        assert_eq!(s.max_seq(), Some(SeqNo(9)));
        // The old numbering is now the jump.
        assert_eq!(s.update_seq(SeqNo(40002)), SeqCheck::Outlier);
    }

    proptest! {
        /// A stream with one outlier injected anywhere loses only the outlier.
        #[test]
        fn one_outlier_loses_only_itself(
            start in any::<u16>(),
            len in 2usize..5000,
            at in 1usize..5000,
            jump in MAX_DROPOUT..=0u16.wrapping_sub(MAX_MISORDER),
        ) {
            let at = 1 + at % (len - 1);
            let mut s = RtpStreamRecv::new();
            for i in 0..len {
                let seq = start.wrapping_add(i as u16);
                if i == at {
                    let outlier = start.wrapping_add(at as u16).wrapping_sub(1).wrapping_add(jump);
                    prop_assert_eq!(s.update_seq(SeqNo(outlier)), SeqCheck::Outlier);
                }
                prop_assert_eq!(s.update_seq(SeqNo(seq)), SeqCheck::Accepted, "packet {}", i);
            }
        }
    }
}
