//! Properties: RTCP parsing never panics; generated packets round-trip.

use proptest::prelude::*;

use crate::rtcp::{
    FirRepr, Nack, NackRepr, PliRepr, ReceiverReport, ReceiverReportRepr, ReportBlockRepr, RtcpCompound,
    RtcpPacket, SenderReport, SenderReportRepr,
};

fn block() -> impl Strategy<Value = ReportBlockRepr> {
    (
        any::<u32>(),
        any::<u8>(),
        -(1i32 << 23)..(1 << 23),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(ssrc, fraction_lost, cumulative_lost, highest_seq, jitter, last_sr, delay_since_last_sr)| {
                ReportBlockRepr {
                    ssrc,
                    fraction_lost,
                    cumulative_lost,
                    highest_seq,
                    jitter,
                    last_sr,
                    delay_since_last_sr,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(c) = RtcpCompound::new_checked(&bytes) {
            for p in c.iter() {
                match p {
                    RtcpPacket::SenderReport(s) => { let _ = (s.ntp(), s.report_blocks().count()); }
                    RtcpPacket::ReceiverReport(r) => { let _: i64 = r.report_blocks().map(|b| i64::from(b.cumulative_lost())).sum(); }
                    RtcpPacket::Sdes(s) => { let _: usize = s.chunks().map(|c| c.items().count()).sum(); }
                    RtcpPacket::Bye(b) => { let _ = (b.ssrcs().count(), b.reason()); }
                    RtcpPacket::Nack(n) => { let _ = n.lost_sequence_numbers().count(); }
                    RtcpPacket::Pli(p) => { let _ = p.media_ssrc(); }
                    RtcpPacket::Fir(f) => { let _ = f.entries().count(); }
                    RtcpPacket::Other { data, .. } => prop_assert!(data.len() >= 4),
                }
            }
        }
    }

    #[test]
    fn sender_and_receiver_reports_round_trip(
        ssrc in any::<u32>(), ntp in any::<u64>(), ts in any::<u32>(), pc in any::<u32>(), oc in any::<u32>(),
        blocks in proptest::collection::vec(block(), 0..5),
    ) {
        let sr = SenderReportRepr {
            ssrc, ntp, rtp_timestamp: ts, packet_count: pc, octet_count: oc,
            reports: heapless::Vec::from_slice(&blocks).unwrap(),
        };
        let mut buf = vec![0u8; sr.buffer_len()];
        sr.emit(&mut buf);
        prop_assert!(RtcpCompound::new_checked(&buf).is_ok());
        prop_assert_eq!(SenderReportRepr::parse(&SenderReport::new_checked(&buf).unwrap()), sr);
        let rr = ReceiverReportRepr { ssrc, reports: heapless::Vec::from_slice(&blocks).unwrap() };
        let mut buf = vec![0u8; rr.buffer_len()];
        rr.emit(&mut buf);
        prop_assert_eq!(ReceiverReportRepr::parse(&ReceiverReport::new_checked(&buf).unwrap()), rr);
    }

    #[test]
    fn nack_round_trips_lost_sets(mut lost in proptest::collection::vec(any::<u16>(), 1..40)) {
        lost.sort_unstable();
        lost.dedup();
        let repr = NackRepr::from_lost(1, 2, &lost);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf);
        let n = Nack::new_checked(&buf).unwrap();
        let mut back: Vec<u16> = n.lost_sequence_numbers().collect();
        back.sort_unstable();
        back.dedup();
        prop_assert_eq!(back, lost);
    }
}

// Structured generators: valid compound packets built from their parts, then mutated. Random bytes
// almost never make a valid compound, so they test only the first checks of the parser.

/// One valid sub-packet, as the kind it should parse as and its bytes.
#[derive(Debug, Clone)]
enum Part {
    Sr(SenderReportRepr),
    Rr(ReceiverReportRepr),
    Nack(NackRepr),
    Pli(PliRepr),
    Fir(FirRepr),
    /// RFC 3550 §6.6: SSRCs, then an optional reason.
    Bye(Vec<u32>, Vec<u8>),
    /// RFC 3550 §6.5: one chunk with a CNAME item.
    Sdes(u32, Vec<u8>),
}

impl Part {
    fn bytes(&self) -> Vec<u8> {
        let emit = |len: usize, f: &dyn Fn(&mut [u8]) -> usize| {
            let mut b = vec![0u8; len];
            let n = f(&mut b);
            b.truncate(n);
            b
        };
        match self {
            Part::Sr(r) => emit(r.buffer_len(), &|b| r.emit(b)),
            Part::Rr(r) => emit(r.buffer_len(), &|b| r.emit(b)),
            Part::Nack(r) => emit(r.buffer_len(), &|b| r.emit(b)),
            Part::Pli(r) => emit(PliRepr::LEN, &|b| r.emit(b)),
            Part::Fir(r) => emit(r.buffer_len(), &|b| r.emit(b)),
            Part::Bye(ssrcs, reason) => {
                let mut b = vec![0x80 | ssrcs.len() as u8, 203, 0, 0];
                ssrcs.iter().for_each(|s| b.extend_from_slice(&s.to_be_bytes()));
                if !reason.is_empty() {
                    b.push(reason.len() as u8);
                    b.extend_from_slice(reason);
                }
                b.resize(b.len().div_ceil(4) * 4, 0);
                let words = (b.len() / 4 - 1) as u16;
                b[2..4].copy_from_slice(&words.to_be_bytes());
                b
            }
            Part::Sdes(ssrc, cname) => {
                let mut b = vec![0x81, 202, 0, 0];
                b.extend_from_slice(&ssrc.to_be_bytes());
                b.extend_from_slice(&[1, cname.len() as u8]);
                b.extend_from_slice(cname);
                // The item list ends with a null octet, then pads the chunk to 32 bits.
                b.push(0);
                b.resize(b.len().div_ceil(4) * 4, 0);
                let words = (b.len() / 4 - 1) as u16;
                b[2..4].copy_from_slice(&words.to_be_bytes());
                b
            }
        }
    }

    /// The sub-packet parsed back matches what was generated.
    fn matches(&self, p: &RtcpPacket<'_>) -> bool {
        match (self, p) {
            (Part::Sr(r), RtcpPacket::SenderReport(s)) => SenderReportRepr::parse(s) == *r,
            (Part::Rr(r), RtcpPacket::ReceiverReport(s)) => ReceiverReportRepr::parse(s) == *r,
            (Part::Nack(r), RtcpPacket::Nack(n)) => NackRepr::parse(n) == *r,
            (Part::Pli(r), RtcpPacket::Pli(p)) => {
                p.sender_ssrc() == r.sender_ssrc && p.media_ssrc() == r.media_ssrc
            }
            (Part::Fir(r), RtcpPacket::Fir(f)) => {
                f.sender_ssrc() == r.sender_ssrc && f.entries().eq(r.entries.iter().copied())
            }
            (Part::Bye(ssrcs, reason), RtcpPacket::Bye(b)) => {
                b.ssrcs().eq(ssrcs.iter().copied()) && b.reason().unwrap_or_default() == &reason[..]
            }
            (Part::Sdes(ssrc, cname), RtcpPacket::Sdes(s)) => {
                let chunks: Vec<_> = s.chunks().collect();
                chunks.len() == 1
                    && chunks[0].ssrc == *ssrc
                    && chunks[0].items().any(|(kind, value)| kind == 1 && value == &cname[..])
            }
            _ => false,
        }
    }
}

fn part() -> impl Strategy<Value = Part> {
    let blocks = || proptest::collection::vec(block(), 0..4);
    prop_oneof![
        (any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), blocks()).prop_map(
            |(ssrc, ntp, rtp_timestamp, packet_count, octet_count, b)| Part::Sr(SenderReportRepr {
                ssrc,
                ntp,
                rtp_timestamp,
                packet_count,
                octet_count,
                reports: heapless::Vec::from_slice(&b).unwrap(),
            })
        ),
        (any::<u32>(), blocks()).prop_map(|(ssrc, b)| Part::Rr(ReceiverReportRepr {
            ssrc,
            reports: heapless::Vec::from_slice(&b).unwrap()
        })),
        (any::<u32>(), any::<u32>(), proptest::collection::vec((any::<u16>(), any::<u16>()), 1..8)).prop_map(
            |(sender_ssrc, media_ssrc, pairs)| Part::Nack(NackRepr {
                sender_ssrc,
                media_ssrc,
                pairs: heapless::Vec::from_slice(&pairs).unwrap(),
            })
        ),
        (any::<u32>(), any::<u32>())
            .prop_map(|(sender_ssrc, media_ssrc)| Part::Pli(PliRepr { sender_ssrc, media_ssrc })),
        (any::<u32>(), proptest::collection::vec((any::<u32>(), any::<u8>()), 1..4)).prop_map(
            |(sender_ssrc, e)| {
                Part::Fir(FirRepr { sender_ssrc, entries: heapless::Vec::from_slice(&e).unwrap() })
            }
        ),
        (proptest::collection::vec(any::<u32>(), 0..4), proptest::collection::vec(1u8..=255, 0..12))
            .prop_map(|(s, r)| Part::Bye(s, r)),
        (any::<u32>(), proptest::collection::vec(1u8..=255, 1..20)).prop_map(|(s, c)| Part::Sdes(s, c)),
    ]
}

