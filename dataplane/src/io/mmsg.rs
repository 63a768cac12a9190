//! `recvmmsg` / `sendmmsg` batches over raw descriptors, never blocking (MSG_DONTWAIT).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Decodes a kernel socket address; `None` for families other than IPv4/IPv6.
fn decode(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; sockaddr_storage is
            // larger and suitably aligned for every sockaddr type.
            let a = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Encodes `addr` into `out`, returning the length to pass to the kernel.
pub(super) fn encode(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger and suitably aligned for sockaddr_in.
            let s = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger and suitably aligned for sockaddr_in6.
            let s = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            s.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

pub(super) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    unsafe { std::mem::zeroed() }
}

fn zeroed_hdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data (null pointers, zero lengths); valid when zeroed.
    unsafe { std::mem::zeroed() }
}

/// A receive batch: `slots` buffers of `slot_size` bytes, allocated once.
///
/// The mmsghdr/iovec arrays point into the boxed buffers, whose heap addresses never change, so
/// the batch can be moved freely. It is not `Send` (raw pointers) and lives on one core.
pub struct RecvBatch {
    slot_size: usize,
    buffers: Box<[u8]>,
    iovecs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_storage]>,
    hdrs: Box<[libc::mmsghdr]>,
    sources: Box<[SocketAddr]>,
    lens: Box<[usize]>,
    /// Per slot: the kernel cut the datagram to the slot (`MSG_TRUNC` in its `msg_flags`).
    truncated: Box<[bool]>,
    len: usize,
    /// Per-slot control buffers for SCM_TIMESTAMPNS (empty unless `enable_timestamps`).
    control: Box<[[u64; CONTROL_WORDS]]>,
    stamps: Box<[Option<std::time::Duration>]>,
}

/// Room for one `cmsghdr` + `timespec`, 8-byte aligned.
const CONTROL_WORDS: usize = 8;

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("slots", &self.hdrs.len()).field("len", &self.len).finish()
    }
}

