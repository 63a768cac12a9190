//! `Producer`: one incoming RTP stream on a transport.

use crate::command::{PipeEnd, ProducerOptions};
use crate::ids::{ConsumerId, TransportId};
use crate::rtp_store::{SeqTimes, StoreCell};
use crate::rtp_stream::RtpStreamRecv;

/// Producer-side statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    pub packets: u64,
    pub bytes: u64,
    /// Highest extended sequence number seen is not tracked yet; last seen sequence number.
    pub last_seq: u16,
    pub last_timestamp: u32,
}

/// An incoming stream.
#[derive(Debug, Clone)]
pub struct Producer {
    pub(crate) transport: TransportId,
    pub(crate) options: ProducerOptions,
    pub(crate) paused: bool,
    /// Consumers in creation order: the fan-out order of every packet.
    pub(crate) consumers: Vec<ConsumerId>,
    pub(crate) stats: ProducerStats,
    /// When a keyframe request was last forwarded (caller's clock, µs), for the throttle.
    pub(crate) last_keyframe_request_us: Option<u64>,
    /// A consumer switched to it wants a keyframe: a PLI goes upstream at its next forwarded
    /// packet, once the keyframe-request throttle allows (commands have no output of their own).
    pub(crate) keyframe_wanted: bool,
    /// FIR command sequence number (RFC 5104 §4.3.1.1).
    pub(crate) fir_seq: u8,
    /// Recent packets, for NACKs (video producers only).
    pub(crate) store: StoreCell,
    /// When each sequence number was last asked of the producer in a NACK (by any consumer);
    /// allocated at the first NACK sent upstream.
    pub(crate) nack_asked: Option<SeqTimes>,
    /// When a sender report of this producer was last fanned out (caller's clock, µs).
    pub(crate) last_sender_report_us: Option<u64>,
    /// The incoming sequence, checked before anything else uses a packet's number.
    pub(crate) stream: RtpStreamRecv,
    /// The piped producers (in other routers) every packet it routes is delivered to.
    pub(crate) pipes: Vec<PipeEnd>,
    /// For a piped producer: the producer its packets come from (its `transport` is then
    /// `shard::PIPE_TRANSPORT`, which no transport has).
    pub(crate) pipe_source: Option<PipeEnd>,
}

impl Producer {
    pub(crate) fn new(transport: TransportId, options: ProducerOptions) -> Self {
        let paused = options.paused;
        Self {
            transport,
            options,
            paused,
            consumers: Vec::new(),
            stats: ProducerStats::default(),
            last_keyframe_request_us: None,
            keyframe_wanted: false,
            fir_seq: 0,
            store: StoreCell::default(),
            nack_asked: None,
            last_sender_report_us: None,
            stream: RtpStreamRecv::new(),
            pipes: Vec::new(),
            pipe_source: None,
        }
    }

    pub fn transport(&self) -> TransportId {
        self.transport
    }
    pub fn options(&self) -> &ProducerOptions {
        &self.options
    }
    pub fn paused(&self) -> bool {
        self.paused
    }
    pub fn consumers(&self) -> &[ConsumerId] {
        &self.consumers
    }
    pub fn stats(&self) -> ProducerStats {
        self.stats
    }
    /// The piped producers this one feeds.
    pub fn pipes(&self) -> &[PipeEnd] {
        &self.pipes
    }
    /// For a piped producer, where its packets come from.
    pub fn pipe_source(&self) -> Option<PipeEnd> {
        self.pipe_source
    }
}
