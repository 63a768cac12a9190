//! A `CoreBatch` is applied whole or not at all: a batch whose routing command is refused leaves
//! the core's sockets as they were, and one whose socket operation is refused leaves its routers
//! as they were — one error reply each, and the next batch sees the core unchanged.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shardcast_core::command::{BatchReply, Command, ErrorKind, SocketId};
use shardcast_core::ids::RouterId;
use shardcast_dataplane::socket::{bind_udp, SocketOptions};
use shardcast_dataplane::{CoreBatch, CoreOp, CoreReply, DataPlane, DataPlaneConfig};

const DEADLINE: Duration = Duration::from_secs(10);

struct Core {
    plane: DataPlane,
    seq: u64,
}

impl Core {
    fn start() -> Core {
        let plane = DataPlane::start(DataPlaneConfig::default()).expect("data plane starts");
        Core { plane, seq: 0 }
    }

    /// Submits `ops` to core 0 and returns its one reply.
    fn apply(&mut self, ops: Vec<CoreOp>) -> BatchReply {
        self.seq += 1;
        self.plane.cores()[0].submit(CoreBatch { seq: self.seq, ops }).expect("ring has room");
        let CoreReply { core, reply, .. } = self.plane.replies().recv_timeout(DEADLINE).expect("a reply");
        assert_eq!((core, reply.seq()), (0, self.seq));
        reply
    }

    fn stats(&self) -> shardcast_dataplane::CoreStatsSnapshot {
        self.plane.cores()[0].stats()
    }
}

fn socket() -> (UdpSocket, SocketAddr) {
    let (s, _) = bind_udp("127.0.0.1:0".parse().unwrap(), &SocketOptions::default()).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

fn create(router: u32) -> CoreOp {
    CoreOp::Route(Command::CreateRouter { router: RouterId(router) })
}

#[test]
fn a_refused_route_command_leaves_the_sockets_of_its_batch_unattached() {
    let mut core = Core::start();
    assert!(matches!(core.apply(vec![create(1)]), BatchReply::Applied { .. }));
    let (s, addr) = socket();
    // The socket first, then a refused command (router 1 exists already).
    let reply = core.apply(vec![CoreOp::AttachSocket { id: SocketId(5), socket: s }, create(1)]);
    match reply {
        BatchReply::Rejected { index: 1, error, .. } => assert_eq!(error.kind, ErrorKind::InvalidState),
        other => panic!("{other:?}"),
    }
    // The socket was never attached: it is closed, nothing reads what is sent to it...
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = peer.send_to(b"not for anyone", addr);
    std::thread::sleep(Duration::from_millis(100));
    let stats = core.stats();
    assert_eq!(stats.counters.packets_in, 0, "{stats:?}");
    assert_eq!(stats.routers, 1);
    // ... and its id is free.
    let (again, _) = socket();
    let reply = core.apply(vec![CoreOp::AttachSocket { id: SocketId(5), socket: again }]);
    assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
    core.plane.shutdown(DEADLINE).expect("cores stop");
}

#[test]
fn a_refused_socket_operation_leaves_the_routers_of_its_batch_unchanged() {
    let mut core = Core::start();
    let (s, _) = socket();
    assert!(matches!(
        core.apply(vec![CoreOp::AttachSocket { id: SocketId(5), socket: s }]),
        BatchReply::Applied { .. }
    ));
    // A command and a second socket with the same id: refused at the socket.
    let (s, _) = socket();
    let reply = core.apply(vec![create(2), CoreOp::AttachSocket { id: SocketId(5), socket: s }]);
    assert!(matches!(reply, BatchReply::Rejected { index: 1, .. }), "{reply:?}");
    // So is a detach of the shared port after a command.
    let reply = core.apply(vec![create(2), CoreOp::DetachSocket { id: SocketId::SHARED }]);
    assert!(matches!(reply, BatchReply::Rejected { index: 1, .. }), "{reply:?}");
    let published = Instant::now() + DEADLINE;
    while core.stats().batches_applied < 3 && Instant::now() < published {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(core.stats().routers, 0);
    // Router 2 was never created: creating it now works.
    assert!(matches!(core.apply(vec![create(2)]), BatchReply::Applied { .. }));
    core.plane.shutdown(DEADLINE).expect("cores stop");
}

#[test]
fn a_batch_sees_its_own_socket_operations_in_order() {
    let mut core = Core::start();
    let (a, _) = socket();
    let (b, _) = socket();
    // Attach, detach, attach the same id again: each valid after the one before it.
    let reply = core.apply(vec![
        CoreOp::AttachSocket { id: SocketId(7), socket: a },
        CoreOp::DetachSocket { id: SocketId(7) },
        create(3),
        CoreOp::AttachSocket { id: SocketId(7), socket: b },
        CoreOp::DetachSocket { id: SocketId(8) },
    ]);
    match reply {
        BatchReply::Applied { outcomes, .. } => {
            use shardcast_core::command::Outcome::{Applied, NotFound};
            assert_eq!(outcomes, vec![Applied, Applied, Applied, Applied, NotFound]);
        }
        other => panic!("{other:?}"),
    }
    // Id 7 is attached once more at the end.
    let (c, _) = socket();
    let reply = core.apply(vec![CoreOp::AttachSocket { id: SocketId(7), socket: c }]);
    assert!(matches!(reply, BatchReply::Rejected { index: 0, .. }), "{reply:?}");
    core.plane.shutdown(DEADLINE).expect("cores stop");
}

#[test]
fn handoff_operations_travel_alone() {
    let mut core = Core::start();
    let reply = core.apply(vec![create(4), CoreOp::ConfirmImport { router: RouterId(4) }]);
    match reply {
        BatchReply::Rejected { index: 1, error, .. } => assert_eq!(error.kind, ErrorKind::InvalidArgument),
        other => panic!("{other:?}"),
    }
    assert!(matches!(core.apply(vec![create(4)]), BatchReply::Applied { .. }));
    core.plane.shutdown(DEADLINE).expect("cores stop");
}
