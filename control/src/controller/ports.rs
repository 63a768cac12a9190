//! Port allocation for dedicated transport sockets: the requested port, or the next free one of
//! the configured range, in turn (so a just-closed port is not reused at once). What a caller may
//! ask for is restricted: `listen_ip` one of the allowed addresses, an explicit `port` inside
//! `media.port_range`, never a privileged port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

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
    /// Addresses a transport may listen on.
    allowed: Vec<IpAddr>,
}

/// The addresses a transport may listen on: `configured`, or when empty the shared port's IP
/// and loopback.
pub(crate) fn allowed_listen_ips(configured: &[IpAddr], shared: IpAddr) -> Vec<IpAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut v = vec![shared, IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    v.dedup();
    v
}

impl Ports {
    pub(crate) fn new(range: (u16, u16), options: SocketOptions, allowed: Vec<IpAddr>) -> Self {
        Self { range, cursor: range.0, options, allowed }
    }

    /// Refuses what a caller may not bind: an address not allowed, a port outside the range
    /// (or any explicit port when the range is ephemeral), a privileged port.
    fn check(&self, ip: IpAddr, port: Option<u16>) -> Result<(), ApiError> {
        if !self.allowed.contains(&ip) {
            return Err(ApiError::argument(format!(
                "listen_ip {ip} is not allowed: use one of {:?} (media.allowed_listen_ips)",
                self.allowed
            )));
        }
        let Some(p) = port else { return Ok(()) };
        let (lo, hi) = self.range;
        if p < 1024 {
            return Err(ApiError::argument(format!("port {p} is privileged (< 1024): leave port null")));
        }
        if lo == 0 {
            return Err(ApiError::argument(format!(
                "port {p}: media.port_range is (0, 0) (ephemeral ports): leave port null"
            )));
        }
        if !(lo..=hi).contains(&p) {
            return Err(ApiError::argument(format!(
                "port {p} is outside media.port_range {lo}-{hi}: pick one inside or leave port null"
            )));
        }
        Ok(())
    }

    /// Binds `ip:port`, or with `None` the next free port of the range.
    pub(crate) fn bind(&mut self, ip: IpAddr, port: Option<u16>) -> Result<UdpSocket, ApiError> {
        self.check(ip, port)?;
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
        let mut ports = Ports::new((lo, lo + 2), options(), allowed_listen_ips(&[], ip));
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

    #[test]
    fn callers_bind_only_allowed_addresses_and_ports_in_the_range() {
        use crate::error::ApiErrorKind;
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut ports = Ports::new((40100, 40999), options(), allowed_listen_ips(&[], ip));
        let refused = |r: Result<UdpSocket, ApiError>| {
            let e = r.unwrap_err();
            assert_eq!(e.kind, ApiErrorKind::InvalidArgument, "{e}");
            e.message
        };
        // Outside the range, privileged, not an allowed address.
        assert!(refused(ports.bind(ip, Some(5000))).contains("media.port_range 40100-40999"));
        assert!(refused(ports.bind(ip, Some(80))).contains("privileged"));
        let other = IpAddr::from([10, 1, 2, 3]);
        assert!(refused(ports.bind(other, None)).contains("media.allowed_listen_ips"));
        assert!(refused(ports.bind(IpAddr::from([0, 0, 0, 0]), None)).contains("not allowed"));
        // An ephemeral range takes no explicit port at all.
        let mut ephemeral = Ports::new((0, 0), options(), allowed_listen_ips(&[], ip));
        assert!(refused(ephemeral.bind(ip, Some(40100))).contains("(0, 0)"));
        assert!(ephemeral.bind(ip, None).is_ok());
        // A configured list replaces the default one.
        let listed = Ports::new((0, 0), options(), allowed_listen_ips(&[other], ip));
        assert!(listed.check(other, None).is_ok() && listed.check(ip, None).is_err());
        // The default allows the shared port's address (here unspecified) and both loopbacks.
        let any = allowed_listen_ips(&[], IpAddr::from([0, 0, 0, 0]));
        assert_eq!(any.len(), 3);
    }
}
