//! The wire format: every JSON body this boundary writes, field by field (`control/API.md`;
//! the tests in `control/tests/` and `benches/` read these names).

use std::collections::BTreeMap;

use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use std::net::SocketAddr;

use axum::http::StatusCode;
use serde::Serialize;

use super::error::{ErrorBody, HttpError};
use super::sse::Lagged;
use crate::error::ApiError;
use crate::events::ControlEvent;
use crate::model::{ConsumerDump, PipeEndDump, ProducerDump, RouterDump, TransportDump};
use crate::request::Response;
use crate::stats::{CoreStatsDocument, KernelSteeringDocument, StatsDocument};

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("serializes")
}

#[test]
fn responses_are_plain_numbers_and_addresses() {
    let local = SocketAddr::from(([127, 0, 0, 1], 40000));
    let cases = [
        (Response::Router { id: RouterId(1), core: 0 }, r#"{"id":1,"core":0}"#),
        (Response::Transport { id: TransportId(2), local }, r#"{"id":2,"local":"127.0.0.1:40000"}"#),
        (Response::Producer { id: ProducerId(3) }, r#"{"id":3}"#),
        (
            Response::Consumer { id: ConsumerId(4), ssrc: Ssrc(77), payload_type: PayloadType(111) },
            r#"{"id":4,"ssrc":77,"payload_type":111}"#,
        ),
        (Response::Moved { id: RouterId(1), core: 1, move_us: 250 }, r#"{"id":1,"core":1,"move_us":250}"#),
        (
            Response::Pipe { id: ProducerId(9), router: RouterId(5), source: ProducerId(3) },
            r#"{"id":9,"router":5,"source":3}"#,
        ),
        (Response::Done {}, "{}"),
    ];
    for (response, want) in cases {
        assert_eq!(json(&response), want);
    }
}

#[test]
fn a_router_dump_has_the_documented_fields() {
    let dump = RouterDump {
        id: RouterId(1),
        core: 1,
        transports: vec![TransportDump {
            id: TransportId(2),
            local: SocketAddr::from(([127, 0, 0, 1], 40000)),
            remote: None,
            shared_port: false,
            comedia: true,
            producers: vec![ProducerId(3)],
            consumers: vec![ConsumerId(4)],
        }],
        producers: vec![
            ProducerDump {
                id: ProducerId(3),
                transport: Some(TransportId(2)),
                kind: MediaKind::Video,
                ssrc: Ssrc(1234),
                payload_type: PayloadType(96),
                paused: false,
                consumers: vec![ConsumerId(4)],
                piped_from: None,
                piped_to: vec![PipeEndDump { router: RouterId(5), producer: ProducerId(9) }],
            },
            ProducerDump {
                id: ProducerId(10),
                transport: None,
                kind: MediaKind::Audio,
                ssrc: Ssrc(55),
                payload_type: PayloadType(111),
                paused: true,
                consumers: vec![],
                piped_from: Some(PipeEndDump { router: RouterId(6), producer: ProducerId(11) }),
                piped_to: vec![],
            },
        ],
        consumers: vec![ConsumerDump {
            id: ConsumerId(4),
            transport: TransportId(2),
            producer: ProducerId(3),
            ssrc: Ssrc(99),
            payload_type: PayloadType(96),
            paused: true,
            producer_paused: false,
        }],
    };
    assert_eq!(
        json(&Response::Dump(dump)),
        concat!(
            r#"{"id":1,"core":1,"#,
            r#""transports":[{"id":2,"local":"127.0.0.1:40000","remote":null,"shared_port":false,"comedia":true,"producers":[3],"consumers":[4]}],"#,
            r#""producers":[{"id":3,"transport":2,"kind":"video","ssrc":1234,"payload_type":96,"paused":false,"consumers":[4],"#,
            r#""piped_from":null,"piped_to":[{"router":5,"producer":9}]},"#,
            r#"{"id":10,"transport":null,"kind":"audio","ssrc":55,"payload_type":111,"paused":true,"consumers":[],"#,
            r#""piped_from":{"router":6,"producer":11},"piped_to":[]}],"#,
            r#""consumers":[{"id":4,"transport":2,"producer":3,"ssrc":99,"payload_type":96,"paused":true,"producer_paused":false}]}"#,
        )
    );
}

#[test]
fn the_stats_document_has_the_documented_fields() {
    let core = CoreStatsDocument {
        core: 0,
        cpu: Some(1),
        stalled: false,
        packets_in: 1,
        bytes_in: 2,
        packets_out: 3,
        bytes_out: 4,
        routed: 5,
        rtcp_terminated: 4,
        outputs: 6,
        hopped_out: 7,
        hopped_in: 8,
        piped_out: 20,
        piped_in: 21,
        drops: BTreeMap::from([("producer_paused", 9)]),
        batches_applied: 10,
        apply_ns_max: 11,
        busy_ns: 12,
        wakeups: 13,
        routers: 14,
        ring_depth: 15,
        handoffs_in: 16,
        freeze_ns_max: 17,
        barrier_failures: 18,
    };
    let doc = StatsDocument {
        pid: 42,
        shared_port: SocketAddr::from(([0, 0, 0, 0], 5004)),
        kernel_steering: Some(KernelSteeringDocument { updates: 3, errors: 0 }),
        routers: 1,
        transports: 2,
        producers: 3,
        consumers: 4,
        moves: 5,
        rebalancer_moves: 6,
        cores: vec![core],
    };
    assert_eq!(
        json(&Response::Stats(doc.clone())),
        concat!(
            r#"{"pid":42,"shared_port":"0.0.0.0:5004","kernel_steering":{"updates":3,"errors":0},"#,
            r#""routers":1,"transports":2,"producers":3,"consumers":4,"moves":5,"rebalancer_moves":6,"#,
            r#""cores":[{"core":0,"cpu":1,"stalled":false,"packets_in":1,"bytes_in":2,"packets_out":3,"bytes_out":4,"#,
            r#""routed":5,"rtcp_terminated":4,"outputs":6,"hopped_out":7,"hopped_in":8,"piped_out":20,"piped_in":21,"drops":{"producer_paused":9},"#,
            r#""batches_applied":10,"apply_ns_max":11,"busy_ns":12,"wakeups":13,"routers":14,"ring_depth":15,"#,
            r#""handoffs_in":16,"freeze_ns_max":17,"barrier_failures":18}]}"#,
        )
    );
    let off = StatsDocument { kernel_steering: None, ..doc };
    assert!(json(&off).contains(r#""kernel_steering":null"#));
}

#[test]
fn events_are_tagged_by_name() {
    let remote = SocketAddr::from(([127, 0, 0, 1], 5000));
    let cases = [
        (
            ControlEvent::TransportLatched { transport: TransportId(2), remote, core: 1 },
            r#"{"event":"transport_latched","transport":2,"remote":"127.0.0.1:5000","core":1}"#,
        ),
        (ControlEvent::CoreStalled { core: 1 }, r#"{"event":"core_stalled","core":1}"#),
        (ControlEvent::CoreRecovered { core: 1 }, r#"{"event":"core_recovered","core":1}"#),
        (
            ControlEvent::RouterMoved { router: RouterId(1), core: 0, move_us: 900 },
            r#"{"event":"router_moved","router":1,"core":0,"handoff_us":900}"#,
        ),
        (
            ControlEvent::ConsumerProducerPaused { consumer: ConsumerId(4), producer: ProducerId(3) },
            r#"{"event":"consumer_producer_paused","consumer":4,"producer":3}"#,
        ),
        (
            ControlEvent::ConsumerProducerResumed { consumer: ConsumerId(4), producer: ProducerId(3) },
            r#"{"event":"consumer_producer_resumed","consumer":4,"producer":3}"#,
        ),
        (
            ControlEvent::ProducerClosed { producer: ProducerId(3), consumers_closed: vec![ConsumerId(4)] },
            r#"{"event":"producer_closed","producer":3,"consumers_closed":[4]}"#,
        ),
    ];
    for (event, want) in cases {
        assert_eq!(json(&event), want);
    }
    assert_eq!(json(&Lagged { lost: 6 }), r#"{"lost":6}"#);
}

#[test]
fn errors_carry_the_message_and_the_http_kind() {
    let busy = HttpError::from(ApiError::busy("core 1 is busy"));
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    let body: ErrorBody = busy.body();
    assert_eq!(json(&body), r#"{"error":"core 1 is busy","kind":"core_unavailable"}"#);
    let quota = HttpError::from(ApiError::quota("consumers_per_router", 1000, "full"));
    assert_eq!(quota.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        json(&quota.body()),
        r#"{"error":"full","kind":"quota_exceeded","quota":"consumers_per_router","limit":1000}"#
    );
    let kinds = [
        (ApiError::argument("x"), StatusCode::BAD_REQUEST, "invalid_argument"),
        (ApiError::not_found("x"), StatusCode::NOT_FOUND, "not_found"),
        (ApiError::state("x"), StatusCode::CONFLICT, "invalid_state"),
        (ApiError::core("x"), StatusCode::SERVICE_UNAVAILABLE, "core_unavailable"),
    ];
    for (e, status, kind) in kinds {
        let h = HttpError::from(e);
        assert_eq!((h.status, h.kind), (status, kind));
    }
}