impl RecvBatch {
    /// Allocates `slots` receive buffers of `slot_size` bytes each (the only allocation).
    pub fn new(slots: usize, slot_size: usize) -> Self {
        let slots = slots.clamp(1, 1024);
        let mut buffers = vec![0u8; slots * slot_size].into_boxed_slice();
        let mut addrs = vec![zeroed_storage(); slots].into_boxed_slice();
        let base = buffers.as_mut_ptr();
        let iovecs: Box<[libc::iovec]> = (0..slots)
            .map(|i| libc::iovec {
                // SAFETY: i * slot_size < slots * slot_size, inside the allocation.
                iov_base: unsafe { base.add(i * slot_size) }.cast(),
                iov_len: slot_size,
            })
            .collect();
        let mut hdrs = vec![zeroed_hdr(); slots].into_boxed_slice();
        for (i, h) in hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_iov = (&iovecs[i] as *const libc::iovec).cast_mut();
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
        }
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            slot_size,
            buffers,
            iovecs,
            addrs,
            hdrs,
            sources: vec![unspecified; slots].into_boxed_slice(),
            lens: vec![0; slots].into_boxed_slice(),
            truncated: vec![false; slots].into_boxed_slice(),
            len: 0,
            control: Box::new([]),
            stamps: vec![None; slots].into_boxed_slice(),
        }
    }

    /// Asks the kernel for a receive timestamp per datagram (SO_TIMESTAMPNS) on `fd`, and
    /// makes room for them; see [`RecvBatch::timestamp`].
    pub fn enable_timestamps(&mut self, fd: RawFd) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a live c_int of the size passed; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if self.control.is_empty() {
            self.control = vec![[0u64; CONTROL_WORDS]; self.hdrs.len()].into_boxed_slice();
            for (h, c) in self.hdrs.iter_mut().zip(self.control.iter_mut()) {
                h.msg_hdr.msg_control = c.as_mut_ptr().cast();
            }
        }
        Ok(())
    }

    /// The kernel's receive time of datagram `i` (since the Unix epoch), when enabled.
    pub fn timestamp(&self, i: usize) -> Option<std::time::Duration> {
        self.stamps.get(i).copied().flatten()
    }

    /// Receives up to `slots` datagrams without blocking; `Ok(0)` when none is queued.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        self.recv_append(fd, self.hdrs.len())
    }

    /// Receives up to `max` more datagrams from `fd` into the free slots after those already
    /// held (indexes `len()..`), so one batch can gather several sockets' datagrams before its
    /// outputs are sent. Returns how many arrived (0: nothing queued, or no free slot).
    pub fn recv_append(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let start = self.len;
        let count = max.min(self.hdrs.len() - start);
        if count == 0 {
            return Ok(0);
        }
        let control_len = if self.control.is_empty() { 0 } else { CONTROL_WORDS * 8 };
        for h in self.hdrs[start..start + count].iter_mut() {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_hdr.msg_controllen = control_len as _;
            h.msg_len = 0;
        }
        // SAFETY: headers `start..start + count` exist and each points at a live iovec (into
        // `buffers`) and a live sockaddr_storage of the length given, all owned by `self` and not
        // otherwise borrowed during the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs[start..].as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        for i in start..start + n {
            self.lens[i] = (self.hdrs[i].msg_len as usize).min(self.slot_size);
            // Without MSG_TRUNC in the call's flags `msg_len` is the cut length; the message's
            // own flags say whether the datagram was longer than the slot.
            self.truncated[i] = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.sources[i] = decode(&self.addrs[i]).unwrap_or(unspecified);
            self.stamps[i] = if control_len > 0 { read_timestamp(&self.hdrs[i].msg_hdr) } else { None };
        }
        self.len = start + n;
        let _ = &self.iovecs;
        Ok(n)
    }

    /// Forgets the datagrams held (their slots are free again).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Slots not holding a datagram.
    pub fn free_slots(&self) -> usize {
        self.hdrs.len() - self.len
    }

    /// Datagrams held since the last `recv`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the last `recv` got nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when datagram `i` was larger than a slot and the kernel cut it (`MSG_TRUNC`):
    /// `get(i)` holds only its first `slot_size` bytes, so it must not be forwarded.
    pub fn is_truncated(&self, i: usize) -> bool {
        i < self.len && self.truncated[i]
    }

    /// Size of one receive slot: the largest datagram received whole.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Datagram `i` and its source. Out-of-range `i` yields an empty slice (a truncated one
    /// yields its first `slot_size` bytes: see [`RecvBatch::is_truncated`]).
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        if i >= self.len {
            return (&[], SocketAddr::from(([0, 0, 0, 0], 0)));
        }
        let start = i * self.slot_size;
        (&self.buffers[start..start + self.lens[i]], self.sources[i])
    }
}

/// Finds SCM_TIMESTAMPNS in a received message's control data.
fn read_timestamp(msg: &libc::msghdr) -> Option<std::time::Duration> {
    // SAFETY: `msg` was filled by recvmmsg with `msg_control` pointing at our aligned buffer and
    // `msg_controllen` set by the kernel to the bytes it wrote; CMSG_FIRSTHDR/NXTHDR stay within
    // that length and return null at the end.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                return Some(std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// What a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendResult {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Their bytes.
    pub sent_bytes: usize,
    /// Datagrams refused individually (ECONNREFUSED, EMSGSIZE, ENETUNREACH, …): skipped.
    pub failed: usize,
    /// Datagrams dropped because the socket buffer was full (EAGAIN/ENOBUFS): never blocks.
    pub would_block: usize,
    /// The last errno seen.
    pub last_error: Option<i32>,
}

/// Largest header a send slot copies.
pub const SEND_HEADER_MAX: usize = 64;

