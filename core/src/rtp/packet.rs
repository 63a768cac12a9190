//! The RTP packet view.

use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::rtp::extension::{validate_extensions, ExtensionIter};

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// Byte positions of the RTP header fields.
pub mod field {
    use core::ops::Range;
    /// V(2) P(1) X(1) CC(4).
    pub const VER_P_X_CC: usize = 0;
    /// M(1) PT(7).
    pub const M_PT: usize = 1;
    pub const SEQ: Range<usize> = 2..4;
    pub const TIMESTAMP: Range<usize> = 4..8;
    pub const SSRC: Range<usize> = 8..12;
    /// First CSRC identifier (RFC 3550 §5.1), then the extension header if X is set.
    pub const CSRC_START: usize = 12;
}

/// Why an RTP packet was refused. Stable names for drop counters via [`RtpError::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the fixed header.
    TooShort,
    /// Version is not 2.
    BadVersion,
    /// The CSRC list runs past the end.
    CsrcOverrun,
    /// The header extension runs past the end.
    ExtensionOverrun,
    /// An RFC 8285 element's length runs past its extension block.
    BadExtensionElement,
    /// Padding count is zero or larger than the payload.
    BadPadding,
}

impl RtpError {
    pub fn as_str(self) -> &'static str {
        match self {
            RtpError::TooShort => "too_short",
            RtpError::BadVersion => "bad_version",
            RtpError::CsrcOverrun => "csrc_overrun",
            RtpError::ExtensionOverrun => "extension_overrun",
            RtpError::BadExtensionElement => "bad_extension_element",
            RtpError::BadPadding => "bad_padding",
        }
    }
}