/// One mutation of a valid compound: the ways a peer's bytes go wrong (a flipped bit, a cut, a
/// length or count field set to anything, bytes added at the end).
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Set(usize, u8),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        proptest::collection::vec(any::<u8>(), 1..12).prop_map(Mutation::Append),
    ]
}

fn mutate(buf: &mut Vec<u8>, m: &Mutation) {
    let n = buf.len().max(1);
    match m {
        Mutation::Flip(i, x) => {
            if let Some(b) = buf.get_mut(i % n) {
                *b ^= x;
            }
        }
        Mutation::Truncate(i) => buf.truncate(i % n),
        Mutation::Set(i, v) => {
            if let Some(b) = buf.get_mut(i % n) {
                *b = *v;
            }
        }
        Mutation::Append(extra) => buf.extend_from_slice(extra),
    }
}

/// Touches every accessor of every sub-packet (none may panic once `new_checked` passed).
fn walk(c: &RtcpCompound<'_>) -> usize {
    let mut packets = 0;
    for p in c.iter() {
        packets += 1;
        match p {
            RtcpPacket::SenderReport(s) => {
                let _ = (
                    s.ntp(),
                    s.rtp_timestamp(),
                    s.report_blocks().map(|b| u64::from(b.jitter())).sum::<u64>(),
                );
            }
            RtcpPacket::ReceiverReport(r) => {
                let _ = r
                    .report_blocks()
                    .map(|b| i64::from(b.fraction_lost()) + i64::from(b.cumulative_lost()))
                    .sum::<i64>();
            }
            RtcpPacket::Sdes(s) => {
                let _ = s.chunks().map(|c| c.items().map(|(_, v)| v.len()).sum::<usize>()).sum::<usize>();
            }
            RtcpPacket::Bye(b) => {
                let _ = (b.ssrcs().count(), b.reason());
            }
            RtcpPacket::Nack(n) => {
                let _ = (n.sender_ssrc(), n.media_ssrc(), n.lost_sequence_numbers().count());
            }
            RtcpPacket::Pli(p) => {
                let _ = (p.sender_ssrc(), p.media_ssrc());
            }
            RtcpPacket::Fir(f) => {
                let _ = (f.sender_ssrc(), f.entries().count());
            }
            RtcpPacket::Other { data, .. } => assert!(data.len() >= 4),
        }
    }
    packets
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn generated_compounds_parse_back_part_by_part(parts in proptest::collection::vec(part(), 1..6)) {
        let buf: Vec<u8> = parts.iter().flat_map(Part::bytes).collect();
        let c = RtcpCompound::new_checked(&buf);
        prop_assert!(c.is_ok(), "{:?}: {:?}", parts, c.err());
        let c = c.unwrap();
        let parsed: Vec<RtcpPacket<'_>> = c.iter().collect();
        prop_assert_eq!(parsed.len(), parts.len());
        for (part, p) in parts.iter().zip(&parsed) {
            prop_assert!(part.matches(p), "{:?} parsed as {:?}", part, p);
        }
    }

    #[test]
    fn mutated_compounds_never_panic_and_stay_within_bounds(
        parts in proptest::collection::vec(part(), 1..5),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut buf: Vec<u8> = parts.iter().flat_map(Part::bytes).collect();
        for m in &mutations {
            mutate(&mut buf, m);
        }
        if let Ok(c) = RtcpCompound::new_checked(&buf) {
            // Every sub-packet is at least a common header: no more packets than words.
            prop_assert!(walk(&c) <= buf.len() / 4);
        }
    }
}
