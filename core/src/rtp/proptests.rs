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
