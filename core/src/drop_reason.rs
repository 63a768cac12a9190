//! Named reasons a packet (or one fan-out copy of it) is not forwarded, and their counters.
//!
//! Per-packet errors are a `Copy` enum mapped to counters, never a `String`. Two conservation
//! equations hold on every core, field for field as [`Counters`] computes them:
//!
//! - [`Counters::ingress_balanced`]: `packets_in + piped_in = routed + rtcp_terminated +
//!   hopped_out + Σ ingress drops` (the reasons [`DropReason::is_egress`] says are not egress):
//!   each datagram received (and each packet a piped producer took from its pipe) was routed,
//!   terminated (RTCP), carried to its owner core, or dropped whole.
//! - [`Counters::egress_balanced`]: `outputs = packets_out + send_error + send_would_block +
//!   retransmission_evicted` ([`Counters::egress_drops_after_output`]): each output produced was
//!   handed to the kernel or lost after it was produced. The other egress reasons (paused or
//!   unconnected consumer, stale sequence, full output buffer, throttled keyframe request,
//!   missing retransmission, the NACK limits — too soon, over budget, over the per-NACK cap,
//!   upstream throttled — and throttled sender reports) count copies never produced, so they are
//!   not part of `outputs`.

/// Why a packet or one of its copies was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    // Ingress: the whole packet.
    /// Neither RTP nor RTCP (RFC 7983 first-byte ranges).
    NotRtp = 0,
    /// RTP/RTCP that fails validation.
    Malformed,
    /// No transport is bound to the socket / source address it arrived on.
    UnknownTransport,
    /// The source address is not the transport's remote (no re-latching: RTP Bleed).
    SourceMismatch,
    /// The transport has no remote yet and is not in comedia mode.
    NotConnected,
    /// No producer on the transport has this SSRC.
    UnknownSsrc,
    /// The payload type is not the producer's.
    UnknownPayloadType,
    /// The producer is paused.
    ProducerPaused,
    /// The producer has no consumer.
    NoConsumers,
    /// An RTCP packet type shardcast does not act on.
    RtcpIgnored,
    /// The core-to-core ring to the packet's owner core was full.
    RingFull,
    // Egress: one copy for one consumer.
    /// The consumer is paused (or its producer is).
    ConsumerPaused,
    /// The consumer's transport has no remote address yet.
    ConsumerNotConnected,
    /// The packet predates the consumer's last sync (`SeqManager::sync`): late, reordered across
    /// a resume.
    StaleSequence,
    /// The per-batch output buffer was full.
    OutputFull,
    /// The kernel refused this datagram (ICMP unreachable, EMSGSIZE, …).
    SendError,
    /// The socket's send buffer was full; leaky, never blocks.
    SendWouldBlock,
    /// PLI/FIR suppressed by the per-producer throttle.
    KeyframeRequestThrottled,
    /// A NACKed packet neither in the store nor requestable from the producer (too many at once,
    /// or one the consumer was sent from another producer before a source switch).
    RetransmissionMissing,
    /// A retransmission answered from the store whose packet was overwritten before it was sent.
    RetransmissionEvicted,
    /// A NACKed packet already retransmitted to this consumer within the resend interval (also
    /// a repeat inside one NACK: repeated FCIs, overlapping bitmasks).
    RetransmissionTooSoon,
    /// A NACKed packet the consumer's retransmission budget (a share of its own forwarded media
    /// bytes, up to a burst) cannot pay for.
    RetransmissionOverBudget,
    /// A NACKed packet past the most retransmissions one RTCP datagram may draw.
    RetransmissionOverNackCap,
    /// A sequence number not asked of the producer again: asked within the resend interval (by
    /// any consumer of it), or already in the NACK being sent.
    NackUpstreamThrottled,
    /// A sender report copy not fanned out to a consumer: the producer's previous SR was fanned
    /// out less than the sender-report interval ago.
    SenderReportThrottled,
    // Added after the egress reasons (the numbering is stable): ingress ones, see `is_egress`.
    /// A comedia transport's would-be latching packet came from outside its `comedia_source`.
    ComediaSourceRefused,
    /// A sequence number far from the stream's (RFC 3550 A.1: more than `MAX_DROPOUT` ahead or
    /// `MAX_MISORDER` behind) that the next packet did not confirm: a spoofed or stray packet.
    SequenceOutlier,
    /// A datagram larger than the receive slot (the kernel cut it: `MSG_TRUNC`): never forwarded
    /// cut.
    Truncated,
    /// A packet for a piped producer on another core not carried: the hop ring to that core
    /// was full (leaky: the sender never waits). One copy, counted on the sending core.
    PipeRingFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 29] = [
        DropReason::NotRtp,
        DropReason::Malformed,
        DropReason::UnknownTransport,
        DropReason::SourceMismatch,
        DropReason::NotConnected,
        DropReason::UnknownSsrc,
        DropReason::UnknownPayloadType,
        DropReason::ProducerPaused,
        DropReason::NoConsumers,
        DropReason::RtcpIgnored,
        DropReason::RingFull,
        DropReason::ConsumerPaused,
        DropReason::ConsumerNotConnected,
        DropReason::StaleSequence,
        DropReason::OutputFull,
        DropReason::SendError,
        DropReason::SendWouldBlock,
        DropReason::KeyframeRequestThrottled,
        DropReason::RetransmissionMissing,
        DropReason::RetransmissionEvicted,
        DropReason::RetransmissionTooSoon,
        DropReason::RetransmissionOverBudget,
        DropReason::RetransmissionOverNackCap,
        DropReason::NackUpstreamThrottled,
        DropReason::SenderReportThrottled,
        DropReason::ComediaSourceRefused,
        DropReason::SequenceOutlier,
        DropReason::Truncated,
        DropReason::PipeRingFull,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotRtp => "not_rtp",
            DropReason::Malformed => "malformed",
            DropReason::UnknownTransport => "unknown_transport",
            DropReason::SourceMismatch => "source_mismatch",
            DropReason::NotConnected => "not_connected",
            DropReason::UnknownSsrc => "unknown_ssrc",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::ProducerPaused => "producer_paused",
            DropReason::NoConsumers => "no_consumers",
            DropReason::RtcpIgnored => "rtcp_ignored",
            DropReason::ConsumerPaused => "consumer_paused",
            DropReason::ConsumerNotConnected => "consumer_not_connected",
            DropReason::StaleSequence => "stale_sequence",
            DropReason::OutputFull => "output_full",
            DropReason::SendError => "send_error",
            DropReason::SendWouldBlock => "send_would_block",
            DropReason::RingFull => "ring_full",
            DropReason::KeyframeRequestThrottled => "keyframe_request_throttled",
            DropReason::RetransmissionMissing => "retransmission_missing",
            DropReason::RetransmissionEvicted => "retransmission_evicted",
            DropReason::RetransmissionTooSoon => "retransmission_too_soon",
            DropReason::RetransmissionOverBudget => "retransmission_over_budget",
            DropReason::RetransmissionOverNackCap => "retransmission_over_nack_cap",
            DropReason::NackUpstreamThrottled => "nack_upstream_throttled",
            DropReason::SenderReportThrottled => "sender_report_throttled",
            DropReason::ComediaSourceRefused => "comedia_source_refused",
            DropReason::SequenceOutlier => "sequence_outlier",
            DropReason::Truncated => "truncated",
            DropReason::PipeRingFull => "pipe_ring_full",
        }
    }

    /// True for reasons that drop one fan-out copy rather than the whole ingress packet.
    pub fn is_egress(self) -> bool {
        // Exhaustive on purpose: a new reason has to say which side it is on.
        match self {
            DropReason::NotRtp
            | DropReason::Malformed
            | DropReason::UnknownTransport
            | DropReason::SourceMismatch
            | DropReason::NotConnected
            | DropReason::UnknownSsrc
            | DropReason::UnknownPayloadType
            | DropReason::ProducerPaused
            | DropReason::NoConsumers
            | DropReason::RtcpIgnored
            | DropReason::RingFull
            | DropReason::Truncated
            | DropReason::ComediaSourceRefused
            | DropReason::SequenceOutlier => false,
            DropReason::ConsumerPaused
            | DropReason::ConsumerNotConnected
            | DropReason::StaleSequence
            | DropReason::OutputFull
            | DropReason::SendError
            | DropReason::SendWouldBlock
            | DropReason::KeyframeRequestThrottled
            | DropReason::RetransmissionMissing
            | DropReason::RetransmissionEvicted
            | DropReason::RetransmissionTooSoon
            | DropReason::RetransmissionOverBudget
            | DropReason::RetransmissionOverNackCap
            | DropReason::NackUpstreamThrottled
            | DropReason::SenderReportThrottled
            | DropReason::PipeRingFull => true,
        }
    }
}

