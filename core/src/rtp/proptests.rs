//! Properties: parsing never panics on arbitrary bytes; Repr → emit → parse round-trips.

use proptest::prelude::*;

use crate::ids::{PayloadType, SeqNo, Ssrc};
use crate::rtp::{RtpPacket, RtpRepr};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = RtpPacket::new_checked(&bytes[..]) {
            let _ = (p.marker(), p.payload_type(), p.sequence_number(), p.timestamp(), p.ssrc());
            let _ = (p.header_len(), p.payload().len(), p.padding_len(), p.extension_profile());
            for (id, data) in p.extensions() {
                prop_assert!(id > 0 && data.len() <= bytes.len());
            }
            for i in 0..20 {
                let _ = p.csrc(i);
            }
            prop_assert!(p.header_len() + p.padding_len() <= bytes.len());
            let repr = RtpRepr::parse(&p);
            prop_assert!(repr.is_ok() || p.header_len() > 256);
        }
    }

    #[test]
    fn emit_then_parse_round_trips(
        marker in any::<bool>(), pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(), ssrc in any::<u32>(),
        csrcs in proptest::collection::vec(any::<u32>(), 0..15),
        ext in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        padding in 0u8..8,
    ) {
        let extension = ext.map(|mut d| {
            d.truncate(d.len() / 4 * 4);
            (0x1234u16, heapless::Vec::from_slice(&d).unwrap())
        });
        let repr = RtpRepr {
            marker, payload_type: PayloadType(pt), sequence_number: SeqNo(seq), timestamp: ts, ssrc: Ssrc(ssrc),
            csrcs: heapless::Vec::from_slice(&csrcs).unwrap(), extension, padding_len: padding,
        };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut buf, &payload);
        let p = RtpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(RtpRepr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
    }
}

// Structured generators: valid RFC 8285 extension blocks built from their elements, then mutated.
// Random bytes essentially never form a valid block, so they test only the first checks.

/// A header extension block in one of RFC 8285's two forms, with padding octets between elements.
#[derive(Debug, Clone)]
struct ExtBlock {
    two_byte: bool,
    /// `(id, value, padding octets after it)`.
    elements: Vec<(u8, Vec<u8>, usize)>,
}

impl ExtBlock {
    fn profile(&self) -> u16 {
        if self.two_byte {
            0x1000
        } else {
            crate::rtp::extension::ONE_BYTE_PROFILE
        }
    }

    /// The block's data, padded to 32 bits (RFC 3550 §5.3.1).
    fn data(&self) -> Vec<u8> {
        let mut d = Vec::new();
        for (id, value, pad) in &self.elements {
            if self.two_byte {
                d.extend_from_slice(&[*id, value.len() as u8]);
            } else {
                // RFC 8285 §4.2: 4-bit id, 4-bit length - 1.
                d.push((id << 4) | (value.len() as u8 - 1));
            }
            d.extend_from_slice(value);
            d.extend(std::iter::repeat_n(0, *pad));
        }
        d.resize(d.len().div_ceil(4) * 4, 0);
        d
    }
}

fn ext_block() -> impl Strategy<Value = ExtBlock> {
    let one = proptest::collection::vec(
        (1u8..=14, proptest::collection::vec(any::<u8>(), 1..=16), 0usize..3),
        0..6,
    )
    .prop_map(|elements| ExtBlock { two_byte: false, elements });
    let two = proptest::collection::vec(
        (1u8..=255, proptest::collection::vec(any::<u8>(), 0..=40), 0usize..3),
        0..6,
    )
    .prop_map(|elements| ExtBlock { two_byte: true, elements });
    prop_oneof![one, two]
}

fn packet_with(block: &ExtBlock, payload: &[u8]) -> Option<Vec<u8>> {
    let data = block.data();
    let repr = RtpRepr {
        marker: false,
        payload_type: PayloadType(96),
        sequence_number: SeqNo(7),
        timestamp: 9,
        ssrc: Ssrc(1),
        csrcs: heapless::Vec::new(),
        extension: Some((block.profile(), heapless::Vec::from_slice(&data).ok()?)),
        padding_len: 0,
    };
    let mut buf = vec![0u8; repr.buffer_len(payload.len())];
    repr.emit(&mut buf, payload);
    Some(buf)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn generated_extension_blocks_parse_back_element_by_element(
        block in ext_block(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Blocks too long for the inline extension buffer are not what this property is about.
        let Some(buf) = packet_with(&block, &payload) else { return Ok(()) };
        let p = RtpPacket::new_checked(&buf[..]);
        prop_assert!(p.is_ok(), "{:?}: {:?}", block, p.err());
        let p = p.unwrap();
        let got: Vec<(u8, Vec<u8>)> = p.extensions().map(|(id, v)| (id, v.to_vec())).collect();
        let want: Vec<(u8, Vec<u8>)> = block.elements.iter().map(|(id, v, _)| (*id, v.clone())).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn mutated_extension_blocks_never_panic_and_elements_stay_inside(
        block in ext_block(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let Some(mut buf) = packet_with(&block, b"payload") else { return Ok(()) };
        // Mutate the extension header and block only (bytes 12..), where RFC 8285 parsing lives.
        let span = buf.len() - 12;
        for (i, x) in &flips {
            buf[12 + i % span] ^= x;
        }
        if let Some(c) = cut {
            buf.truncate(12 + c % span);
        }
        if let Ok(p) = RtpPacket::new_checked(&buf[..]) {
            let header = p.header_len();
            prop_assert!(header <= buf.len());
            for (id, value) in p.extensions() {
                prop_assert!(id > 0);
                // Every element lies inside the header.
                let start = value.as_ptr() as usize - buf.as_ptr() as usize;
                prop_assert!(start + value.len() <= header);
            }
            prop_assert!(header + p.padding_len() + p.payload().len() <= buf.len());
        }
    }
}
