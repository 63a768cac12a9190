//! Harness for shardcast's end-to-end tests: a data plane driven directly with core batches, UDP
//! peers on 127.0.0.1 with deadlines (never fixed sleeps), and RTP builders.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use shardcast_core::command::{BatchReply, Command, SocketId};
use shardcast_dataplane::socket::{bind_udp, SocketOptions};
use shardcast_dataplane::{CoreBatch, CoreOp, CoreReply, DataPlane, DataPlaneConfig};

pub use shardcast_core::testutil::rtp;

pub mod alloc;

/// True when this process runs as root (effective uid 0, from `/proc/self/status`): the tests of
/// kernel steering need CAP_BPF. Without it such a test prints that it is skipped and returns.
pub fn root_or_skip(what: &str) -> bool {
    let euid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
    });
    let root = euid.as_deref() == Some("0");
    if !root {
        eprintln!("skipped: {what} needs root (CAP_BPF for the reuseport eBPF program)");
    }
    root
}

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A data plane plus per-core batch sequence numbers.
#[derive(Debug)]
pub struct Plane {
    pub plane: DataPlane,
    seqs: Vec<u64>,
    next_socket: u32,
}

impl Plane {
    /// Starts `cores` unpinned cores with the shared port on 127.0.0.1:0 (kernel steering on).
    pub fn start(cores: usize) -> Plane {
        Plane::start_with(cores, true)
    }

    /// As `start`, choosing whether the shared port is steered in the kernel.
    pub fn start_with(cores: usize, kernel_steering: bool) -> Plane {
        let config = DataPlaneConfig {
            cpus: vec![None; cores],
            allow_test_hooks: true,
            kernel_steering,
            ..Default::default()
        };
        let plane = DataPlane::start(config).expect("data plane starts");
        Plane { plane, seqs: vec![0; cores], next_socket: 1 }
    }

    /// Submits ops to `core` and waits for its reply.
    pub fn apply(&mut self, core: usize, ops: Vec<CoreOp>) -> BatchReply {
        self.seqs[core] += 1;
        let seq = self.seqs[core];
        self.plane.cores()[core].submit(CoreBatch { seq, ops }).expect("ring has room");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.checked_duration_since(Instant::now()).expect("core replied in time");
            let CoreReply { core: c, reply, .. } =
                self.plane.replies().recv_timeout(left).expect("core replied in time");
            if c == core && reply.seq() == seq {
                return reply;
            }
        }
    }

    /// Applies routing commands and asserts they were all applied.
    pub fn route(&mut self, core: usize, commands: Vec<Command>) {
        let reply = self.apply(core, commands.into_iter().map(CoreOp::Route).collect());
        assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
    }

    /// Binds a dedicated socket on 127.0.0.1:0 and attaches it to `core`.
    pub fn socket(&mut self, core: usize) -> (SocketId, SocketAddr) {
        let (s, _) = bind_udp("127.0.0.1:0".parse().unwrap(), &SocketOptions::default()).unwrap();
        let addr = s.local_addr().unwrap();
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        let reply = self.apply(core, vec![CoreOp::AttachSocket { id, socket: s }]);
        assert!(matches!(reply, BatchReply::Applied { .. }), "{reply:?}");
        (id, addr)
    }

    pub fn shared_addr(&self) -> SocketAddr {
        self.plane.shared_addr()
    }
}

/// A UDP peer on 127.0.0.1 with a receive deadline.
#[derive(Debug)]
pub struct Peer {
    pub socket: UdpSocket,
}

impl Default for Peer {
    fn default() -> Self {
        Self::new()
    }
}

impl Peer {
    /// A peer with an 8 MiB receive buffer, so test bursts are never lost in the kernel.
    pub fn new() -> Peer {
        let opts = SocketOptions { recv_buffer: 8 << 20, ..Default::default() };
        let (socket, _) = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        socket.set_nonblocking(false).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Peer { socket }
    }
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        self.socket.send_to(data, to).unwrap();
    }
    /// Receives until `n` datagrams arrived or `within` passed.
    pub fn recv_n(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < n && Instant::now() < deadline {
            if let Ok((len, _)) = self.socket.recv_from(&mut buf) {
                got.push(buf[..len].to_vec());
            }
        }
        got
    }
    /// Receives whatever arrives within `quiet` (to assert that nothing more comes).
    pub fn drain(&self, quiet: Duration) -> Vec<Vec<u8>> {
        self.recv_n(usize::MAX, quiet)
    }
}

/// Fields of a received RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
}

pub fn header(p: &[u8]) -> Header {
    Header {
        pt: p[1] & 0x7f,
        seq: u16::from_be_bytes([p[2], p[3]]),
        ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    }
}
