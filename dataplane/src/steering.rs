//! Steering shared-port flows to their owner core in the kernel, so the inter-core hop becomes
//! rare: the reuseport eBPF program of [`crate::io::ReuseportSteering`] and the rules that keep
//! its map equal to the cores' software steering tables.
//!
//! Who writes the map, and when (each update is one syscall, made while a command batch is
//! applied or a marker is handled, never per packet):
//! - a `SetSteering { key, core: Some(owner) }` applied on any core adds `key → owner` if the map
//!   does not steer `key` yet (a new flow); `core: None` (its transport went away) removes it.
//!   Re-pointing a flow that already lands somewhere is left to the handoff, below.
//! - a handoff: the importer does not touch the map, so the flow keeps landing on the old owner,
//!   which carries it to the importer in order. When the importer's barrier marker comes back
//!   through the old owner, the old owner drains its shared socket, switches `key → importer`,
//!   drains again, and only then returns the marker: the importer reads nothing of the flow from
//!   its own socket before the last datagram the old owner carried. The switch is made only for
//!   a settled move (the old owner behind no barrier of its own, the router not moved on since);
//!   in the nested cases of back-to-back moves the flow keeps its socket and hops.
//!
//! The map being behind the tables costs at most a hop: the software tables stay the authority
//! on every core, and a datagram on the wrong core is carried as before.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shardcast_core::command::SteerKey;

use crate::io::{KernelKey, ReuseportSteering};

/// Flows the kernel map holds at most (more are steered in software only, counted).
pub const MAX_KERNEL_FLOWS: u32 = 1 << 16;

/// The key the eBPF program builds for the datagrams `key` matches; `None` for a key the program
/// cannot match (an IPv6 remote: those flows are hashed and carried in software).
pub fn kernel_key(key: &SteerKey) -> Option<KernelKey> {
    match key {
        SteerKey::Remote(SocketAddr::V4(a)) => Some([u32::from(*a.ip()), u32::from(a.port())]),
        SteerKey::Remote(SocketAddr::V6(a)) => {
            a.ip().to_ipv4_mapped().map(|ip| [u32::from(ip), u32::from(a.port())])
        }
        SteerKey::Ssrc(s) => Some([0, s.0]),
    }
}

/// The kernel steering of one data plane, shared by its cores.
#[derive(Debug)]
pub struct KernelSteering {
    bpf: ReuseportSteering,
    updates: AtomicU64,
    errors: AtomicU64,
}

/// What the kernel steering did, for stats and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelSteeringStats {
    /// Map updates and removals made.
    pub updates: u64,
    /// Updates that failed (map full, ...): those flows are steered in software only.
    pub errors: u64,
}

impl KernelSteering {
    /// Loads the program, attaches it to the group of `group[0]` and checks, by sending one probe
    /// datagram per core through the loopback, that map value `i` reaches `group[i]` — the
    /// premise everything else rests on. On any failure the program is detached again and the
    /// error says why. `stray[i]` counts datagrams that reached `group[i]` during the probe and
    /// were not probes (the caller counts them as dropped).
    pub fn start(group: &[UdpSocket], stray: &mut [u64]) -> io::Result<KernelSteering> {
        let bpf = ReuseportSteering::load(MAX_KERNEL_FLOWS)?;
        let first = group.first().ok_or_else(|| io::Error::other("no shared socket"))?;
        bpf.attach(first.as_raw_fd())?;
        let steering = KernelSteering { bpf, updates: AtomicU64::new(0), errors: AtomicU64::new(0) };
        if let Err(e) = steering.probe(group, stray) {
            let _ = ReuseportSteering::detach(first.as_raw_fd());
            return Err(e);
        }
        Ok(steering)
    }

    fn probe(&self, group: &[UdpSocket], stray: &mut [u64]) -> io::Result<()> {
        let local = group[0].local_addr()?;
        let dest = match local {
            SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        let sender = UdpSocket::bind(SocketAddr::new(
            if dest.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            0,
        ))?;
        // An RTP packet whose SSRC names the probe (the SSRC key works for both address
        // families); the nonce tells it from anything else arriving at start-up.
        let ssrc: u32 = 0x5348_4344 ^ std::process::id();
        let key = [0, ssrc];
        let mut buf = [0u8; 2048];
        let fds: Vec<_> = group.iter().map(|s| s.as_raw_fd()).collect();
        let mut ready = vec![false; fds.len()];
        for i in 0..group.len() {
            self.bpf.set(key, i as u32)?;
            let mut probe = vec![0x80, 96, 0, i as u8, 0, 0, 0, 0];
            probe.extend_from_slice(&ssrc.to_be_bytes());
            probe.extend_from_slice(b"shardcast steering probe");
            sender.send_to(&probe, dest)?;
            let deadline = Instant::now() + Duration::from_secs(1);
            'wait: loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = self.bpf.remove(key);
                    return Err(io::Error::other(format!(
                        "the probe for core {i} arrived nowhere within 1 s"
                    )));
                }
                crate::io::poll_readable(&fds, &mut ready, left)?;
                for (j, s) in group.iter().enumerate().filter(|(j, _)| ready[*j]) {
                    while let Ok((n, _)) = s.recv_from(&mut buf) {
                        if buf[..n] != probe[..] {
                            stray[j] += 1;
                            continue;
                        }
                        if j != i {
                            let _ = self.bpf.remove(key);
                            return Err(io::Error::other(format!(
                                "the probe for core {i} reached core {j}'s socket: the port's \
                                 SO_REUSEPORT group is not this data plane's alone"
                            )));
                        }
                        break 'wait;
                    }
                }
            }
        }
        self.bpf.remove(key)
    }

    /// Steers `key` to `core` (`None`: forgets it).
    pub fn steer(&self, key: &SteerKey, core: Option<u16>) {
        self.update(key, core, false);
    }

    /// Steers a new flow `key` to `core`, leaving a flow the map already steers alone (it is
    /// switched by the handoff protocol); `None` forgets the flow.
    pub fn steer_new(&self, key: &SteerKey, core: Option<u16>) {
        self.update(key, core, true);
    }

    fn update(&self, key: &SteerKey, core: Option<u16>, new_only: bool) {
        let Some(k) = kernel_key(key) else { return };
        let result = match core {
            Some(c) if new_only => self.bpf.insert(k, u32::from(c)),
            Some(c) => self.bpf.set(k, u32::from(c)),
            None => self.bpf.remove(k),
        };
        self.updates.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Where the kernel steers `key` now (tests and diagnostics).
    pub fn lookup(&self, key: &SteerKey) -> Option<u16> {
        let k = kernel_key(key)?;
        self.bpf.get(k).ok().flatten().and_then(|v| u16::try_from(v).ok())
    }

    pub fn stats(&self) -> KernelSteeringStats {
        KernelSteeringStats {
            updates: self.updates.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardcast_core::ids::Ssrc;

    #[test]
    fn keys_are_what_the_program_builds() {
        let v4: SocketAddr = "10.1.2.3:5004".parse().unwrap();
        assert_eq!(kernel_key(&SteerKey::Remote(v4)), Some([0x0a01_0203, 5004]));
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:5004".parse().unwrap();
        assert_eq!(kernel_key(&SteerKey::Remote(mapped)), Some([0x0a01_0203, 5004]));
        let v6: SocketAddr = "[2001:db8::1]:5004".parse().unwrap();
        assert_eq!(kernel_key(&SteerKey::Remote(v6)), None);
        assert_eq!(kernel_key(&SteerKey::Ssrc(Ssrc(0xabcd))), Some([0, 0xabcd]));
    }
}