/// A send batch: up to `capacity` datagrams of (copied header, borrowed payload).
///
/// Payload pointers are only stored inside a [`SendScope`], which borrows the payloads for its
/// lifetime and forgets them when dropped, so no dangling pointer can be sent.
pub struct SendBatch {
    headers: Box<[[u8; SEND_HEADER_MAX]]>,
    iovecs: Box<[[libc::iovec; 2]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    hdrs: Box<[libc::mmsghdr]>,
    len: usize,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").field("capacity", &self.hdrs.len()).finish()
    }
}

impl SendBatch {
    /// Allocates room for `capacity` datagrams (at most 1024, the kernel's UIO_MAXIOV).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, 1024);
        let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        let mut s = Self {
            headers: vec![[0u8; SEND_HEADER_MAX]; capacity].into_boxed_slice(),
            iovecs: vec![[empty, empty]; capacity].into_boxed_slice(),
            addrs: vec![zeroed_storage(); capacity].into_boxed_slice(),
            hdrs: vec![zeroed_hdr(); capacity].into_boxed_slice(),
            len: 0,
        };
        for i in 0..capacity {
            s.hdrs[i].msg_hdr.msg_iov = s.iovecs[i].as_mut_ptr();
            s.hdrs[i].msg_hdr.msg_iovlen = 2;
            s.hdrs[i].msg_hdr.msg_name = (&mut s.addrs[i] as *mut libc::sockaddr_storage).cast();
            s.iovecs[i][0].iov_base = s.headers[i].as_mut_ptr().cast();
        }
        s
    }

    /// Opens a scope in which payloads living at least `'p` can be queued.
    pub fn scope<'p>(&mut self) -> SendScope<'_, 'p> {
        self.len = 0;
        SendScope { batch: self, _payloads: std::marker::PhantomData }
    }

    /// Capacity in datagrams.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }
}

/// A [`SendBatch`] being filled with payloads borrowed for `'p`.
pub struct SendScope<'b, 'p> {
    batch: &'b mut SendBatch,
    _payloads: std::marker::PhantomData<&'p [u8]>,
}

impl std::fmt::Debug for SendScope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendScope").field("len", &self.batch.len).finish()
    }
}

impl<'p> SendScope<'_, 'p> {
    /// Queues `header` (copied, ≤ 64 bytes) + `payload` (referenced) to `dest`. `false` when full
    /// or the header is too long.
    pub fn push(&mut self, dest: SocketAddr, header: &[u8], payload: &'p [u8]) -> bool {
        let b = &mut *self.batch;
        let i = b.len;
        if i >= b.hdrs.len() || header.len() > SEND_HEADER_MAX {
            return false;
        }
        b.headers[i][..header.len()].copy_from_slice(header);
        b.iovecs[i][0].iov_len = header.len();
        b.iovecs[i][1] = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
        b.hdrs[i].msg_hdr.msg_namelen = encode(dest, &mut b.addrs[i]);
        b.hdrs[i].msg_len = 0;
        b.len = i + 1;
        true
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.batch.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.batch.len == 0
    }

    /// Sends everything queued on `fd` and empties the batch. A datagram the kernel refuses is
    /// skipped and counted; a full socket buffer drops the rest, counted; never blocks.
    pub fn flush(&mut self, fd: RawFd) -> SendResult {
        let b = &mut *self.batch;
        let mut r = SendResult::default();
        let mut off = 0usize;
        while off < b.len {
            // SAFETY: headers `off..len` point at iovecs holding a header inside `b.headers` and a
            // payload borrowed for `'p` (alive for this scope), and at encoded addresses in
            // `b.addrs`; all owned or borrowed by `self` for the duration of the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    b.hdrs.as_mut_ptr().add(off),
                    (b.len - off) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                for h in &b.hdrs[off..off + n as usize] {
                    r.sent_bytes += h.msg_len as usize;
                }
                r.sent += n as usize;
                off += n as usize;
                continue;
            }
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            r.last_error = Some(errno);
            match errno {
                libc::EINTR => {}
                libc::EAGAIN | libc::ENOBUFS => {
                    r.would_block += b.len - off;
                    break;
                }
                _ => {
                    // The first remaining datagram was refused: skip only that one.
                    r.failed += 1;
                    off += 1;
                }
            }
        }
        b.len = 0;
        r
    }
}

