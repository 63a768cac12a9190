//! `RtpStore`: a producer's recent packets, to answer consumers' NACKs (RFC 4585 §6.2.1) without
//! asking the producer — mediasoup's retransmission buffer.
//!
//! A fixed ring of slots indexed by sequence number, allocated once (at a video producer's first
//! packet); storing a packet is one copy, never an allocation.
//!
//! [`SeqTimes`], indexed the same way, remembers when each sequence number was last acted on — a
//! retransmission to one consumer, a NACK to the producer — so neither is repeated within an
//! interval (mediasoup's "resent in the last RTT" check).

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

    /// Forgets every packet (the sender restarted its numbering: an old packet must never answer
    /// a NACK for a new number that happens to match it).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| slot.len = 0);
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

/// One remembered sequence number: when it was last acted on (caller's clock, ms, wrapping).
#[derive(Debug, Clone, Copy, Default)]
struct SeqTime {
    seq: u16,
    used: bool,
    at_ms: u32,
}

/// When each of the last [`STORE_SLOTS`] sequence numbers (indexed like [`RtpStore`]) was last
/// acted on. A fixed table, allocated once by whoever first needs it (a consumer's first NACK, a
/// producer's first NACK upstream), never on the media path.
///
/// Times are kept in wrapping milliseconds (8 bytes a slot, 2 KiB a table): a record older than
/// 49.7 days can look recent again, which only delays one retransmission by one interval.
#[derive(Clone)]
pub struct SeqTimes {
    slots: Box<[SeqTime; STORE_SLOTS]>,
}

impl std::fmt::Debug for SeqTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqTimes").field("slots", &STORE_SLOTS).finish()
    }
}

impl Default for SeqTimes {
    fn default() -> Self {
        Self::new()
    }
}

impl SeqTimes {
    /// Allocates the table (the only allocation).
    pub fn new() -> Self {
        Self { slots: Box::new([SeqTime::default(); STORE_SLOTS]) }
    }

    /// Remembers that `seq` was acted on at `now_us`.
    pub fn record(&mut self, seq: SeqNo, now_us: u64) {
        self.slots[usize::from(seq.0) % STORE_SLOTS] = SeqTime { seq: seq.0, used: true, at_ms: ms(now_us) };
    }

    /// True when `seq` was acted on less than `interval_us` before `now_us` — or in the same
    /// millisecond, whatever the interval (so a repeat within one packet is always one).
    pub fn is_recent(&self, seq: SeqNo, now_us: u64, interval_us: u64) -> bool {
        let slot = &self.slots[usize::from(seq.0) % STORE_SLOTS];
        let interval_ms = (interval_us / 1000).clamp(1, u64::from(u32::MAX)) as u32;
        slot.used && slot.seq == seq.0 && ms(now_us).wrapping_sub(slot.at_ms) < interval_ms
    }
}

/// The caller's clock in wrapping milliseconds.
fn ms(now_us: u64) -> u32 {
    (now_us / 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_times_remember_one_interval_per_sequence_number() {
        let mut t = SeqTimes::new();
        assert!(!t.is_recent(SeqNo(7), 0, 100_000));
        t.record(SeqNo(7), 1_000_000);
        assert!(t.is_recent(SeqNo(7), 1_000_000, 100_000));
        assert!(t.is_recent(SeqNo(7), 1_099_999, 100_000));
        assert!(!t.is_recent(SeqNo(7), 1_100_000, 100_000));
        // Another sequence number, and the one 256 later in the same slot, are not 7.
        assert!(!t.is_recent(SeqNo(8), 1_000_000, 100_000));
        assert!(!t.is_recent(SeqNo(7 + STORE_SLOTS as u16), 1_000_000, 100_000));
        // A zero interval still makes a repeat within the same millisecond a repeat.
        assert!(t.is_recent(SeqNo(7), 1_000_999, 0));
        assert!(!t.is_recent(SeqNo(7), 1_001_000, 0));
        // The clock wraps in milliseconds without making old records recent.
        let late = (u64::from(u32::MAX) + 10) * 1000;
        t.record(SeqNo(9), late - 20_000);
        assert!(t.is_recent(SeqNo(9), late, 100_000));
        assert!(!t.is_recent(SeqNo(9), late + 100_000, 100_000));
    }

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
