//! Port allocation for dedicated transport sockets: the requested port, or the next free one of
//! the configured range, in turn (so a just-closed port is not reused at once).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use shardcast_dataplane::socket::{bind_udp, SocketOptions};

use crate::error::ApiError;

/// Binds transport sockets from a port range.
#[derive(Debug)]
pub(crate) struct Ports {
    /// Inclusive; `(0, _)`: let the kernel pick.
    range: (u16, u16),
    /// The next port to try.
    cursor: u16,
    options: SocketOptions,
}

impl Ports {
    pub(crate) fn new(range: (u16, u16), options: SocketOptions) -> Self {
        Self { range, cursor: range.0, options }
    }

    /// Binds `ip:port`, or with `None` the next free port of the range.
    pub(crate) fn bind(&mut self, ip: IpAddr, port: Option<u16>) -> Result<UdpSocket, ApiError> {
        if let Some(p) = port {
            return bind_udp(SocketAddr::new(ip, p), &self.options)
                .map(|(s, _)| s)
                .map_err(|e| ApiError::state(format!("cannot bind {ip}:{p}: {e}")));
        }
        let (lo, hi) = self.range;
        if lo == 0 {
            return bind_udp(SocketAddr::new(ip, 0), &self.options)
                .map(|(s, _)| s)
                .map_err(|e| ApiError::state(format!("cannot bind {ip}:0: {e}")));
        }
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let p = self.cursor;
            self.cursor = if p >= hi { lo } else { p + 1 };
            if let Ok((s, _)) = bind_udp(SocketAddr::new(ip, p), &self.options) {
                return Ok(s);
            }
        }
        Err(ApiError::state(format!("no free port in {lo}-{hi} on {ip}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SocketOptions {
        SocketOptions { reuse_port: false, recv_buffer: 1 << 16, send_buffer: 1 << 16 }
    }

    #[test]
    fn ports_are_taken_in_turn_and_busy_ones_skipped() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        // A free range of three: find one by binding ephemeral sockets until three in a row are free.
        let lo = (20_000u16..60_000)
            .step_by(7)
            .find(|p| (0..3).all(|i| UdpSocket::bind((ip, p + i)).is_ok()))
            .expect("a free range");
        let mut ports = Ports::new((lo, lo + 2), options());
        let a = ports.bind(ip, None).unwrap();
        assert_eq!(a.local_addr().unwrap().port(), lo);
        drop(a);
        // The cursor moved on: a just-closed port is not handed out again at once.
        let b = ports.bind(ip, None).unwrap();
        assert_eq!(b.local_addr().unwrap().port(), lo + 1);
        let c = ports.bind(ip, None).unwrap();
        assert_eq!(c.local_addr().unwrap().port(), lo + 2);
        // Wraps around to `lo` (free again), then finds the range full.
        let d = ports.bind(ip, None).unwrap();
        assert_eq!(d.local_addr().unwrap().port(), lo);
        let err = ports.bind(ip, None).unwrap_err();
        assert!(err.message.contains("no free port"), "{err}");
        // An explicit port that is taken is a clear error.
        assert!(ports.bind(ip, Some(lo + 1)).unwrap_err().message.contains("cannot bind"));
    }
}