impl Drop for SendScope<'_, '_> {
    fn drop(&mut self) {
        // Forget borrowed payload pointers: nothing queued outlives the scope.
        self.batch.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn bind() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    fn recv_all(batch: &mut RecvBatch, sock: &UdpSocket, want: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            let n = batch.recv(sock.as_raw_fd()).unwrap();
            for i in 0..n {
                let (d, a) = batch.get(i);
                got.push((d.to_vec(), a));
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        got
    }

    #[test]
    fn batch_round_trip_keeps_sources_and_bytes() {
        let (a, b) = (bind(), bind());
        let mut send = SendBatch::new(64);
        let payloads: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        {
            let mut scope = send.scope();
            for (i, p) in payloads.iter().enumerate() {
                assert!(scope.push(b.local_addr().unwrap(), &[0xAB, i as u8], p));
            }
            let r = scope.flush(a.as_raw_fd());
            assert_eq!(r.sent, 64);
            assert_eq!(r.failed + r.would_block, 0);
        }
        let mut recv = RecvBatch::new(16, 2048);
        let got = recv_all(&mut recv, &b, 64);
        assert_eq!(got.len(), 64);
        for (i, (d, src)) in got.iter().enumerate() {
            assert_eq!(*src, a.local_addr().unwrap());
            assert_eq!(&d[..2], &[0xAB, i as u8]);
            assert_eq!(&d[2..], &payloads[i][..]);
        }
    }

    /// Two sockets' datagrams gathered in one batch: each keeps its slot, bytes and source until
    /// `clear`; a full batch takes no more.
    #[test]
    fn recv_append_gathers_several_sockets_until_full() {
        let (a, b, c) = (bind(), bind(), bind());
        for i in 0..3u8 {
            a.send_to(&[1, i], b.local_addr().unwrap()).unwrap();
            a.send_to(&[2, i, i], c.local_addr().unwrap()).unwrap();
        }
        let mut recv = RecvBatch::new(5, 2048);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut from_b = 0;
        while from_b < 3 && std::time::Instant::now() < deadline {
            from_b += recv.recv_append(b.as_raw_fd(), 64).unwrap();
        }
        assert_eq!(from_b, 3);
        let mut from_c = 0;
        while from_c < 2 && std::time::Instant::now() < deadline {
            from_c += recv.recv_append(c.as_raw_fd(), 64).unwrap();
        }
        assert_eq!((from_c, recv.len(), recv.free_slots()), (2, 5, 0), "capped at the free slots");
        assert_eq!(recv.recv_append(c.as_raw_fd(), 64).unwrap(), 0, "full: nothing more");
        for i in 0..3 {
            assert_eq!(recv.get(i), (&[1, i as u8][..], a.local_addr().unwrap()));
        }
        for i in 0..2 {
            assert_eq!(recv.get(3 + i).0, &[2, i as u8, i as u8][..]);
        }
        recv.clear();
        assert_eq!((recv.len(), recv.free_slots()), (0, 5));
        let got = recv_all(&mut recv, &c, 1);
        assert_eq!(got[0].0, vec![2, 2, 2], "the third datagram waited in the socket");
    }

    /// A datagram longer than the slot is flagged (the kernel's MSG_TRUNC), one that fills the
    /// slot exactly is not, and the flag belongs to its slot only.
    #[test]
    fn datagram_larger_than_the_slot_is_flagged_truncated() {
        let (a, b) = (bind(), bind());
        let to = b.local_addr().unwrap();
        a.send_to(&[7u8; 100], to).unwrap();
        a.send_to(&[8u8; 3000], to).unwrap();
        a.send_to(&[9u8; 2048], to).unwrap();
        let mut recv = RecvBatch::new(8, 2048);
        assert_eq!(recv.slot_size(), 2048);
        let deadline = Instant::now() + Duration::from_secs(5);
        while recv.len() < 3 && Instant::now() < deadline {
            recv.recv_append(b.as_raw_fd(), 8).unwrap();
        }
        assert_eq!(recv.len(), 3);
        let seen: Vec<(usize, bool)> = (0..3).map(|i| (recv.get(i).0.len(), recv.is_truncated(i))).collect();
        assert_eq!(seen, vec![(100, false), (2048, true), (2048, false)]);
        assert!(!recv.is_truncated(3), "no datagram there");
        // The flag is reset when the slot is reused.
        recv.clear();
        a.send_to(&[1u8; 10], to).unwrap();
        let got = recv_all(&mut recv, &b, 1);
        assert_eq!(got.len(), 1);
        assert!(!recv.is_truncated(0));
    }

    #[test]
    fn kernel_receive_timestamps_when_enabled() {
        let (a, b) = (bind(), bind());
        let mut recv = RecvBatch::new(4, 2048);
        recv.enable_timestamps(b.as_raw_fd()).unwrap();
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        let got = recv_all(&mut recv, &b, 1);
        assert_eq!(got.len(), 1);
        let ts = recv.timestamp(0).expect("a kernel timestamp");
        assert!(
            ts >= before - Duration::from_millis(1) && ts < before + Duration::from_secs(5),
            "{ts:?} vs {before:?}"
        );
    }

    #[test]
    fn empty_socket_returns_zero_without_blocking() {
        let s = bind();
        let mut recv = RecvBatch::new(8, 2048);
        assert_eq!(recv.recv(s.as_raw_fd()).unwrap(), 0);
        assert!(recv.is_empty());
        assert_eq!(recv.get(0).0.len(), 0);
    }

    #[test]
    fn full_batch_refuses_and_oversized_header_refused() {
        let s = bind();
        let mut send = SendBatch::new(2);
        let mut scope = send.scope();
        let d = s.local_addr().unwrap();
        assert!(scope.push(d, &[1], b"x"));
        assert!(scope.push(d, &[2], b"y"));
        assert!(!scope.push(d, &[3], b"z"));
        assert!(!SendBatch::new(1).scope().push(d, &[0; 65], b""));
    }

    #[test]
    fn one_refused_datagram_does_not_stop_the_others() {
        let (a, b) = (bind(), bind());
        let big = vec![0u8; 70_000];
        let mut send = SendBatch::new(8);
        let mut scope = send.scope();
        assert!(scope.push(b.local_addr().unwrap(), &[1], b"first"));
        // EMSGSIZE: larger than any UDP datagram.
        assert!(scope.push(b.local_addr().unwrap(), &[2], &big));
        assert!(scope.push(b.local_addr().unwrap(), &[3], b"third"));
        let r = scope.flush(a.as_raw_fd());
        assert_eq!((r.sent, r.failed), (2, 1));
        assert_eq!(r.last_error, Some(libc::EMSGSIZE));
        let mut recv = RecvBatch::new(8, 2048);
        let got = recv_all(&mut recv, &b, 2);
        assert_eq!(got.iter().map(|g| g.0[0]).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn ipv6_addresses_round_trip() {
        let Ok(a) = UdpSocket::bind("[::1]:0") else { return };
        let b = UdpSocket::bind("[::1]:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let mut send = SendBatch::new(1);
        let mut scope = send.scope();
        scope.push(b.local_addr().unwrap(), &[9], b"v6");
        assert_eq!(scope.flush(a.as_raw_fd()).sent, 1);
        let mut recv = RecvBatch::new(1, 2048);
        let got = recv_all(&mut recv, &b, 1);
        assert_eq!(got[0].1, a.local_addr().unwrap());
    }
}