/// Packet counters of one core (or one router, or a sum of cores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received from sockets.
    pub packets_in: u64,
    /// Bytes received from sockets.
    pub bytes_in: u64,
    /// RTP packets routed to a producer with at least one consumer.
    pub routed: u64,
    /// RTCP packets terminated here (receiver reports, feedback acted on): never forwarded as
    /// they came.
    pub rtcp_terminated: u64,
    /// Packets that arrived here for a router another core owns and were carried to it.
    pub hopped_out: u64,
    /// Packets carried here from another core (also counted in `packets_in`).
    pub hopped_in: u64,
    /// Copies of routed packets handed to a pipe: delivered to a piped producer on this core, or
    /// pushed into the hop ring of the piped producer's core.
    pub piped_out: u64,
    /// Packets a piped producer on this core took from its pipe (not counted in `packets_in`):
    /// each is routed or dropped under an ingress reason, like a received datagram.
    pub piped_in: u64,
    /// Retransmissions answered from a producer's store (also counted in `outputs`).
    pub retransmitted: u64,
    /// Copies handed to the kernel (RTP, RTCP and retransmissions).
    pub packets_out: u64,
    /// Bytes handed to the kernel.
    pub bytes_out: u64,
    /// Copies produced for sending (before send errors).
    pub outputs: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

