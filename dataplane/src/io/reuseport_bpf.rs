//! Kernel steering of the shared media port: an eBPF program attached to the port's
//! SO_REUSEPORT group (SO_ATTACH_REUSEPORT_EBPF) picks, for every datagram, the socket — hence
//! the core — that owns the datagram's flow, by looking its key up in a hash map the cores keep
//! up to date. A flow the map does not know (or a packet the program does not understand) falls
//! back to the kernel's hash, and the core it lands on carries it to the owner as before.
//!
//! The program is 38 instructions of hand-assembled eBPF (no compiler, no loader crate), so it is
//! spelled out below instruction by instruction. It runs with `skb->data` at the UDP payload
//! (the kernel pulls the UDP header before running a reuseport program), and it mirrors the
//! software steering in `core::shard` exactly:
//!
//! 1. plain IPv4 (version 4, no options): key `(source address, source port)` — the
//!    `SteerKey::Remote` of a transport with a known remote;
//! 2. else, or if that key is unknown: an RTP packet (first byte 128..=191, second byte not an
//!    RTCP type as `core::demux::classify` reads it, at least 12 bytes) is looked up by
//!    `(0, SSRC)` — the `SteerKey::Ssrc` of a comedia producer;
//! 3. else: return an index past the group, which the kernel answers with its hash.
//!
//! The value is the index of the socket in the reuseport group, which is the core index: the
//! data plane binds the shared port's sockets one after the other, in core order, before any
//! core starts (the kernel appends each new member at the end of the group).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `SO_ATTACH_REUSEPORT_EBPF` (asm-generic; libc does not export it for every target).
const SO_ATTACH_REUSEPORT_EBPF: libc::c_int = 52;
/// `SO_DETACH_REUSEPORT_BPF`.
const SO_DETACH_REUSEPORT_BPF: libc::c_int = 68;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// Allocate map entries on insert rather than all up front.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `SKF_NET_OFF`: loads relative to the network (IP) header.
const NET: i32 = -0x100000;

/// A flow key as the program builds it: `(IPv4 source, source port)` or `(0, SSRC)`.
pub type KernelKey = [u32; 2];

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

// Opcodes used below (linux/bpf.h, linux/bpf_common.h).
const MOV64_X: u8 = 0xbf; // r_dst = r_src
const MOV64_K: u8 = 0xb7; // r_dst = imm
const ADD64_K: u8 = 0x07; // r_dst += imm
const AND64_K: u8 = 0x57; // r_dst &= imm
const LD_ABS_B: u8 = 0x30; // r0 = *(u8 *)(skb + imm), network order
const LD_ABS_H: u8 = 0x28; // r0 = ntohs(*(u16 *)(skb + imm))
const LD_ABS_W: u8 = 0x20; // r0 = ntohl(*(u32 *)(skb + imm))
const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const STX_W: u8 = 0x63; // *(u32 *)(r_dst + off) = r_src
const LD_IMM64: u8 = 0x18; // r_dst = imm64 (two slots); src 1 = map fd
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const JLT_K: u8 = 0xa5;
const JLE_K: u8 = 0xb5;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const PSEUDO_MAP_FD: u8 = 1;

