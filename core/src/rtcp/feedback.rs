//! The common header of feedback messages (RFC 4585 §6.1), shared by the generic NACK (PT=RTPFB),
//! PLI and FIR (PT=PSFB): the views of those three wrap a [`Feedback`], and their `Repr`s emit a
//! [`FeedbackRepr`] before their FCI.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|   FMT   |       PT      |          length               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  SSRC of packet sender                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  SSRC of media source                         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! :            Feedback Control Information (FCI)                 :
//! ```

use crate::rtcp::{be32, emit_header, put32, RtcpError};

/// Byte positions of the feedback header (after the common header, RFC 4585 §6.1).
pub mod field {
    use core::ops::Range;
    pub const SENDER_SSRC: Range<usize> = 4..8;
    pub const MEDIA_SSRC: Range<usize> = 8..12;
    /// Start of the feedback control information, which runs to the end of the packet.
    pub const FCI: usize = 12;
}

/// Length of the feedback header, before the FCI.
pub const FEEDBACK_HEADER_LEN: usize = field::FCI;

/// FMT values of the feedback messages shardcast reads (RFC 4585 §6.2, §6.3; RFC 5104 §4.3).
pub mod fmt {
    /// Generic NACK, PT=RTPFB (RFC 4585 §6.2.1).
    pub const NACK: u8 = 1;
    /// Picture loss indication, PT=PSFB (RFC 4585 §6.3.1).
    pub const PLI: u8 = 1;
    /// Full intra request, PT=PSFB (RFC 5104 §4.3.1).
    pub const FIR: u8 = 4;
}

/// A checked view of a feedback message's header; the FCI is left to the message's own view.
#[derive(Debug, Clone, Copy)]
pub struct Feedback<'a> {
    b: &'a [u8],
}

impl<'a> Feedback<'a> {
    /// `b` is one whole sub-packet (common header included).
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        // RFC 4585 §6.1: both SSRCs follow the common header; the FCI may be empty (PLI).
        if b.len() < FEEDBACK_HEADER_LEN {
            return Err(RtcpError::TooShort);
        }
        Ok(Self { b })
    }
    /// The feedback message type (RFC 4585 §6.1: FMT, where other packets have a count).
    pub fn fmt(&self) -> u8 {
        self.b[crate::rtcp::field::VER_P_COUNT] & 0x1f
    }
    /// RTPFB (205) or PSFB (206).
    pub fn packet_type(&self) -> u8 {
        self.b[crate::rtcp::field::PACKET_TYPE]
    }
    pub fn sender_ssrc(&self) -> u32 {
        be32(self.b, field::SENDER_SSRC)
    }
    pub fn media_ssrc(&self) -> u32 {
        be32(self.b, field::MEDIA_SSRC)
    }
    /// The feedback control information.
    pub fn fci(&self) -> &'a [u8] {
        &self.b[field::FCI..]
    }
}

/// An owned feedback header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedbackRepr {
    pub fmt: u8,
    pub packet_type: u8,
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
}

impl FeedbackRepr {
    pub fn parse(f: &Feedback<'_>) -> Self {
        Self {
            fmt: f.fmt(),
            packet_type: f.packet_type(),
            sender_ssrc: f.sender_ssrc(),
            media_ssrc: f.media_ssrc(),
        }
    }
    /// Writes the header of a message whose FCI is `fci_len` bytes (a multiple of 4) into `buf`
    /// (at least [`FEEDBACK_HEADER_LEN`] + `fci_len`); returns the whole message's length. The
    /// caller writes the FCI at [`field::FCI`].
    pub fn emit(&self, buf: &mut [u8], fci_len: usize) -> usize {
        let len = FEEDBACK_HEADER_LEN + fci_len;
        emit_header(buf, self.fmt, self.packet_type, len);
        put32(buf, field::SENDER_SSRC, self.sender_ssrc);
        put32(buf, field::MEDIA_SSRC, self.media_ssrc);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::packet_type;

    #[test]
    fn header_round_trips_and_short_input_is_refused() {
        // A PLI: FMT 1, PSFB, sender 7, media 1234, no FCI.
        let b = [0x81, 0xCE, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x04, 0xD2];
        let f = Feedback::new_checked(&b).unwrap();
        let repr = FeedbackRepr::parse(&f);
        assert_eq!(
            repr,
            FeedbackRepr { fmt: fmt::PLI, packet_type: packet_type::PSFB, sender_ssrc: 7, media_ssrc: 1234 }
        );
        assert!(f.fci().is_empty());
        let mut out = [0u8; 12];
        assert_eq!(repr.emit(&mut out, 0), 12);
        assert_eq!(out, b);
        assert_eq!(Feedback::new_checked(&b[..11]).unwrap_err(), RtcpError::TooShort);
    }
}
