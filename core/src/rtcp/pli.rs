//! Picture loss indication (RFC 4585 §6.3.1): PT=PSFB (206), FMT=1, no FCI.
//!
//! ```text
//! |V=2|P|  FMT=1  |   PT=206      |          length=2             |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! ```

use crate::rtcp::{be32, emit_header, packet_type, RtcpError};

/// A checked PLI view.
#[derive(Debug, Clone, Copy)]
pub struct Pli<'a> {
    b: &'a [u8],
}

impl<'a> Pli<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        if b.len() < 12 {
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
}

/// An owned PLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PliRepr {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
}

impl PliRepr {
    pub const LEN: usize = 12;
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        emit_header(buf, 1, packet_type::PSFB, Self::LEN);
        buf[4..8].copy_from_slice(&self.sender_ssrc.to_be_bytes());
        buf[8..12].copy_from_slice(&self.media_ssrc.to_be_bytes());
        Self::LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_pli() {
        let b = [0x81, 0xCE, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x04, 0xD2];
        let p = Pli::new_checked(&b).unwrap();
        assert_eq!((p.sender_ssrc(), p.media_ssrc()), (7, 1234));
        let mut out = [0u8; 12];
        PliRepr { sender_ssrc: 7, media_ssrc: 1234 }.emit(&mut out);
        assert_eq!(out, b);
    }
}
