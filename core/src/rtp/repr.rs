//! `RtpRepr`: the parsed, owned form of an RTP header, for tests and generators.

use heapless::Vec;

use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::rtp::{RtpError, RtpPacket, FIXED_HEADER_LEN};

/// An RTP header and the sizes of what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpRepr {
    pub marker: bool,
    pub payload_type: PayloadType,
    pub sequence_number: SeqNo,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    pub csrcs: Vec<u32, 15>,
    /// `(profile, data)`; data is a whole number of 32-bit words.
    pub extension: Option<(u16, Vec<u8, 256>)>,
    pub padding_len: u8,
}

impl RtpRepr {
    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &RtpPacket<T>) -> Result<Self, RtpError> {
        let mut csrcs = Vec::new();
        for i in 0..usize::from(p.csrc_count()) {
            // CC ≤ 15 = capacity, and `csrc(i)` exists for i < CC after `new_checked`.
            let _ = csrcs.push(p.csrc(i).ok_or(RtpError::CsrcOverrun)?);
        }
        let extension = match p.extension_profile() {
            Some(profile) => {
                let start = FIXED_HEADER_LEN + 4 * usize::from(p.csrc_count()) + 4;
                let data = &p.as_bytes()[start..p.header_len()];
                Some((profile, Vec::from_slice(data).map_err(|_| RtpError::ExtensionOverrun)?))
            }
            None => None,
        };
        Ok(Self {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence_number: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            csrcs,
            extension,
            padding_len: p.padding_len() as u8,
        })
    }

    /// Header length when emitted.
    pub fn header_len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.as_ref().map_or(0, |(_, d)| 4 + d.len())
    }

    /// Total length with `payload_len` payload octets.
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len + usize::from(self.padding_len)
    }

    /// Writes header, `payload` and padding into `buf` (at least `buffer_len` long).
    /// Extension data must be a multiple of 4 octets.
    pub fn emit(&self, buf: &mut [u8], payload: &[u8]) {
        let h = self.header_len();
        buf[0] = 0x80
            | (u8::from(self.padding_len > 0) << 5)
            | (u8::from(self.extension.is_some()) << 4)
            | self.csrcs.len() as u8;
        buf[1] = (u8::from(self.marker) << 7) | (self.payload_type.0 & 0x7f);
        buf[2..4].copy_from_slice(&self.sequence_number.0.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        let mut at = FIXED_HEADER_LEN;
        for c in &self.csrcs {
            buf[at..at + 4].copy_from_slice(&c.to_be_bytes());
            at += 4;
        }
        if let Some((profile, data)) = &self.extension {
            buf[at..at + 2].copy_from_slice(&profile.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            buf[at + 4..at + 4 + data.len()].copy_from_slice(data);
        }
        buf[h..h + payload.len()].copy_from_slice(payload);
        let pad = usize::from(self.padding_len);
        if pad > 0 {
            let end = h + payload.len() + pad;
            buf[h + payload.len()..end].fill(0);
            buf[end - 1] = self.padding_len;
        }
    }
}
