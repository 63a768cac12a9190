//! Micro-benches of the per-packet work, one criterion group per parameter: `rtp_parse` by packet
//! size, `consumer_rewrite` (one consumer's sequence/timestamp/SSRC rewrite), and
//! `forward_batch_of_64` by fan-out (64 datagrams through `Shard::forward`, 1, 10 and 100
//! consumers: routing lookup, rewrite and output writing together).

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardcast_core::command::SocketId;
use shardcast_core::consumer::RtpRewriter;
use shardcast_core::ids::{PayloadType, SeqNo, Ssrc};
use shardcast_core::rtp::RtpPacket;
use shardcast_core::shard::{Datagram, Output, Shard};
use shardcast_core::testutil::{fanout_setup, rtp};

fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtp_parse");
    for size in [160usize, 1000, 1200] {
        let p = rtp(1, 2, 3, 96, &vec![0u8; size]);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(size), &p, |b, p| {
            b.iter(|| {
                let v = RtpPacket::new_checked(black_box(&p[..])).unwrap();
                black_box((v.ssrc(), v.sequence_number(), v.timestamp(), v.payload().len()))
            })
        });
    }
    g.finish();
}

fn rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("consumer_rewrite");
    let mut r = RtpRewriter::new(Ssrc(9), PayloadType(96));
    let mut seq = 0u16;
    g.bench_function("seq_ts_ssrc", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            black_box(r.rewrite(SeqNo(seq), u32::from(seq) * 3000, 90000, u64::from(seq)))
        })
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward_batch_of_64");
    for consumers in [1u32, 10, 100] {
        let mut shard = Shard::new();
        shard.apply_batch(&fanout_setup(SocketId(1), addr(5000), consumers, |i| addr(10000 + i as u16)));
        let packets: Vec<Vec<u8>> =
            (0..64u16).map(|i| rtp(1111, i, u32::from(i) * 3000, 96, &[0u8; 1000])).collect();
        let mut out: Box<heapless::Vec<Output, 8192>> = Box::default();
        g.throughput(Throughput::Elements(64 * u64::from(consumers)));
        g.bench_with_input(BenchmarkId::new("fanout", consumers), &consumers, |b, _| {
            let mut now = 0u64;
            b.iter(|| {
                out.clear();
                now += 1000;
                for (i, p) in packets.iter().enumerate() {
                    shard.forward(
                        i as u32,
                        &Datagram { socket: SocketId(1), source: addr(5000), data: p },
                        now,
                        &mut *out,
                    );
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, rewrite, fanout);
criterion_main!(benches);