impl Counters {
    /// Counts one drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Count of one reason.
    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Sum of drops of whole ingress packets.
    pub fn ingress_drops(&self) -> u64 {
        DropReason::ALL.iter().filter(|r| !r.is_egress()).map(|r| self.drops_of(*r)).sum()
    }

    /// Sum of drops of single copies.
    pub fn egress_drops(&self) -> u64 {
        DropReason::ALL.iter().filter(|r| r.is_egress()).map(|r| self.drops_of(*r)).sum()
    }

    /// Conservation on one core: every datagram received, and every packet taken from a pipe,
    /// was routed, terminated (RTCP), carried to its owner core, or dropped under a named reason.
    pub fn ingress_balanced(&self) -> bool {
        self.packets_in + self.piped_in
            == self.routed + self.rtcp_terminated + self.hopped_out + self.ingress_drops()
    }

    /// Conservation of copies: every output was handed to the kernel or dropped under a reason.
    pub fn egress_balanced(&self) -> bool {
        self.outputs == self.packets_out + self.egress_drops_after_output()
    }

    /// Egress drops that happen after an output was produced (send failures, evicted payloads).
    pub fn egress_drops_after_output(&self) -> u64 {
        self.drops_of(DropReason::SendError)
            + self.drops_of(DropReason::SendWouldBlock)
            + self.drops_of(DropReason::RetransmissionEvicted)
    }

    /// Adds another set of counters into this one.
    pub fn add(&mut self, other: &Counters) {
        self.packets_in += other.packets_in;
        self.bytes_in += other.bytes_in;
        self.routed += other.routed;
        self.rtcp_terminated += other.rtcp_terminated;
        self.hopped_out += other.hopped_out;
        self.hopped_in += other.hopped_in;
        self.piped_out += other.piped_out;
        self.piped_in += other.piped_in;
        self.retransmitted += other.retransmitted;
        self.packets_out += other.packets_out;
        self.bytes_out += other.bytes_out;
        self.outputs += other.outputs;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn reasons_added_after_the_egress_ones_are_ingress() {
        assert!(!DropReason::ComediaSourceRefused.is_egress());
        assert!(!DropReason::SequenceOutlier.is_egress());
        assert!(DropReason::RetransmissionEvicted.is_egress());
        assert!(DropReason::ConsumerPaused.is_egress() && !DropReason::RingFull.is_egress());
    }

    #[test]
    fn ingress_and_egress_sums() {
        let mut c = Counters::default();
        c.drop(DropReason::UnknownSsrc);
        c.drop(DropReason::UnknownSsrc);
        c.drop(DropReason::ConsumerPaused);
        assert_eq!(c.ingress_drops(), 2);
        assert_eq!(c.egress_drops(), 1);
        let mut d = Counters::default();
        d.add(&c);
        d.add(&c);
        assert_eq!(d.drops_of(DropReason::UnknownSsrc), 4);
    }

    /// A pipe's copy lost to a full ring is one copy, not the packet (the source's own consumers
    /// got it): an egress reason, never produced, so outside `outputs`.
    #[test]
    fn pipe_ring_full_is_a_copy_never_produced() {
        assert!(DropReason::PipeRingFull.is_egress());
        assert_eq!(DropReason::PipeRingFull.as_str(), "pipe_ring_full");
        let mut c = Counters { outputs: 1, packets_out: 1, ..Counters::default() };
        c.drop(DropReason::PipeRingFull);
        assert!(c.egress_balanced());
        assert_eq!(c.egress_drops_after_output(), 0);
    }

    /// A piped producer's input counts like a received datagram.
    #[test]
    fn piped_in_joins_ingress_conservation() {
        let mut c = Counters { packets_in: 2, piped_in: 1, routed: 2, ..Counters::default() };
        assert!(!c.ingress_balanced());
        c.drop(DropReason::ProducerPaused);
        assert!(c.ingress_balanced());
    }

    /// A reason added at the end of the enum can be an ingress one: `Truncated` counts in the
    /// ingress sum and keeps `ingress_balanced`.
    #[test]
    fn truncated_is_an_ingress_drop() {
        assert!(!DropReason::Truncated.is_egress());
        assert_eq!(DropReason::Truncated.as_str(), "truncated");
        let mut c = Counters { packets_in: 1, ..Counters::default() };
        assert!(!c.ingress_balanced());
        c.drop(DropReason::Truncated);
        assert_eq!((c.ingress_drops(), c.egress_drops()), (1, 0));
        assert!(c.ingress_balanced());
    }
}
