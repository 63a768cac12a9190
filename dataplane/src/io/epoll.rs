//! A level-triggered epoll set: the core's one readiness wait (sockets + doorbell).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// An epoll instance; closed on drop.
#[derive(Debug)]
pub struct Epoll {
    fd: RawFd,
    events: Box<[libc::epoll_event]>,
    ready: usize,
}

impl Epoll {
    /// A new set reporting up to `max_events` ready descriptors per wait.
    pub fn new(max_events: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; max_events.max(1)].into_boxed_slice();
        Ok(Epoll { fd, events, ready: 0 })
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `ev` is a live epoll_event; `self.fd` is our epoll descriptor.
        let rc = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Stops watching `fd` (before it is closed or handed to another core).
    pub fn remove(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; a descriptor that is not in the set yields ENOENT, ignored.
        unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits until something is ready or `timeout` passes; returns how many are ready.
    pub fn wait(&mut self, timeout: Duration) -> usize {
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `events` is a live array of `events.len()` entries the kernel writes into.
        let n = unsafe {
            libc::epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as libc::c_int, ms)
        };
        self.ready = n.max(0) as usize;
        self.ready
    }

    /// Token of ready entry `i` of the last wait.
    pub fn token(&self, i: usize) -> Option<u64> {
        (i < self.ready).then(|| self.events[i].u64)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: `self.fd` is our epoll descriptor, closed exactly once here.
        unsafe { libc::close(self.fd) };
    }
}
