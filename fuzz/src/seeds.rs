//! Seed inputs for every target: valid packets, rooms and bodies built with core's own emitters,
//! so the fuzzer starts from inputs that reach deep paths. `examples/gen_corpus.rs` writes them
//! to `corpus/<target>/`; `tests/regressions.rs` checks the files still equal what this builds.

use shardcast_core::rtcp::{
    FirRepr, NackRepr, PliRepr, ReceiverReportRepr, ReportBlockRepr, SenderReportRepr,
};
use shardcast_core::rtp::RtpRepr;
use shardcast_core::testutil::rtp;

use crate::shard::{sources, SOCKETS};

/// `(target, file name, bytes)` of every seed.
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut v = Vec::new();
    for (name, bytes) in rtp_parse_rewrite() {
        v.push(("rtp_parse_rewrite", name, bytes));
    }
    for (name, bytes) in rtp_extensions() {
        v.push(("rtp_extensions", name, bytes));
    }
    for (name, bytes) in rtcp_packets() {
        v.push(("rtcp_compound", name, bytes));
    }
    for (name, bytes) in shard_forward() {
        v.push(("shard_forward", name, bytes));
    }
    for (name, bytes) in shard_commands() {
        v.push(("shard_commands", name, bytes));
    }
    for (name, bytes) in api_request() {
        v.push(("api_request", name, bytes));
    }
    v
}

/// A packet with CC=1, a one-byte extension (ids 1 and 2) and 4 octets of padding.
pub fn full_rtp() -> Vec<u8> {
    vec![
        0xB1, 0xE0, 0x12, 0x34, 0x00, 0x01, 0x00, 0x02, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04, 0xBE,
        0xDE, 0x00, 0x02, 0x10, 0xAA, 0x21, 0xBB, 0xCC, 0x00, 0x00, 0x00, b'p', b'a', b'y', b'!', 0x00, 0x00,
        0x00, 0x04,
    ]
}

fn rtp_parse_rewrite() -> Vec<(String, Vec<u8>)> {
    let params = [100u8, 0x81, 0, 7, 0, 0, 0x10, 0, 0, 0, 0x13, 0x88];
    // Steps: rewrite +1 seq +3000 ts +20 ms; a resync; a source switch; a reordered packet.
    let steps: [[u8; 8]; 5] = [
        [0, 0, 1, 0, 0, 0x0B, 0xB8, 20],
        [0, 0, 1, 0, 0, 0x0B, 0xB8, 20],
        [6, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 50, 0, 0, 0x0B, 0xB8, 200],
        [7, 0, 0, 0, 0, 0, 0, 0],
    ];
    let with = |steps: &[[u8; 8]], packet: &[u8]| {
        let mut v = params.to_vec();
        v.push(steps.len() as u8);
        for s in steps {
            v.extend_from_slice(s);
        }
        v.extend_from_slice(packet);
        v
    };
    let mut two_byte = RtpRepr {
        marker: false,
        payload_type: shardcast_core::ids::PayloadType(111),
        sequence_number: shardcast_core::ids::SeqNo(65535),
        timestamp: u32::MAX,
        ssrc: shardcast_core::ids::Ssrc(42),
        csrcs: heapless::Vec::new(),
        extension: Some((0x1000, heapless::Vec::from_slice(&[5, 0, 7, 3, 1, 2, 3, 0]).expect("fits"))),
        padding_len: 0,
    };
    let emit = |r: &RtpRepr, payload: &[u8]| {
        let mut b = vec![0u8; r.buffer_len(payload.len())];
        r.emit(&mut b, payload);
        b
    };
    let two = emit(&two_byte, b"opus");
    two_byte.extension = None;
    two_byte.padding_len = 3;
    two_byte.csrcs = heapless::Vec::from_slice(&[1, 2, 3]).expect("fits");
    let padded = emit(&two_byte, b"");
    let mut reordered = steps.to_vec();
    reordered.push([0, 0xFF, 0xF0, 0, 0, 0, 0, 1]);
    vec![
        ("plain".into(), with(&steps, &rtp(1111, 7, 1000, 96, b"hello"))),
        ("full".into(), with(&steps, &full_rtp())),
        ("two_byte_ext".into(), with(&reordered, &two)),
        ("csrcs_padding_empty_payload".into(), with(&[], &padded)),
        ("header_only".into(), with(&steps[..1], &rtp(1, 0, 0, 0, b""))),
    ]
}

