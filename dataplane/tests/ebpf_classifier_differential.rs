//! The shared port's eBPF steering program against the software classifier, over real sockets:
//! for every `(b0, b1)` pair of a 12-byte datagram and for boundary lengths 0..=16, the socket
//! of a two-socket SO_REUSEPORT group the datagram lands on is the one `demux::classify` says —
//! RTP (at least an RTP header long) is steered by its SSRC key, anything else is hashed — and a
//! known source address steers every datagram, whatever it holds.
//!
//! Real sockets rather than `BPF_PROG_TEST_RUN`: a test run of a socket-filter program starts
//! `skb->data` at the link-layer header, while the reuseport hook starts it at the UDP payload, so
//! only real delivery runs the program with the offsets it is written for.
//!
//! Needs CAP_BPF (root); without it the test says so and passes without checking.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use shardcast_core::demux::{classify, PacketClass};
use shardcast_dataplane::io::{KernelKey, ReuseportSteering};
use shardcast_dataplane::socket::{bind_udp, SocketOptions};

const SSRC: u32 = 0x5eed_f00d;
/// The socket steered flows go to; the test's senders hash to the other one.
const STEERED: usize = 1;
const HASHED: usize = 0;

fn group() -> Vec<UdpSocket> {
    let opts = SocketOptions { reuse_port: true, recv_buffer: 4 << 20, ..Default::default() };
    let (first, _) = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    let second = bind_udp(first.local_addr().unwrap(), &opts).unwrap().0;
    vec![first, second]
}

fn remote_key(addr: SocketAddr) -> KernelKey {
    match addr {
        SocketAddr::V4(a) => [u32::from(*a.ip()), u32::from(a.port())],
        SocketAddr::V6(_) => unreachable!("the senders are IPv4"),
    }
}

/// Receives `n` datagrams from the group; returns, per datagram, the socket it landed on.
fn collect(group: &[UdpSocket], n: usize) -> HashMap<Vec<u8>, usize> {
    let mut got = HashMap::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < n {
        let mut idle = true;
        for (i, s) in group.iter().enumerate() {
            while let Ok((len, _)) = s.recv_from(&mut buf) {
                idle = false;
                let previous = got.insert(buf[..len].to_vec(), i);
                assert!(previous.is_none(), "datagram {:?} twice", &buf[..len]);
            }
        }
        assert!(Instant::now() < deadline, "{} of {n} datagrams arrived", got.len());
        if idle {
            std::thread::yield_now();
        }
    }
    got
}

/// A sender whose flow the kernel hashes to socket `HASHED` (tried on a datagram the program
/// does not steer).
fn sender_hashed_to_the_other_socket(group: &[UdpSocket]) -> UdpSocket {
    let dest = group[0].local_addr().unwrap();
    for _ in 0..64 {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        s.send_to(&[0x00, 0x01], dest).unwrap();
        if collect(group, 1).values().next() == Some(&HASHED) {
            return s;
        }
    }
    panic!("64 senders all hashed to socket {STEERED}");
}

/// What the program must do with `p`, from the software classifier: RTP at least an RTP header
/// long is looked up by SSRC (steered here), anything else is hashed.
fn expected(p: &[u8]) -> usize {
    if classify(p) == PacketClass::Rtp && p.len() >= 12 {
        STEERED
    } else {
        HASHED
    }
}

#[test]
fn kernel_steering_agrees_with_demux_classify_for_every_first_two_bytes_and_short_lengths() {
    let st = match ReuseportSteering::load(64) {
        Ok(st) => st,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            eprintln!("skipped: loading the eBPF steering program needs CAP_BPF (root): {e}");
            return;
        }
        Err(e) => panic!("the steering program does not load: {e}"),
    };
    let g = group();
    for s in &g {
        s.set_nonblocking(true).unwrap();
    }
    st.attach(g[0].as_raw_fd()).unwrap();
    let dest = g[0].local_addr().unwrap();
    st.set([0, SSRC], STEERED as u32).unwrap();
    let sender = sender_hashed_to_the_other_socket(&g);

    // Every (b0, b1) of a 12-byte datagram with the SSRC in place, 256 at a time (one b0).
    let started = Instant::now();
    let mut disagreements = Vec::new();
    for b0 in 0..=255u8 {
        let datagrams: Vec<Vec<u8>> = (0..=255u8)
            .map(|b1| {
                let mut p = vec![b0, b1, 0, 0, 0, 0, 0, 0];
                p.extend_from_slice(&SSRC.to_be_bytes());
                p
            })
            .collect();
        for p in &datagrams {
            sender.send_to(p, dest).unwrap();
        }
        let landed = collect(&g, datagrams.len());
        for p in &datagrams {
            if landed[p] != expected(p) {
                disagreements.push((p[0], p[1], landed[p]));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} (b0, b1, socket) pairs disagree with demux::classify, first {:?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(16)]
    );

    // Boundary lengths 0..=16 of an RTP-looking, an RTCP-looking and a STUN-looking prefix (the
    // SSRC, where there is room for it, is the steered one).
    let mut full = [0u8; 16];
    full[8..12].copy_from_slice(&SSRC.to_be_bytes());
    let mut datagrams = Vec::new();
    for (tag, (b0, b1)) in [(0x80u8, 96u8), (0x80, 200), (0x00, 0x01)].into_iter().enumerate() {
        for len in 0..=16usize {
            let mut p = full[..len].to_vec();
            if len > 0 {
                p[0] = b0;
            }
            if len > 1 {
                p[1] = b1;
            }
            if len > 12 {
                // Keeps every datagram distinct (bytes past the SSRC are payload).
                p[12] = tag as u8;
            }
            if !datagrams.contains(&p) {
                datagrams.push(p);
            }
        }
    }
    for p in &datagrams {
        sender.send_to(p, dest).unwrap();
    }
    let landed = collect(&g, datagrams.len());
    for p in &datagrams {
        assert_eq!(landed[p], expected(p), "datagram {p:?} ({} bytes)", p.len());
    }

    // A known source address steers everything it sends, even what the classifier rejects.
    st.set(remote_key(sender.local_addr().unwrap()), STEERED as u32).unwrap();
    for p in &datagrams {
        sender.send_to(p, dest).unwrap();
    }
    let landed = collect(&g, datagrams.len());
    assert!(landed.values().all(|&s| s == STEERED), "{landed:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}
