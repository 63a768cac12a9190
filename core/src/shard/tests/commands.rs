//! Commands: whole-or-nothing batches, harmless missing targets, error kinds, take/insert, the
//! close cascade.

use super::*;
use crate::command::{ConsumerOptions, ErrorKind, PlainTransportOptions, ProducerOptions, SocketId};
use crate::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, TransportId};
use crate::testutil::{fanout_setup, rtp};

#[test]
fn close_cascade_router_transport_producer() {
    let mut s = setup(2);
    // Closing the consumer transport 100 closes consumer 100 only.
    s.apply_batch(&batch(2, vec![Command::CloseTransport { router: R, transport: TransportId(100) }]));
    let r = s.router(R).unwrap();
    assert!(r.consumer(ConsumerId(100)).is_none());
    assert!(r.consumer(ConsumerId(101)).is_some());
    assert_eq!(r.producer(ProducerId(1)).unwrap().consumers(), &[ConsumerId(101)]);
    // Closing the producer closes its consumers on other transports.
    s.apply_batch(&batch(3, vec![Command::CloseProducer { router: R, producer: ProducerId(1) }]));
    let r = s.router(R).unwrap();
    assert!(r.consumer(ConsumerId(101)).is_none());
    assert!(r.transport(TransportId(101)).is_some());
    assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
    // Closing the router closes everything and frees its sockets for reuse.
    let reply = s.apply_batch(&batch(4, vec![Command::CloseRouter { router: R }]));
    assert_eq!(reply, BatchReply::Applied { seq: 4, outcomes: vec![Outcome::Applied] });
    assert!(s.router(R).is_none());
    assert!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).is_empty());
    assert_eq!(s.counters().drops_of(DropReason::UnknownTransport), 1);
    let again = s.apply_batch(&fanout_setup(SocketId(1), addr(5000), 1, |_| addr(7000)));
    assert!(matches!(again, BatchReply::Applied { .. }));
}

#[test]
fn commands_on_missing_targets_are_harmless_not_found() {
    let mut s = setup(1);
    let reply = s.apply_batch(&batch(
        2,
        vec![
            Command::CloseConsumer { router: R, consumer: ConsumerId(999) },
            Command::PauseProducer { router: RouterId(42), producer: ProducerId(1) },
            Command::PauseConsumer { router: R, consumer: ConsumerId(100) },
        ],
    ));
    assert_eq!(
        reply,
        BatchReply::Applied {
            seq: 2,
            outcomes: vec![Outcome::NotFound, Outcome::NotFound, Outcome::Applied]
        }
    );
}

#[test]
fn rejected_batch_changes_nothing() {
    let mut s = setup(1);
    let reply = s.apply_batch(&batch(
        2,
        vec![
            Command::PauseConsumer { router: R, consumer: ConsumerId(100) },
            Command::CloseTransport { router: R, transport: TransportId(100) },
            // Duplicate producer id: refused, so the two commands above are undone.
            Command::CreateProducer {
                router: R,
                transport: TransportId(1),
                producer: ProducerId(1),
                options: ProducerOptions {
                    kind: MediaKind::Audio,
                    ssrc: Ssrc(3),
                    payload_type: PayloadType(111),
                    clock_rate: 48000,
                    paused: false,
                },
            },
        ],
    ));
    match reply {
        BatchReply::Rejected { seq: 2, index: 2, error } => {
            assert_eq!(error.kind, ErrorKind::InvalidState)
        }
        other => panic!("{other:?}"),
    }
    let c = s.router(R).unwrap().consumer(ConsumerId(100)).unwrap();
    assert!(!c.paused());
    assert_eq!(send(&mut s, 1, addr(5000), &rtp(1111, 1, 0, 96, b"x")).len(), 1);
}

#[test]
fn rejected_batch_restores_steering() {
    let mut s = setup(0);
    let (moved, added) = (SteerKey::Remote(addr(7000)), SteerKey::Remote(addr(7001)));
    s.set_steering(moved, RouterId(9), Some(1));
    let reply = s.apply_batch(&batch(
        2,
        vec![
            Command::SetSteering { router: RouterId(9), key: moved, core: Some(2) },
            Command::SetSteering { router: RouterId(9), key: added, core: Some(2) },
            // Duplicate router id: refused, so both steering changes are undone.
            Command::CreateRouter { router: R },
        ],
    ));
    assert!(matches!(reply, BatchReply::Rejected { index: 2, .. }), "{reply:?}");
    assert_eq!(s.steering_of(&moved), Some((RouterId(9), 1)));
    assert_eq!(s.steering_of(&added), None);
}

#[test]
fn invalid_arguments_are_distinguished_from_state_errors() {
    let mut s = setup(0);
    let bad_pt = s.apply(&Command::CreateConsumer {
        router: R,
        transport: TransportId(1),
        consumer: ConsumerId(5),
        options: ConsumerOptions {
            producer: ProducerId(1),
            ssrc: Ssrc(9),
            payload_type: PayloadType(200),
            paused: false,
        },
    });
    assert_eq!(bad_pt.unwrap_err().kind, ErrorKind::InvalidArgument);
    let dup_router = s.apply(&Command::CreateRouter { router: R });
    assert_eq!(dup_router.unwrap_err().kind, ErrorKind::InvalidState);
    let dup_socket = s.apply(&Command::CreatePlainTransport {
        router: R,
        transport: TransportId(7),
        options: PlainTransportOptions {
            socket: SocketId(1),
            remote: None,
            comedia: true,
            comedia_source: None,
        },
    });
    assert_eq!(dup_socket.unwrap_err().kind, ErrorKind::InvalidState);
}

#[test]
fn take_and_insert_router_moves_state() {
    let mut a = setup(1);
    let pkt = rtp(1111, 40, 0, 96, b"x");
    assert_eq!(send(&mut a, 1, addr(5000), &pkt).len(), 1);
    let router = a.take_router(R).unwrap();
    assert!(send(&mut a, 1, addr(5000), &pkt).is_empty());
    let mut b = Shard::new();
    b.insert_router(R, router).unwrap();
    let out = send(&mut b, 1, addr(5000), &rtp(1111, 41, 0, 96, b"x"));
    assert_eq!(u16::from_be_bytes([out[0].header[2], out[0].header[3]]), 41);
}
