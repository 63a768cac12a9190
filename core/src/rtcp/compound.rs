//! Compound RTCP packets (RFC 3550 §6.1): a walker that validates every sub-packet header once.

use crate::rtcp::feedback::fmt;
use crate::rtcp::{
    count, field, packet_len, packet_type, Bye, Fir, Nack, Pli, ReceiverReport, RtcpError, Sdes,
    SenderReport, HEADER_LEN,
};

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
        // RFC 3550 §6.4.1: at least one common header.
        if b.len() < HEADER_LEN {
            return Err(RtcpError::TooShort);
        }
        let mut at = 0;
        while at < b.len() {
            let rest = &b[at..];
            if rest.len() < HEADER_LEN {
                return Err(RtcpError::TooShort);
            }
            // RFC 3550 §6.4.1: V = 2.
            if rest[field::VER_P_COUNT] >> 6 != 2 {
                return Err(RtcpError::BadVersion);
            }
            // RFC 5761 §4: RTCP packet types are 192..=223 (what tells them from RTP).
            if !(192..=223).contains(&rest[field::PACKET_TYPE]) {
                return Err(RtcpError::BadPacketType);
            }
            // RFC 3550 §6.4.1: `length` words, header included, within the buffer.
            let len = packet_len(rest);
            if rest.len() < len {
                return Err(RtcpError::TooShort);
            }
            // RFC 3550 §6.4.1: padding only on the last packet, its count within the packet.
            if rest[field::VER_P_COUNT] & 0x20 != 0 {
                let pad = usize::from(rest[len - 1]);
                if at + len != b.len() || pad == 0 || pad > len - HEADER_LEN {
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
    Ok(match (p[field::PACKET_TYPE], count(p)) {
        (packet_type::SR, _) => RtcpPacket::SenderReport(SenderReport::new_checked(p)?),
        (packet_type::RR, _) => RtcpPacket::ReceiverReport(ReceiverReport::new_checked(p)?),
        (packet_type::SDES, _) => RtcpPacket::Sdes(Sdes::new(p)),
        (packet_type::BYE, _) => RtcpPacket::Bye(Bye::new_checked(p)?),
        (packet_type::RTPFB, fmt::NACK) => RtcpPacket::Nack(Nack::new_checked(p)?),
        (packet_type::PSFB, fmt::PLI) => RtcpPacket::Pli(Pli::new_checked(p)?),
        (packet_type::PSFB, fmt::FIR) => RtcpPacket::Fir(Fir::new_checked(p)?),
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
        if rest.len() < HEADER_LEN {
            return None;
        }
        let p = rest.get(..packet_len(rest))?;
        self.at += p.len();
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
