//! The model's planning and commit rules, call by call.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use shardcast_core::command::{Command, SocketId, SteerKey};
use shardcast_core::ids::{ConsumerId, MediaKind, PayloadType, ProducerId, RouterId, Ssrc, TransportId};

use super::{Model, Op, Placement, Plan};
use crate::error::{ApiError, ApiErrorKind};
use crate::request::Response;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Plans and commits at once, as the controller does when the owner applies.
fn run(m: &mut Model, f: impl FnOnce(&mut Model) -> Result<Plan, ApiError>) -> Response {
    let plan = f(m).expect("valid request");
    let response = plan.response.clone();
    m.commit(plan.change);
    response
}

fn router(m: &mut Model) -> RouterId {
    match run(m, |m| m.create_router(None, &[])) {
        Response::Router { id, .. } => id,
        r => panic!("{r:?}"),
    }
}

fn transport(m: &mut Model, r: RouterId, shared: bool) -> TransportId {
    let socket = if shared { SocketId::SHARED } else { m.socket_id().unwrap() };
    match run(m, |m| m.create_transport(r, socket, addr(1), false, None)) {
        Response::Transport { id, .. } => id,
        x => panic!("{x:?}"),
    }
}

fn produce(m: &mut Model, t: TransportId, ssrc: u32) -> ProducerId {
    match run(m, |m| m.produce(t, MediaKind::Video, Ssrc(ssrc), PayloadType(96), None, false)) {
        Response::Producer { id } => id,
        x => panic!("{x:?}"),
    }
}

fn consume(m: &mut Model, t: TransportId, p: ProducerId) -> (ConsumerId, Ssrc) {
    match run(m, |m| m.consume(t, p, false)) {
        Response::Consumer { id, ssrc, payload_type } => {
            assert_eq!(payload_type, PayloadType(96));
            (id, ssrc)
        }
        x => panic!("{x:?}"),
    }
}

#[test]
fn planning_changes_nothing_until_the_owner_applied() {
    let mut m = Model::new(2, 7, Placement::LeastLoaded);
    let plan = m.create_router(None, &[]).unwrap();
    assert!(m.routers.is_empty(), "a plan alone claims nothing");
    assert_eq!(plan.owner, 0);
    assert_eq!(plan.phases, vec![vec![(0, Op::Route(Command::CreateRouter { router: RouterId(1) }))]]);
    m.commit(plan.change);
    assert_eq!(m.routers[&RouterId(1)].core, 0);

    let t = transport(&mut m, RouterId(1), false);
    let p = produce(&mut m, t, 1111);
    let pause = m.set_producer_paused(p, true).unwrap();
    assert!(!m.producers[&p].paused);
    m.commit(pause.change);
    assert!(m.producers[&p].paused);
    // A refused plan is simply never committed: a second close still finds the producer.
    let _refused = m.close_producer(p).unwrap();
    assert!(m.producers.contains_key(&p));
}

#[test]
fn closing_cascades_through_transports_producers_and_consumers() {
    let mut m = Model::new(1, 7, Placement::LeastLoaded);
    let r = router(&mut m);
    let t1 = transport(&mut m, r, false);
    let t2 = transport(&mut m, r, false);
    let p1 = produce(&mut m, t1, 10);
    let p2 = produce(&mut m, t2, 20);
    let (c1, _) = consume(&mut m, t2, p1); // on t2, of t1's producer
    let (c2, _) = consume(&mut m, t1, p2); // on t1, of t2's producer

    // Closing t1 removes p1 (and c1 on t2, its consumer) and c2 (on t1).
    let plan = m.close_transport(t1).unwrap();
    assert!(plan.phases[0].contains(&(0, Op::DetachSocket(SocketId(1)))), "{plan:?}");
    m.commit(plan.change);
    assert!(!m.transports.contains_key(&t1));
    assert!(!m.producers.contains_key(&p1));
    assert!(!m.consumers.contains_key(&c1) && !m.consumers.contains_key(&c2));
    assert!(m.producers[&p2].consumers.is_empty());
    assert!(m.transports[&t2].consumers.is_empty());

    run(&mut m, |m| m.close_router(r));
    assert!(m.routers.is_empty() && m.transports.is_empty());
    assert!(m.producers.is_empty() && m.consumers.is_empty());
}

