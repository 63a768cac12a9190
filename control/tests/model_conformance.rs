//! Model conformance: random sequences of API calls (create/close router, transport, producer,
//! consumer; connect; pause/resume; move; switch a consumer's producer) run against
//!
//! - a tiny reference model written here from the API's rules alone, and
//! - the system: the control plane's `Model` planning every call, and one core `Shard` per core
//!   applying the commands it plans (a move hands the router from one shard to the other).
//!
//! After every call all three must agree: the same objects exist (closes cascade identically),
//! every consumer's `paused` and `producer_paused` equal the reference's, every router lives on
//! exactly the core the model says, remotes and SSRCs match; a refused call gives the error kind
//! the reference predicts and changes nothing; a core never refuses what the model accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use shardcast::model::{Model, Op, Placement, Plan};
use shardcast::{ApiError, ApiErrorKind, MediaKind, PayloadType, Response, Ssrc};
use shardcast_core::command::{BatchReply, CommandBatch, SocketId};
use shardcast_core::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use shardcast_core::shard::Shard;

const CORES: usize = 2;
/// An id that never exists (ids are allocated from 1 and sequences are short).
const BOGUS: u32 = 999_999;

fn remote(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[derive(Debug, Clone)]
enum Call {
    CreateRouter { core: Option<usize> },
    CloseRouter(u32),
    MoveRouter { router: u32, core: usize },
    CreateTransport { router: u32, shared: bool },
    Connect { transport: u32, port: u16 },
    CloseTransport(u32),
    Produce { transport: u32, ssrc: u32, payload_type: u8, audio: bool },
    CloseProducer(u32),
    PauseProducer(u32),
    ResumeProducer(u32),
    Consume { transport: u32, producer: u32 },
    CloseConsumer(u32),
    PauseConsumer(u32),
    ResumeConsumer(u32),
    SwitchProducer { consumer: u32, producer: u32 },
}

#[derive(Debug, Clone)]
struct RefTransport {
    router: u32,
    shared: bool,
    remote: Option<u16>,
}

#[derive(Debug, Clone)]
struct RefProducer {
    transport: u32,
    ssrc: u32,
    paused: bool,
    audio: bool,
}

#[derive(Debug, Clone)]
struct RefConsumer {
    transport: u32,
    producer: u32,
    paused: bool,
}

/// The reference: what the API promises, nothing more.
#[derive(Debug, Clone)]
struct Reference {
    next_id: u32,
    routers: BTreeMap<u32, usize>,
    transports: BTreeMap<u32, RefTransport>,
    producers: BTreeMap<u32, RefProducer>,
    consumers: BTreeMap<u32, RefConsumer>,
    /// What the last call must return: `Ok` or the error kind.
    expected: Result<(), ApiErrorKind>,
}

impl Reference {
    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn router_of_transport(&self, t: u32) -> u32 {
        self.transports[&t].router
    }

    fn close_consumer(&mut self, id: u32) {
        self.consumers.remove(&id);
    }

    fn close_producer(&mut self, id: u32) {
        self.producers.remove(&id);
        let gone: Vec<u32> =
            self.consumers.iter().filter(|(_, c)| c.producer == id).map(|(k, _)| *k).collect();
        gone.into_iter().for_each(|c| self.close_consumer(c));
    }

    fn close_transport(&mut self, id: u32) {
        self.transports.remove(&id);
        let producers: Vec<u32> =
            self.producers.iter().filter(|(_, p)| p.transport == id).map(|(k, _)| *k).collect();
        producers.into_iter().for_each(|p| self.close_producer(p));
        let consumers: Vec<u32> =
            self.consumers.iter().filter(|(_, c)| c.transport == id).map(|(k, _)| *k).collect();
        consumers.into_iter().for_each(|c| self.close_consumer(c));
    }

    fn close_router(&mut self, id: u32) {
        self.routers.remove(&id);
        let transports: Vec<u32> =
            self.transports.iter().filter(|(_, t)| t.router == id).map(|(k, _)| *k).collect();
        transports.into_iter().for_each(|t| self.close_transport(t));
    }

    fn call(&mut self, call: &Call) -> Result<(), ApiErrorKind> {
        use ApiErrorKind::*;
        match *call {
            Call::CreateRouter { core } => {
                let core = match core {
                    Some(c) if c >= CORES => return Err(InvalidArgument),
                    Some(c) => c,
                    None => {
                        // Least loaded, lowest index on a tie.
                        let load = |c: usize| self.routers.values().filter(|k| **k == c).count();
                        (0..CORES).min_by_key(|c| load(*c)).unwrap_or(0)
                    }
                };
                let id = self.new_id();
                self.routers.insert(id, core);
            }
            Call::CloseRouter(r) => {
                self.routers.get(&r).ok_or(NotFound)?;
                self.close_router(r);
            }
            Call::MoveRouter { router, core } => {
                if core >= CORES {
                    return Err(InvalidArgument);
                }
                *self.routers.get_mut(&router).ok_or(NotFound)? = core;
            }
            Call::CreateTransport { router, shared } => {
                self.routers.get(&router).ok_or(NotFound)?;
                let id = self.new_id();
                self.transports.insert(id, RefTransport { router, shared, remote: None });
            }
            Call::Connect { transport, port } => {
                let t = self.transports.get(&transport).ok_or(NotFound)?;
                if t.remote.is_some() {
                    return Err(InvalidState);
                }
                if t.shared && self.transports.values().any(|o| o.shared && o.remote == Some(port)) {
                    return Err(InvalidState);
                }
                self.transports.get_mut(&transport).ok_or(NotFound)?.remote = Some(port);
            }
            Call::CloseTransport(t) => {
                self.transports.get(&t).ok_or(NotFound)?;
                self.close_transport(t);
            }
            Call::Produce { transport, ssrc, payload_type, audio } => {
                if payload_type > 127 {
                    return Err(InvalidArgument);
                }
                self.transports.get(&transport).ok_or(NotFound)?;
                if self.producers.values().any(|p| p.transport == transport && p.ssrc == ssrc) {
                    return Err(InvalidState);
                }
                let id = self.new_id();
                self.producers.insert(id, RefProducer { transport, ssrc, paused: false, audio });
            }
            Call::CloseProducer(p) => {
                self.producers.get(&p).ok_or(NotFound)?;
                self.close_producer(p);
            }
            Call::PauseProducer(p) | Call::ResumeProducer(p) => {
                self.producers.get_mut(&p).ok_or(NotFound)?.paused = matches!(call, Call::PauseProducer(_));
            }
            Call::Consume { transport, producer } => {
                self.transports.get(&transport).ok_or(NotFound)?;
                let p = self.producers.get(&producer).ok_or(NotFound)?;
                if self.router_of_transport(p.transport) != self.router_of_transport(transport) {
                    return Err(InvalidArgument);
                }
                let id = self.new_id();
                self.consumers.insert(id, RefConsumer { transport, producer, paused: false });
            }
            Call::CloseConsumer(c) => {
                self.consumers.get(&c).ok_or(NotFound)?;
                self.close_consumer(c);
            }
            Call::PauseConsumer(c) | Call::ResumeConsumer(c) => {
                self.consumers.get_mut(&c).ok_or(NotFound)?.paused = matches!(call, Call::PauseConsumer(_));
            }
            Call::SwitchProducer { consumer, producer } => {
                let c = self.consumers.get(&consumer).ok_or(NotFound)?;
                let new = self.producers.get(&producer).ok_or(NotFound)?;
                if self.router_of_transport(new.transport) != self.router_of_transport(c.transport) {
                    return Err(InvalidArgument);
                }
                // Every producer here has its kind's default clock rate: only the kind differs.
                if self.producers[&c.producer].audio != new.audio {
                    return Err(InvalidArgument);
                }
                self.consumers.get_mut(&consumer).ok_or(NotFound)?.producer = producer;
            }
        }
        Ok(())
    }
}

/// An existing id most of the time, sometimes one that does not exist.
fn pick<V>(map: &BTreeMap<u32, V>) -> BoxedStrategy<u32> {
    let ids: Vec<u32> = map.keys().copied().collect();
    if ids.is_empty() {
        Just(BOGUS).boxed()
    } else {
        prop_oneof![12 => select(ids), 1 => Just(BOGUS)].boxed()
    }
}

struct RefMachine;

impl ReferenceStateMachine for RefMachine {
    type State = Reference;
    type Transition = Call;

    fn init_state() -> BoxedStrategy<Reference> {
        Just(Reference {
            next_id: 1,
            routers: BTreeMap::new(),
            transports: BTreeMap::new(),
            producers: BTreeMap::new(),
            consumers: BTreeMap::new(),
            expected: Ok(()),
        })
        .boxed()
    }

    fn transitions(s: &Reference) -> BoxedStrategy<Call> {
        let r = || pick(&s.routers);
        let t = || pick(&s.transports);
        let p = || pick(&s.producers);
        let c = || pick(&s.consumers);
        prop_oneof![
            3 => prop::option::weighted(0.2, 0..CORES + 1).prop_map(|core| Call::CreateRouter { core }),
            1 => r().prop_map(Call::CloseRouter),
            2 => (r(), 0..CORES + 1).prop_map(|(router, core)| Call::MoveRouter { router, core }),
            4 => (r(), any::<bool>()).prop_map(|(router, shared)| Call::CreateTransport { router, shared }),
            2 => (t(), 5000u16..5004).prop_map(|(transport, port)| Call::Connect { transport, port }),
            1 => t().prop_map(Call::CloseTransport),
            4 => (t(), 1u32..6, prop_oneof![9 => Just(96u8), 1 => Just(200u8)], prop::bool::weighted(0.2))
                .prop_map(|(transport, ssrc, payload_type, audio)| Call::Produce {
                    transport,
                    ssrc,
                    payload_type,
                    audio
                }),
            1 => p().prop_map(Call::CloseProducer),
            3 => p().prop_map(Call::PauseProducer),
            3 => p().prop_map(Call::ResumeProducer),
            6 => (t(), p()).prop_map(|(transport, producer)| Call::Consume { transport, producer }),
            1 => c().prop_map(Call::CloseConsumer),
            3 => c().prop_map(Call::PauseConsumer),
            3 => c().prop_map(Call::ResumeConsumer),
            4 => (c(), p()).prop_map(|(consumer, producer)| Call::SwitchProducer { consumer, producer }),
        ]
        .boxed()
    }

    fn apply(mut state: Reference, call: &Call) -> Reference {
        state.expected = state.call(call);
        state
    }
}

/// The system under test: the control plane's model and one core shard per core.
struct System {
    model: Model,
    shards: Vec<Shard>,
    seqs: Vec<u64>,
}

impl System {
    fn plan(&mut self, call: &Call) -> Result<Plan, ApiError> {
        let m = &mut self.model;
        match *call {
            Call::CreateRouter { core } => m.create_router(core, &[false; CORES]),
            Call::CloseRouter(r) => m.close_router(RouterId(r)),
            Call::MoveRouter { router, core } => m.move_router(RouterId(router), core),
            Call::CreateTransport { router, shared } => {
                if m.core_of_router(RouterId(router)).is_none() {
                    // The controller checks the router before binding a socket.
                    return Err(ApiError::not_found(format!("no router {router}")));
                }
                let socket = if shared { SocketId::SHARED } else { m.socket_id().unwrap() };
                m.create_transport(RouterId(router), socket, remote(40000), false, None)
            }
            Call::Connect { transport, port } => m.connect_transport(TransportId(transport), remote(port)),
            Call::CloseTransport(t) => m.close_transport(TransportId(t)),
            Call::Produce { transport, ssrc, payload_type, audio } => m.produce(
                TransportId(transport),
                if audio { MediaKind::Audio } else { MediaKind::Video },
                Ssrc(ssrc),
                PayloadType(payload_type),
                None,
                false,
            ),
            Call::CloseProducer(p) => m.close_producer(ProducerId(p)),
            Call::PauseProducer(p) => m.set_producer_paused(ProducerId(p), true),
            Call::ResumeProducer(p) => m.set_producer_paused(ProducerId(p), false),
            Call::Consume { transport, producer } => {
                m.consume(TransportId(transport), ProducerId(producer), false)
            }
            Call::CloseConsumer(c) => m.close_consumer(ConsumerId(c)),
            Call::PauseConsumer(c) => m.set_consumer_paused(ConsumerId(c), true),
            Call::ResumeConsumer(c) => m.set_consumer_paused(ConsumerId(c), false),
            Call::SwitchProducer { consumer, producer } => {
                m.switch_consumer_producer(ConsumerId(consumer), ProducerId(producer))
            }
        }
    }

    /// Runs a plan as the controller does: phase by phase, one batch per core, then commits.
    fn execute(&mut self, plan: Plan) -> Response {
        for phase in plan.phases {
            let mut per_core: BTreeMap<usize, Vec<Op>> = BTreeMap::new();
            for (core, op) in phase {
                per_core.entry(core).or_default().push(op);
            }
            for (core, ops) in per_core {
                let mut commands = Vec::new();
                for op in ops {
                    match op {
                        Op::Route(c) => commands.push(c),
                        // Sockets live in the data plane, not in a shard.
                        Op::AttachSocket(_) | Op::DetachSocket(_) => {}
                        Op::HandOff { router, to } => {
                            let r = self.shards[core].take_router(router).expect("owner has the router");
                            self.shards[to].insert_router(router, r).expect("import");
                        }
                        Op::ConfirmImport { router } => {
                            assert!(self.shards[core].router(router).is_some(), "imported on core {core}");
                        }
                    }
                }
                if commands.is_empty() {
                    continue;
                }
                self.seqs[core] += 1;
                let batch = CommandBatch { seq: self.seqs[core], commands };
                match self.shards[core].apply_batch(&batch) {
                    BatchReply::Applied { .. } => {}
                    BatchReply::Rejected { index, error, .. } => {
                        panic!(
                            "core {core} refused what the model accepted: {:?}: {error:?}",
                            batch.commands[index]
                        )
                    }
                }
            }
        }
        self.model.commit(plan.change);
        plan.response
    }

    /// Everything a call may change, to show a refused call changed nothing.
    fn fingerprint(&self) -> impl PartialEq + std::fmt::Debug {
        let m = &self.model;
        (m.routers.clone(), m.transports.clone(), m.producers.clone(), m.consumers.clone())
    }
}

struct Conformance;

impl StateMachineTest for Conformance {
    type SystemUnderTest = System;
    type Reference = RefMachine;

    fn init_test(_: &Reference) -> System {
        System {
            model: Model::new(CORES, 0x5eed, Placement::LeastLoaded),
            shards: (0..CORES).map(|_| Shard::new()).collect(),
            seqs: vec![0; CORES],
        }
    }

    fn apply(mut sys: System, reference: &Reference, call: Call) -> System {
        let before = sys.fingerprint();
        match (sys.plan(&call), reference.expected) {
            (Ok(plan), Ok(())) => {
                let response = sys.execute(plan);
                let id = match response {
                    Response::Router { id, .. } => Some(id.0),
                    Response::Transport { id, .. } => Some(id.0),
                    Response::Producer { id } => Some(id.0),
                    Response::Consumer { id, .. } => Some(id.0),
                    _ => None,
                };
                if let Some(id) = id {
                    assert_eq!(id + 1, reference.next_id, "{call:?}: ids are allocated in order");
                }
            }
            (Err(e), Err(kind)) => {
                assert_eq!(e.kind, kind, "{call:?}: {e}");
                assert!(!e.message.is_empty());
                assert_eq!(sys.fingerprint(), before, "{call:?}: a refused call changed the model");
            }
            (got, want) => panic!("{call:?}: system {:?}, reference {want:?}", got.map(|p| p.response)),
        }
        sys
    }

    fn check_invariants(sys: &System, reference: &Reference) {
        let m = &sys.model;
        let ids = |v: Vec<u32>| v.into_iter().collect::<BTreeSet<u32>>();
        assert_eq!(
            ids(m.routers.keys().map(|r| r.0).collect()),
            ids(reference.routers.keys().copied().collect())
        );
        assert_eq!(
            ids(m.transports.keys().map(|t| t.0).collect()),
            ids(reference.transports.keys().copied().collect())
        );
        assert_eq!(
            ids(m.producers.keys().map(|p| p.0).collect()),
            ids(reference.producers.keys().copied().collect())
        );
        assert_eq!(
            ids(m.consumers.keys().map(|c| c.0).collect()),
            ids(reference.consumers.keys().copied().collect())
        );

        // Every router on exactly the core the model and the reference say, with the same objects.
        let on_cores: usize = sys.shards.iter().map(|s| s.routers().count()).sum();
        assert_eq!(on_cores, reference.routers.len(), "a router is on exactly one core");
        for (rid, core) in &reference.routers {
            let id = RouterId(*rid);
            assert_eq!(m.routers[&id].core, *core);
            let router =
                sys.shards[*core].router(id).unwrap_or_else(|| panic!("router {rid} on core {core}"));
            let model_transports: BTreeSet<TransportId> = m.routers[&id].transports.clone();
            assert_eq!(router.transports().map(|(t, _)| t).collect::<BTreeSet<_>>(), model_transports);
            let model_producers: BTreeSet<ProducerId> =
                m.producers.iter().filter(|(_, p)| p.router == id).map(|(k, _)| *k).collect();
            assert_eq!(router.producers().map(|(p, _)| p).collect::<BTreeSet<_>>(), model_producers);
            let model_consumers: BTreeSet<ConsumerId> =
                m.consumers.iter().filter(|(_, c)| c.router == id).map(|(k, _)| *k).collect();
            assert_eq!(router.consumers().map(|(c, _)| c).collect::<BTreeSet<_>>(), model_consumers);
            for (tid, t) in router.transports() {
                let want = reference.transports[&tid.0].remote.map(remote);
                assert_eq!(t.remote_addr(), want, "transport {tid} remote on the core");
                assert_eq!(m.transports[&tid].remote, want, "transport {tid} remote in the model");
                assert_eq!(t.socket().is_shared(), reference.transports[&tid.0].shared);
            }
        }

        for (pid, p) in &reference.producers {
            let id = ProducerId(*pid);
            let core = reference.routers[&reference.transports[&p.transport].router];
            let on_core = sys.shards[core].router(m.producers[&id].router).and_then(|r| r.producer(id));
            assert_eq!(m.producers[&id].paused, p.paused, "producer {pid} paused in the model");
            assert_eq!(on_core.map(|x| x.paused()), Some(p.paused), "producer {pid} paused on the core");
            assert_eq!(m.producers[&id].transport.0, p.transport);
            // Its consumers (switched ones included) in the model and in the core's fan-out.
            let want: BTreeSet<ConsumerId> = reference
                .consumers
                .iter()
                .filter(|(_, c)| c.producer == *pid)
                .map(|(k, _)| ConsumerId(*k))
                .collect();
            assert_eq!(m.producers[&id].consumers, want, "producer {pid} consumers in the model");
            let fan_out = on_core.map(|x| x.consumers().to_vec()).unwrap_or_default();
            assert_eq!(fan_out.len(), want.len(), "producer {pid}: a consumer twice in its fan-out");
            assert_eq!(
                fan_out.into_iter().collect::<BTreeSet<_>>(),
                want,
                "producer {pid} fan-out on the core"
            );
        }

        let mut ssrcs = BTreeSet::new();
        for (cid, c) in &reference.consumers {
            let id = ConsumerId(*cid);
            let producer_paused = reference.producers[&c.producer].paused;
            let entry = &m.consumers[&id];
            assert_eq!((entry.transport.0, entry.producer.0), (c.transport, c.producer));
            assert_eq!(entry.paused, c.paused, "consumer {cid} paused in the model");
            assert_eq!(
                m.producers[&entry.producer].paused, producer_paused,
                "consumer {cid} producer_paused (model)"
            );
            let core = reference.routers[&reference.transports[&c.transport].router];
            let on_core = sys.shards[core]
                .router(entry.router)
                .and_then(|r| r.consumer(id))
                .unwrap_or_else(|| panic!("consumer {cid} on core {core}"));
            assert_eq!(on_core.paused(), c.paused, "consumer {cid} paused on the core");
            assert_eq!(
                on_core.producer_paused(),
                producer_paused,
                "consumer {cid} producer_paused on the core"
            );
            assert_eq!(on_core.ssrc(), entry.ssrc, "consumer {cid} ssrc");
            assert_eq!(on_core.producer().0, c.producer, "consumer {cid} producer on the core");
            assert!(ssrcs.insert(entry.ssrc), "consumer ssrc {} is unique", entry.ssrc.0);
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        // ChaCha unoptimized dominates the run; XorShift is plenty for generating calls.
        rng_algorithm: RngAlgorithm::XorShift,
        .. ProptestConfig::default()
    })]

    /// ≥ 10,000 random call sequences in the default run.
    #[test]
    fn model_and_cores_agree_with_the_reference(sequential 1..40 => Conformance);
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 200_000,
        failure_persistence: None,
        // ChaCha unoptimized dominates the run; XorShift is plenty for generating calls.
        rng_algorithm: RngAlgorithm::XorShift,
        .. ProptestConfig::default()
    })]

    /// Nightly size: `cargo test -p shardcast --test model_conformance -- --ignored`.
    #[ignore]
    #[test]
    fn model_and_cores_agree_with_the_reference_nightly(sequential 1..120 => Conformance);
}
