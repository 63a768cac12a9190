//! Forwarding a batch performs zero heap allocations (a counting global allocator).
//!
//! Only the forwarding thread's allocations are counted: the test harness's own threads (output
//! capture, the timeout watcher) may allocate at any moment and are not the forwarding path.

use std::net::SocketAddr;

use shardcast_core::command::SocketId;
use shardcast_core::shard::{Datagram, Output, Shard};
use shardcast_core::testutil::{fanout_setup, rtp};
use shardcast_tests::alloc::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn forwarding_allocates_nothing() {
    CountingAlloc::count_this_thread();
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mut shard = Shard::new();
    shard.apply_batch(&fanout_setup(SocketId(1), addr(5000), 10, |i| addr(6000 + i as u16)));
    let packets: Vec<Vec<u8>> =
        (0..64u16).map(|i| rtp(1111, i, u32::from(i) * 3000, 96, &[7u8; 1000])).collect();
    let mut out: Box<heapless::Vec<Output, 1024>> = Box::default();
    // Warm up (first packet per consumer initialises state).
    for (i, p) in packets.iter().enumerate() {
        shard.forward(i as u32, &Datagram { socket: SocketId(1), source: addr(5000), data: p }, 0, &mut *out);
    }
    let before = CountingAlloc::this_thread();
    assert!(before > 0, "the counter sees this thread's allocations (the setup's)");
    let mut forwarded = 0usize;
    for round in 0..200u64 {
        out.clear();
        for (i, p) in packets.iter().enumerate() {
            shard.forward(
                i as u32,
                &Datagram { socket: SocketId(1), source: addr(5000), data: p },
                round * 1000,
                &mut *out,
            );
        }
        forwarded += out.len();
    }
    let after = CountingAlloc::this_thread();
    assert_eq!(forwarded, 200 * 64 * 10);
    assert_eq!(after - before, 0, "allocations on the forwarding path");
}

/// Pipes too: a producer piped to a router on the same core (10 consumers there) and to one on
/// another core (a `PipeHop` per packet, taken by the caller) forwards without allocating.
#[test]
fn piping_allocates_nothing() {
    use shardcast_core::command::{Command, CommandBatch, ConsumerOptions, PipeEnd, PlainTransportOptions};
    use shardcast_core::ids::{ConsumerId, PayloadType, ProducerId, RouterId, Ssrc, TransportId};
    CountingAlloc::count_this_thread();
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mut shard = Shard::new();
    shard.apply_batch(&fanout_setup(SocketId(1), addr(5000), 10, |i| addr(6000 + i as u16)));
    let (r1, r2, p, q, remote_q) = (RouterId(1), RouterId(2), ProducerId(1), ProducerId(50), ProducerId(60));
    let options = shard.router(r1).unwrap().producer(p).unwrap().options().clone();
    let mut commands = vec![
        Command::CreateRouter { router: r2 },
        Command::CreatePipedProducer {
            router: r2,
            producer: q,
            options,
            source: PipeEnd { router: r1, producer: p, core: 0 },
        },
    ];
    for i in 0..10u32 {
        commands.push(Command::CreatePlainTransport {
            router: r2,
            transport: TransportId(200 + i),
            options: PlainTransportOptions {
                socket: SocketId(200 + i),
                remote: Some(addr(7000 + i as u16)),
                comedia: false,
                comedia_source: None,
            },
        });
        commands.push(Command::CreateConsumer {
            router: r2,
            transport: TransportId(200 + i),
            consumer: ConsumerId(300 + i),
            options: ConsumerOptions {
                producer: q,
                ssrc: Ssrc(9000 + i),
                payload_type: PayloadType(96),
                paused: false,
            },
        });
    }
    commands.push(Command::AddPipe {
        router: r1,
        producer: p,
        target: PipeEnd { router: r2, producer: q, core: 0 },
    });
    commands.push(Command::AddPipe {
        router: r1,
        producer: p,
        target: PipeEnd { router: RouterId(3), producer: remote_q, core: 1 },
    });
    let reply = shard.apply_batch(&CommandBatch { seq: 2, commands });
    assert!(matches!(reply, shardcast_core::command::BatchReply::Applied { .. }), "{reply:?}");
    let packets: Vec<Vec<u8>> =
        (0..64u16).map(|i| rtp(1111, i, u32::from(i) * 3000, 96, &[7u8; 1000])).collect();
    let mut out: Box<heapless::Vec<Output, 2048>> = Box::default();
    let mut hops = 0usize;
    let mut pass = |shard: &mut Shard, out: &mut heapless::Vec<Output, 2048>, now: u64| {
        out.clear();
        for (i, p) in packets.iter().enumerate() {
            shard.forward(i as u32, &Datagram { socket: SocketId(1), source: addr(5000), data: p }, now, out);
            while shard.pop_pipe_hop().is_some() {
                hops += 1;
            }
        }
        out.len()
    };
    pass(&mut shard, &mut out, 0);
    let before = CountingAlloc::this_thread();
    let mut forwarded = 0usize;
    for round in 1..=200u64 {
        forwarded += pass(&mut shard, &mut out, round * 1000);
    }
    let after = CountingAlloc::this_thread();
    assert_eq!(forwarded, 200 * 64 * 20, "R1's 10 consumers and R2's 10");
    assert_eq!(hops, 201 * 64, "one hop per packet for the other core");
    assert_eq!(after - before, 0, "allocations on the forwarding path with pipes");
}
