//! RTP targets: `rtp_parse_rewrite` (the packet view, its `Repr`, every setter and the
//! per-consumer `RtpRewriter`) and `rtp_extensions` (RFC 8285 elements against a reference walk).

use crate::tolerated;
use shardcast_core::consumer::RtpRewriter;
use shardcast_core::ids::{PayloadType, SeqNo, Ssrc};
use shardcast_core::rtp::{RtpPacket, RtpRepr, FIXED_HEADER_LEN, ONE_BYTE_PROFILE, TWO_BYTE_PROFILE_MASK};

/// Bytes of rewrite parameters in front of `rtp_parse_rewrite`'s input.
pub const REWRITE_PARAMS_LEN: usize = 12;
/// Bytes per rewriter step.
pub const STEP_LEN: usize = 8;

/// Input: 12 bytes of new header fields (PT, marker, seq, ts, SSRC), one byte `n`, `n` rewriter
/// steps of 8 bytes, then the packet (every remaining byte).
///
/// Invariants: a packet that `new_checked` accepts never makes an accessor panic and its parts
/// tile the buffer; `RtpRepr` parse → emit reproduces the packet byte for byte (padding octets
/// aside) and parses back to the same `Repr`; each setter changes only its field and keeps the
/// packet valid; an `RtpRewriter` over a stream of steps sets its own SSRC/PT, keeps the output
/// sequence contiguous across resyncs and source switches, keeps one sequence/timestamp offset
/// between them, and maps every output back to its input.
pub fn rtp_parse_rewrite(data: &[u8]) {
    let Some((params, rest)) = data.split_at_checked(REWRITE_PARAMS_LEN) else { return };
    let Some((&n, rest)) = rest.split_first() else { return };
    let steps_len = (usize::from(n) * STEP_LEN).min(rest.len());
    let (steps, packet) = rest.split_at(steps_len);
    let Ok(p) = RtpPacket::new_checked(packet) else { return };
    check_view(&p);
    check_repr_round_trip(&p);
    check_setters(packet, params);
    check_rewriter(packet, params, steps);
}

fn check_view(p: &RtpPacket<&[u8]>) {
    let b = p.as_bytes();
    assert_eq!(p.version(), 2);
    let csrc_end = FIXED_HEADER_LEN + 4 * usize::from(p.csrc_count());
    for i in 0..20 {
        assert_eq!(p.csrc(i).is_some(), i < usize::from(p.csrc_count()), "csrc({i})");
    }
    let header = p.header_len();
    assert!(header >= csrc_end);
    assert_eq!(p.extension(), header > csrc_end || p.extension_profile().is_some());
    assert!(
        header + p.padding_len() <= b.len(),
        "header {header} + padding {} > {}",
        p.padding_len(),
        b.len()
    );
    assert_eq!(p.padding(), p.padding_len() > 0, "P set means a non-zero pad count");
    let payload = p.payload();
    assert_eq!(header + payload.len() + p.padding_len(), b.len(), "header, payload, padding tile the packet");
    assert_eq!(payload, &b[header..header + payload.len()]);
    for (id, value) in p.extensions() {
        assert!(id > 0 || tolerated("extension_id_zero"), "id 0 is padding, never an element");
        assert!(within(value, &b[csrc_end..header]), "element outside its block");
    }
}

fn check_repr_round_trip(p: &RtpPacket<&[u8]>) {
    let b = p.as_bytes();
    let repr = match RtpRepr::parse(p) {
        Ok(r) => r,
        // `RtpRepr` holds at most 256 octets of extension data.
        Err(_) => {
            assert!(p.header_len() - FIXED_HEADER_LEN - 4 * usize::from(p.csrc_count()) - 4 > 256);
            return;
        }
    };
    assert_eq!(repr.header_len(), p.header_len());
    let payload = p.payload();
    let mut out = vec![0u8; repr.buffer_len(payload.len())];
    assert_eq!(out.len(), b.len());
    repr.emit(&mut out, payload);
    let body = p.header_len() + payload.len();
    assert_eq!(&out[..body], &b[..body], "emit reproduces header and payload");
    assert_eq!(out.last(), b.last(), "and the pad count");
    let again = RtpPacket::new_checked(&out[..]).expect("an emitted packet is valid");
    assert_eq!(RtpRepr::parse(&again).expect("fits"), repr);
    assert_eq!(again.payload(), payload);
}