#[test]
fn errors_say_what_is_wrong_with_the_right_kind() {
    let mut m = Model::new(2, 7, Placement::LeastLoaded);
    let kind = |r: Result<Plan, ApiError>| r.unwrap_err().kind;
    assert_eq!(kind(m.close_router(RouterId(9))), ApiErrorKind::NotFound);
    assert_eq!(kind(m.create_router(Some(2), &[])), ApiErrorKind::InvalidArgument);
    let r1 = router(&mut m);
    let r2 = router(&mut m);
    let t1 = transport(&mut m, r1, false);
    let t2 = transport(&mut m, r2, false);
    let p = produce(&mut m, t1, 5);
    assert_eq!(
        kind(m.produce(t1, MediaKind::Audio, Ssrc(5), PayloadType(111), None, false)),
        ApiErrorKind::InvalidState
    );
    assert_eq!(
        kind(m.produce(t1, MediaKind::Audio, Ssrc(6), PayloadType(128), None, false)),
        ApiErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(m.produce(t1, MediaKind::Audio, Ssrc(0), PayloadType(111), None, false)),
        ApiErrorKind::InvalidArgument
    );
    let cross = m.consume(t2, p, false).unwrap_err();
    assert_eq!(cross.kind, ApiErrorKind::InvalidArgument);
    assert!(cross.message.contains("router"), "{cross}");
    assert_eq!(kind(m.consume(t1, ProducerId(999), false)), ApiErrorKind::NotFound);
    run(&mut m, |m| m.connect_transport(t1, addr(5000)));
    assert_eq!(kind(m.connect_transport(t1, addr(5001))), ApiErrorKind::InvalidState);
    assert_eq!(kind(m.connect_transport(t2, addr(0))), ApiErrorKind::InvalidArgument);
    assert_eq!(kind(m.move_router(r1, 5)), ApiErrorKind::InvalidArgument);
}

#[test]
fn ids_are_never_reused_and_consumer_ssrcs_are_unique_and_seeded() {
    let build = |seed| {
        let mut m = Model::new(1, seed, Placement::LeastLoaded);
        let r = router(&mut m);
        let t = transport(&mut m, r, false);
        let p = produce(&mut m, t, 42);
        let ssrcs: Vec<u32> = (0..200).map(|_| consume(&mut m, t, p).1 .0).collect();
        (m, ssrcs)
    };
    let (mut m, ssrcs) = build(1);
    let unique: BTreeSet<u32> = ssrcs.iter().copied().collect();
    assert_eq!(unique.len(), ssrcs.len());
    assert!(!unique.contains(&0) && !unique.contains(&42));
    assert_eq!(build(1).1, ssrcs, "same seed, same SSRCs");
    assert_ne!(build(2).1, ssrcs, "another seed, other SSRCs");
    let last = *m.consumers.keys().last().unwrap();
    let r = *m.routers.keys().next().unwrap();
    run(&mut m, |m| m.close_router(r));
    assert!(router(&mut m).0 > last.0, "ids are never reused");
}

#[test]
fn placement_policies_skip_stalled_cores() {
    let mut m = Model::new(3, 1, Placement::LeastLoaded);
    let cores: Vec<usize> = (0..6)
        .map(|_| match run(&mut m, |m| m.create_router(None, &[false, true, false])) {
            Response::Router { core, .. } => core,
            x => panic!("{x:?}"),
        })
        .collect();
    assert_eq!(cores, vec![0, 2, 0, 2, 0, 2]);
    assert_eq!(m.create_router(None, &[true, true, true]).unwrap_err().kind, ApiErrorKind::CoreUnavailable);

    let mut rr = Model::new(3, 1, Placement::RoundRobin);
    let order: Vec<usize> = (0..5)
        .map(|i| {
            let stalled = [i == 3, false, false];
            match run(&mut rr, |m| m.create_router(None, &stalled)) {
                Response::Router { core, .. } => core,
                x => panic!("{x:?}"),
            }
        })
        .collect();
    assert_eq!(order, vec![0, 1, 2, 1, 2]);
    // Round robin does not look at load: a closed router does not change the turn.
    let first = *rr.routers.keys().next().unwrap();
    run(&mut rr, |m| m.close_router(first));
    assert!(matches!(rr.create_router(None, &[]).unwrap().response, Response::Router { core: 0, .. }));
}

