//! Socket options socket2 does not expose.

use std::io;
use std::os::fd::RawFd;

/// Sets SO_RCVBUFFORCE / SO_SNDBUFFORCE (root only: exceeds `net.core.rmem_max`).
pub fn set_buffer_forced(fd: RawFd, recv: bool, size: usize) -> io::Result<()> {
    let opt = if recv { libc::SO_RCVBUFFORCE } else { libc::SO_SNDBUFFORCE };
    set_int_option(fd, libc::SOL_SOCKET, opt, size.min(i32::MAX as usize) as libc::c_int)
}

/// `setsockopt(fd, level, opt, &value)` for an `int`-valued option.
pub(crate) fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its exact size is passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