fn check_setters(packet: &[u8], params: &[u8]) {
    let pt = PayloadType(params[0] & 0x7f);
    let marker = params[1] & 1 != 0;
    let seq = SeqNo(u16::from_be_bytes([params[2], params[3]]));
    let ts = u32::from_be_bytes([params[4], params[5], params[6], params[7]]);
    let ssrc = Ssrc(u32::from_be_bytes([params[8], params[9], params[10], params[11]]));
    let mut buf = packet.to_vec();
    {
        let mut p = RtpPacket::new_unchecked(&mut buf[..]);
        p.set_payload_type(pt);
        p.set_marker(marker);
        p.set_sequence_number(seq);
        p.set_timestamp(ts);
        p.set_ssrc(ssrc);
    }
    let p = RtpPacket::new_checked(&buf[..]).expect("setters keep a packet valid");
    assert_eq!(
        (p.payload_type(), p.marker(), p.sequence_number(), p.timestamp(), p.ssrc()),
        (pt, marker, seq, ts, ssrc)
    );
    assert_eq!(buf[0], packet[0], "V/P/X/CC untouched");
    assert_eq!(
        &buf[FIXED_HEADER_LEN..],
        &packet[FIXED_HEADER_LEN..],
        "CSRCs, extensions, payload, padding untouched"
    );
    // One setter alone changes one field.
    let mut only_pt = packet.to_vec();
    RtpPacket::new_unchecked(&mut only_pt[..]).set_payload_type(pt);
    assert_eq!(only_pt[1] & 0x80, packet[1] & 0x80, "set_payload_type keeps the marker");
    assert_eq!(&only_pt[2..], &packet[2..]);
}

/// Replays steps through one `RtpRewriter` and applies each result to the packet as the shard does.
fn check_rewriter(packet: &[u8], params: &[u8], steps: &[u8]) {
    let own_ssrc = Ssrc(u32::from_be_bytes([params[8], params[9], params[10], params[11]]));
    let own_pt = PayloadType(params[0] & 0x7f);
    let base = RtpPacket::new_unchecked(packet);
    let clock_rate = [8000, 48000, 90000, 1][usize::from(params[1] >> 6)];
    let mut rw = RtpRewriter::new(own_ssrc, own_pt);
    let (mut seq, mut ts, mut now_us) = (base.sequence_number().0, base.timestamp(), 0u64);
    // Model: highest (input, output) since the last sync, the offsets in force, a sync pending.
    let mut newest: Option<(u16, u16)> = None;
    let mut max_out: Option<u16> = None;
    let mut seq_offset: Option<u16> = None;
    let mut ts_offset: Option<u32> = None;
    let mut synced = false;
    let mut switched = false;
    for step in steps.chunks_exact(STEP_LEN) {
        match step[0] % 8 {
            6 => {
                rw.sync();
                synced = max_out.is_some();
                continue;
            }
            7 => {
                rw.switch_source();
                synced = max_out.is_some();
                switched = true;
                continue;
            }
            _ => {}
        }
        seq = seq.wrapping_add(u16::from_be_bytes([step[1], step[2]]));
        ts = ts.wrapping_add(u32::from_be_bytes([step[3], step[4], step[5], step[6]]));
        now_us += u64::from(step[7]) * 1000;
        let Some(out) = rw.rewrite(SeqNo(seq), ts, clock_rate, now_us) else {
            assert!(!synced, "the first packet after a sync is never refused");
            assert!(max_out.is_some(), "the very first packet is never refused");
            continue;
        };
        assert_eq!((out.ssrc, out.payload_type), (own_ssrc, own_pt));
        assert_eq!(rw.output_to_input(out.seq), Some(SeqNo(seq)), "NACK mapping inverts the rewrite");
        if synced {
            let expected = max_out.expect("synced only after output").wrapping_add(1);
            assert_eq!(out.seq.0, expected, "a sync continues right after the highest output");
            newest = None;
            seq_offset = None;
        } else if max_out.is_none() {
            assert_eq!(out.seq.0, seq, "the first packet keeps its sequence number");
        }
        let offset = out.seq.0.wrapping_sub(seq);
        assert_eq!(*seq_offset.get_or_insert(offset), offset, "one sequence offset between syncs");
        if switched {
            ts_offset = None;
        }
        let t_off = out.timestamp.wrapping_sub(ts);
        assert_eq!(*ts_offset.get_or_insert(t_off), t_off, "one timestamp offset between source switches");
        assert_eq!(rw.ts_offset(), t_off);
        if newest.is_none_or(|(i, _)| seq_newer(seq, i)) {
            newest = Some((seq, out.seq.0));
            max_out = Some(out.seq.0);
        }
        synced = false;
        switched = false;
        // The shard's rewrite of the header: only SSRC, PT, seq and timestamp change.
        let mut buf = packet.to_vec();
        {
            let mut p = RtpPacket::new_unchecked(&mut buf[..]);
            p.set_ssrc(out.ssrc);
            p.set_payload_type(out.payload_type);
            p.set_sequence_number(out.seq);
            p.set_timestamp(out.timestamp);
        }
        let p = RtpPacket::new_checked(&buf[..]).expect("a rewritten packet is valid");
        assert_eq!(p.payload(), base.payload(), "a rewrite keeps the payload bytes");
        assert_eq!(p.marker(), base.marker());
        assert_eq!((buf[0], &buf[FIXED_HEADER_LEN..]), (packet[0], &packet[FIXED_HEADER_LEN..]));
    }
}

fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// True if `part` lies inside `whole` (same allocation).
fn within(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

/// Input: two bytes of extension profile, then the extension block (padded with zero octets
/// to whole words). The block is wrapped in an RTP packet with one CSRC and the payload
/// `"payload"`.
///
/// Invariants: `new_checked` accepts exactly the blocks a reference RFC 8285 walk accepts (any
/// block under another profile); the elements `extensions()` yields are the reference walk's, in
/// order, inside the block, never overlapping; ids are 1..=14 (one-byte) or 1..=255 (two-byte);
/// the payload is found after the block; re-encoding the elements gives the same elements.
pub fn rtp_extensions(data: &[u8]) {
    let Some((profile, block)) = data.split_first_chunk::<2>() else { return };
    let profile = u16::from_be_bytes(*profile);
    let block = &block[..block.len().min(4 * 0xFFFF)];
    let packet = wrap(profile, block);
    let words = block.len().div_ceil(4);
    let padded = &packet[20..20 + 4 * words];
    let (expected, id_zero) = reference_walk(profile, padded);
    if id_zero && tolerated("extension_id_zero") {
        return;
    }
    let parsed = RtpPacket::new_checked(&packet[..]);
    let Some(expected) = expected else {
        assert!(parsed.is_err(), "accepted a block the reference walk refuses: {profile:#06x} {padded:02x?}");
        return;
    };
    let p = parsed.unwrap_or_else(|e| panic!("refused ({e}) a block the reference walk accepts"));
    assert_eq!(p.extension_profile(), Some(profile));
    assert_eq!(p.header_len(), 20 + 4 * words);
    assert_eq!(p.payload(), b"payload");
    let got: Vec<(u8, &[u8])> = p.extensions().collect();
    assert_eq!(got, expected, "elements differ from the reference walk");
    let mut end = 0usize;
    for (id, value) in &got {
        assert!(within(value, padded));
        let at = value.as_ptr() as usize - padded.as_ptr() as usize;
        assert!(at >= end, "elements overlap or go backwards");
        end = at + value.len();
        if profile == ONE_BYTE_PROFILE {
            assert!((1..=14).contains(id) && (1..=16).contains(&value.len()));
        } else {
            assert!(*id >= 1 && value.len() <= 255);
        }
    }
    // Re-encode the elements in the same form: the same elements come back.
    let mut again = Vec::new();
    for (id, value) in &got {
        if profile == ONE_BYTE_PROFILE {
            again.push((id << 4) | (value.len() as u8 - 1));
        } else {
            again.extend_from_slice(&[*id, value.len() as u8]);
        }
        again.extend_from_slice(value);
    }
    let packet2 = wrap(profile, &again);
    let p2 = RtpPacket::new_checked(&packet2[..]).expect("re-encoded elements are valid");
    assert_eq!(p2.extensions().collect::<Vec<_>>(), got);
    let repr = RtpRepr::parse(&p2);
    if let Ok(repr) = repr {
        let mut out = vec![0u8; repr.buffer_len(p2.payload().len())];
        repr.emit(&mut out, p2.payload());
        assert_eq!(out, packet2, "Repr keeps the extension block");
    }
}

/// An RTP packet: X=1, CC=1, the block (zero-padded to words) under `profile`, `"payload"`.
fn wrap(profile: u16, block: &[u8]) -> Vec<u8> {
    let words = block.len().div_ceil(4);
    let mut v = vec![0x91, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4];
    v.extend_from_slice(&profile.to_be_bytes());
    v.extend_from_slice(&(words as u16).to_be_bytes());
    v.extend_from_slice(block);
    v.resize(20 + 4 * words, 0);
    v.extend_from_slice(b"payload");
    v
}

/// `(id, data)` extension elements.
type Elements<'a> = Vec<(u8, &'a [u8])>;

/// RFC 8285 §4.2 (one-byte) and §4.3 (two-byte), written from the RFC: `None` if an element
/// runs past the block; other profiles carry no elements. ID 0 is reserved for padding: a
/// one-byte header octet with ID 0 is one padding octet whatever its length bits (as libwebrtc's
/// `RtpPacket::ParseBuffer` reads it), never an element. Also says whether it met such an octet.
fn reference_walk(profile: u16, block: &[u8]) -> (Option<Elements<'_>>, bool) {
    let mut id_zero = false;
    let walk = walk(profile, block, &mut id_zero);
    (walk, id_zero)
}

fn walk<'a>(profile: u16, block: &'a [u8], id_zero: &mut bool) -> Option<Elements<'a>> {
    let one = profile == ONE_BYTE_PROFILE;
    let two = profile & TWO_BYTE_PROFILE_MASK == 0x1000;
    let mut v = Vec::new();
    if !one && !two {
        return Some(v);
    }
    let mut i = 0;
    while i < block.len() {
        let b = block[i];
        if b == 0 {
            i += 1;
            continue;
        }
        let (id, len, data_at) = if one {
            if b >> 4 == 15 {
                break;
            }
            if b >> 4 == 0 {
                *id_zero = true;
                i += 1;
                continue;
            }
            (b >> 4, usize::from(b & 0x0f) + 1, i + 1)
        } else {
            (b, usize::from(*block.get(i + 1)?), i + 2)
        };
        v.push((id, block.get(data_at..data_at + len)?));
        i = data_at + len;
    }
    Some(v)
}
