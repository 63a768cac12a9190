//! Sender report (RFC 3550 §6.4.1).
//!
//! ```text
//! |V=2|P|    RC   |   PT=SR=200   |             length            |
//! |                         SSRC of sender                        |
//! |              NTP timestamp, most significant word             |
//! |             NTP timestamp, least significant word             |
//! |                         RTP timestamp                         |
//! |                     sender's packet count                     |
//! |                      sender's octet count                     |
//! |                 report blocks (24 octets each)                |
//! ```

use heapless::Vec;

use crate::rtcp::report_block::{
    check_report_count, collect_reports, emit_reports, report_blocks, ReportBlock, ReportBlockRepr,
    REPORT_BLOCK_LEN,
};
use crate::rtcp::{be32, emit_header, packet_type, put32, RtcpError};

/// Byte positions of the sender report (RFC 3550 §6.4.1).
mod field {
    use core::ops::Range;
    /// SSRC of sender.
    pub const SSRC: Range<usize> = 4..8;
    /// NTP timestamp, most then least significant word.
    pub const NTP: Range<usize> = 8..16;
    pub const NTP_MSW: Range<usize> = 8..12;
    pub const NTP_LSW: Range<usize> = 12..16;
    pub const RTP_TIMESTAMP: Range<usize> = 16..20;
    pub const PACKET_COUNT: Range<usize> = 20..24;
    pub const OCTET_COUNT: Range<usize> = 24..28;
    /// The first report block; the fixed part ends here.
    pub const REPORTS: usize = 28;
}

const FIXED: usize = field::REPORTS;

/// A checked SR view.
#[derive(Debug, Clone, Copy)]
pub struct SenderReport<'a> {
    b: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// `b` is one whole sub-packet (header included).
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        check_report_count(b, FIXED)?;
        Ok(Self { b })
    }
    pub fn ssrc(&self) -> u32 {
        be32(self.b, field::SSRC)
    }
    pub fn ntp(&self) -> u64 {
        (u64::from(be32(self.b, field::NTP_MSW)) << 32) | u64::from(be32(self.b, field::NTP_LSW))
    }
    pub fn rtp_timestamp(&self) -> u32 {
        be32(self.b, field::RTP_TIMESTAMP)
    }
    pub fn packet_count(&self) -> u32 {
        be32(self.b, field::PACKET_COUNT)
    }
    pub fn octet_count(&self) -> u32 {
        be32(self.b, field::OCTET_COUNT)
    }
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock<'a>> + 'a {
        report_blocks(self.b, FIXED)
    }
}

/// An owned SR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReportRepr {
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlockRepr, 31>,
}

impl SenderReportRepr {
    pub fn parse(sr: &SenderReport<'_>) -> Self {
        let reports = collect_reports(sr.report_blocks());
        Self {
            ssrc: sr.ssrc(),
            ntp: sr.ntp(),
            rtp_timestamp: sr.rtp_timestamp(),
            packet_count: sr.packet_count(),
            octet_count: sr.octet_count(),
            reports,
        }
    }
    pub fn buffer_len(&self) -> usize {
        FIXED + REPORT_BLOCK_LEN * self.reports.len()
    }
    /// Writes into `buf` (at least `buffer_len`); returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        emit_header(buf, self.reports.len() as u8, packet_type::SR, len);
        put32(buf, field::SSRC, self.ssrc);
        buf[field::NTP].copy_from_slice(&self.ntp.to_be_bytes());
        put32(buf, field::RTP_TIMESTAMP, self.rtp_timestamp);
        put32(buf, field::PACKET_COUNT, self.packet_count);
        put32(buf, field::OCTET_COUNT, self.octet_count);
        emit_reports(buf, FIXED, &self.reports);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A golden SR: ssrc 0x11223344, NTP 0xE000000080000000, RTP ts 160000, 10 packets,
    /// 1600 octets, one report block about 0xAABBCCDD (5 lost, -> fraction 0x40).
    pub const GOLDEN: [u8; 52] = [
        0x81, 0xC8, 0x00, 0x0C, 0x11, 0x22, 0x33, 0x44, 0xE0, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x71, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x06, 0x40, 0xAA, 0xBB, 0xCC, 0xDD, 0x40, 0x00,
        0x00, 0x05, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x20, 0x12, 0x34, 0x56, 0x78, 0x00, 0x01, 0x00,
        0x00,
    ];

    #[test]
    fn golden_sender_report() {
        let sr = SenderReport::new_checked(&GOLDEN).unwrap();
        assert_eq!(sr.ssrc(), 0x11223344);
        assert_eq!(sr.ntp(), 0xE000_0000_8000_0000);
        assert_eq!(sr.rtp_timestamp(), 160_000);
        assert_eq!((sr.packet_count(), sr.octet_count()), (10, 1600));
        let rb: std::vec::Vec<_> = sr.report_blocks().map(|r| r.repr()).collect();
        assert_eq!(
            rb,
            vec![ReportBlockRepr {
                ssrc: 0xAABBCCDD,
                fraction_lost: 0x40,
                cumulative_lost: 5,
                highest_seq: 0x1000,
                jitter: 0x20,
                last_sr: 0x12345678,
                delay_since_last_sr: 0x10000,
            }]
        );
        let mut out = [0u8; 52];
        assert_eq!(SenderReportRepr::parse(&sr).emit(&mut out), 52);
        assert_eq!(out, GOLDEN);
    }

    #[test]
    fn count_beyond_length_is_refused() {
        let mut b = GOLDEN;
        b[0] = 0x82;
        assert_eq!(SenderReport::new_checked(&b).unwrap_err(), RtcpError::BadCount);
        assert_eq!(SenderReport::new_checked(&b[..20]).unwrap_err(), RtcpError::TooShort);
    }
}