fn rtp_extensions() -> Vec<(String, Vec<u8>)> {
    let seed = |profile: u16, block: &[u8]| {
        let mut v = profile.to_be_bytes().to_vec();
        v.extend_from_slice(block);
        v
    };
    vec![
        ("one_byte".into(), seed(0xBEDE, &[0x10, 0xAA, 0x21, 0xBB, 0xCC, 0, 0, 0])),
        ("one_byte_abs_send_time_mid".into(), seed(0xBEDE, &[0x32, 1, 2, 3, 0x41, b'm', b'0', 0])),
        ("one_byte_id15_stops".into(), seed(0xBEDE, &[0x10, 0xAA, 0xF0, 0x20, 0xBB, 0, 0, 0])),
        ("two_byte".into(), seed(0x1000, &[5, 0, 7, 3, 1, 2, 3, 0])),
        ("two_byte_app_bits".into(), seed(0x100F, &[1, 2, 0xAB, 0xCD])),
        ("other_profile".into(), seed(0x1234, &[1, 2, 3, 4])),
        ("empty".into(), seed(0xBEDE, &[])),
    ]
}

/// Valid RTCP packets and compounds.
pub fn rtcp_packets() -> Vec<(String, Vec<u8>)> {
    let block = ReportBlockRepr {
        ssrc: 5010,
        fraction_lost: 12,
        cumulative_lost: -1,
        highest_seq: 0x1_0005,
        jitter: 7,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 0x1_0000,
    };
    let mut reports = heapless::Vec::new();
    reports.push(block).expect("fits");
    let sr = emit_with(|b| {
        SenderReportRepr {
            ssrc: 1111,
            ntp: 0xE000_0000_8000_0000,
            rtp_timestamp: 160_000,
            packet_count: 10,
            octet_count: 1600,
            reports: reports.clone(),
        }
        .emit(b)
    });
    let rr = emit_with(|b| ReceiverReportRepr { ssrc: 42, reports: reports.clone() }.emit(b));
    let pli = emit_with(|b| PliRepr { sender_ssrc: 42, media_ssrc: 5010 }.emit(b));
    let mut entries = heapless::Vec::new();
    entries.push((5010, 3)).expect("fits");
    let fir = emit_with(|b| FirRepr { sender_ssrc: 42, entries }.emit(b));
    let nack = emit_with(|b| NackRepr::from_lost(42, 5010, &[3, 4, 6, 40]).emit(b));
    let sdes =
        vec![0x81, 0xCA, 0x00, 0x04, 0, 0, 0, 42, 0x01, 0x05, b'a', b'l', b'i', b'c', b'e', 0, 0, 0, 0, 0];
    let bye = vec![0x81, 0xCB, 0x00, 0x03, 0x00, 0x00, 0x00, 0x2A, 0x03, b'b', b'y', b'e'];
    let app = vec![0x80, 0xCC, 0x00, 0x02, 0, 0, 0, 42, b'n', b'a', b'm', b'e'];
    let mut padded = rr.clone();
    padded[0] |= 0x20;
    padded[3] += 1;
    padded.extend_from_slice(&[0, 0, 0, 4]);
    let cat = |parts: &[&[u8]]| parts.concat();
    vec![
        ("sr".into(), sr.clone()),
        ("rr".into(), rr.clone()),
        ("pli".into(), pli.clone()),
        ("fir".into(), fir.clone()),
        ("nack".into(), nack.clone()),
        ("sdes".into(), sdes.clone()),
        ("bye".into(), bye.clone()),
        ("app".into(), app.clone()),
        ("rr_sdes_pli_app".into(), cat(&[&rr, &sdes, &pli, &app])),
        ("sr_sdes_bye".into(), cat(&[&sr, &sdes, &bye])),
        ("rr_nack_fir".into(), cat(&[&rr, &nack, &fir])),
        ("sr_padded_rr".into(), cat(&[&sr, &padded])),
    ]
}

fn emit_with(f: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    let n = f(&mut b);
    b.truncate(n);
    b
}

