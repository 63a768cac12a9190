//! Generic NACK (RFC 4585 §6.2.1): transport-layer feedback, PT=RTPFB (205), FMT=1.
//!
//! ```text
//! |V=2|P|  FMT=1  |   PT=205      |          length               |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! |            PID                |             BLP               |  (one or more)
//! ```

use heapless::Vec;

use crate::rtcp::{be32, emit_header, packet_type, RtcpError};

/// A checked generic NACK view.
#[derive(Debug, Clone, Copy)]
pub struct Nack<'a> {
    b: &'a [u8],
}

impl<'a> Nack<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        // At least one FCI entry (RFC 4585 §6.2.1).
        if b.len() < 16 {
            return Err(RtcpError::TooShort);
        }
        Ok(Self { b })
    }
    pub fn sender_ssrc(&self) -> u32 {
        be32(self.b, 4)
    }
    pub fn media_ssrc(&self) -> u32 {
        be32(self.b, 8)
    }
    /// `(pid, blp)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.b[12..]
            .chunks_exact(4)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u16::from_be_bytes([c[2], c[3]])))
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
        12 + 4 * self.pairs.len()
    }
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        emit_header(buf, 1, packet_type::RTPFB, len);
        buf[4..8].copy_from_slice(&self.sender_ssrc.to_be_bytes());
        buf[8..12].copy_from_slice(&self.media_ssrc.to_be_bytes());
        for (i, (pid, blp)) in self.pairs.iter().enumerate() {
            buf[12 + 4 * i..14 + 4 * i].copy_from_slice(&pid.to_be_bytes());
            buf[14 + 4 * i..16 + 4 * i].copy_from_slice(&blp.to_be_bytes());
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
