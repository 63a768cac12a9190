//! Pipes between routers (mediasoup's `pipeToRouter`, for routers of one process).
//!
//! A pipe joins a source producer of one router to a *piped producer* of another: a producer
//! like any other (its consumers are made, paused and closed the usual way) whose packets come
//! from the pipe instead of a transport. Each packet the source routes is delivered to every
//! piped producer it feeds:
//!
//! - **same core** — in the same pass ([`Shard::feed_pipes`]): the piped producer's consumers get
//!   outputs referencing the same received datagram ([`PayloadRef::Datagram`], no copy);
//! - **other core** — the shard lists a [`PipeHop`] for the data plane, which copies the datagram
//!   into the hop ring of the piped producer's core (leaky: a full ring is counted
//!   [`DropReason::PipeRingFull`] on the sending core) and that core hands it to
//!   [`Shard::forward_piped`].
//!
//! Either way the piped producer treats it as a received packet (sequence check, figures, NACK
//! store, its own `paused` — which the control plane changes together with the source's, so a
//! packet still in a ring when a pause is applied is dropped at the receiver), counted in
//! `piped_in` so ingress conservation holds on every core.
//!
//! RTCP goes back the other way: a PLI/FIR or NACK that a consumer of a piped producer sends is
//! throttled at the piped producer as a local one would be, then goes through the pipe to the
//! source producer ([`Shard::pipe_feedback`]), where the source's keyframe throttle applies too
//! and it leaves to the source's sender. The source's sender reports go forward to each piped
//! producer ([`Shard::pipe_sender_report`]) and are fanned out to its consumers.

use crate::command::{CommandError, PipeEnd, ProducerOptions};
use crate::drop_reason::DropReason;
use crate::ids::{ProducerId, RouterId, TransportId};
use crate::producer::Producer;
use crate::router::Router;
use crate::rtcp::PliRepr;
use crate::rtp::RtpPacket;
use crate::shard::output::{Output, OutputSink, PayloadRef, OUTPUT_HEADER_MAX};
use crate::shard::rtcp::KEYFRAME_REQUEST_INTERVAL_US;
use crate::shard::rtp::deliver;
use crate::shard::Shard;

/// The `transport` of a piped producer: no transport has it (the control plane allocates ids
/// from 1 upwards), so nothing finds a piped producer from a socket.
pub const PIPE_TRANSPORT: TransportId = TransportId(u32::MAX);

/// Most pipes out of one producer (the piped producers one packet is delivered to).
pub const MAX_PIPES: usize = 16;

/// Pipe deliveries (and feedback) one call may leave for the data plane to carry.
const PIPE_HOPS: usize = 2 * MAX_PIPES;

/// A copy of a producer's pipes, taken so the shard can reach the other routers.
pub(super) type PipeTargets = heapless::Vec<PipeEnd, MAX_PIPES>;

/// The copy of `pipes` (at most [`MAX_PIPES`], as `AddPipe` enforces).
pub(super) fn pipe_targets(pipes: &[PipeEnd]) -> PipeTargets {
    let mut v = PipeTargets::new();
    for p in pipes.iter().take(MAX_PIPES) {
        // At most MAX_PIPES: cannot fail.
        let _ = v.push(*p);
    }
    v
}

/// Something for another core's side of a pipe, left by the shard for the data plane to carry
/// through that core's hop ring ([`Shard::pop_pipe_hop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeHop {
    /// The core to carry it to.
    pub core: u16,
    /// The router and producer it is for there.
    pub router: RouterId,
    pub producer: ProducerId,
    pub cargo: PipeCargo,
    /// Carried on by a core its router left (already counted `piped_out` where it came from).
    pub carried_on: bool,
}

/// What a [`PipeHop`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeCargo {
    /// Datagram `index` of the pass being forwarded (the one `forward` was called with), for the
    /// piped producer `producer`: carry it whole, then [`Shard::count_piped_out`].
    Media { index: u32 },
    /// RTCP feedback (`header[..len]`) for the source producer `producer`.
    Feedback { header: [u8; OUTPUT_HEADER_MAX], len: u8 },
    /// The source's sender report (`header[..len]`) for the piped producer `producer`.
    SenderReport { header: [u8; OUTPUT_HEADER_MAX], len: u8 },
}

impl PipeCargo {
    /// The RTCP bytes of feedback or a sender report (`None` for media).
    pub fn rtcp(&self) -> Option<&[u8]> {
        match self {
            PipeCargo::Feedback { header, len } | PipeCargo::SenderReport { header, len } => {
                Some(&header[..usize::from(*len)])
            }
            PipeCargo::Media { .. } => None,
        }
    }
}

