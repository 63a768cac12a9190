//! RTP (RFC 3550 §5) packet views, smoltcp style: [`RtpPacket`] is a zero-copy view validated once
//! by [`RtpPacket::new_checked`], after which no accessor can panic; [`RtpRepr`] is the parsed,
//! owned form used by tests and generators.

mod extension;
mod packet;
mod repr;

pub use extension::{ExtensionIter, ONE_BYTE_PROFILE, TWO_BYTE_PROFILE_MASK};
pub use packet::{field, RtpError, RtpPacket, FIXED_HEADER_LEN};
pub use repr::RtpRepr;

#[cfg(test)]
mod proptests;
