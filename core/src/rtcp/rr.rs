//! Receiver report (RFC 3550 §6.4.2).
//!
//! ```text
//! |V=2|P|    RC   |   PT=RR=201   |             length            |
//! |                     SSRC of packet sender                     |
//! |                 report blocks (24 octets each)                |
//! ```

use heapless::Vec;

use crate::rtcp::report_block::{
    check_report_count, collect_reports, emit_reports, report_blocks, ReportBlock, ReportBlockRepr,
    REPORT_BLOCK_LEN,
};
use crate::rtcp::{be32, emit_header, packet_type, put32, RtcpError};

/// Byte positions of the receiver report (RFC 3550 §6.4.2).
mod field {
    use core::ops::Range;
    /// SSRC of packet sender.
    pub const SSRC: Range<usize> = 4..8;
    /// The first report block; the fixed part ends here.
    pub const REPORTS: usize = 8;
}

const FIXED: usize = field::REPORTS;

/// A checked RR view.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverReport<'a> {
    b: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, RtcpError> {
        check_report_count(b, FIXED)?;
        Ok(Self { b })
    }
    pub fn ssrc(&self) -> u32 {
        be32(self.b, field::SSRC)
    }
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock<'a>> + 'a {
        report_blocks(self.b, FIXED)
    }
}

/// An owned RR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReportRepr {
    pub ssrc: u32,
    pub reports: Vec<ReportBlockRepr, 31>,
}

impl ReceiverReportRepr {
    pub fn parse(rr: &ReceiverReport<'_>) -> Self {
        let reports = collect_reports(rr.report_blocks());
        Self { ssrc: rr.ssrc(), reports }
    }
    pub fn buffer_len(&self) -> usize {
        FIXED + REPORT_BLOCK_LEN * self.reports.len()
    }
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        emit_header(buf, self.reports.len() as u8, packet_type::RR, len);
        put32(buf, field::SSRC, self.ssrc);
        emit_reports(buf, FIXED, &self.reports);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A golden RR from 0x01020304 with one block about 0x0A0B0C0D: cumulative lost -1 (a
    /// duplicate-heavy stream reports a negative count, RFC 3550 §6.4.1).
    const GOLDEN: [u8; 32] = [
        0x81, 0xC9, 0x00, 0x07, 0x01, 0x02, 0x03, 0x04, 0x0A, 0x0B, 0x0C, 0x0D, 0x00, 0xFF, 0xFF, 0xFF, 0x00,
        0x01, 0x00, 0x05, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn golden_receiver_report() {
        let rr = ReceiverReport::new_checked(&GOLDEN).unwrap();
        assert_eq!(rr.ssrc(), 0x01020304);
        let b = rr.report_blocks().next().unwrap();
        assert_eq!(
            (b.ssrc(), b.cumulative_lost(), b.highest_seq(), b.jitter()),
            (0x0A0B0C0D, -1, 0x10005, 7)
        );
        let mut out = [0u8; 32];
        ReceiverReportRepr::parse(&rr).emit(&mut out);
        assert_eq!(out, GOLDEN);
    }
}