/// The pipe hops a shard has left, bounded.
pub(super) type PipeHops = heapless::Deque<PipeHop, PIPE_HOPS>;

impl Router {
    /// Adds piped producer `id`, fed by `source`.
    pub(crate) fn create_piped_producer(
        &mut self,
        id: ProducerId,
        options: &ProducerOptions,
        source: PipeEnd,
    ) -> Result<bool, CommandError> {
        self.check_new_producer(id, options)?;
        let mut producer = Producer::new(PIPE_TRANSPORT, options.clone());
        producer.pipe_source = Some(source);
        self.producers.insert(id, producer);
        Ok(true)
    }

    /// Pipes producer `id` to `target`; `Ok(false)` if `id` is gone.
    pub(crate) fn add_pipe(&mut self, id: ProducerId, target: PipeEnd) -> Result<bool, CommandError> {
        let Some(p) = self.producers.get_mut(&id) else { return Ok(false) };
        if p.pipe_source.is_some() {
            return Err(CommandError::argument("a piped producer is not piped again: pipe its source"));
        }
        if p.pipes.iter().any(|t| t.producer == target.producer) {
            return Err(CommandError::state("the producer is already piped to this piped producer"));
        }
        if p.pipes.len() >= MAX_PIPES {
            return Err(CommandError::state("the producer has the most pipes it may have"));
        }
        p.pipes.push(target);
        Ok(true)
    }

    /// Pipes of this router's producers to or from router `moved` reach it on core `core` now;
    /// `false` if none does.
    pub(crate) fn retarget_pipes(&mut self, moved: RouterId, core: u16) -> bool {
        let mut any = false;
        for p in self.producers.values_mut() {
            for end in p.pipes.iter_mut().chain(p.pipe_source.as_mut()) {
                if end.router == moved {
                    end.core = core;
                    any = true;
                }
            }
        }
        any
    }

    /// Stops piping producer `id` to piped producer `target`.
    pub(crate) fn remove_pipe(&mut self, id: ProducerId, target: ProducerId) -> bool {
        let Some(p) = self.producers.get_mut(&id) else { return false };
        let before = p.pipes.len();
        p.pipes.retain(|t| t.producer != target);
        p.pipes.len() != before
    }
}

impl Shard {
    /// Delivers a packet the source producer just routed to each of its piped producers: here
    /// at once, or left as a [`PipeHop`] for the data plane.
    pub(super) fn feed_pipes(
        &mut self,
        pipes: &PipeTargets,
        packet: &RtpPacket<&[u8]>,
        index: u32,
        now_us: u64,
        out: &mut impl OutputSink,
    ) {
        for target in pipes {
            if self.routers.contains_key(&target.router) {
                self.counters.piped_out += 1;
                self.counters.piped_in += 1;
                self.deliver_piped(target.router, target.producer, packet, index, now_us, out);
            } else {
                self.leave_pipe_hop(PipeHop {
                    core: target.core,
                    router: target.router,
                    producer: target.producer,
                    cargo: PipeCargo::Media { index },
                    carried_on: false,
                });
            }
        }
    }

    /// Router `id` was handed from here to core `to` (the export of a live handoff): pipes of the
    /// routers still here reach it there now, and a pipe's packet for it still in flight to this
    /// core is carried on there.
    pub fn note_moved(&mut self, id: RouterId, to: u16) {
        for r in self.routers.values_mut() {
            r.retarget_pipes(id, to);
        }
        self.moved.insert(id, to);
    }

    /// A pipe's packet for a router that is not here: carried on to where it moved (`true`).
    fn carry_on(&mut self, router: RouterId, producer: ProducerId, cargo: PipeCargo) -> bool {
        if self.routers.contains_key(&router) {
            return false;
        }
        let Some(&core) = self.moved.get(&router) else { return false };
        self.leave_pipe_hop(PipeHop { core, router, producer, cargo, carried_on: true });
        true
    }

    /// Counts a pipe hop the data plane could not carry (the other core's ring was full).
    pub fn count_pipe_hop_lost(&mut self, hop: &PipeHop) {
        if hop.carried_on && matches!(hop.cargo, PipeCargo::Media { .. }) {
            // Taken here from a pipe and lost on the way on: an ingress drop of this core.
            self.counters.piped_in += 1;
            self.counters.drop(DropReason::RingFull);
        } else {
            self.counters.drop(DropReason::PipeRingFull);
        }
    }

