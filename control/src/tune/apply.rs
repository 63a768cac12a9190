//! `shardcast tune --apply`: the safe sysctl fixes, a dry run unless committed.

use std::path::Path;

use serde::Serialize;

use super::host::{self, HostFacts};
use super::BACKLOG_WANTED;
use crate::config::Config;

/// One sysctl change `--apply` makes (or would make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlChange {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Done (`--commit`), or only shown.
    pub applied: bool,
    /// Why writing failed, when it did.
    pub error: Option<String>,
}

/// The safe fixes: raise (never lower) the socket-buffer maxima to what `config` asks and the
/// backlog to [`BACKLOG_WANTED`]. Only `/proc/sys` under `root` is written, and only with
/// `commit`; security sysctls (io_uring, BPF) are reported, never changed.
pub fn apply(root: &Path, host: &HostFacts, config: &Config, commit: bool) -> Vec<SysctlChange> {
    let wanted = [
        ("net.core.rmem_max", config.media.recv_buffer as u64),
        ("net.core.wmem_max", config.media.send_buffer as u64),
        ("net.core.netdev_max_backlog", BACKLOG_WANTED),
    ];
    wanted
        .into_iter()
        .filter_map(|(name, want)| {
            let now = host.sysctl_u64(name)?;
            if now >= want {
                return None;
            }
            let mut change = SysctlChange {
                name: name.into(),
                from: now.to_string(),
                to: want.to_string(),
                applied: false,
                error: None,
            };
            if commit {
                let path = root.join(host::sysctl_path(name));
                match std::fs::write(&path, format!("{want}\n")) {
                    Ok(()) => change.applied = true,
                    Err(e) => change.error = Some(format!("{}: {e}", path.display())),
                }
            }
            Some(change)
        })
        .collect()
}
