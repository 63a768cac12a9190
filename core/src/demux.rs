//! Demultiplexing one port's datagrams (RFC 7983 §7, RFC 5761 §4).

/// What a datagram on a media port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Rtp,
    Rtcp,
    Stun,
    Dtls,
    Unknown,
}

/// Classifies by the first byte (RFC 7983 §7: 0–3 STUN, 20–63 DTLS, 128–191 RTP/RTCP) and, for
/// RTP/RTCP, by the second byte: RTCP packet types 192–223 (RFC 5761 §4; with the marker bit
/// they read as 64–95 in the low 7 bits).
pub fn classify(buf: &[u8]) -> PacketClass {
    match (buf.first(), buf.get(1)) {
        (Some(0..=3), _) => PacketClass::Stun,
        (Some(20..=63), _) => PacketClass::Dtls,
        (Some(128..=191), Some(b1)) if (64..=95).contains(&(b1 & 0x7f)) => PacketClass::Rtcp,
        (Some(128..=191), Some(_)) => PacketClass::Rtp,
        _ => PacketClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_rfc_7983_ranges() {
        assert_eq!(classify(&[0x80, 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 200]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x81, 206]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x00, 0x01]), PacketClass::Stun);
        assert_eq!(classify(&[22, 0xfe]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80]), PacketClass::Unknown);
        assert_eq!(classify(&[]), PacketClass::Unknown);
        assert_eq!(classify(&[0x10, 0]), PacketClass::Unknown);
    }
}