    /// Leaves `hop` for the data plane (one that does not fit is counted as a full ring).
    pub(super) fn leave_pipe_hop(&mut self, hop: PipeHop) {
        if self.pipe_hops.push_back(hop).is_err() {
            self.counters.drop(DropReason::PipeRingFull);
        }
    }

    /// A packet for piped producer `producer` of `router` (already counted in `piped_in`).
    fn deliver_piped(
        &mut self,
        router: RouterId,
        producer: ProducerId,
        packet: &RtpPacket<&[u8]>,
        index: u32,
        now_us: u64,
        out: &mut impl OutputSink,
    ) {
        let Some(r) = self.routers.get_mut(&router) else {
            self.counters.drop(DropReason::UnknownTransport);
            return;
        };
        let Router { transports, producers, consumers } = r;
        let Some(p) = producers.get_mut(&producer).filter(|p| p.pipe_source.is_some()) else {
            self.counters.drop(DropReason::UnknownSsrc);
            return;
        };
        let routed = deliver(&mut self.counters, p, consumers, transports, packet, index, now_us, out);
        // A consumer was switched to this piped producer: its keyframe request goes through the
        // pipe to the source (whose own throttle applies there too), under this one's throttle.
        let (Some(source), true) = (p.pipe_source, routed && p.keyframe_wanted) else { return };
        if p.last_keyframe_request_us.is_some_and(|t| now_us.saturating_sub(t) < KEYFRAME_REQUEST_INTERVAL_US)
        {
            return;
        }
        p.keyframe_wanted = false;
        p.last_keyframe_request_us = Some(now_us);
        let mut header = [0u8; OUTPUT_HEADER_MAX];
        let len = PliRepr { sender_ssrc: 0, media_ssrc: p.options.ssrc.0 }.emit(&mut header);
        if self.routers.contains_key(&source.router) {
            self.pipe_feedback(source.router, source.producer, &header[..len], now_us, out);
        } else {
            self.leave_pipe_hop(PipeHop {
                core: source.core,
                router: source.router,
                producer: source.producer,
                cargo: PipeCargo::Feedback { header, len: len as u8 },
                carried_on: false,
            });
        }
    }

    /// A packet another core's source producer sent through its pipe to piped producer
    /// `producer` of `router` (the data plane's side of [`PipeCargo::Media`]). `data` is datagram
    /// `index` of what the caller forwards: outputs reference it.
    pub fn forward_piped(
        &mut self,
        index: u32,
        router: RouterId,
        producer: ProducerId,
        data: &[u8],
        now_us: u64,
        out: &mut impl OutputSink,
    ) {
        self.clear_pipe_hops();
        if self.carry_on(router, producer, PipeCargo::Media { index }) {
            return;
        }
        self.counters.piped_in += 1;
        let Ok(packet) = RtpPacket::new_checked(data) else {
            self.counters.drop(DropReason::Malformed);
            return;
        };
        self.deliver_piped(router, producer, &packet, index, now_us, out);
    }

    /// RTCP feedback a consumer of a piped producer sent, arrived at the source producer
    /// `producer` of `router` (here, or through the hop ring): throttled as the source's own
    /// keyframe requests are, then sent to the source's sender.
    pub fn pipe_feedback(
        &mut self,
        router: RouterId,
        producer: ProducerId,
        rtcp: &[u8],
        now_us: u64,
        out: &mut impl OutputSink,
    ) {
        let len = rtcp.len();
        // A feedback header is 12 bytes (RFC 4585 §6.1).
        if !(12..=OUTPUT_HEADER_MAX).contains(&len) {
            return;
        }
        let mut header = [0u8; OUTPUT_HEADER_MAX];
        header[..len].copy_from_slice(rtcp);
        if self.carry_on(router, producer, PipeCargo::Feedback { header, len: len as u8 }) {
            return;
        }
        let Some(r) = self.routers.get_mut(&router) else { return };
        let Some(p) = r.producers.get_mut(&producer) else { return };
        let Some((socket, dest)) = r.transports.get(&p.transport).and_then(|t| t.egress()) else {
            return;
        };
        // PSFB (206) FMT 1 is a PLI, FMT 4 a FIR: keyframe requests. RTPFB (205) is a NACK.
        if rtcp[1] == 206 {
            if p.last_keyframe_request_us
                .is_some_and(|t| now_us.saturating_sub(t) < KEYFRAME_REQUEST_INTERVAL_US)
            {
                self.counters.drop(DropReason::KeyframeRequestThrottled);
                return;
            }
            p.last_keyframe_request_us = Some(now_us);
        }
        let output = Output { socket, dest, header, header_len: len as u8, payload: PayloadRef::None };
        if out.push(output) {
            self.counters.outputs += 1;
        } else {
            self.counters.drop(DropReason::OutputFull);
        }
    }

