//! Report block (RFC 3550 §6.4.1), shared by SR and RR.

use crate::rtcp::{be32, count, put32, RtcpError};

/// Byte positions inside one report block (RFC 3550 §6.4.1).
mod field {
    use core::ops::Range;
    /// SSRC of the source this block is about.
    pub const SSRC: Range<usize> = 0..4;
    pub const FRACTION_LOST: usize = 4;
    /// Cumulative number of packets lost, signed 24 bits.
    pub const CUMULATIVE_LOST: Range<usize> = 5..8;
    /// Extended highest sequence number received.
    pub const HIGHEST_SEQ: Range<usize> = 8..12;
    /// Interarrival jitter.
    pub const JITTER: Range<usize> = 12..16;
    pub const LAST_SR: Range<usize> = 16..20;
    pub const DELAY_SINCE_LAST_SR: Range<usize> = 20..24;
}

/// Size of one report block.
pub const REPORT_BLOCK_LEN: usize = field::DELAY_SINCE_LAST_SR.end;

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
        be32(self.b, field::SSRC)
    }
    pub fn fraction_lost(&self) -> u8 {
        self.b[field::FRACTION_LOST]
    }
    /// Signed 24-bit cumulative number of packets lost.
    pub fn cumulative_lost(&self) -> i32 {
        let b = &self.b[field::CUMULATIVE_LOST];
        let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        ((v << 8) as i32) >> 8
    }
    pub fn highest_seq(&self) -> u32 {
        be32(self.b, field::HIGHEST_SEQ)
    }
    pub fn jitter(&self) -> u32 {
        be32(self.b, field::JITTER)
    }
    pub fn last_sr(&self) -> u32 {
        be32(self.b, field::LAST_SR)
    }
    pub fn delay_since_last_sr(&self) -> u32 {
        be32(self.b, field::DELAY_SINCE_LAST_SR)
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
        put32(b, field::SSRC, self.ssrc);
        b[field::FRACTION_LOST] = self.fraction_lost;
        let lost = (self.cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1) as u32) & 0x00ff_ffff;
        b[field::CUMULATIVE_LOST].copy_from_slice(&lost.to_be_bytes()[1..]);
        put32(b, field::HIGHEST_SEQ, self.highest_seq);
        put32(b, field::JITTER, self.jitter);
        put32(b, field::LAST_SR, self.last_sr);
        put32(b, field::DELAY_SINCE_LAST_SR, self.delay_since_last_sr);
    }
}

/// Checks that a SR/RR of `fixed` header bytes holds the report blocks its count announces
/// (RFC 3550 §6.4.1, §6.4.2).
pub(crate) fn check_report_count(b: &[u8], fixed: usize) -> Result<(), RtcpError> {
    // RFC 3550 §6.4.1/§6.4.2: the fixed part (header, sender SSRC, sender info for an SR).
    if b.len() < fixed {
        return Err(RtcpError::TooShort);
    }
    // RFC 3550 §6.4.1: RC report blocks of 24 octets follow.
    if b.len() < fixed + REPORT_BLOCK_LEN * usize::from(count(b)) {
        return Err(RtcpError::BadCount);
    }
    Ok(())
}

/// The report blocks after `fixed` header bytes of a checked SR/RR.
pub(crate) fn report_blocks(b: &[u8], fixed: usize) -> impl Iterator<Item = ReportBlock<'_>> + '_ {
    (0..usize::from(count(b))).map(move |i| ReportBlock::new(&b[fixed + i * REPORT_BLOCK_LEN..]))
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
