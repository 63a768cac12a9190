//! The io_uring alternative to `mmsg`, kept to measure the two against each other on this
//! machine (`shardcast-floor --io uring`, `benches/compare.sh io`): multishot `recvmsg` into a
//! registered ring of provided buffers, one `sendmsg` SQE per output whose iovec points into the
//! receive buffer (no copy), one `io_uring_enter` per wake-up that both submits the sends and
//! waits for the next completions. Each buffer goes back to the kernel once every send that
//! points into it has completed.
//!
//! It is a relay (every datagram of socket `i` goes to `routes[i]`), which is what the floor
//! needs; the data plane's run loop uses `mmsg` (ARCHITECTURE.md says why, with the numbers).

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::{BufRingEntry, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, types, IoUring};

use super::mmsg::{encode, zeroed_storage};

const RECV: u64 = 1 << 63;
const CANCEL: u64 = u64::MAX;
const BUF_GROUP: u16 = 7;

/// What one [`UringRelay::poll`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UringCounts {
    pub received: u64,
    pub sent: u64,
    /// Sends that failed, outputs with no free send slot, datagrams that could not be parsed.
    pub errors: u64,
    /// Receives that found no free buffer (every one waits for its sends): the datagram stays
    /// queued in the socket and the receive is armed again — a stall, not a loss.
    pub no_buffer: u64,
}

struct SendSlot {
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
    buf: u16,
}

/// A relay over io_uring; see the module documentation.
pub struct UringRelay {
    // `Drop` cancels and reaps what is in flight and unregisters the buffer ring before any of
    // the memory below is freed; the ring itself closes after that.
    ring: IoUring,
    fds: Vec<RawFd>,
    routes: Vec<Vec<(libc::sockaddr_storage, libc::socklen_t)>>,
    /// The provided-buffer ring (page-aligned, `entries` slots) and the buffers behind it.
    buf_ring: *mut BufRingEntry,
    buf_ring_bytes: usize,
    entries: u16,
    tail: u16,
    buffers: Box<[u8]>,
    slot: usize,
    /// Sends in flight per buffer.
    refs: Box<[u16]>,
    recv_msgs: Box<[libc::msghdr]>,
    sends: Box<[SendSlot]>,
    free: Vec<u32>,
    in_flight: usize,
    closing: bool,
    cqes: Vec<(u64, i32, u32)>,
}

impl std::fmt::Debug for UringRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringRelay").field("fds", &self.fds).field("entries", &self.entries).finish()
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut out = zeroed_storage();
    let len = encode(addr, &mut out);
    (out, len)
}