    /// The source's sender report, arrived at its piped producer `producer` of `router` (here,
    /// or through the hop ring): fanned out to the piped producer's consumers as the source's
    /// are, under the piped producer's own throttle.
    pub fn pipe_sender_report(
        &mut self,
        router: RouterId,
        producer: ProducerId,
        rtcp: &[u8],
        now_us: u64,
        out: &mut impl OutputSink,
    ) {
        let Ok(sr) = crate::rtcp::SenderReport::new_checked(rtcp) else { return };
        let mut header = [0u8; OUTPUT_HEADER_MAX];
        let len = rtcp.len().min(OUTPUT_HEADER_MAX);
        header[..len].copy_from_slice(&rtcp[..len]);
        if self.carry_on(router, producer, PipeCargo::SenderReport { header, len: len as u8 }) {
            return;
        }
        let Some(r) = self.routers.get_mut(&router) else { return };
        let Some(p) = r.producers.get_mut(&producer).filter(|p| p.pipe_source.is_some()) else {
            return;
        };
        let interval_us = self.limits.sender_report_interval_us;
        let throttled = p.last_sender_report_us.is_some_and(|t| now_us.saturating_sub(t) < interval_us);
        if !throttled {
            p.last_sender_report_us = Some(now_us);
        }
        crate::shard::rtcp::sender_report::fan_out(
            &mut self.counters,
            out,
            r,
            producer,
            &sr,
            throttled,
            now_us,
        );
    }

    /// The next thing for another core's side of a pipe, left by the last `forward` (or
    /// `forward_piped`) call. The caller carries each before its next call, or they are counted
    /// [`DropReason::PipeRingFull`] then.
    pub fn pop_pipe_hop(&mut self) -> Option<PipeHop> {
        self.pipe_hops.pop_front()
    }

    /// Counts a [`PipeCargo::Media`] hop carried into the other core's ring.
    pub fn count_piped_out(&mut self) {
        self.counters.piped_out += 1;
    }