#[test]
fn shared_port_flows_are_steered_on_every_other_core() {
    let mut m = Model::new(3, 1, Placement::LeastLoaded);
    let r = match run(&mut m, |m| m.create_router(Some(1), &[])) {
        Response::Router { id, .. } => id,
        x => panic!("{x:?}"),
    };
    let t = transport(&mut m, r, true);
    let remote = addr(7000);
    let plan = m.connect_transport(t, remote).unwrap();
    let steer = |core: Option<u16>| {
        Op::Route(Command::SetSteering { router: r, key: SteerKey::Remote(remote), core })
    };
    assert_eq!(plan.phases[0][1..], [(0, steer(Some(1))), (2, steer(Some(1)))]);
    m.commit(plan.change);
    // Another shared-port transport cannot take the same remote.
    let t2 = transport(&mut m, r, true);
    assert_eq!(m.connect_transport(t2, remote).unwrap_err().kind, ApiErrorKind::InvalidState);
    // A move re-points the third core; closing removes the steering everywhere.
    let mv = m.move_router(r, 2).unwrap();
    assert_eq!(mv.owner, 1);
    assert_eq!(mv.phases[0], vec![(1, Op::HandOff { router: r, to: 2 })]);
    assert!(mv.phases[1].contains(&(0, steer(Some(2)))));
    m.commit(mv.change);
    assert_eq!(m.routers[&r].core, 2);
    let close = m.close_router(r).unwrap();
    assert!(close.phases[0].contains(&(0, steer(None))) && close.phases[0].contains(&(1, steer(None))));
}

#[test]
fn the_object_past_a_quota_is_refused_naming_it_and_nothing_changes() {
    let quotas = super::Quotas {
        routers: 2,
        transports: 3,
        transports_per_router: 2,
        producers: 3,
        producers_per_router: 2,
        video_producers: 1,
        consumers: 3,
        consumers_per_router: 2,
    };
    let mut m = Model::new(2, 7, Placement::LeastLoaded).with_quotas(quotas);
    let hit = |r: Result<Plan, ApiError>| {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ApiErrorKind::QuotaExceeded, "{e}");
        let q = e.quota.expect("the quota is named");
        (q.quota, q.limit)
    };
    let (r1, r2) = (router(&mut m), router(&mut m));
    assert_eq!(hit(m.create_router(None, &[])), ("routers", 2));
    let (t1, t2) = (transport(&mut m, r1, false), transport(&mut m, r1, false));
    assert_eq!(hit(m.admit_transport(r1).map(|_| unreachable!())), ("transports_per_router", 2));
    assert_eq!(hit(m.create_transport(r1, SocketId(99), addr(1), false, None)), ("transports_per_router", 2));
    let t3 = transport(&mut m, r2, false);
    assert_eq!(hit(m.create_transport(r2, SocketId(99), addr(1), false, None)), ("transports", 3));
    // One video producer (a NACK store) in the daemon; audio ones are not counted against it.
    let p1 = produce(&mut m, t1, 1);
    assert_eq!(
        hit(m.produce(t2, MediaKind::Video, Ssrc(2), PayloadType(96), None, false)),
        ("video_producers", 1)
    );
    let audio =
        |m: &mut Model, t, ssrc| m.produce(t, MediaKind::Audio, Ssrc(ssrc), PayloadType(96), None, false);
    run(&mut m, |m| audio(m, t2, 2));
    assert_eq!(hit(audio(&mut m, t2, 3)), ("producers_per_router", 2));
    run(&mut m, |m| audio(m, t3, 3));
    assert_eq!(hit(audio(&mut m, t3, 4)), ("producers", 3));
    consume(&mut m, t2, p1);
    consume(&mut m, t2, p1);
    assert_eq!(hit(m.consume(t2, p1, false)), ("consumers_per_router", 2));
    let before = (m.routers.clone(), m.transports.clone(), m.producers.clone(), m.consumers.clone());
    let next_id = m.next_id;
    // A refused call changes nothing, not even the id counter.
    assert!(m.consume(t1, p1, false).is_err() && m.create_router(None, &[]).is_err());
    assert_eq!((m.routers.clone(), m.transports.clone(), m.producers.clone(), m.consumers.clone()), before);
    assert_eq!(m.next_id, next_id);
    // Closing frees the quota again: the counts follow commits, cascades included.
    run(&mut m, |m| m.close_producer(p1));
    assert_eq!(m.routers[&r1].counts, super::RouterCounts { producers: 1, consumers: 0 });
    produce(&mut m, t1, 5);
    run(&mut m, |m| m.close_router(r1));
    assert_eq!((m.video_producers, m.ssrcs.len(), m.routers_per_core().iter().sum::<usize>()), (0, 1, 1));
    router(&mut m);
}

#[test]
fn id_counters_fail_instead_of_wrapping_into_the_shared_socket() {
    let mut m = Model::new(1, 7, Placement::LeastLoaded);
    m.next_socket = u32::MAX - 1;
    // The last id is handed out, then none: a wrap would give SocketId(0), the shared port.
    assert_eq!(m.socket_id().unwrap(), SocketId(u32::MAX - 1));
    let e = m.socket_id().unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::InvalidState);
    assert!(e.message.contains("socket ids are exhausted"), "{e}");
    assert!(m.socket_id().is_err(), "still exhausted, never SocketId::SHARED");
    m.next_id = u32::MAX;
    let e = m.create_router(None, &[]).unwrap_err();
    assert!(e.message.contains("object ids are exhausted"), "{e}");
}

