//! Source description (RFC 3550 §6.5).
//!
//! ```text
//! |V=2|P|    SC   |  PT=SDES=202  |             length            |
//! |                          SSRC/CSRC_1                          |
//! |  type (8)  | length (8) | text ... | ... | 0 (end) | pad to 32 bits
//! |                          SSRC/CSRC_2 ...                      |
//! ```

use crate::rtcp::be32;

/// Byte positions of an SDES packet (RFC 3550 §6.5).
mod field {
    /// The first chunk: an SSRC/CSRC, then its items.
    pub const CHUNKS: usize = 4;
    /// Length of a chunk's SSRC/CSRC.
    pub const SSRC_LEN: usize = 4;
}

/// An SDES view. Chunks and items are walked leniently: iteration stops at the first chunk
/// that does not fit (SDES is informational; shardcast passes it through, never trusts it).
#[derive(Debug, Clone, Copy)]
pub struct Sdes<'a> {
    b: &'a [u8],
}

/// One SDES chunk.
#[derive(Debug, Clone, Copy)]
pub struct SdesChunk<'a> {
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> Sdes<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    /// Declared source count.
    pub fn source_count(&self) -> u8 {
        self.b.first().map_or(0, |b| b & 0x1f)
    }
    pub fn chunks(&self) -> impl Iterator<Item = SdesChunk<'a>> + 'a {
        let b = self.b;
        let mut pos = field::CHUNKS;
        let count = usize::from(self.source_count());
        (0..count).map_while(move |_| {
            if pos + field::SSRC_LEN > b.len() {
                return None;
            }
            let ssrc = be32(b, pos..pos + field::SSRC_LEN);
            let start = pos + field::SSRC_LEN;
            let mut at = start;
            // Items until a zero type octet, then pad to the next 32-bit boundary.
            loop {
                let t = *b.get(at)?;
                if t == 0 {
                    break;
                }
                let len = usize::from(*b.get(at + 1)?);
                at += 2 + len;
                if at > b.len() {
                    return None;
                }
            }
            let items = &b[start..at];
            pos = (at + 1).div_ceil(4) * 4;
            Some(SdesChunk { ssrc, items })
        })
    }
}

impl<'a> SdesChunk<'a> {
    /// `(type, text)` items (1 = CNAME, RFC 3550 §6.5.1).
    pub fn items(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let b = self.items;
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let t = *b.get(at)?;
            let len = usize::from(*b.get(at + 1)?);
            let text = b.get(at + 2..at + 2 + len)?;
            at += 2 + len;
            Some((t, text))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_sdes_with_cname() {
        // SC=1, ssrc 0x11111111, CNAME "alice", end, padding.
        let b = [
            0x81, 0xCA, 0x00, 0x04, 0x11, 0x11, 0x11, 0x11, 0x01, 0x05, b'a', b'l', b'i', b'c', b'e', 0x00,
            0x00, 0x00, 0x00, 0x00,
        ];
        let s = Sdes::new(&b);
        let chunks: Vec<_> = s.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].ssrc, 0x11111111);
        assert_eq!(chunks[0].items().collect::<Vec<_>>(), vec![(1, &b"alice"[..])]);
    }

    #[test]
    fn truncated_chunk_stops_iteration() {
        let b = [0x82, 0xCA, 0x00, 0x02, 0x11, 0x11, 0x11, 0x11, 0x01, 0x09, b'a'];
        assert_eq!(Sdes::new(&b).chunks().count(), 0);
    }
}
