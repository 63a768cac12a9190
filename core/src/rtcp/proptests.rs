//! Properties: RTCP parsing never panics; generated packets round-trip.

use proptest::prelude::*;

use crate::rtcp::{
    Nack, NackRepr, ReceiverReport, ReceiverReportRepr, ReportBlockRepr, RtcpCompound, RtcpPacket,
    SenderReport, SenderReportRepr,
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