#[test]
fn a_latched_shared_port_remote_is_steered_like_a_connect() {
    let mut m = Model::new(2, 1, Placement::LeastLoaded);
    let r = match run(&mut m, |m| m.create_router(Some(1), &[])) {
        Response::Router { id, .. } => id,
        x => panic!("{x:?}"),
    };
    let comedia =
        |m: &mut Model| match run(m, |m| m.create_transport(r, SocketId::SHARED, addr(1), true, None)) {
            Response::Transport { id, .. } => id,
            x => panic!("{x:?}"),
        };
    let (t1, t2) = (comedia(&mut m), comedia(&mut m));
    let remote = addr(7000);
    let steer = |core: Option<u16>| {
        Op::Route(Command::SetSteering { router: r, key: SteerKey::Remote(remote), core })
    };
    let plan = m.latched(t1, remote).expect("steering ops");
    assert_eq!(plan.phases, vec![vec![(0, steer(Some(1)))]]);
    assert_eq!(m.transports[&t1].remote, Some(remote));
    assert!(m.latched(t1, addr(7001)).is_none(), "never re-latched");
    // A second transport latching the same address is steered by its SSRC keys only: the
    // address key stays the first one's.
    assert!(m.latched(t2, remote).is_none());
    assert_eq!(m.transports[&t2].remote, Some(remote));
    let close = m.close_transport(t2).unwrap();
    assert!(!close.phases[0].contains(&(0, steer(None))), "closing t2 leaves t1's key");
    let close = m.close_transport(t1).unwrap();
    assert!(close.phases[0].contains(&(0, steer(None))), "closing t1 removes its key");
    // comedia_source is for comedia transports only.
    let prefix = "10.0.0.0/8".parse().ok();
    let bad = m.create_transport(r, SocketId::SHARED, addr(1), false, prefix).unwrap_err();
    assert_eq!(bad.kind, ApiErrorKind::InvalidArgument);
}

#[test]
fn piped_producers_count_against_the_producer_quotas_and_closing_releases_them() {
    let quotas =
        super::Quotas { producers: 3, producers_per_router: 1, video_producers: 3, ..Default::default() };
    let mut m = Model::new(2, 7, Placement::LeastLoaded).with_quotas(quotas);
    let (r1, r2, r3) = (router(&mut m), router(&mut m), router(&mut m));
    let t1 = transport(&mut m, r1, false);
    let p = produce(&mut m, t1, 1);
    let piped = match run(&mut m, |m| m.pipe_to_router(p, r2)) {
        Response::Pipe { id, .. } => id,
        x => panic!("{x:?}"),
    };
    assert_eq!(m.routers[&r2].counts.producers, 1);
    assert_eq!((m.video_producers, m.producers.len()), (2, 2));
    // The router of the piped producer is full; asking for the pipe again returns it.
    let t2 = transport(&mut m, r2, false);
    let e = m.produce(t2, MediaKind::Video, Ssrc(2), PayloadType(96), None, false).unwrap_err();
    assert_eq!(e.quota.expect("named").quota, "producers_per_router");
    assert!(matches!(run(&mut m, |m| m.pipe_to_router(p, r2)), Response::Pipe { id, .. } if id == piped));
    run(&mut m, |m| m.pipe_to_router(p, r3));
    // Three producers in the daemon: a piped producer is refused like any other.
    let r4 = router(&mut m);
    let t4 = transport(&mut m, r4, false);
    let e = m.produce(t4, MediaKind::Audio, Ssrc(3), PayloadType(96), None, false).unwrap_err();
    assert_eq!(e.quota.expect("named").quota, "producers");
    let e = m.pipe_to_router(p, r4).unwrap_err();
    assert_eq!(e.quota.expect("named").quota, "producers");
    // Closing the source closes its piped producers and releases every count.
    run(&mut m, |m| m.close_producer(p));
    assert!(m.producers.is_empty() && m.pipes.is_empty());
    assert_eq!(m.video_producers, 0);
    assert!(m.routers.values().all(|r| r.counts.producers == 0));
    assert!(m.ssrcs.is_empty());
    // Closing a piped producer's router releases it too.
    let p = produce(&mut m, t1, 1);
    run(&mut m, |m| m.pipe_to_router(p, r2));
    assert_eq!(m.routers[&r2].counts.producers, 1);
    run(&mut m, |m| m.close_router(r2));
    assert_eq!((m.video_producers, m.producers.len(), m.routers[&r1].counts.producers), (1, 1, 1));
}
