//! RTP (RFC 3550) packet views. (Minimal interim view; the full one lands from the packets branch.)

use crate::ids::{PayloadType, SeqNo, Ssrc};

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;

/// Why an RTP packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    TooShort,
    BadVersion,
    CsrcOverrun,
    ExtensionOverrun,
    BadExtensionElement,
    BadPadding,
}

/// A zero-copy RTP packet view.
#[derive(Debug, Clone)]
pub struct RtpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, RtpError> {
        let b = buffer.as_ref();
        if b.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        if b[0] >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let cc = usize::from(b[0] & 0x0f);
        let mut len = FIXED_HEADER_LEN + 4 * cc;
        if b.len() < len {
            return Err(RtpError::CsrcOverrun);
        }
        if b[0] & 0x10 != 0 {
            if b.len() < len + 4 {
                return Err(RtpError::ExtensionOverrun);
            }
            len += 4 + 4 * usize::from(u16::from_be_bytes([b[len + 2], b[len + 3]]));
            if b.len() < len {
                return Err(RtpError::ExtensionOverrun);
            }
        }
        if b[0] & 0x20 != 0 {
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || pad > b.len() - len {
                return Err(RtpError::BadPadding);
            }
        }
        Ok(Self { buffer })
    }
    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[1] & 0x80 != 0
    }
    pub fn payload_type(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[1] & 0x7f)
    }
    pub fn sequence_number(&self) -> SeqNo {
        let b = self.buffer.as_ref();
        SeqNo(u16::from_be_bytes([b[2], b[3]]))
    }
    pub fn timestamp(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    pub fn ssrc(&self) -> Ssrc {
        let b = self.buffer.as_ref();
        Ssrc(u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}
