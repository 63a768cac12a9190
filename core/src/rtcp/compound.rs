//! Compound RTCP packets (RFC 3550 §6.1): a walker that validates every sub-packet header once.

use crate::rtcp::{packet_type, Bye, Fir, Nack, Pli, ReceiverReport, RtcpError, Sdes, SenderReport};

/// One sub-packet of a compound packet.
#[derive(Debug, Clone, Copy)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport<'a>),
    ReceiverReport(ReceiverReport<'a>),
    Sdes(Sdes<'a>),
    Bye(Bye<'a>),
    Nack(Nack<'a>),
    Pli(Pli<'a>),
    Fir(Fir<'a>),
    /// APP, other feedback types and unknown types, passed through untouched.
    Other {
        packet_type: u8,
        fmt: u8,
        data: &'a [u8],
    },
}

/// A checked compound packet.
#[derive(Debug, Clone, Copy)]
pub struct RtcpCompound<'a> {
    b: &'a [u8],
}

impl<'a> RtcpCompound<'a> {
    /// Validates every sub-packet: version 2 (§6.4.1), packet type 192..=223 (RFC 5761 §4),
    /// `length` within the buffer, padding only on the last sub-packet (§6.4.1), and the
    /// type-specific minimum sizes. RFC 3550 §6.1's "first packet is SR or RR" is not enforced
    /// (RFC 5506 reduced-size RTCP sends lone feedback packets).
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        if b.len() < 4 {
            return Err(RtcpError::TooShort);
        }
        let mut at = 0;
        while at < b.len() {
            let rest = &b[at..];
            if rest.len() < 4 {
                return Err(RtcpError::TooShort);
            }
            if rest[0] >> 6 != 2 {
                return Err(RtcpError::BadVersion);
            }
            if !(192..=223).contains(&rest[1]) {
                return Err(RtcpError::BadPacketType);
            }
            let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
            if rest.len() < len {
                return Err(RtcpError::TooShort);
            }
            if rest[0] & 0x20 != 0 {
                let pad = usize::from(rest[len - 1]);
                if at + len != b.len() || pad == 0 || pad > len - 4 {
                    return Err(RtcpError::BadPadding);
                }
            }
            parse_one(&rest[..len])?;
            at += len;
        }
        Ok(Self { b })
    }

    /// The sub-packets, in order.
    pub fn iter(&self) -> RtcpIter<'a> {
        RtcpIter { b: self.b, at: 0 }
    }
}

fn parse_one(p: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let fmt = p[0] & 0x1f;
    Ok(match (p[1], fmt) {
        (packet_type::SR, _) => RtcpPacket::SenderReport(SenderReport::new_checked(p)?),
        (packet_type::RR, _) => RtcpPacket::ReceiverReport(ReceiverReport::new_checked(p)?),
        (packet_type::SDES, _) => RtcpPacket::Sdes(Sdes::new(p)),
        (packet_type::BYE, _) => RtcpPacket::Bye(Bye::new_checked(p)?),
        (packet_type::RTPFB, 1) => RtcpPacket::Nack(Nack::new_checked(p)?),
        (packet_type::PSFB, 1) => RtcpPacket::Pli(Pli::new_checked(p)?),
        (packet_type::PSFB, 4) => RtcpPacket::Fir(Fir::new_checked(p)?),
        (packet_type, fmt) => RtcpPacket::Other { packet_type, fmt, data: p },
    })
}

/// Iterator over a checked compound packet's sub-packets.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<RtcpPacket<'a>> {
        let rest = self.b.get(self.at..)?;
        if rest.len() < 4 {
            return None;
        }
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let p = rest.get(..len)?;
        self.at += len;
        // Validated by `new_checked`; a failure here would end the walk, never panic.
        parse_one(p).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_rr_sdes_pli_app() {
        let mut b = Vec::new();
        b.extend_from_slice(&[0x80, 0xC9, 0x00, 0x01, 0, 0, 0, 5]); // RR, no blocks
        b.extend_from_slice(&[0x81, 0xCA, 0x00, 0x02, 0, 0, 0, 5, 0x01, 0x01, b'x', 0x00]); // SDES
        b.extend_from_slice(&[0x81, 0xCE, 0x00, 0x02, 0, 0, 0, 5, 0, 0, 0, 6]); // PLI
        b.extend_from_slice(&[0x80, 0xCC, 0x00, 0x02, 0, 0, 0, 5, b'n', b'a', b'm', b'e']); // APP
        let c = RtcpCompound::new_checked(&b).unwrap();
        let kinds: Vec<&str> = c
            .iter()
            .map(|p| match p {
                RtcpPacket::ReceiverReport(_) => "rr",
                RtcpPacket::Sdes(_) => "sdes",
                RtcpPacket::Pli(p) => {
                    assert_eq!(p.media_ssrc(), 6);
                    "pli"
                }
                RtcpPacket::Other { packet_type: 204, .. } => "app",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["rr", "sdes", "pli", "app"]);
    }

    #[test]
    fn malformed_compounds_are_refused() {
        assert_eq!(RtcpCompound::new_checked(&[0x80, 0xC9]).unwrap_err(), RtcpError::TooShort);
        assert_eq!(
            RtcpCompound::new_checked(&[0x40, 0xC9, 0, 1, 0, 0, 0, 5]).unwrap_err(),
            RtcpError::BadVersion
        );
        assert_eq!(
            RtcpCompound::new_checked(&[0x80, 0x60, 0, 1, 0, 0, 0, 5]).unwrap_err(),
            RtcpError::BadPacketType
        );
        assert_eq!(
            RtcpCompound::new_checked(&[0x80, 0xC9, 0, 9, 0, 0, 0, 5]).unwrap_err(),
            RtcpError::TooShort
        );
        // Padding on a packet that is not last.
        let mut b = vec![0xA0, 0xC9, 0x00, 0x02, 0, 0, 0, 5, 0, 0, 0, 4];
        b.extend_from_slice(&[0x80, 0xC9, 0x00, 0x01, 0, 0, 0, 5]);
        assert_eq!(RtcpCompound::new_checked(&b).unwrap_err(), RtcpError::BadPadding);
        // A PLI too short for its type.
        assert_eq!(
            RtcpCompound::new_checked(&[0x81, 0xCE, 0, 1, 0, 0, 0, 5]).unwrap_err(),
            RtcpError::TooShort
        );
    }
}
