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
