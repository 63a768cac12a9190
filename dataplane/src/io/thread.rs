//! Thread placement and process limits (the syscalls `control` needs but may not call itself:
//! `control` forbids `unsafe`).

use std::io;

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cpu index out of range"));
    }
    // SAFETY: `cpu` < CPU_SETSIZE was checked; `set` is a valid cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is valid for the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on (`sched_getaffinity`): the process's cpuset under
/// `taskset`, a container, a Kubernetes CPU manager or systemd's `CPUAffinity=`. Called from the
/// main thread before any pinning, it is the process's allowed set.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the kernel writes at most the size passed into `set`.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: every index tested is < CPU_SETSIZE and `set` is a valid, initialised cpu_set_t.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|c| unsafe { libc::CPU_ISSET(*c, &set) }).collect())
}

/// A thread's scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedPolicy {
    /// SCHED_OTHER, the kernel's fair scheduler (nice 0): what every thread gets by default.
    #[default]
    Other,
    /// SCHED_FIFO at this priority (1..=99): runs until it blocks, ahead of every SCHED_OTHER
    /// thread. Needs CAP_SYS_NICE (or an RLIMIT_RTPRIO at least this high).
    Fifo(u8),
}

/// Sets the calling thread's scheduling policy. EPERM means the process lacks CAP_SYS_NICE (and
/// RLIMIT_RTPRIO is below the priority); the error says so.
pub fn set_current_thread_policy(policy: SchedPolicy) -> io::Result<()> {
    let (kind, priority) = match policy {
        SchedPolicy::Other => (libc::SCHED_OTHER, 0),
        SchedPolicy::Fifo(p) => (libc::SCHED_FIFO, libc::c_int::from(p)),
    };
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param the kernel only reads.
    if unsafe { libc::sched_setscheduler(0, kind, &param) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{policy:?} needs CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE) or \
                 RLIMIT_RTPRIO >= {priority} (LimitRTPRIO=): {e}"
            ),
        ));
    }
    Err(e)
}

/// The calling thread's scheduling policy and priority, as `sched_getscheduler` reports them.
pub fn current_thread_policy() -> io::Result<SchedPolicy> {
    // SAFETY: pid 0 is the calling thread; no memory is passed.
    let kind = unsafe { libc::sched_getscheduler(0) };
    if kind < 0 {
        return Err(io::Error::last_os_error());
    }
    if kind != libc::SCHED_FIFO {
        return Ok(SchedPolicy::Other);
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param the kernel writes into.
    if unsafe { libc::sched_getparam(0, &mut param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SchedPolicy::Fifo(param.sched_priority.clamp(0, 99) as u8))
}

/// RLIMIT_NOFILE soft and hard limits (`u64::MAX` = unlimited).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit the kernel writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// RLIMIT_MEMLOCK soft and hard limits in bytes (`u64::MAX` = unlimited).
pub fn memlock_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit the kernel writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises RLIMIT_MEMLOCK's soft limit to at least `bytes` (up to the hard limit, or beyond as
/// root). Returns the soft limit in force afterwards.
pub fn raise_memlock(bytes: u64) -> io::Result<u64> {
    let (cur, max) = memlock_limit()?;
    if cur >= bytes {
        return Ok(cur);
    }
    let lim = libc::rlimit { rlim_cur: bytes, rlim_max: max.max(bytes) };
    // SAFETY: `lim` is a valid rlimit the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(bytes)
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit (the most an unprivileged process may
/// take; `u64::MAX` hard limits are capped at the kernel's `fs.nr_open`, which setrlimit
/// enforces). Returns the soft limit before and after. API connections and media sockets share
/// this one descriptor table, so the daemon raises it at start and sizes its connection cap by it.
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let (cur, max) = nofile_limit()?;
    let target = if max == libc::RLIM_INFINITY { nr_open().unwrap_or(cur).max(cur) } else { max };
    if cur >= target {
        return Ok((cur, cur));
    }
    let lim = libc::rlimit { rlim_cur: target, rlim_max: max };
    // SAFETY: `lim` is a valid rlimit the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cur, target))
}

/// The kernel's per-process ceiling on descriptors (`/proc/sys/fs/nr_open`).
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok()
}

/// Waits until some of `fds` is readable or `timeout` passes; returns the readable indexes'
/// count and marks them in `ready` (same length as `fds`).
pub fn poll_readable(
    fds: &[std::os::fd::RawFd],
    ready: &mut [bool],
    timeout: std::time::Duration,
) -> io::Result<usize> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds` is a live array of `pfds.len()` pollfd structs the kernel writes into.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) { Ok(0) } else { Err(e) };
    }
    for (r, p) in ready.iter_mut().zip(&pfds) {
        *r = p.revents & (libc::POLLIN | libc::POLLERR) != 0;
    }
    Ok(n as usize)
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Installs SIGTERM/SIGINT handlers that set a flag, for tools without an async runtime (the
/// floor relay, the load generator). Returns the flag.
pub fn stop_on_signals() -> &'static std::sync::atomic::AtomicBool {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
        unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
    }
    &STOP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_cpu_0_works_and_bad_cpu_is_refused() {
        std::thread::spawn(|| {
            pin_current_thread(0).unwrap();
            assert!(pin_current_thread(1 << 20).is_err());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn nofile_is_raised_to_the_hard_limit() {
        let (before, after) = raise_nofile().unwrap();
        let (cur, max) = nofile_limit().unwrap();
        assert!(after >= before && cur == after && cur <= max, "{before} {after} {cur} {max}");
        // Idempotent: a second call finds the limit already raised.
        assert_eq!(raise_nofile().unwrap(), (after, after));
    }

    #[test]
    fn memlock_is_readable() {
        let (cur, max) = memlock_limit().unwrap();
        assert!(cur <= max);
    }
    #[test]
    fn allowed_cpus_are_the_affinity_mask() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        std::thread::spawn(move || {
            pin_current_thread(cpus[0]).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![cpus[0]]);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn sched_other_is_always_allowed_and_read_back() {
        std::thread::spawn(|| {
            set_current_thread_policy(SchedPolicy::Other).unwrap();
            assert_eq!(current_thread_policy().unwrap(), SchedPolicy::Other);
        })
        .join()
        .unwrap();
        let (cur, max) = nofile_limit().unwrap();
        assert!(cur <= max && cur > 0);
    }
}
