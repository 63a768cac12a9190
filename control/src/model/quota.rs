//! Quotas: how many objects of each kind the daemon (and each router) may hold. A call that
//! would pass one is refused before anything changes, naming the quota and its limit.
//!
//! The counts are kept incrementally (`Model::commit` adds and removes), so a check is O(1) and
//! nothing counts objects per loop pass.

use serde::{Deserialize, Serialize};
use shardcast_core::ids::{MediaKind, RouterId};

use super::Model;
use crate::error::ApiError;

/// The `[quotas]` config section. Every limit is a count of live objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Routers in the daemon.
    pub routers: usize,
    /// Transports in the daemon (a dedicated transport holds one socket: one file descriptor).
    pub transports: usize,
    pub transports_per_router: usize,
    /// Producers in the daemon.
    pub producers: usize,
    pub producers_per_router: usize,
    /// Video producers in the daemon: each holds a NACK store (~376 KiB) once media arrives.
    pub video_producers: usize,
    /// Consumers in the daemon.
    pub consumers: usize,
    pub consumers_per_router: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            routers: 10_000,
            transports: 16_000,
            transports_per_router: 1_000,
            producers: 20_000,
            producers_per_router: 1_000,
            // ~750 MiB of NACK stores at most.
            video_producers: 2_000,
            consumers: 100_000,
            consumers_per_router: 1_000,
        }
    }
}

/// Live object counts of one router, kept by `Model::commit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterCounts {
    pub producers: usize,
    pub consumers: usize,
}

/// Fails with `quota_exceeded` when `count` objects already fill `limit`.
fn check(quota: &'static str, count: usize, limit: usize) -> Result<(), ApiError> {
    if count < limit {
        return Ok(());
    }
    Err(ApiError::quota(quota, limit, format!("quota {quota} reached: {count} of {limit} in use")))
}

impl Model {
    pub(super) fn admit_router(&self) -> Result<(), ApiError> {
        check("routers", self.routers.len(), self.quotas.routers)
    }

    /// Checked by the controller before it binds the transport's socket, and again when planning.
    pub fn admit_transport(&self, router: RouterId) -> Result<(), ApiError> {
        let r = self.router(router)?;
        check("transports", self.transports.len(), self.quotas.transports)?;
        check("transports_per_router", r.transports.len(), self.quotas.transports_per_router)
    }

    pub(super) fn admit_producer(&self, router: RouterId, kind: MediaKind) -> Result<(), ApiError> {
        let r = self.router(router)?;
        check("producers", self.producers.len(), self.quotas.producers)?;
        check("producers_per_router", r.counts.producers, self.quotas.producers_per_router)?;
        if kind == MediaKind::Video {
            check("video_producers", self.video_producers, self.quotas.video_producers)?;
        }
        Ok(())
    }

    pub(super) fn admit_consumer(&self, router: RouterId) -> Result<(), ApiError> {
        let r = self.router(router)?;
        check("consumers", self.consumers.len(), self.quotas.consumers)?;
        check("consumers_per_router", r.counts.consumers, self.quotas.consumers_per_router)
    }
}