impl core::fmt::Display for RtpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A zero-copy view of an RTP packet.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           timestamp                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           synchronization source (SSRC) identifier            |
/// +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// |            contributing source (CSRC) identifiers             |
/// |                             ....                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      defined by profile       |           length              |  if X (§5.3.1)
/// |                        header extension                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     payload ...       | padding | pad count   |  if P
/// ```
#[derive(Debug, Clone)]
pub struct RtpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    /// Wraps without checking; accessors may panic on short input. Use [`Self::new_checked`].
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps and validates once; afterwards no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self, RtpError> {
        let p = Self { buffer };
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), RtpError> {
        let b = self.buffer.as_ref();
        // RFC 3550 §5.1: the fixed header is 12 octets.
        if b.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        // RFC 3550 §5.1: V = 2.
        if b[field::VER_P_X_CC] >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        // RFC 3550 §5.1: CC CSRC identifiers follow the fixed header.
        let csrc_end = FIXED_HEADER_LEN + 4 * usize::from(b[0] & 0x0f);
        if b.len() < csrc_end {
            return Err(RtpError::CsrcOverrun);
        }
        let mut header_end = csrc_end;
        if b[0] & 0x10 != 0 {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words, then the data.
            if b.len() < csrc_end + 4 {
                return Err(RtpError::ExtensionOverrun);
            }
            let words = usize::from(u16::from_be_bytes([b[csrc_end + 2], b[csrc_end + 3]]));
            header_end = csrc_end + 4 + 4 * words;
            if b.len() < header_end {
                return Err(RtpError::ExtensionOverrun);
            }
            let profile = u16::from_be_bytes([b[csrc_end], b[csrc_end + 1]]);
            validate_extensions(profile, &b[csrc_end + 4..header_end])?;
        }
        if b[0] & 0x20 != 0 {
            // RFC 3550 §5.1: the last octet counts the padding octets, itself included.
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || pad > b.len() - header_end {
                return Err(RtpError::BadPadding);
            }
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.b()[field::VER_P_X_CC] >> 6
    }
    pub fn padding(&self) -> bool {
        self.b()[field::VER_P_X_CC] & 0x20 != 0
    }
    pub fn extension(&self) -> bool {
        self.b()[field::VER_P_X_CC] & 0x10 != 0
    }
    pub fn csrc_count(&self) -> u8 {
        self.b()[field::VER_P_X_CC] & 0x0f
    }
    pub fn marker(&self) -> bool {
        self.b()[field::M_PT] & 0x80 != 0
    }
    pub fn payload_type(&self) -> PayloadType {
        PayloadType(self.b()[field::M_PT] & 0x7f)
    }
    pub fn sequence_number(&self) -> SeqNo {
        let b = self.b();
        SeqNo(u16::from_be_bytes([b[2], b[3]]))
    }
    pub fn timestamp(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    pub fn ssrc(&self) -> Ssrc {
        let b = self.b();
        Ssrc(u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
    }

    /// CSRC `i`, if present.
    pub fn csrc(&self, i: usize) -> Option<u32> {
        if i >= usize::from(self.csrc_count()) {
            return None;
        }
        let at = field::CSRC_START + 4 * i;
        let b = self.b().get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn csrc_end(&self) -> usize {
        field::CSRC_START + 4 * usize::from(self.csrc_count())
    }

    /// Fixed header + CSRCs + header extension.
    pub fn header_len(&self) -> usize {
        let end = self.csrc_end();
        if !self.extension() {
            return end;
        }
        let b = self.b();
        // Checked in `new_checked`: the extension header fits.
        end + 4 + 4 * usize::from(u16::from_be_bytes([b[end + 2], b[end + 3]]))
    }

    /// The extension profile (0xBEDE one-byte, 0x100x two-byte, or another), if X is set.
    pub fn extension_profile(&self) -> Option<u16> {
        let end = self.csrc_end();
        self.extension().then(|| u16::from_be_bytes([self.b()[end], self.b()[end + 1]]))
    }

    /// RFC 8285 elements `(id, data)`; empty for other profiles. Allocates nothing.
    pub fn extensions(&self) -> ExtensionIter<'_> {
        match self.extension_profile() {
            Some(profile) => ExtensionIter::new(profile, &self.b()[self.csrc_end() + 4..self.header_len()]),
            None => ExtensionIter::new(0, &[]),
        }
    }

    /// Padding octets at the end (0 without P).
    pub fn padding_len(&self) -> usize {
        if self.padding() {
            usize::from(self.b()[self.b().len() - 1])
        } else {
            0
        }
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        &b[self.header_len()..b.len() - self.padding_len()]
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.b()
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtpPacket<T> {
    pub fn set_payload_type(&mut self, pt: PayloadType) {
        let b = self.buffer.as_mut();
        b[field::M_PT] = (b[field::M_PT] & 0x80) | (pt.0 & 0x7f);
    }
    pub fn set_marker(&mut self, marker: bool) {
        let b = self.buffer.as_mut();
        b[field::M_PT] = (b[field::M_PT] & 0x7f) | (u8::from(marker) << 7);
    }
    pub fn set_sequence_number(&mut self, seq: SeqNo) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.0.to_be_bytes());
    }
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&ts.to_be_bytes());
    }
    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.buffer.as_mut()[field::SSRC].copy_from_slice(&ssrc.0.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with CC=1, a one-byte extension (id 1 len 1, id 2 len 2) and 4 padding octets.
    const FULL: [u8; 36] = [
        0xB1, 0xE0, 0x12, 0x34, // V=2 P=1 X=1 CC=1, M=1 PT=96, seq 0x1234
        0x00, 0x01, 0x00, 0x02, // timestamp 65538
        0xDE, 0xAD, 0xBE, 0xEF, // ssrc
        0x01, 0x02, 0x03, 0x04, // csrc
        0xBE, 0xDE, 0x00, 0x02, // one-byte profile, 2 words
        0x10, 0xAA, 0x21, 0xBB, 0xCC, 0x00, 0x00, 0x00, // id1 len1, id2 len2, padding
        b'p', b'a', b'y', b'!', // payload
        0x00, 0x00, 0x00, 0x04, // padding, count 4
    ];

    #[test]
    fn parses_every_field() {
        let p = RtpPacket::new_checked(&FULL[..]).unwrap();
        assert_eq!((p.version(), p.padding(), p.extension(), p.csrc_count()), (2, true, true, 1));
        assert!(p.marker());
        assert_eq!(p.payload_type(), PayloadType(96));
        assert_eq!(p.sequence_number(), SeqNo(0x1234));
        assert_eq!(p.timestamp(), 65538);
        assert_eq!(p.ssrc(), Ssrc(0xDEADBEEF));
        assert_eq!(p.csrc(0), Some(0x01020304));
        assert_eq!(p.csrc(1), None);
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.extension_profile(), Some(0xBEDE));
        let ext: Vec<(u8, &[u8])> = p.extensions().collect();
        assert_eq!(ext, vec![(1, &[0xAA][..]), (2, &[0xBB, 0xCC][..])]);
        assert_eq!(p.padding_len(), 4);
        assert_eq!(p.payload(), b"pay!");
    }

    #[test]
    fn refuses_malformed_input_with_named_reasons() {
        assert_eq!(RtpPacket::new_checked(&FULL[..11]).unwrap_err(), RtpError::TooShort);
        let mut v1 = FULL;
        v1[0] = 0x71;
        assert_eq!(RtpPacket::new_checked(&v1[..]).unwrap_err(), RtpError::BadVersion);
        let mut cc = FULL;
        cc[0] = 0x8F; // 15 CSRCs do not fit
        assert_eq!(RtpPacket::new_checked(&cc[..]).unwrap_err(), RtpError::CsrcOverrun);
        let mut ext = FULL;
        ext[19] = 0x40; // 64 words
        assert_eq!(RtpPacket::new_checked(&ext[..]).unwrap_err(), RtpError::ExtensionOverrun);
        let mut elem = FULL;
        elem[22] = 0x2F; // id 2 with 16 bytes overruns the block
        assert_eq!(RtpPacket::new_checked(&elem[..]).unwrap_err(), RtpError::BadExtensionElement);
        let mut pad = FULL;
        pad[35] = 0;
        assert_eq!(RtpPacket::new_checked(&pad[..]).unwrap_err(), RtpError::BadPadding);
        pad[35] = 200;
        assert_eq!(RtpPacket::new_checked(&pad[..]).unwrap_err(), RtpError::BadPadding);
        assert_eq!(RtpError::BadPadding.as_str(), "bad_padding");
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut buf = FULL;
        let mut p = RtpPacket::new_checked(&mut buf[..]).unwrap();
        p.set_payload_type(PayloadType(100));
        p.set_sequence_number(SeqNo(7));
        p.set_timestamp(99);
        p.set_ssrc(Ssrc(5));
        p.set_marker(false);
        assert_eq!(p.payload_type(), PayloadType(100));
        assert!(!p.marker());
        assert_eq!((p.sequence_number(), p.timestamp(), p.ssrc()), (SeqNo(7), 99, Ssrc(5)));
        assert_eq!(p.payload(), b"pay!");
    }
}
