//! `RtpStore`: a producer's recent packets, to answer consumers' NACKs (RFC 4585 §6.2.1) without
//! asking the producer — mediasoup's retransmission buffer.
//!
//! A fixed ring of slots indexed by sequence number, allocated once (at a video producer's first
//! packet); storing a packet is one copy, never an allocation.

use crate::ids::SeqNo;

/// Packets kept per producer (about 0.25–0.5 s of video).
pub const STORE_SLOTS: usize = 256;
/// Largest packet kept (bigger ones are not stored, so not retransmitted).
pub const STORE_MTU: usize = 1500;

#[derive(Clone)]
struct Slot {
    seq: u16,
    len: u16,
    data: [u8; STORE_MTU],
}

/// The ring.
pub struct RtpStore {
    slots: Box<[Slot]>,
}

impl std::fmt::Debug for RtpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpStore").field("slots", &self.slots.len()).finish()
    }
}

impl Default for RtpStore {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpStore {
    /// Allocates the ring (the only allocation).
    pub fn new() -> Self {
        Self { slots: vec![Slot { seq: 0, len: 0, data: [0; STORE_MTU] }; STORE_SLOTS].into_boxed_slice() }
    }

    /// Keeps a copy of `packet` (a whole RTP packet) under its sequence number.
    pub fn insert(&mut self, seq: SeqNo, packet: &[u8]) {
        if packet.len() > STORE_MTU {
            return;
        }
        let slot = &mut self.slots[usize::from(seq.0) % STORE_SLOTS];
        slot.seq = seq.0;
        slot.len = packet.len() as u16;
        slot.data[..packet.len()].copy_from_slice(packet);
    }

    /// The packet stored under `seq`, if it is still there.
    pub fn get(&self, seq: SeqNo) -> Option<&[u8]> {
        let slot = &self.slots[usize::from(seq.0) % STORE_SLOTS];
        (slot.len > 0 && slot.seq == seq.0).then(|| &slot.data[..usize::from(slot.len)])
    }
}

/// A producer's store, created at its first packet. Cloning (the batch-rollback snapshot) does
/// not copy the history: a restored router starts a new one.
#[derive(Debug, Default)]
pub struct StoreCell(pub(crate) Option<Box<RtpStore>>);

impl Clone for StoreCell {
    fn clone(&self) -> Self {
        StoreCell(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_packet_per_slot_and_refuses_others() {
        let mut s = RtpStore::new();
        s.insert(SeqNo(10), b"ten");
        s.insert(SeqNo(11), b"eleven");
        assert_eq!(s.get(SeqNo(10)), Some(&b"ten"[..]));
        assert_eq!(s.get(SeqNo(12)), None);
        // 10 + 256 lands on 10's slot and evicts it.
        s.insert(SeqNo(10 + STORE_SLOTS as u16), b"later");
        assert_eq!(s.get(SeqNo(10)), None);
        assert_eq!(s.get(SeqNo(10 + STORE_SLOTS as u16)), Some(&b"later"[..]));
        s.insert(SeqNo(65535), &[0u8; STORE_MTU + 1]);
        assert_eq!(s.get(SeqNo(65535)), None);
    }
}
