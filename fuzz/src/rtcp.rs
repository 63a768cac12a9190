//! `rtcp_compound`: the compound walker and every sub-packet view, and the `Repr` round trips.

use shardcast_core::rtcp::{
    packet_type, FirRepr, Nack, NackRepr, Pli, PliRepr, ReceiverReport, ReceiverReportRepr, RtcpCompound,
    RtcpPacket, SenderReport, SenderReportRepr,
};

/// Input: one datagram.
///
/// Invariants: a compound that `new_checked` accepts tiles the buffer with sub-packets whose
/// headers are valid (version 2, type 192..=223, padding on the last one only) and its iterator
/// yields every one of them; every view's accessors stay inside the sub-packet; SR, RR, NACK, PLI
/// and FIR parse → `Repr` → emit → parse give the same `Repr` and the same bytes; a compound
/// re-emitted from the `Repr`s is valid and walks to the same `Repr`s; rewriting a feedback
/// packet's SSRCs keeps it valid.
pub fn rtcp_compound(data: &[u8]) {
    let Ok(compound) = RtcpCompound::new_checked(data) else { return };
    // The sub-packets, found from the headers alone.
    let mut spans = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = 4 * (usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]])) + 1);
        assert!(at + len <= data.len(), "a sub-packet runs past the datagram");
        assert_eq!(data[at] >> 6, 2);
        assert!((192..=223).contains(&data[at + 1]));
        if data[at] & 0x20 != 0 {
            assert_eq!(at + len, data.len(), "padding only on the last sub-packet");
        }
        spans.push(&data[at..at + len]);
        at += len;
    }
    let packets: Vec<RtcpPacket<'_>> = compound.iter().collect();
    assert_eq!(packets.len(), spans.len(), "the iterator yields every validated sub-packet");
    let mut rebuilt = Vec::new();
    let mut expected = Vec::new();
    for (packet, raw) in packets.iter().zip(&spans) {
        let r = check_one(packet, raw);
        match &r {
            Parsed::Raw => rebuilt.extend_from_slice(raw),
            _ => rebuilt.extend_from_slice(&emit(&r)),
        }
        expected.push(r);
    }
    let again = RtcpCompound::new_checked(&rebuilt).expect("a re-emitted compound is valid");
    let back: Vec<Parsed> = again.iter().zip(&expected).map(|(p, e)| reparse(&p, e)).collect();
    assert_eq!(back, expected, "re-emitted compound walks to the same reprs");
}

/// What one sub-packet parsed to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Sr(SenderReportRepr),
    Rr(ReceiverReportRepr),
    Nack(NackRepr),
    Pli(PliRepr),
    Fir(FirRepr),
    /// SDES, BYE, APP and other types: copied as they are.
    Raw,
}

