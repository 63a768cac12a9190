//! Picture loss indication (RFC 4585 §6.3.1): PT=PSFB (206), FMT=1, no FCI.
//!
//! ```text
//! |V=2|P|  FMT=1  |   PT=206      |          length=2             |
//! |                  SSRC of packet sender                        |
//! |                  SSRC of media source                         |
//! ```

use crate::rtcp::feedback::fmt;
use crate::rtcp::{packet_type, Feedback, FeedbackRepr, RtcpError, FEEDBACK_HEADER_LEN};

/// A checked PLI view.
#[derive(Debug, Clone, Copy)]
pub struct Pli<'a> {
    fb: Feedback<'a>,
}

impl<'a> Pli<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        // RFC 4585 §6.3.1: the feedback header alone, no FCI.
        Ok(Self { fb: Feedback::new_checked(b)? })
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
}

/// An owned PLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PliRepr {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
}

impl PliRepr {
    pub const LEN: usize = FEEDBACK_HEADER_LEN;
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        FeedbackRepr {
            fmt: fmt::PLI,
            packet_type: packet_type::PSFB,
            sender_ssrc: self.sender_ssrc,
            media_ssrc: self.media_ssrc,
        }
        .emit(buf, 0)
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