/// The program, with `map` as the hash map's descriptor. Jump offsets count from the next
/// instruction; the labels are the instruction numbers in the comments.
fn program(map: RawFd) -> [Insn; PROGRAM_LEN] {
    [
        /* 0 */ insn(MOV64_X, 6, 1, 0, 0), // r6 = skb (LD_ABS needs it there)
        // 1. (source address, source port) of plain IPv4.
        /* 1 */
        insn(LD_ABS_B, 0, 0, 0, NET), // version and header length
        /* 2 */ insn(JNE_K, 0, 0, 12, 0x45), // not plain IPv4: goto 15
        /* 3 */ insn(LD_ABS_W, 0, 0, 0, NET + 12), // source address
        /* 4 */ insn(STX_W, 10, 0, -8, 0),
        /* 5 */ insn(LD_ABS_H, 0, 0, 0, NET + 20), // source port (UDP header after 20 bytes)
        /* 6 */ insn(STX_W, 10, 0, -4, 0),
        /* 7 */ insn(MOV64_X, 2, 10, 0, 0),
        /* 8 */ insn(ADD64_K, 2, 0, 0, -8), // r2 = &key
        /* 9 */ insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map),
        /* 10 */ insn(0, 0, 0, 0, 0),
        /* 11 */ insn(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
        /* 12 */ insn(JEQ_K, 0, 0, 2, 0), // unknown: goto 15
        /* 13 */ insn(LDX_W, 0, 0, 0, 0), // r0 = core index
        /* 14 */ insn(EXIT, 0, 0, 0, 0),
        // 2. (0, SSRC) of an RTP packet, classified as `core::demux::classify` does.
        /* 15 */
        insn(LDX_W, 0, 6, 0, 0), // r0 = skb->len (the UDP payload)
        /* 16 */ insn(JLT_K, 0, 0, 19, 12), // shorter than an RTP header: goto 36
        /* 17 */ insn(LD_ABS_B, 0, 0, 0, 0),
        /* 18 */ insn(AND64_K, 0, 0, 0, 0xc0),
        /* 19 */ insn(JNE_K, 0, 0, 16, 0x80), // first byte not 128..=191: goto 36
        /* 20 */ insn(LD_ABS_B, 0, 0, 0, 1),
        /* 21 */ insn(AND64_K, 0, 0, 0, 0x7f), // payload type without the marker bit
        /* 22 */ insn(JLT_K, 0, 0, 1, 64), // RTP: goto 24
        /* 23 */ insn(JLE_K, 0, 0, 12, 95), // RTCP (RFC 5761: 64..=95 here): goto 36
        /* 24 */ insn(LD_ABS_W, 0, 0, 0, 8), // SSRC
        /* 25 */ insn(STX_W, 10, 0, -4, 0),
        /* 26 */ insn(MOV64_K, 0, 0, 0, 0),
        /* 27 */ insn(STX_W, 10, 0, -8, 0),
        /* 28 */ insn(MOV64_X, 2, 10, 0, 0),
        /* 29 */ insn(ADD64_K, 2, 0, 0, -8),
        /* 30 */ insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map),
        /* 31 */ insn(0, 0, 0, 0, 0),
        /* 32 */ insn(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
        /* 33 */ insn(JEQ_K, 0, 0, 2, 0), // unknown: goto 36
        /* 34 */ insn(LDX_W, 0, 0, 0, 0),
        /* 35 */ insn(EXIT, 0, 0, 0, 0),
        // 3. Anything else: past the group, so the kernel hashes.
        /* 36 */
        insn(MOV64_K, 0, 0, 0, -1),
        /* 37 */ insn(EXIT, 0, 0, 0, 0),
    ]
}

/// Instructions in [`program`].
const PROGRAM_LEN: usize = 38;

/// `union bpf_attr`, as a zeroed block the commands below fill in (the kernel requires every
/// byte past a command's fields to be zero).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32_at(&mut self, offset: usize, v: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, offset: usize, v: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable, zero-padded `bpf_attr` of the size passed; every
    // pointer stored in it (keys, values, instructions, license, log) points at memory that the
    // caller keeps alive for the duration of this call.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), std::mem::size_of::<Attr>() as libc::c_uint)
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::other("bpf returned a bad descriptor"))?;
    // SAFETY: the bpf syscall just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The steering map and program of one reuseport group. The map's descriptor may be used from
/// any thread (each update is one syscall); nothing here is touched per packet.
#[derive(Debug)]
pub struct ReuseportSteering {
    map: OwnedFd,
    prog: OwnedFd,
}