    /// Hops a caller left behind cannot be carried any more (their datagram index is stale).
    pub(super) fn clear_pipe_hops(&mut self) {
        while let Some(hop) = self.pipe_hops.pop_front() {
            if matches!(hop.cargo, PipeCargo::Media { .. }) {
                self.counters.drop(DropReason::PipeRingFull);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{
        Command, ConsumerOptions, PipeEnd, PlainTransportOptions, ProducerOptions, SocketId,
    };
    use crate::drop_reason::DropReason;
    use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
    use crate::shard::tests::{addr, batch, rtcp_out, send, setup, R};
    use crate::shard::{BatchReply, Output, PayloadRef, PipeCargo, Shard};
    use crate::testutil::rtp;

    const R2: RouterId = RouterId(2);
    const P: ProducerId = ProducerId(1);
    const P2: ProducerId = ProducerId(50);

    /// Router 2 with one consumer (300, SSRC 7300, to port 7000 on socket 200) of piped
    /// producer 50.
    fn router2(source_core: u16, paused: bool) -> Vec<Command> {
        vec![
            Command::CreateRouter { router: R2 },
            Command::CreatePlainTransport {
                router: R2,
                transport: TransportId(200),
                options: PlainTransportOptions {
                    socket: SocketId(200),
                    remote: Some(addr(7000)),
                    comedia: false,
                    comedia_source: None,
                },
            },
            Command::CreatePipedProducer {
                router: R2,
                producer: P2,
                options: ProducerOptions {
                    kind: MediaKind::Video,
                    ssrc: Ssrc(1111),
                    payload_type: PayloadType(96),
                    clock_rate: 90000,
                    paused,
                },
                source: PipeEnd { router: R, producer: P, core: source_core },
            },
            Command::CreateConsumer {
                router: R2,
                transport: TransportId(200),
                consumer: ConsumerId(300),
                options: ConsumerOptions {
                    producer: P2,
                    ssrc: Ssrc(7300),
                    payload_type: PayloadType(96),
                    paused: false,
                },
            },
        ]
    }

    fn add_pipe(core: u16) -> Command {
        Command::AddPipe { router: R, producer: P, target: PipeEnd { router: R2, producer: P2, core } }
    }

    fn seq(o: &Output) -> u16 {
        u16::from_be_bytes([o.header[2], o.header[3]])
    }

    fn applied(s: &mut Shard, seq: u64, commands: Vec<Command>) {
        let reply = s.apply_batch(&batch(seq, commands));
        assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
    }

    #[test]
    fn same_core_pipe_delivers_in_the_same_pass_without_a_copy() {
        let mut s = setup(1);
        let mut cmds = router2(0, false);
        cmds.push(add_pipe(0));
        applied(&mut s, 2, cmds);
        for i in 0..5u16 {
            let out = send(&mut s, 1, addr(5000), &rtp(1111, 100 + i, 1000, 96, b"media"));
            assert_eq!(out.len(), 2, "R1's consumer and R2's");
            assert_eq!((out[1].socket, out[1].dest), (SocketId(200), addr(7000)));
            assert_eq!(out[1].payload, PayloadRef::Datagram { index: 0, offset: 12 });
            assert_eq!(u32::from_be_bytes(out[1].header[8..12].try_into().unwrap()), 7300);
            assert_eq!(seq(&out[1]), 100 + i, "numbered as R1's consumer, from the source's");
            assert_eq!(seq(&out[1]), seq(&out[0]));
        }
        assert!(s.pop_pipe_hop().is_none());
        let c = s.counters();
        assert_eq!((c.piped_out, c.piped_in, c.routed, c.outputs), (5, 5, 10, 10));
        assert!(c.ingress_balanced(), "{c:?}");
        // Pause both ends in one batch (as the control plane does): nothing anywhere.
        applied(
            &mut s,
            3,
            vec![
                Command::PauseProducer { router: R, producer: P },
                Command::PauseProducer { router: R2, producer: P2 },
            ],
        );
        assert!(send(&mut s, 1, addr(5000), &rtp(1111, 105, 1000, 96, b"m")).is_empty());
        let r2 = s.router(R2).unwrap();
        assert!(r2.consumer(ConsumerId(300)).unwrap().producer_paused());
        // A consumer created while the source is paused starts paused-by-producer.
        applied(
            &mut s,
            4,
            vec![Command::CreateConsumer {
                router: R2,
                transport: TransportId(200),
                consumer: ConsumerId(301),
                options: ConsumerOptions {
                    producer: P2,
                    ssrc: Ssrc(7301),
                    payload_type: PayloadType(96),
                    paused: false,
                },
            }],
        );
        assert!(s.router(R2).unwrap().consumer(ConsumerId(301)).unwrap().producer_paused());
        applied(
            &mut s,
            5,
            vec![
                Command::ResumeProducer { router: R, producer: P },
                Command::ResumeProducer { router: R2, producer: P2 },
            ],
        );
        let out = send(&mut s, 1, addr(5000), &rtp(1111, 106, 1000, 96, b"m"));
        assert_eq!(out.len(), 3);
        assert_eq!(seq(&out[1]), 105, "contiguous across the pause");
        // Closing the source (both ends, as the control plane does) ends the chain.
        applied(
            &mut s,
            6,
            vec![
                Command::CloseProducer { router: R, producer: P },
                Command::CloseProducer { router: R2, producer: P2 },
            ],
        );
        assert!(s.router(R2).unwrap().consumer(ConsumerId(300)).is_none());
        assert!(s.router(R2).unwrap().transport(TransportId(200)).is_some());
        assert!(s.counters().ingress_balanced(), "{:?}", s.counters());
    }

    /// Router 2's producer 60 (SSRC 2222) with consumer 301, switched to piped producer 50.
    fn switched_to_piped(seq: u64, s: &mut Shard) {
        let options = |ssrc| ProducerOptions {
            kind: MediaKind::Video,
            ssrc: Ssrc(ssrc),
            payload_type: PayloadType(96),
            clock_rate: 90000,
            paused: false,
        };
        let consumer = ConsumerOptions {
            producer: ProducerId(60),
            ssrc: Ssrc(7301),
            payload_type: PayloadType(96),
            paused: false,
        };
        let create = vec![
            Command::CreateProducer {
                router: R2,
                transport: TransportId(200),
                producer: ProducerId(60),
                options: options(2222),
            },
            Command::CreateConsumer {
                router: R2,
                transport: TransportId(200),
                consumer: ConsumerId(301),
                options: consumer,
            },
        ];
        applied(s, seq, create);
        let switch = Command::SwitchConsumerProducer { router: R2, consumer: ConsumerId(301), producer: P2 };
        applied(s, seq + 1, vec![switch]);
    }

    #[test]
    fn a_consumer_switched_to_a_piped_producer_asks_the_source_for_a_keyframe_through_the_pipe() {
        // Same core: the PLI leaves to the source's sender in the same pass.
        let mut s = setup(1);
        let mut cmds = router2(0, false);
        cmds.push(add_pipe(0));
        applied(&mut s, 2, cmds);
        switched_to_piped(3, &mut s);
        let out = send(&mut s, 1, addr(5000), &rtp(1111, 1, 1000, 96, b"m"));
        let plis: Vec<_> = out.iter().filter(|o| o.payload == PayloadRef::None).collect();
        assert_eq!(plis.len(), 1, "{out:?}");
        assert_eq!((plis[0].socket, plis[0].dest), (SocketId(1), addr(5000)));
        assert_eq!(crate::rtcp::Pli::new_checked(plis[0].header()).unwrap().media_ssrc(), 1111);
        assert_eq!(out.len() - plis.len(), 3, "R1's consumer and R2's two");
        // Asked once: the next packet carries no request.
        let out = send(&mut s, 1, addr(5000), &rtp(1111, 2, 1000, 96, b"m"));
        assert!(out.iter().all(|o| o.payload != PayloadRef::None));
        assert!(s.counters().ingress_balanced(), "{:?}", s.counters());

        // Another core: the piped producer's core leaves the PLI as feedback for the source's.
        let mut s = Shard::new();
        applied(&mut s, 1, router2(1, false));
        switched_to_piped(2, &mut s);
        let mut out = heapless::Vec::<Output, 64>::new();
        let media = rtp(1111, 1, 1000, 96, b"m");
        s.forward_piped(0, R2, P2, &media, 0, &mut out);
        let hop = s.pop_pipe_hop().expect("the keyframe request, for the source");
        assert_eq!((hop.core, hop.router, hop.producer), (1, R, P));
        let PipeCargo::Feedback { header, len } = hop.cargo else { panic!("{hop:?}") };
        let pli = crate::rtcp::Pli::new_checked(&header[..usize::from(len)]).unwrap();
        assert_eq!(pli.media_ssrc(), 1111);
        assert!(s.pop_pipe_hop().is_none());
    }

    #[test]
    fn a_pli_from_a_piped_consumer_reaches_the_source_throttled_with_its_own() {
        let mut s = setup(1);
        let mut cmds = router2(0, false);
        cmds.push(add_pipe(0));
        applied(&mut s, 2, cmds);
        send(&mut s, 1, addr(5000), &rtp(1111, 1, 1000, 96, b"m"));
        let mut pli = [0u8; 12];
        crate::rtcp::PliRepr { sender_ssrc: 42, media_ssrc: 7300 }.emit(&mut pli);
        let out = rtcp_out(&mut s, 200, addr(7000), &pli, 1_000_000);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].socket, out[0].dest), (SocketId(1), addr(5000)));
        let p = crate::rtcp::Pli::new_checked(out[0].header()).unwrap();
        assert_eq!(p.media_ssrc(), 1111);
        // R1's own consumer asks soon after: the source's throttle holds it.
        let mut pli1 = [0u8; 12];
        crate::rtcp::PliRepr { sender_ssrc: 43, media_ssrc: 5000 }.emit(&mut pli1);
        assert!(rtcp_out(&mut s, 100, addr(6000), &pli1, 1_100_000).is_empty());
        assert_eq!(s.counters().drops_of(DropReason::KeyframeRequestThrottled), 1);
        // A NACK the piped producer's store cannot answer goes to the source's sender.
        let mut nack = [0u8; 16];
        let mut pairs = heapless::Vec::new();
        pairs.push((40u16, 0u16)).unwrap();
        let len = crate::rtcp::NackRepr { sender_ssrc: 42, media_ssrc: 7300, pairs }.emit(&mut nack);
        let out = rtcp_out(&mut s, 200, addr(7000), &nack[..len], 2_000_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dest, addr(5000));
        assert!(s.counters().ingress_balanced() && s.counters().egress_drops() > 0);
    }

