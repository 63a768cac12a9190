//! RTCP (RFC 3550 §6, RFC 4585 §6) views: one file per packet type, a compound-packet walker
//! that validates every sub-packet header once, and `Repr`s that emit what shardcast generates
//! (SR, RR, NACK, PLI, FIR). Each view names its byte positions in a `field` module (smoltcp's
//! `wire` style); NACK, PLI and FIR share the feedback header view of `feedback.rs`.
//!
//! Common header of every RTCP packet (RFC 3550 §6.4.1):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P| RC/FMT  |      PT       |             length            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! `length` counts 32-bit words minus one, header included.

mod bye;
mod compound;
mod feedback;
mod fir;
mod nack;
mod pli;
mod report_block;
mod rr;
mod sdes;
mod sr;

pub use bye::Bye;
pub use compound::{RtcpCompound, RtcpIter, RtcpPacket};
pub use feedback::{Feedback, FeedbackRepr, FEEDBACK_HEADER_LEN};
pub use fir::{Fir, FirRepr};
pub use nack::{Nack, NackRepr};
pub use pli::{Pli, PliRepr};
pub use report_block::{ReportBlock, ReportBlockRepr, REPORT_BLOCK_LEN};
pub use rr::{ReceiverReport, ReceiverReportRepr};
pub use sdes::Sdes;
pub use sr::{SenderReport, SenderReportRepr};

use core::ops::Range;

#[cfg(test)]
mod proptests;

/// Byte positions of the common header (RFC 3550 §6.4.1).
pub mod field {
    use core::ops::Range;
    /// V(2) P(1) and a 5-bit count (RC, SC) or feedback message type (FMT).
    pub const VER_P_COUNT: usize = 0;
    pub const PACKET_TYPE: usize = 1;
    /// The packet's length in 32-bit words minus one, this header included.
    pub const LENGTH: Range<usize> = 2..4;
}

/// Length of the common header.
pub const HEADER_LEN: usize = 4;

/// Packet types (RFC 3550 §12.1, RFC 4585 §6.1).
pub mod packet_type {
    pub const SR: u8 = 200;
    pub const RR: u8 = 201;
    pub const SDES: u8 = 202;
    pub const BYE: u8 = 203;
    pub const APP: u8 = 204;
    pub const RTPFB: u8 = 205;
    pub const PSFB: u8 = 206;
}

/// Why an RTCP packet was refused. Stable names for counters via [`RtcpError::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// Shorter than a header, or than its own `length`.
    TooShort,
    /// Version is not 2.
    BadVersion,
    /// A packet type outside 192..=223 inside a compound packet.
    BadPacketType,
    /// Padding on a packet other than the last, or a bad pad count.
    BadPadding,
    /// Report/source count inconsistent with the length.
    BadCount,
}

impl RtcpError {
    pub fn as_str(self) -> &'static str {
        match self {
            RtcpError::TooShort => "too_short",
            RtcpError::BadVersion => "bad_version",
            RtcpError::BadPacketType => "bad_packet_type",
            RtcpError::BadPadding => "bad_padding",
            RtcpError::BadCount => "bad_count",
        }
    }
}

impl core::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The big-endian `u32` at `field` (4 bytes) of a checked buffer.
fn be32(b: &[u8], field: Range<usize>) -> u32 {
    let b = &b[field];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The big-endian `u16` at `field` (2 bytes) of a checked buffer.
fn be16(b: &[u8], field: Range<usize>) -> u16 {
    let b = &b[field];
    u16::from_be_bytes([b[0], b[1]])
}

fn put32(buf: &mut [u8], field: Range<usize>, v: u32) {
    buf[field].copy_from_slice(&v.to_be_bytes());
}

fn put16(buf: &mut [u8], field: Range<usize>, v: u16) {
    buf[field].copy_from_slice(&v.to_be_bytes());
}

/// The 5-bit count (RC, SC) or FMT of a sub-packet of at least one byte.
fn count(b: &[u8]) -> u8 {
    b[field::VER_P_COUNT] & 0x1f
}

/// A sub-packet's length in bytes, from its `length` field (RFC 3550 §6.4.1).
fn packet_len(b: &[u8]) -> usize {
    4 * (usize::from(be16(b, field::LENGTH)) + 1)
}

/// Writes a common header for a packet of `len_bytes` (a multiple of 4).
fn emit_header(buf: &mut [u8], count: u8, packet_type: u8, len_bytes: usize) {
    buf[field::VER_P_COUNT] = 0x80 | (count & 0x1f);
    buf[field::PACKET_TYPE] = packet_type;
    put16(buf, field::LENGTH, (len_bytes / 4 - 1) as u16);
}
