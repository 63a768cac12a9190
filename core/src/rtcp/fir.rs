//! Full intra request (RFC 5104 §4.3.1): PT=PSFB (206), FMT=4.
//!
//! ```text
//! |V=2|P|  FMT=4  |   PT=206      |          length               |
//! |                  SSRC of packet sender                        |
//! |             SSRC of media source (unused, 0)                  |
//! |                              SSRC                             |  FCI, one or more
//! | Seq nr.       |    Reserved                                   |
//! ```

use heapless::Vec;

use crate::rtcp::feedback::{field as fb_field, fmt};
use crate::rtcp::{be32, packet_type, put32, Feedback, FeedbackRepr, RtcpError, FEEDBACK_HEADER_LEN};

/// Byte positions inside one FCI entry (RFC 5104 §4.3.1.1).
mod field {
    use core::ops::Range;
    /// The SSRC of the media sender asked for a decoder refresh point.
    pub const SSRC: Range<usize> = 0..4;
    /// Command sequence number.
    pub const SEQ_NR: usize = 4;
    pub const RESERVED: Range<usize> = 5..8;
    /// Length of one entry.
    pub const ENTRY_LEN: usize = 8;
}

/// A checked FIR view.
#[derive(Debug, Clone, Copy)]
pub struct Fir<'a> {
    fb: Feedback<'a>,
}

impl<'a> Fir<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        let fb = Feedback::new_checked(b)?;
        // RFC 5104 §4.3.1.2: the FCI holds one or more entries.
        if fb.fci().len() < field::ENTRY_LEN {
            return Err(RtcpError::TooShort);
        }
        Ok(Self { fb })
    }
    /// The feedback header (its media SSRC is unused, RFC 5104 §4.3.1.2).
    pub fn feedback(&self) -> Feedback<'a> {
        self.fb
    }
    pub fn sender_ssrc(&self) -> u32 {
        self.fb.sender_ssrc()
    }
    /// `(ssrc, command sequence number)` entries.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u8)> + 'a {
        self.fb.fci().chunks_exact(field::ENTRY_LEN).map(|e| (be32(e, field::SSRC), e[field::SEQ_NR]))
    }
}

/// An owned FIR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirRepr {
    pub sender_ssrc: u32,
    pub entries: Vec<(u32, u8), 16>,
}

impl FirRepr {
    pub fn buffer_len(&self) -> usize {
        FEEDBACK_HEADER_LEN + field::ENTRY_LEN * self.entries.len()
    }
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        // RFC 5104 §4.3.1.2: the media SSRC field is unused and set to 0.
        let header = FeedbackRepr {
            fmt: fmt::FIR,
            packet_type: packet_type::PSFB,
            sender_ssrc: self.sender_ssrc,
            media_ssrc: 0,
        };
        let len = header.emit(buf, field::ENTRY_LEN * self.entries.len());
        for (i, (ssrc, seq)) in self.entries.iter().enumerate() {
            let entry = &mut buf[fb_field::FCI + field::ENTRY_LEN * i..];
            put32(entry, field::SSRC, *ssrc);
            entry[field::SEQ_NR] = *seq;
            entry[field::RESERVED].fill(0);
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_fir() {
        let b =
            [0x84, 0xCE, 0x00, 0x04, 0, 0, 0, 9, 0, 0, 0, 0, 0x00, 0x00, 0x30, 0x39, 0x05, 0x00, 0x00, 0x00];
        let f = Fir::new_checked(&b).unwrap();
        assert_eq!(f.sender_ssrc(), 9);
        assert_eq!(f.entries().collect::<std::vec::Vec<_>>(), vec![(12345, 5)]);
        let mut out = [0u8; 20];
        let mut entries = Vec::new();
        entries.push((12345, 5)).unwrap();
        FirRepr { sender_ssrc: 9, entries }.emit(&mut out);
        assert_eq!(out, b);
    }
}
