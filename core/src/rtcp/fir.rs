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

use crate::rtcp::{be32, emit_header, packet_type, RtcpError};

/// A checked FIR view.
#[derive(Debug, Clone, Copy)]
pub struct Fir<'a> {
    b: &'a [u8],
}

impl<'a> Fir<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        if b.len() < 20 {
            return Err(RtcpError::TooShort);
        }
        Ok(Self { b })
    }
    pub fn sender_ssrc(&self) -> u32 {
        be32(self.b, 4)
    }
    /// `(ssrc, command sequence number)` entries.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u8)> + 'a {
        self.b[12..].chunks_exact(8).map(|c| (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), c[4]))
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
        12 + 8 * self.entries.len()
    }
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        emit_header(buf, 4, packet_type::PSFB, len);
        buf[4..8].copy_from_slice(&self.sender_ssrc.to_be_bytes());
        buf[8..12].fill(0);
        for (i, (ssrc, seq)) in self.entries.iter().enumerate() {
            let at = 12 + 8 * i;
            buf[at..at + 4].copy_from_slice(&ssrc.to_be_bytes());
            buf[at + 4] = *seq;
            buf[at + 5..at + 8].fill(0);
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