    #[test]
    fn cross_core_pipe_leaves_hops_and_the_receiver_decides_by_its_state() {
        // Core 0 holds R1; core 1 holds R2.
        let mut s0 = setup(1);
        applied(&mut s0, 2, vec![add_pipe(1)]);
        let mut s1 = Shard::new();
        applied(&mut s1, 1, router2(0, false));
        let pkt = rtp(1111, 9, 1000, 96, b"media");
        let out = send(&mut s0, 1, addr(5000), &pkt);
        assert_eq!(out.len(), 1, "only R1's consumer here");
        let hop = s0.pop_pipe_hop().expect("a hop for core 1");
        assert_eq!((hop.core, hop.router, hop.producer), (1, R2, P2));
        assert_eq!(hop.cargo, PipeCargo::Media { index: 0 });
        assert!(s0.pop_pipe_hop().is_none());
        s0.count_piped_out();
        let mut out1: heapless::Vec<Output, 64> = heapless::Vec::new();
        s1.forward_piped(0, R2, P2, &pkt, 0, &mut out1);
        assert_eq!(out1.len(), 1);
        assert_eq!(seq(&out1[0]), 9);
        // In flight when the pause is applied at the receiver: dropped there.
        applied(&mut s1, 2, vec![Command::PauseProducer { router: R2, producer: P2 }]);
        out1.clear();
        s1.forward_piped(0, R2, P2, &rtp(1111, 10, 1000, 96, b"m"), 0, &mut out1);
        assert!(out1.is_empty());
        assert_eq!(s1.counters().drops_of(DropReason::ProducerPaused), 1);
        // A PLI from R2's consumer becomes feedback for core 0.
        applied(&mut s1, 3, vec![Command::ResumeProducer { router: R2, producer: P2 }]);
        let mut pli = [0u8; 12];
        crate::rtcp::PliRepr { sender_ssrc: 42, media_ssrc: 7300 }.emit(&mut pli);
        assert!(rtcp_out(&mut s1, 200, addr(7000), &pli, 1_000_000).is_empty());
        let hop = s1.pop_pipe_hop().expect("feedback for core 0");
        assert_eq!((hop.core, hop.router, hop.producer), (0, R, P));
        let mut out0: heapless::Vec<Output, 64> = heapless::Vec::new();
        s0.pipe_feedback(R, P, hop.cargo.rtcp().unwrap(), 1_000_000, &mut out0);
        assert_eq!(out0.len(), 1);
        assert_eq!(out0[0].dest, addr(5000));
        // An unforwarded hop is counted when the next datagram is forwarded.
        send(&mut s0, 1, addr(5000), &rtp(1111, 11, 1000, 96, b"m"));
        send(&mut s0, 1, addr(5000), &rtp(1111, 12, 1000, 96, b"m"));
        assert_eq!(s0.counters().drops_of(DropReason::PipeRingFull), 1);
        for c in [s0.counters(), s1.counters()] {
            assert!(c.ingress_balanced(), "{c:?}");
        }
        // Core 0 carried one packet (the other two were not carried: one fed by hand, one left).
        assert_eq!((s0.counters().piped_out, s1.counters().piped_in), (1, 2));
    }

