//! Binding media sockets: SO_REUSEPORT for the shared port, large buffers, non-blocking.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Options for every media socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// Set SO_REUSEPORT (the shared media port: every core binds the same address).
    pub reuse_port: bool,
    /// Receive buffer to ask for (bytes).
    pub recv_buffer: usize,
    /// Send buffer to ask for (bytes).
    pub send_buffer: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        // ≥ 4 MiB: with the default 208 KiB the kernel-floor relay itself lost packets on this
        // machine kind after VM stalls (shared/reference/README.md, finding 4).
        Self { reuse_port: false, recv_buffer: 4 << 20, send_buffer: 4 << 20 }
    }
}

/// Buffer sizes the kernel granted (as it reports them: twice the requested value when granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferReport {
    pub recv: usize,
    pub send: usize,
    /// True when SO_RCVBUFFORCE succeeded (running as root).
    pub forced: bool,
}

impl BufferReport {
    /// True when the receive buffer is smaller than asked (the caller should warn).
    pub fn recv_below(&self, asked: usize) -> bool {
        self.recv < asked
    }
}

/// Binds a non-blocking UDP socket with the requested options.
pub fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<(UdpSocket, BufferReport)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    let forced = crate::io::set_buffer_forced(fd, true, opts.recv_buffer).is_ok();
    if !forced {
        socket.set_recv_buffer_size(opts.recv_buffer)?;
    }
    if crate::io::set_buffer_forced(fd, false, opts.send_buffer).is_err() {
        socket.set_send_buffer_size(opts.send_buffer)?;
    }
    socket.bind(&addr.into())?;
    let report = BufferReport { recv: socket.recv_buffer_size()?, send: socket.send_buffer_size()?, forced };
    Ok((socket.into(), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_share_a_port_with_reuse_port() {
        let opts = SocketOptions { reuse_port: true, ..Default::default() };
        let (a, report) = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let (b, _) = bind_udp(a.local_addr().unwrap(), &opts).unwrap();
        assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
        assert!(report.recv > 0 && report.send > 0);
    }

    #[test]
    fn without_reuse_port_the_second_bind_fails() {
        let opts = SocketOptions::default();
        let (a, _) = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        assert!(bind_udp(a.local_addr().unwrap(), &opts).is_err());
    }

    #[test]
    fn root_gets_the_forced_buffer() {
        let (_, report) = bind_udp("127.0.0.1:0".parse().unwrap(), &SocketOptions::default()).unwrap();
        if report.forced {
            // The kernel doubles the value for bookkeeping overhead.
            assert!(report.recv >= 4 << 20, "{report:?}");
        }
    }
}
