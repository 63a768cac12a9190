//! Goodbye (RFC 3550 §6.6).
//!
//! ```text
//! |V=2|P|    SC   |   PT=BYE=203  |             length            |
//! |                           SSRC/CSRC                           |
//! :                              ...                              :
//! |     length    |               reason for leaving            ... (opt)
//! ```

use crate::rtcp::{be32, count, RtcpError};

/// Byte positions of a BYE (RFC 3550 §6.6).
mod field {
    /// The first of SC SSRC/CSRC identifiers.
    pub const SSRCS: usize = 4;
    /// Length of one identifier.
    pub const SSRC_LEN: usize = 4;
}

/// A checked BYE view.
#[derive(Debug, Clone, Copy)]
pub struct Bye<'a> {
    b: &'a [u8],
}

impl<'a> Bye<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        // RFC 3550 §6.6: SC identifiers follow the common header.
        let sc = usize::from(b.first().map_or(0, |x| x & 0x1f));
        if b.len() < field::SSRCS + field::SSRC_LEN * sc {
            return Err(RtcpError::BadCount);
        }
        Ok(Self { b })
    }
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let b = self.b;
        (0..usize::from(count(b))).map(move |i| {
            let at = field::SSRCS + field::SSRC_LEN * i;
            be32(b, at..at + field::SSRC_LEN)
        })
    }
    /// The optional reason text.
    pub fn reason(&self) -> Option<&'a [u8]> {
        // RFC 3550 §6.6: an optional length-prefixed reason after the identifiers.
        let at = field::SSRCS + field::SSRC_LEN * usize::from(count(self.b));
        let len = usize::from(*self.b.get(at)?);
        self.b.get(at + 1..at + 1 + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bye_with_reason() {
        let b = [0x81, 0xCB, 0x00, 0x03, 0x00, 0x00, 0x00, 0x2A, 0x03, b'b', b'y', b'e'];
        let bye = Bye::new_checked(&b).unwrap();
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![42]);
        assert_eq!(bye.reason(), Some(&b"bye"[..]));
        assert!(Bye::new_checked(&[0x83, 0xCB, 0x00, 0x01, 0, 0, 0, 1]).is_err());
    }
}