    #[test]
    fn pipes_are_refused_from_piped_producers_and_twice() {
        let mut s = setup(1);
        let mut cmds = router2(0, false);
        cmds.push(add_pipe(0));
        applied(&mut s, 2, cmds);
        let again = s.apply_batch(&batch(3, vec![add_pipe(0)]));
        assert!(matches!(again, BatchReply::Rejected { .. }), "{again:?}");
        let chained = Command::AddPipe {
            router: R2,
            producer: P2,
            target: PipeEnd { router: R, producer: ProducerId(9), core: 0 },
        };
        assert!(matches!(s.apply_batch(&batch(4, vec![chained])), BatchReply::Rejected { .. }));
        applied(&mut s, 5, vec![Command::RemovePipe { router: R, producer: P, target: P2 }]);
        assert_eq!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"m")).len(), 1);
        assert_eq!(s.counters().piped_out, 0);
    }

    #[test]
    fn a_moved_router_is_reached_where_it_went_and_what_was_in_flight_is_carried_on() {
        // Both on core 0: same-core. Then R2 moves to core 1.
        let mut s0 = setup(1);
        let mut cmds = router2(0, false);
        cmds.push(add_pipe(0));
        applied(&mut s0, 2, cmds);
        assert_eq!(send(&mut s0, 1, addr(5000), &rtp(1111, 1, 0, 96, b"m")).len(), 2);
        let r2 = s0.take_router(R2).unwrap();
        s0.note_moved(R2, 1);
        let mut s1 = Shard::new();
        s1.insert_router(R2, r2).unwrap();
        // The source's pipe now leads to core 1, where R2's consumer continues its numbering.
        let pkt = rtp(1111, 2, 0, 96, b"m");
        assert_eq!(send(&mut s0, 1, addr(5000), &pkt).len(), 1);
        let hop = s0.pop_pipe_hop().unwrap();
        assert_eq!((hop.core, hop.carried_on), (1, false));
        let mut out: heapless::Vec<Output, 64> = heapless::Vec::new();
        s1.forward_piped(0, R2, P2, &pkt, 0, &mut out);
        assert_eq!(seq(&out[0]), 2, "not renumbered by the move");
        // A copy that was in flight to core 0 when R2 left is carried on, uncounted here.
        let before = *s0.counters();
        s0.forward_piped(0, R2, P2, &rtp(1111, 3, 0, 96, b"m"), 0, &mut out);
        let hop = s0.pop_pipe_hop().unwrap();
        assert_eq!((hop.core, hop.carried_on, hop.router), (1, true, R2));
        assert_eq!(s0.counters().piped_in, before.piped_in);
        // Feedback for a moved source is carried on too.
        let s1_r2 = s1.take_router(R2).unwrap();
        s0.insert_router(R2, s1_r2).unwrap();
        let r1 = s0.take_router(R).unwrap();
        s0.note_moved(R, 1);
        let mut pli = [0u8; 12];
        crate::rtcp::PliRepr { sender_ssrc: 42, media_ssrc: 1111 }.emit(&mut pli);
        s0.pipe_feedback(R, P, &pli, 0, &mut out);
        let hop = s0.pop_pipe_hop().unwrap();
        assert_eq!((hop.core, hop.carried_on, hop.router), (1, true, R));
        // R2's piped producer now names its source on core 1.
        let source = s0.router(R2).unwrap().producer(P2).unwrap().pipe_source().unwrap();
        assert_eq!(source.core, 1);
        drop(r1);
    }

    #[test]
    fn the_sources_sender_report_reaches_piped_consumers_here_and_on_another_core() {
        let mut s = setup(1);
        let mut cmds = router2(0, false);
        cmds.push(add_pipe(0));
        cmds.push(Command::AddPipe {
            router: R,
            producer: P,
            target: PipeEnd { router: RouterId(3), producer: ProducerId(60), core: 1 },
        });
        applied(&mut s, 2, cmds);
        send(&mut s, 1, addr(5000), &rtp(1111, 1, 1000, 96, b"m"));
        s.pop_pipe_hop();
        let mut sr = [0u8; 28];
        crate::rtcp::SenderReportRepr {
            ssrc: 1111,
            ntp: 77 << 32,
            rtp_timestamp: 5000,
            packet_count: 9,
            octet_count: 99,
            reports: heapless::Vec::new(),
        }
        .emit(&mut sr);
        let out = rtcp_out(&mut s, 1, addr(5000), &sr, 1_000_000);
        // R1's consumer and R2's (same core), each with its own SSRC.
        assert_eq!(out.len(), 2);
        let ssrcs: Vec<u32> =
            out.iter().map(|o| crate::rtcp::SenderReport::new_checked(o.header()).unwrap().ssrc()).collect();
        assert_eq!(ssrcs, vec![5000, 7300]);
        assert_eq!(out[1].dest, addr(7000));
        // And one hop for the other core's piped producer.
        let hop = s.pop_pipe_hop().unwrap();
        assert_eq!((hop.core, hop.producer), (1, ProducerId(60)));
        assert!(matches!(hop.cargo, PipeCargo::SenderReport { .. }));
        let mut s1 = Shard::new();
        let mut r3 = router2(0, false);
        for c in &mut r3 {
            if let Command::CreatePipedProducer { producer, .. } = c {
                *producer = ProducerId(60);
            }
            if let Command::CreateConsumer { options, .. } = c {
                options.producer = ProducerId(60);
            }
        }
        applied(&mut s1, 1, r3);
        let mut out1: heapless::Vec<Output, 64> = heapless::Vec::new();
        s1.forward_piped(0, R2, ProducerId(60), &rtp(1111, 1, 1000, 96, b"m"), 0, &mut out1);
        out1.clear();
        s1.pipe_sender_report(R2, ProducerId(60), hop.cargo.rtcp().unwrap(), 1_000_000, &mut out1);
        assert_eq!(out1.len(), 1);
        let got = crate::rtcp::SenderReport::new_checked(out1[0].header()).unwrap();
        assert_eq!((got.ssrc(), got.ntp(), got.packet_count()), (7300, 77 << 32, 1));
        // Its own throttle: a second one at once is not fanned out.
        out1.clear();
        s1.pipe_sender_report(R2, ProducerId(60), hop.cargo.rtcp().unwrap(), 1_000_001, &mut out1);
        assert!(out1.is_empty());
        assert_eq!(s1.counters().drops_of(DropReason::SenderReportThrottled), 1);
        for c in [s.counters(), s1.counters()] {
            assert!(c.ingress_balanced(), "{c:?}");
        }
    }
}