fn check_one(packet: &RtcpPacket<'_>, raw: &[u8]) -> Parsed {
    let count = usize::from(raw[0] & 0x1f);
    match packet {
        RtcpPacket::SenderReport(sr) => {
            assert_eq!(raw[1], packet_type::SR);
            let repr = SenderReportRepr::parse(sr);
            assert_eq!(repr.reports.len(), count);
            for (b, r) in sr.report_blocks().zip(&repr.reports) {
                assert!((-(1 << 23)..(1 << 23)).contains(&b.cumulative_lost()));
                assert_eq!(&b.repr(), r);
            }
            let out = emit(&Parsed::Sr(repr.clone()));
            assert_eq!(&out[4..], &raw[4..out.len()], "SR emit reproduces the fields");
            assert_eq!(SenderReportRepr::parse(&SenderReport::new_checked(&out).expect("valid")), repr);
            Parsed::Sr(repr)
        }
        RtcpPacket::ReceiverReport(rr) => {
            assert_eq!(raw[1], packet_type::RR);
            let repr = ReceiverReportRepr::parse(rr);
            assert_eq!(repr.reports.len(), count);
            let out = emit(&Parsed::Rr(repr.clone()));
            assert_eq!(&out[4..], &raw[4..out.len()], "RR emit reproduces the fields");
            assert_eq!(ReceiverReportRepr::parse(&ReceiverReport::new_checked(&out).expect("valid")), repr);
            Parsed::Rr(repr)
        }
        RtcpPacket::Nack(n) => {
            assert_eq!((raw[1], count), (packet_type::RTPFB, 1));
            let pairs: Vec<(u16, u16)> = n.pairs().collect();
            assert_eq!(pairs.len(), (raw.len() - 12) / 4);
            let lost = n.lost_sequence_numbers().count();
            let expected: usize = pairs.iter().map(|(_, blp)| 1 + blp.count_ones() as usize).sum();
            assert_eq!(lost, expected, "PID plus one per BLP bit");
            let repr = NackRepr::parse(n);
            assert_eq!(&repr.pairs[..], &pairs[..pairs.len().min(64)], "parse keeps the first 64 pairs");
            let out = emit(&Parsed::Nack(repr.clone()));
            if pairs.len() <= 64 && raw[0] & 0x20 == 0 {
                assert_eq!(&out[..], raw, "NACK emit reproduces the packet");
            }
            assert_eq!(NackRepr::parse(&Nack::new_checked(&out).expect("valid")), repr);
            let mut fb = raw.to_vec();
            set_feedback_ssrcs(&mut fb, 7, 8);
            let n2 = Nack::new_checked(&fb).expect("still valid");
            assert_eq!((n2.sender_ssrc(), n2.media_ssrc()), (7, 8));
            assert_eq!(n2.pairs().collect::<Vec<_>>(), pairs);
            Parsed::Nack(repr)
        }
        RtcpPacket::Pli(p) => {
            assert_eq!((raw[1], count), (packet_type::PSFB, 1));
            let repr = PliRepr { sender_ssrc: p.sender_ssrc(), media_ssrc: p.media_ssrc() };
            let out = emit(&Parsed::Pli(repr));
            assert_eq!(&out[4..], &raw[4..12]);
            let back = Pli::new_checked(&out).expect("valid");
            assert_eq!((back.sender_ssrc(), back.media_ssrc()), (repr.sender_ssrc, repr.media_ssrc));
            let mut fb = raw.to_vec();
            set_feedback_ssrcs(&mut fb, 9, 10);
            let p2 = Pli::new_checked(&fb).expect("still valid");
            assert_eq!((p2.sender_ssrc(), p2.media_ssrc()), (9, 10));
            Parsed::Pli(repr)
        }
        RtcpPacket::Fir(f) => {
            assert_eq!((raw[1], count), (packet_type::PSFB, 4));
            let entries: Vec<(u32, u8)> = f.entries().collect();
            assert_eq!(entries.len(), (raw.len() - 12) / 8);
            let mut repr = FirRepr { sender_ssrc: f.sender_ssrc(), entries: heapless::Vec::new() };
            for e in entries.iter().take(16) {
                repr.entries.push(*e).expect("16 fit");
            }
            Parsed::Fir(repr)
        }
        RtcpPacket::Sdes(s) => {
            assert_eq!(usize::from(s.source_count()), count);
            assert!(s.chunks().count() <= count);
            for c in s.chunks() {
                for (_, text) in c.items() {
                    assert!(text.len() <= raw.len());
                }
            }
            Parsed::Raw
        }
        RtcpPacket::Bye(b) => {
            assert_eq!(b.ssrcs().count(), count);
            if let Some(reason) = b.reason() {
                assert!(4 + 4 * count + 1 + reason.len() <= raw.len());
            }
            Parsed::Raw
        }
        RtcpPacket::Other { packet_type: pt, fmt, data } => {
            assert_eq!((*pt, usize::from(*fmt)), (raw[1], count));
            assert_eq!(data.len(), raw.len());
            let known = matches!(
                (*pt, *fmt),
                (packet_type::SR, _)
                    | (packet_type::RR, _)
                    | (packet_type::SDES, _)
                    | (packet_type::BYE, _)
                    | (packet_type::RTPFB, 1)
                    | (packet_type::PSFB, 1)
                    | (packet_type::PSFB, 4)
            );
            assert!(!known, "a known type fell through to Other");
            Parsed::Raw
        }
    }
}

fn emit(p: &Parsed) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let len = match p {
        Parsed::Sr(r) => r.emit(&mut buf),
        Parsed::Rr(r) => r.emit(&mut buf),
        Parsed::Nack(r) => {
            buf.resize(r.buffer_len(), 0);
            r.emit(&mut buf)
        }
        Parsed::Pli(r) => r.emit(&mut buf),
        Parsed::Fir(r) => r.emit(&mut buf),
        Parsed::Raw => 0,
    };
    buf.truncate(len);
    buf
}

fn reparse(p: &RtcpPacket<'_>, expected: &Parsed) -> Parsed {
    match (p, expected) {
        (RtcpPacket::SenderReport(s), _) => Parsed::Sr(SenderReportRepr::parse(s)),
        (RtcpPacket::ReceiverReport(r), _) => Parsed::Rr(ReceiverReportRepr::parse(r)),
        (RtcpPacket::Nack(n), _) => Parsed::Nack(NackRepr::parse(n)),
        (RtcpPacket::Pli(p), _) => {
            Parsed::Pli(PliRepr { sender_ssrc: p.sender_ssrc(), media_ssrc: p.media_ssrc() })
        }
        (RtcpPacket::Fir(f), _) => {
            let mut entries = heapless::Vec::new();
            for e in f.entries().take(16) {
                let _ = entries.push(e);
            }
            Parsed::Fir(FirRepr { sender_ssrc: f.sender_ssrc(), entries })
        }
        _ => Parsed::Raw,
    }
}

/// Rewrites a feedback packet's sender and media SSRCs in place (RFC 4585 §6.1: bytes 4..8 and
/// 8..12 of the common feedback header), as a forwarder would.
fn set_feedback_ssrcs(fb: &mut [u8], sender: u32, media: u32) {
    fb[4..8].copy_from_slice(&sender.to_be_bytes());
    fb[8..12].copy_from_slice(&media.to_be_bytes());
}
