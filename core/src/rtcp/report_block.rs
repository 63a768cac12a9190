//! Report block (RFC 3550 §6.4.1), shared by SR and RR.

use crate::rtcp::be32;

/// Size of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;

/// A view of one 24-octet report block.
#[derive(Debug, Clone, Copy)]
pub struct ReportBlock<'a> {
    b: &'a [u8],
}

impl<'a> ReportBlock<'a> {
    /// `b` must be at least 24 octets (guaranteed by the SR/RR views).
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    pub fn ssrc(&self) -> u32 {
        be32(self.b, 0)
    }
    pub fn fraction_lost(&self) -> u8 {
        self.b[4]
    }
    /// Signed 24-bit cumulative number of packets lost.
    pub fn cumulative_lost(&self) -> i32 {
        let v = u32::from_be_bytes([0, self.b[5], self.b[6], self.b[7]]);
        ((v << 8) as i32) >> 8
    }
    pub fn highest_seq(&self) -> u32 {
        be32(self.b, 8)
    }
    pub fn jitter(&self) -> u32 {
        be32(self.b, 12)
    }
    pub fn last_sr(&self) -> u32 {
        be32(self.b, 16)
    }
    pub fn delay_since_last_sr(&self) -> u32 {
        be32(self.b, 20)
    }
    pub fn repr(&self) -> ReportBlockRepr {
        ReportBlockRepr {
            ssrc: self.ssrc(),
            fraction_lost: self.fraction_lost(),
            cumulative_lost: self.cumulative_lost(),
            highest_seq: self.highest_seq(),
            jitter: self.jitter(),
            last_sr: self.last_sr(),
            delay_since_last_sr: self.delay_since_last_sr(),
        }
    }
}

/// An owned report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlockRepr {
    pub ssrc: u32,
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

impl ReportBlockRepr {
    pub(crate) fn emit(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        b[4] = self.fraction_lost;
        let lost = (self.cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1) as u32) & 0x00ff_ffff;
        b[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        b[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        b[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// Checks that a SR/RR of `fixed` header bytes holds the report blocks its count announces
/// (RFC 3550 §6.4.1, §6.4.2).
pub(crate) fn check_report_count(b: &[u8], fixed: usize) -> Result<(), crate::rtcp::RtcpError> {
    if b.len() < fixed {
        return Err(crate::rtcp::RtcpError::TooShort);
    }
    if b.len() < fixed + REPORT_BLOCK_LEN * usize::from(b[0] & 0x1f) {
        return Err(crate::rtcp::RtcpError::BadCount);
    }
    Ok(())
}

/// The report blocks after `fixed` header bytes of a checked SR/RR.
pub(crate) fn report_blocks(b: &[u8], fixed: usize) -> impl Iterator<Item = ReportBlock<'_>> + '_ {
    (0..usize::from(b[0] & 0x1f)).map(move |i| ReportBlock::new(&b[fixed + i * REPORT_BLOCK_LEN..]))
}

/// Parses the report blocks of a SR/RR view into owned reprs (RC ≤ 31 = capacity).
pub(crate) fn collect_reports<'a>(
    blocks: impl Iterator<Item = ReportBlock<'a>>,
) -> heapless::Vec<ReportBlockRepr, 31> {
    let mut reports = heapless::Vec::new();
    for r in blocks {
        let _ = reports.push(r.repr());
    }
    reports
}

/// Writes report blocks after `fixed` header bytes.
pub(crate) fn emit_reports(buf: &mut [u8], fixed: usize, reports: &[ReportBlockRepr]) {
    for (i, r) in reports.iter().enumerate() {
        r.emit(&mut buf[fixed + i * REPORT_BLOCK_LEN..]);
    }
}
