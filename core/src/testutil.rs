//! Builders shared by core's tests and by other crates' tests (`test-util` feature).

use std::net::SocketAddr;

use crate::command::{
    Command, CommandBatch, ConsumerOptions, PlainTransportOptions, ProducerOptions, SocketId,
};
use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

/// Builds an RTP packet: 12-byte header + `payload`.
pub fn rtp(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + payload.len());
    v.extend_from_slice(&[0x80, pt & 0x7f]);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A router with one producer transport on `producer_socket` (remote `producer_remote`) and
/// `consumers` consumer transports on sockets 100.. connected to `consumer_remote(i)`.
pub fn fanout_setup(
    producer_socket: SocketId,
    producer_remote: SocketAddr,
    consumers: u32,
    consumer_remote: impl Fn(u32) -> SocketAddr,
) -> CommandBatch {
    let r = RouterId(1);
    let mut commands = vec![
        Command::CreateRouter { router: r },
        Command::CreatePlainTransport {
            router: r,
            transport: TransportId(1),
            options: PlainTransportOptions {
                socket: producer_socket,
                remote: Some(producer_remote),
                comedia: false,
                comedia_source: None,
            },
        },
        Command::CreateProducer {
            router: r,
            transport: TransportId(1),
            producer: ProducerId(1),
            options: ProducerOptions {
                kind: MediaKind::Video,
                ssrc: Ssrc(1111),
                payload_type: PayloadType(96),
                clock_rate: 90000,
                paused: false,
            },
        },
    ];
    for i in 0..consumers {
        let t = TransportId(100 + i);
        commands.push(Command::CreatePlainTransport {
            router: r,
            transport: t,
            options: PlainTransportOptions {
                socket: SocketId(100 + i),
                remote: Some(consumer_remote(i)),
                comedia: false,
                comedia_source: None,
            },
        });
        commands.push(Command::CreateConsumer {
            router: r,
            transport: t,
            consumer: ConsumerId(100 + i),
            options: ConsumerOptions {
                producer: ProducerId(1),
                ssrc: Ssrc(5000 + i),
                payload_type: PayloadType(96),
                paused: false,
            },
        });
    }
    CommandBatch { seq: 1, commands }
}

/// Builds the commands of a room: a router, producers on transports connected to their
/// senders, consumers on transports connected to their receivers. Transport ids are the
/// producer's / consumer's own id.
#[derive(Debug)]
pub struct Room {
    router: RouterId,
    commands: Vec<Command>,
}

impl Room {
    /// `CreateRouter`.
    pub fn new(router: RouterId) -> Room {
        Room { router, commands: vec![Command::CreateRouter { router }] }
    }

    /// A transport `id` on `socket` connected to `remote`, with producer `id` (`ssrc`, `pt`).
    pub fn producer(mut self, id: u32, socket: SocketId, remote: SocketAddr, ssrc: u32, pt: u8) -> Room {
        let (router, transport) = (self.router, TransportId(id));
        let video = pt >= 96 && pt != 111;
        self.commands.push(Command::CreatePlainTransport {
            router,
            transport,
            options: PlainTransportOptions {
                socket,
                remote: Some(remote),
                comedia: false,
                comedia_source: None,
            },
        });
        self.commands.push(Command::CreateProducer {
            router,
            transport,
            producer: ProducerId(id),
            options: ProducerOptions {
                kind: if video { MediaKind::Video } else { MediaKind::Audio },
                ssrc: Ssrc(ssrc),
                payload_type: PayloadType(pt),
                clock_rate: if video { 90000 } else { 48000 },
                paused: false,
            },
        });
        self
    }

    /// A transport `id` on `socket` connected to `remote` (created once per id), with consumer
    /// `id` of `producer` (`ssrc`, `pt`).
    pub fn consumer(
        mut self,
        id: u32,
        socket: SocketId,
        remote: SocketAddr,
        producer: u32,
        ssrc: u32,
        pt: u8,
    ) -> Room {
        let (router, transport) = (self.router, TransportId(id));
        self.commands.push(Command::CreatePlainTransport {
            router,
            transport,
            options: PlainTransportOptions {
                socket,
                remote: Some(remote),
                comedia: false,
                comedia_source: None,
            },
        });
        self.consumer_on(id, id, producer, ssrc, pt)
    }

    /// Consumer `id` of `producer` on the existing transport `transport`.
    pub fn consumer_on(mut self, id: u32, transport: u32, producer: u32, ssrc: u32, pt: u8) -> Room {
        self.commands.push(Command::CreateConsumer {
            router: self.router,
            transport: TransportId(transport),
            consumer: ConsumerId(id),
            options: ConsumerOptions {
                producer: ProducerId(producer),
                ssrc: Ssrc(ssrc),
                payload_type: PayloadType(pt),
                paused: false,
            },
        });
        self
    }

    /// The commands, in order.
    pub fn commands(self) -> Vec<Command> {
        self.commands
    }
}
