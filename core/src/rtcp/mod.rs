//! RTCP (RFC 3550 §6, RFC 4585 §6) views: one file per packet type, a compound-packet walker
//! that validates every sub-packet header once, and `Repr`s that emit what shardcast generates
//! (SR, RR, NACK, PLI, FIR).
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
mod fir;
mod nack;
mod pli;
mod report_block;
mod rr;
mod sdes;
mod sr;

pub use bye::Bye;
pub use compound::{RtcpCompound, RtcpIter, RtcpPacket};
pub use fir::{Fir, FirRepr};
pub use nack::{Nack, NackRepr};
pub use pli::{Pli, PliRepr};
pub use report_block::{ReportBlock, ReportBlockRepr, REPORT_BLOCK_LEN};
pub use rr::{ReceiverReport, ReceiverReportRepr};
pub use sdes::Sdes;
pub use sr::{SenderReport, SenderReportRepr};

#[cfg(test)]
mod proptests;

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

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a common header.
fn emit_header(buf: &mut [u8], count: u8, packet_type: u8, len_bytes: usize) {
    buf[0] = 0x80 | (count & 0x1f);
    buf[1] = packet_type;
    buf[2..4].copy_from_slice(&((len_bytes / 4 - 1) as u16).to_be_bytes());
}
