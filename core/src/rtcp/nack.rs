//! Generic NACK (RFC 4585 §6.2.1): transport-layer feedback, PT=RTPFB (205), FMT=1.
//!
//! ```text
//! |V=2|P|  FMT=1  |   PT=205      |          length               |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! |            PID                |             BLP               |  (one or more)
//! ```

use heapless::Vec;

use crate::rtcp::feedback::{field as fb_field, fmt};
use crate::rtcp::{be16, packet_type, put16, Feedback, FeedbackRepr, RtcpError, FEEDBACK_HEADER_LEN};

/// Byte positions inside one FCI entry (RFC 4585 §6.2.1).
mod field {
    use core::ops::Range;
    /// Packet ID: the first lost sequence number.
    pub const PID: Range<usize> = 0..2;
    /// Bitmask of following lost packets: bit i set means PID + i + 1 is lost.
    pub const BLP: Range<usize> = 2..4;
    /// Length of one entry.
    pub const ENTRY_LEN: usize = 4;
}

/// A checked generic NACK view.
#[derive(Debug, Clone, Copy)]
pub struct Nack<'a> {
    fb: Feedback<'a>,
}

impl<'a> Nack<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        let fb = Feedback::new_checked(b)?;
        // RFC 4585 §6.2.1: at least one FCI entry.
        if fb.fci().len() < field::ENTRY_LEN {
            return Err(RtcpError::TooShort);
        }
        Ok(Self { fb })
    }
    /// The feedback header.
    pub fn feedback(&self) -> Feedback<'a> {
        self.fb
    }
    pub fn sender_ssrc(&self) -> u32 {
        self.fb.sender_ssrc()
    }
    pub fn media_ssrc(&self) -> u32 {
        self.fb.media_ssrc()
    }
    /// `(pid, blp)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.fb.fci().chunks_exact(field::ENTRY_LEN).map(|e| (be16(e, field::PID), be16(e, field::BLP)))
    }
    /// Every sequence number reported lost: PID, and PID+i+1 for each bit i of BLP.
    pub fn lost_sequence_numbers(&self) -> impl Iterator<Item = u16> + 'a {
        self.pairs().flat_map(|(pid, blp)| {
            std::iter::once(pid)
                .chain((0..16u16).filter(move |i| blp & (1 << i) != 0).map(move |i| pid.wrapping_add(i + 1)))
        })
    }
}

/// An owned generic NACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NackRepr {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    pub pairs: Vec<(u16, u16), 64>,
}

impl NackRepr {
    pub fn parse(n: &Nack<'_>) -> Self {
        let mut pairs = Vec::new();
        for p in n.pairs() {
            if pairs.push(p).is_err() {
                break;
            }
        }
        Self { sender_ssrc: n.sender_ssrc(), media_ssrc: n.media_ssrc(), pairs }
    }
    /// Builds the pairs for a sorted list of lost sequence numbers.
    pub fn from_lost(sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) -> Self {
        let mut pairs: Vec<(u16, u16), 64> = Vec::new();
        for &seq in lost {
            if let Some((pid, blp)) = pairs.last_mut() {
                let d = seq.wrapping_sub(*pid);
                if (1..=16).contains(&d) {
                    *blp |= 1 << (d - 1);
                    continue;
                }
            }
            if pairs.push((seq, 0)).is_err() {
                break;
            }
        }
        Self { sender_ssrc, media_ssrc, pairs }
    }
    pub fn buffer_len(&self) -> usize {
        FEEDBACK_HEADER_LEN + field::ENTRY_LEN * self.pairs.len()
    }
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let header = FeedbackRepr {
            fmt: fmt::NACK,
            packet_type: packet_type::RTPFB,
            sender_ssrc: self.sender_ssrc,
            media_ssrc: self.media_ssrc,
        };
        let len = header.emit(buf, field::ENTRY_LEN * self.pairs.len());
        for (i, (pid, blp)) in self.pairs.iter().enumerate() {
            let entry = &mut buf[fb_field::FCI + field::ENTRY_LEN * i..];
            put16(entry, field::PID, *pid);
            put16(entry, field::BLP, *blp);
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_nack_expands_bitmask() {
        // PID 100, BLP 0b101: 100, 101, 103 lost.
        let b = [0x81, 0xCD, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x64, 0x00, 0x05];
        let n = Nack::new_checked(&b).unwrap();
        assert_eq!((n.sender_ssrc(), n.media_ssrc()), (1, 2));
        assert_eq!(n.lost_sequence_numbers().collect::<std::vec::Vec<_>>(), vec![100, 101, 103]);
        let mut out = [0u8; 16];
        NackRepr::parse(&n).emit(&mut out);
        assert_eq!(out, b);
    }

    #[test]
    fn from_lost_packs_and_wraps() {
        let r = NackRepr::from_lost(9, 8, &[65535, 0, 1, 40]);
        assert_eq!(&r.pairs[..], &[(65535, 0b11), (40, 0)]);
    }
}
