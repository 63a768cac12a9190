//! Protocol identifiers and object ids as newtypes.
//!
//! Object ids are allocated by the control plane from one process-wide counter per kind, so they stay
//! valid when a router moves from one core to another.

/// Synchronisation source identifier (RFC 3550 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct Ssrc(pub u32);

/// RTP payload type, 7 bits (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct PayloadType(pub u8);

/// RTP sequence number, wraps at 2^16 (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
pub struct SeqNo(pub u16);

macro_rules! object_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(transparent))]
        pub struct $name(pub u32);

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

object_id!(
    /// A router (a room).
    RouterId
);
object_id!(
    /// A transport inside a router.
    TransportId
);
object_id!(
    /// A producer (an incoming stream) on a transport.
    ProducerId
);
object_id!(
    /// A consumer (an outgoing copy of one producer) on a transport.
    ConsumerId
);

/// Audio or video; decides nothing on the packet path but is reported and validated.
/// With the `serde` feature it is spelled `"audio"` / `"video"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum MediaKind {
    Audio,
    Video,
}