/// One datagram of `shard_forward`'s input format.
fn dgram(socket: u32, source: usize, dt: u8, data: &[u8]) -> Vec<u8> {
    let s = SOCKETS.iter().position(|x| *x == socket).expect("a listed socket") as u8;
    assert!(source < sources().len());
    let mut v = vec![s, source as u8, dt];
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn shard_forward() -> Vec<(String, Vec<u8>)> {
    let rtcp = rtcp_packets();
    let get = |name: &str| rtcp.iter().find(|(n, _)| n == name).expect("seed").1.clone();
    let p1 = |seq| rtp(1111, seq, u32::from(seq) * 3000, 96, b"video payload");
    let stream: Vec<u8> = (1..=5).flat_map(|s| dgram(1, 0, 3, &p1(s))).collect();
    let mut sr = get("sr");
    sr[4..8].copy_from_slice(&1111u32.to_be_bytes());
    let seeds = vec![
        ("p1_stream", [&[0u8][..], &stream].concat()),
        ("p2_shared_known", [vec![0], dgram(0, 1, 2, &rtp(2222, 9, 960, 111, b"opus"))].concat()),
        (
            "p3_comedia_latch_then_hijack",
            [
                vec![0],
                dgram(0, 7, 1, &rtp(3333, 1, 0, 100, b"latch me")),
                dgram(0, 8, 1, &rtp(3333, 2, 0, 100, b"hijack")),
                dgram(0, 7, 1, &rtp(3333, 3, 0, 100, b"again")),
            ]
            .concat(),
        ),
        ("p4_dedicated_comedia", [vec![0], dgram(4, 8, 1, &rtp(4444, 1, 0, 0, b"pcmu"))].concat()),
        ("sr_from_producer", [vec![0], dgram(1, 0, 1, &p1(1)), dgram(1, 0, 1, &sr)].concat()),
        (
            "rr_pli_from_consumer",
            [vec![0], dgram(1, 0, 1, &p1(1)), dgram(10, 2, 1, &get("rr_sdes_pli_app"))].concat(),
        ),
        ("nack_fir_from_consumer", [stream.clone(), dgram(10, 2, 1, &get("rr_nack_fir"))].concat()),
        ("steered", [vec![0], dgram(0, 10, 0, &p1(1)), dgram(0, 9, 0, &rtp(9999, 1, 0, 96, b"x"))].concat()),
        ("small_sink", [&[2u8][..], &stream].concat()),
        ("nack_four_full_pairs", nack_four_full_pairs()),
        (
            "wrong_sources_and_garbage",
            [
                vec![0],
                dgram(1, 12, 1, &p1(1)),
                dgram(1, 11, 1, &p1(2)),
                dgram(0, 9, 1, &[0x00, 0x01, 0x00, 0x00]),
                dgram(0, 9, 1, &[0x16, 0xFE, 0xFD]),
                dgram(99, 0, 1, &p1(3)),
            ]
            .concat(),
        ),
    ];
    seeds.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

/// 17 packets of producer 1, then consumer 10 NACKs `(PID 1, BLP 0xFFFF)` four times: 68
/// retransmissions, under the bound (93) but near it.
fn nack_four_full_pairs() -> Vec<u8> {
    let p1 = |seq| rtp(1111, seq, u32::from(seq) * 3000, 96, b"video payload");
    let stream: Vec<u8> = (1..=17).flat_map(|s| dgram(1, 0, 1, &p1(s))).collect();
    let mut nack = NackRepr::from_lost(42, 5010, &[]);
    for _ in 0..4 {
        nack.pairs.push((1, 0xFFFF)).expect("fits");
    }
    let nack = emit_with(|b| nack.emit(b));
    [vec![0], stream, dgram(10, 2, 1, &nack)].concat()
}

/// Encodes one command for `shard::command` (indexes into its id tables).
#[allow(clippy::too_many_arguments)]
fn cmd(router: u8, transport: u8, producer: u8, consumer: u8, kind: u8, rest: &[u8]) -> Vec<u8> {
    [&[router, transport, producer, consumer, kind][..], rest].concat()
}

fn shard_commands() -> Vec<(String, Vec<u8>)> {
    // Router 1; transport 1 on socket 1 connected to remote 0; producer 1 (video, ssrc 22, PT 96,
    // 90 kHz); transport 2 on the shared port connected to remote 1; consumer 1 of producer 1.
    let create_router = [&[0u8][..], &cmd(0, 0, 0, 0, 0, &[])].concat();
    let transport1 = [&[0u8][..], &cmd(0, 0, 0, 0, 2, &[0, 0, 1, 2])].concat();
    let producer1 = [&[0u8][..], &cmd(0, 0, 0, 0, 5, &[1, 1, 1, 1, 1])].concat();
    let transport2 = [&[0u8][..], &cmd(0, 1, 0, 0, 2, &[0, 1, 1, 0])].concat();
    let consumer1 = [&[0u8][..], &cmd(0, 1, 0, 0, 9, &[0, 1, 1])].concat();
    let room = [create_router.clone(), transport1, producer1, transport2, consumer1].concat();
    // A comedia transport on the shared port (3) with a producer (3, ssrc 33), then latch it.
    let comedia = [
        &[0u8][..],
        &cmd(0, 2, 0, 0, 2, &[1, 0, 0]),
        &[0u8],
        &cmd(0, 2, 2, 0, 5, &[0, 2, 3, 0, 1]),
        &[0xF1, 0],
    ]
    .concat();
    // Pause/resume the consumer and the producer, close the producer, close the router.
    let lifecycle = [
        &[1u8][..],
        &cmd(0, 0, 0, 0, 11, &[]),
        &cmd(0, 0, 0, 0, 7, &[]),
        &[1u8],
        &cmd(0, 0, 0, 0, 12, &[]),
        &cmd(0, 0, 0, 0, 8, &[]),
        &[0xF0, 0],
        &[0u8],
        &cmd(0, 0, 0, 0, 6, &[]),
        &[0u8],
        &cmd(0, 0, 0, 0, 1, &[]),
    ]
    .concat();
    // A batch that fails at its last command (duplicate router) after changing things.
    let rejected =
        [&[2u8][..], &cmd(0, 0, 0, 0, 11, &[]), &cmd(0, 0, 0, 0, 4, &[]), &cmd(0, 0, 0, 0, 0, &[])].concat();
    // Steering set and removed.
    let steering = [&[1u8][..], &cmd(0, 0, 0, 0, 13, &[0, 0, 0]), &cmd(0, 0, 0, 0, 13, &[0, 0, 2])].concat();
    vec![
        ("room".into(), room.clone()),
        ("room_comedia".into(), [room.clone(), comedia].concat()),
        ("room_lifecycle".into(), [room.clone(), lifecycle].concat()),
        ("room_rejected".into(), [room.clone(), rejected].concat()),
        ("steering".into(), [create_router, steering].concat()),
    ]
}

fn api_request() -> Vec<(String, Vec<u8>)> {
    let body = |route: u8, b: &str| [&[route][..], b.as_bytes()].concat();
    vec![
        ("create_router_empty".into(), body(0, "")),
        ("create_router_core".into(), body(0, r#"{"core": 0}"#)),
        ("create_router_unknown_field".into(), body(0, r#"{"cores": 0}"#)),
        ("move".into(), body(1, r#"{"core": 0}"#)),
        (
            "transport".into(),
            body(2, r#"{"listen_ip": "127.0.0.1", "port": null, "shared_port": false, "comedia": true}"#),
        ),
        ("transport_shared".into(), body(2, r#"{"shared_port": true}"#)),
        ("connect".into(), body(3, r#"{"ip": "127.0.0.1", "port": 5000}"#)),
        ("connect_v6".into(), body(3, r#"{"ip": "::1", "port": 5000}"#)),
        ("connect_missing_port".into(), body(3, r#"{"ip": "127.0.0.1"}"#)),
        (
            "produce".into(),
            body(4, r#"{"kind": "audio", "ssrc": 2222, "payload_type": 111, "clock_rate": 48000}"#),
        ),
        ("produce_bad_pt".into(), body(4, r#"{"kind": "video", "ssrc": 3333, "payload_type": 200}"#)),
        ("consume".into(), body(5, r#"{"producer_id": 1, "paused": true}"#)),
        ("stall".into(), body(6, r#"{"millis": 1, "wait": false}"#)),
        ("duplicate_field".into(), body(4, r#"{"kind": "audio", "kind": "video"}"#)),
        ("not_json".into(), body(2, "{listen_ip: 1}")),
    ]
}

/// Hand-built reproductions of known findings (`regressions/known/<target>/<name>`; see
/// `regressions/KNOWN.md`); the ones the fuzzer found are kept as it wrote them.
pub fn known_findings() -> Vec<(&'static str, String, Vec<u8>)> {
    let p1 = |seq| rtp(1111, seq, u32::from(seq) * 3000, 96, b"video payload");
    let stream: Vec<u8> =
        [&[0u8][..], &(1..=17).flat_map(|s| dgram(1, 0, 1, &p1(s))).collect::<Vec<u8>>()].concat();
    // Consumer 10 (SSRC 5010, remote 127.0.1.10:6010 on socket 10) NACKs 64 × (PID 1, BLP 0xFFFF):
    // sequence numbers 1..=17, all in the store, 64 times over, in one 268-byte datagram.
    let mut nack = NackRepr::from_lost(42, 5010, &[]);
    for _ in 0..64 {
        nack.pairs.push((1, 0xFFFF)).expect("64 fit");
    }
    let nack = emit_with(|b| nack.emit(b));
    // Producer 1 (127.0.0.1:5000 on socket 1) sends a compound of 50 sender reports of its SSRC.
    let sr = emit_with(|b| SenderReportRepr { ssrc: 1111, ..SenderReportRepr::default() }.emit(b));
    let srs: Vec<u8> = std::iter::repeat_n(&sr[..], 50).flatten().copied().collect();
    vec![
        ("shard_forward", "nack_amplification".into(), [stream.clone(), dgram(10, 2, 1, &nack)].concat()),
        ("shard_forward", "sr_amplification".into(), [stream, dgram(1, 0, 1, &srs)].concat()),
    ]
}