impl UringRelay {
    /// A relay receiving on `fds` (bound, non-blocking UDP sockets) and sending every datagram of
    /// `fds[i]` to each of `routes[i]`, from `fds[i]`. `buffers` (a power of two ≤ 32768) receive
    /// buffers of `slot` bytes; at most `max_sends` sends in flight.
    pub fn new(
        fds: &[RawFd],
        routes: &[Vec<SocketAddr>],
        buffers: u16,
        slot: usize,
        max_sends: usize,
    ) -> io::Result<UringRelay> {
        if !buffers.is_power_of_two() || fds.len() != routes.len() || fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "uring relay: bad sizes"));
        }
        let sq = (max_sends + fds.len()).next_power_of_two().min(32768) as u32;
        let ring = IoUring::builder()
            .setup_cqsize((sq * 4).min(65536))
            .setup_coop_taskrun()
            .setup_single_issuer()
            .build(sq)?;
        let page = 4096usize;
        let buf_ring_bytes =
            (usize::from(buffers) * std::mem::size_of::<BufRingEntry>()).div_ceil(page) * page;
        // SAFETY: an anonymous private mapping; the result is checked before use.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                buf_ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let buf_ring = mem.cast::<BufRingEntry>();
        let mut relay = UringRelay {
            ring,
            fds: fds.to_vec(),
            routes: routes.iter().map(|r| r.iter().map(|a| sockaddr(*a)).collect()).collect(),
            buf_ring,
            buf_ring_bytes,
            entries: buffers,
            tail: 0,
            buffers: vec![0u8; usize::from(buffers) * slot].into_boxed_slice(),
            slot,
            refs: vec![0u16; usize::from(buffers)].into_boxed_slice(),
            // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
            recv_msgs: (0..fds.len()).map(|_| unsafe { std::mem::zeroed::<libc::msghdr>() }).collect(),
            sends: (0..max_sends)
                .map(|_| SendSlot {
                    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
                    msg: unsafe { std::mem::zeroed() },
                    iov: libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
                    addr: zeroed_storage(),
                    buf: 0,
                })
                .collect(),
            free: (0..max_sends as u32).rev().collect(),
            in_flight: 0,
            closing: false,
            cqes: Vec::with_capacity(sq as usize * 4),
        };
        // SAFETY: `buf_ring` is a live, page-aligned mapping of `buffers` entries that `relay`
        // owns and unmaps only after the ring is gone (Drop).
        unsafe {
            relay.ring.submitter().register_buf_ring_with_flags(buf_ring as u64, buffers, BUF_GROUP, 0)?;
        }
        for bid in 0..buffers {
            relay.give_back(bid);
        }
        relay.publish_tail();
        for i in 0..fds.len() {
            relay.arm(i)?;
        }
        relay.ring.submit()?;
        Ok(relay)
    }

    fn give_back(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: `index` < `entries`, inside the mapping; the kernel reads entries only up to
        // the published tail, and this one is past it until `publish_tail`.
        let entry = unsafe { &mut *self.buf_ring.add(index) };
        let start = usize::from(bid) * self.slot;
        entry.set_addr(self.buffers[start..].as_ptr() as u64);
        entry.set_len(self.slot as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish_tail(&mut self) {
        // SAFETY: the tail field lives inside the first entry of our mapping; it is written with
        // release ordering so the kernel sees the entries before the new tail.
        unsafe {
            let tail = BufRingEntry::tail(self.buf_ring).cast_mut();
            (*(tail as *const std::sync::atomic::AtomicU16))
                .store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    fn arm(&mut self, i: usize) -> io::Result<()> {
        let entry = opcode::RecvMsgMulti::new(types::Fd(self.fds[i]), &self.recv_msgs[i], BUF_GROUP)
            .build()
            .user_data(RECV | i as u64);
        self.push(&entry)
    }

    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every pointer in our SQEs (msghdrs, iovecs, addresses, buffers) points into
            // boxed slices owned by `self`, which outlive the ring (Drop order), and a send slot
            // or buffer is reused only after its completion was reaped.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Submits what is queued and waits up to `timeout` for completions; handles them all.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<UringCounts> {
        let ts = Timespec::new().sec(timeout.as_secs()).nsec(timeout.subsec_nanos());
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        let mut counts = UringCounts::default();
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        for &(user_data, result, flags) in &cqes {
            if user_data == CANCEL {
                continue;
            }
            if user_data & RECV != 0 {
                let i = (user_data & !RECV) as usize;
                if let Some(bid) = cqueue::buffer_select(flags) {
                    if result >= 0 {
                        counts.received += 1;
                        self.forward(i, bid, result as usize, &mut counts)?;
                    }
                    if self.refs[usize::from(bid)] == 0 {
                        self.give_back(bid);
                    }
                } else if result == -libc::ENOBUFS {
                    counts.no_buffer += 1;
                } else if result < 0 && result != -libc::ECANCELED {
                    counts.errors += 1;
                }
                if !cqueue::more(flags) && !self.closing {
                    self.arm(i)?;
                }
            } else {
                let s = user_data as usize;
                if result >= 0 {
                    counts.sent += 1;
                } else {
                    counts.errors += 1;
                }
                let bid = self.sends[s].buf;
                self.refs[usize::from(bid)] -= 1;
                if self.refs[usize::from(bid)] == 0 {
                    self.give_back(bid);
                }
                self.free.push(s as u32);
                self.in_flight -= 1;
            }
        }
        self.cqes = cqes;
        self.publish_tail();
        Ok(counts)
    }

    fn forward(&mut self, i: usize, bid: u16, len: usize, counts: &mut UringCounts) -> io::Result<()> {
        let start = usize::from(bid) * self.slot;
        let (offset, plen) = {
            let buffer = &self.buffers[start..start + len.min(self.slot)];
            let out = match RecvMsgOut::parse(buffer, &self.recv_msgs[i]) {
                Ok(out) if !out.is_payload_truncated() => out,
                _ => {
                    counts.errors += 1;
                    return Ok(());
                }
            };
            let payload = out.payload_data();
            (payload.as_ptr() as usize - buffer.as_ptr() as usize, payload.len())
        };
        for r in 0..self.routes[i].len() {
            let Some(s) = self.free.pop() else {
                counts.errors += 1;
                continue;
            };
            let (addr, addr_len) = self.routes[i][r];
            let base = self.buffers[start + offset..].as_ptr();
            let slot = &mut self.sends[s as usize];
            slot.addr = addr;
            slot.iov = libc::iovec { iov_base: base as *mut libc::c_void, iov_len: plen };
            slot.msg.msg_name = (&mut slot.addr as *mut libc::sockaddr_storage).cast();
            slot.msg.msg_namelen = addr_len;
            slot.msg.msg_iov = &mut slot.iov;
            slot.msg.msg_iovlen = 1;
            slot.buf = bid;
            let entry =
                opcode::SendMsg::new(types::Fd(self.fds[i]), &slot.msg).build().user_data(u64::from(s));
            self.refs[usize::from(bid)] += 1;
            self.in_flight += 1;
            self.push(&entry)?;
        }
        Ok(())
    }
}

impl Drop for UringRelay {
    fn drop(&mut self) {
        // Cancel everything and reap until nothing is in flight (bounded); then the memory the
        // kernel was pointed at can go.
        self.closing = true;
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(CANCEL);
        let _ = self.push(&cancel);
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while self.in_flight > 0 && std::time::Instant::now() < deadline {
            if self.poll(Duration::from_millis(10)).is_err() {
                break;
            }
        }
        if self.in_flight > 0 {
            // Sends still referencing our memory: leak it rather than free it under the kernel.
            std::mem::forget(std::mem::take(&mut self.buffers));
            std::mem::forget(std::mem::take(&mut self.sends));
            return;
        }
        if self.ring.submitter().unregister_buf_ring(BUF_GROUP).is_err() {
            return; // the kernel may still hold the buffer ring: leave the mapping alone
        }
        // SAFETY: the mapping was created in `new` with this size, is unmapped once, and the
        // kernel let go of it above (unregistered, nothing in flight).
        unsafe { libc::munmap(self.buf_ring.cast(), self.buf_ring_bytes) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    /// 3,000 datagrams through a relay with 8 buffers and 16 send slots: buffers and slots are
    /// recycled thousands of times; every receiver gets every datagram once, byte-identical.
    #[test]
    fn relays_every_datagram_to_every_destination_recycling_buffers() {
        let ingress = UdpSocket::bind("127.0.0.1:0").unwrap();
        ingress.set_nonblocking(true).unwrap();
        let receivers: Vec<UdpSocket> = (0..2).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let dests: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
        let mut relay = UringRelay::new(&[ingress.as_raw_fd()], &[dests], 8, 2048, 16)
            .expect("io_uring with provided buffer rings (Linux ≥ 6.0)");
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = ingress.local_addr().unwrap();
        let total = 3000u32;
        let mut sent = 0u32;
        let mut relayed = UringCounts::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got: Vec<Vec<u32>> = vec![Vec::new(); receivers.len()];
        for r in &receivers {
            r.set_nonblocking(true).unwrap();
        }
        let mut buf = [0u8; 2048];
        while got.iter().any(|g| g.len() < total as usize) {
            assert!(
                Instant::now() < deadline,
                "relayed {relayed:?}, got {:?}",
                got.iter().map(Vec::len).collect::<Vec<_>>()
            );
            // Send a few at a time, so the relay's 8 buffers suffice (no ENOBUFS).
            for _ in 0..4 {
                if sent < total {
                    let mut p = sent.to_be_bytes().to_vec();
                    p.extend_from_slice(&[0xab; 300]);
                    sender.send_to(&p, target).unwrap();
                    sent += 1;
                }
            }
            let c = relay.poll(Duration::from_millis(5)).unwrap();
            relayed.received += c.received;
            relayed.sent += c.sent;
            relayed.errors += c.errors;
            relayed.no_buffer += c.no_buffer;
            for (r, g) in receivers.iter().zip(got.iter_mut()) {
                while let Ok(n) = r.recv(&mut buf) {
                    assert_eq!(n, 304);
                    assert!(buf[4..n].iter().all(|b| *b == 0xab));
                    g.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
                }
            }
        }
        for g in &got {
            assert_eq!(*g, (0..total).collect::<Vec<_>>(), "once each, in order");
        }
        assert_eq!(relayed.errors, 0);
        drop(relay);
    }
}