impl ReuseportSteering {
    /// Creates the map (up to `max_entries` flows) and loads the program. Needs CAP_BPF (root).
    pub fn load(max_entries: u32) -> io::Result<ReuseportSteering> {
        let mut attr = Attr::new();
        attr.u32_at(0, BPF_MAP_TYPE_HASH)
            .u32_at(4, 8) // key: two u32
            .u32_at(8, 4) // value: the core index
            .u32_at(12, max_entries.max(1))
            .u32_at(16, BPF_F_NO_PREALLOC);
        let map = owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)?;
        let insns = program(map.as_raw_fd());
        let license = c"Dual MIT/GPL";
        let mut log = vec![0u8; 16 * 1024];
        let mut attr = Attr::new();
        attr.u32_at(0, BPF_PROG_TYPE_SOCKET_FILTER)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64)
            .u32_at(24, 1) // log level: errors
            .u32_at(28, log.len() as u32)
            .u64_at(32, log.as_mut_ptr() as u64);
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(rc) => Ok(ReuseportSteering { map, prog: owned_fd(rc)? }),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let verifier = String::from_utf8_lossy(&log[..end]);
                Err(io::Error::new(
                    e.kind(),
                    format!("loading the steering program: {e}; {}", verifier.trim()),
                ))
            }
        }
    }

    /// Attaches the program to the reuseport group of `socket` (a bound SO_REUSEPORT socket).
    pub fn attach(&self, socket: RawFd) -> io::Result<()> {
        super::sockopt::set_int_option(
            socket,
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_EBPF,
            self.prog.as_raw_fd(),
        )
    }

    /// Removes the program from the group of `socket`: the kernel hashes every flow again.
    pub fn detach(socket: RawFd) -> io::Result<()> {
        // The option value is ignored by the kernel.
        super::sockopt::set_int_option(socket, libc::SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
    }

    /// Steers `key` to the group's socket number `index`.
    pub fn set(&self, key: KernelKey, index: u32) -> io::Result<()> {
        self.update(key, index, 0) // BPF_ANY
    }

    /// Steers `key` to socket `index` unless the map already steers it; an existing entry is not
    /// an error (and stays as it is).
    pub fn insert(&self, key: KernelKey, index: u32) -> io::Result<()> {
        match self.update(key, index, 1) {
            // BPF_NOEXIST
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    fn update(&self, key: KernelKey, index: u32, flags: u64) -> io::Result<()> {
        let value = index;
        let mut attr = Attr::new();
        attr.u32_at(0, self.map.as_raw_fd() as u32)
            .u64_at(8, key.as_ptr() as u64)
            .u64_at(16, (&value as *const u32) as u64)
            .u64_at(24, flags);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// Forgets `key` (its flow is hashed again). A key that is not there is not an error.
    pub fn remove(&self, key: KernelKey) -> io::Result<()> {
        let mut attr = Attr::new();
        attr.u32_at(0, self.map.as_raw_fd() as u32).u64_at(8, key.as_ptr() as u64);
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Where `key` is steered, if anywhere.
    pub fn get(&self, key: KernelKey) -> io::Result<Option<u32>> {
        let mut value: u32 = 0;
        let mut attr = Attr::new();
        attr.u32_at(0, self.map.as_raw_fd() as u32)
            .u64_at(8, key.as_ptr() as u64)
            .u64_at(16, (&mut value as *mut u32) as u64);
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use crate::socket::{bind_udp, SocketOptions};

    fn group(n: usize) -> Vec<UdpSocket> {
        let opts = SocketOptions { reuse_port: true, ..Default::default() };
        let (first, _) = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let addr = first.local_addr().unwrap();
        let mut v = vec![first];
        for _ in 1..n {
            v.push(bind_udp(addr, &opts).unwrap().0);
        }
        v
    }

    /// Which socket of the group got `payload` (each socket is non-blocking).
    fn landed(group: &[UdpSocket], payload: &[u8]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        loop {
            for (i, s) in group.iter().enumerate() {
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    assert_eq!(&buf[..n], payload, "a stray datagram on socket {i}");
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "the datagram arrived nowhere");
            std::thread::yield_now();
        }
    }

    fn remote_key(addr: SocketAddr) -> KernelKey {
        match addr {
            SocketAddr::V4(a) => [u32::from(*a.ip()), u32::from(a.port())],
            SocketAddr::V6(_) => unreachable!(),
        }
    }

    fn rtp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[7; 20]);
        p
    }

    /// The loaded program, or `None` (with a message) without CAP_BPF: these tests need root.
    fn steering() -> Option<ReuseportSteering> {
        match ReuseportSteering::load(1024) {
            Ok(st) => Some(st),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
                eprintln!("skipped: the eBPF steering program needs CAP_BPF (root): {e}");
                None
            }
            Err(e) => panic!("the steering program does not load: {e}"),
        }
    }

    #[test]
    fn source_address_keys_steer_to_the_socket_they_name() {
        let g = group(4);
        let Some(st) = steering() else { return };
        st.attach(g[0].as_raw_fd()).unwrap();
        let dest = g[0].local_addr().unwrap();
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        for round in 0..3 {
            for target in [3u32, 1, 2, 0] {
                st.set(remote_key(sender.local_addr().unwrap()), target).unwrap();
                let payload = [round as u8, target as u8, 0xff];
                sender.send_to(&payload, dest).unwrap();
                assert_eq!(landed(&g, &payload), target as usize);
            }
        }
        assert_eq!(st.get(remote_key(sender.local_addr().unwrap())).unwrap(), Some(0));
        // `insert` leaves an existing entry alone and adds a missing one.
        st.insert(remote_key(sender.local_addr().unwrap()), 2).unwrap();
        assert_eq!(st.get(remote_key(sender.local_addr().unwrap())).unwrap(), Some(0));
        st.insert([9, 9], 2).unwrap();
        assert_eq!(st.get([9, 9]).unwrap(), Some(2));
    }

    #[test]
    fn rtp_ssrc_keys_steer_when_the_address_is_unknown_and_rtcp_is_hashed() {
        let g = group(2);
        let Some(st) = steering() else { return };
        st.attach(g[1].as_raw_fd()).unwrap();
        let dest = g[0].local_addr().unwrap();
        // Many senders (many hashes), one SSRC key: every RTP packet goes where the key says.
        let senders: Vec<UdpSocket> =
            (0..16).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
        for target in [1u32, 0] {
            st.set([0, 0xdead_beef], target).unwrap();
            for s in &senders {
                let p = rtp(0xdead_beef);
                s.send_to(&p, dest).unwrap();
                assert_eq!(landed(&g, &p), target as usize);
            }
        }
        // The address key wins over the SSRC key.
        st.set(remote_key(senders[0].local_addr().unwrap()), 1).unwrap();
        let p = rtp(0xdead_beef);
        senders[0].send_to(&p, dest).unwrap();
        assert_eq!(landed(&g, &p), 1);
        // RTCP with that SSRC, short and non-RTP datagrams are hashed: they arrive somewhere,
        // and the kernel keeps each flow on one socket.
        st.remove(remote_key(senders[0].local_addr().unwrap())).unwrap();
        assert_eq!(st.get(remote_key(senders[0].local_addr().unwrap())).unwrap(), None);
        let mut rtcp = rtp(0xdead_beef);
        rtcp[1] = 200;
        // What `demux::classify` also calls RTCP: payload type 64..=95 without the marker bit.
        for p in [rtcp, vec![0x80], vec![], vec![0x16, 0xfe, 0xfd], rtp(1)] {
            let first = {
                senders[1].send_to(&p, dest).unwrap();
                landed(&g, &p)
            };
            senders[1].send_to(&p, dest).unwrap();
            assert_eq!(landed(&g, &p), first, "one flow, one socket");
        }
        // Removing what is not there is fine.
        st.remove([1, 2]).unwrap();
    }

    /// RTCP as `demux::classify` reads it (types 64..=95 in the low 7 bits, with or without the
    /// marker bit) is never steered by SSRC: many senders' RTCP spreads over the group while the
    /// same SSRC's RTP all lands on the socket the key names.
    #[test]
    fn rtcp_is_classified_as_the_software_demux_does() {
        use shardcast_core::demux::{classify, PacketClass};
        let g = group(2);
        let Some(st) = steering() else { return };
        st.attach(g[0].as_raw_fd()).unwrap();
        let dest = g[0].local_addr().unwrap();
        st.set([0, 0x0bad_cafe], 1).unwrap();
        let senders: Vec<UdpSocket> =
            (0..24).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
        for second in [200u8, 72, 201 & 0x7f, 223] {
            let mut p = rtp(0x0bad_cafe);
            p[1] = second;
            assert_eq!(classify(&p), PacketClass::Rtcp, "byte {second}");
            let on_1 = senders
                .iter()
                .filter(|s| {
                    s.send_to(&p, dest).unwrap();
                    landed(&g, &p) == 1
                })
                .count();
            assert!(on_1 < senders.len(), "RTCP byte {second} was steered by SSRC");
        }
        for second in [96u8, 0x80 | 96, 0, 127] {
            let mut p = rtp(0x0bad_cafe);
            p[1] = second;
            assert_eq!(classify(&p), PacketClass::Rtp, "byte {second}");
            for s in &senders {
                s.send_to(&p, dest).unwrap();
                assert_eq!(landed(&g, &p), 1, "RTP byte {second} follows its SSRC key");
            }
        }
    }

    #[test]
    fn detaching_returns_the_group_to_hashing() {
        let g = group(2);
        let Some(st) = steering() else { return };
        st.attach(g[0].as_raw_fd()).unwrap();
        let dest = g[0].local_addr().unwrap();
        let senders: Vec<UdpSocket> =
            (0..24).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
        for s in &senders {
            st.set(remote_key(s.local_addr().unwrap()), 1).unwrap();
        }
        let count_on_1 = |g: &[UdpSocket]| {
            senders
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    let p = [*i as u8; 4];
                    s.send_to(&p, dest).unwrap();
                    landed(g, &p) == 1
                })
                .count()
        };
        assert_eq!(count_on_1(&g), senders.len(), "steered: every flow on socket 1");
        ReuseportSteering::detach(g[0].as_raw_fd()).unwrap();
        // Hashed again: 24 flows all on one socket has a probability of 2^-23.
        let on_1 = count_on_1(&g);
        assert!(on_1 < senders.len(), "after detaching, flows spread over both sockets");
        assert_eq!(st.get(remote_key(senders[0].local_addr().unwrap())).unwrap(), Some(1));
    }
}
