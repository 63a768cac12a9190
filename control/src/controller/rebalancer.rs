//! The rebalancer (run by the control thread between calls): moves routers off a hot core.

use std::time::{Duration, Instant};

use shardcast_core::ids::RouterId;
use shardcast_dataplane::DataPlane;

use crate::config::Config;
use crate::model::{Model, RouterEntry};

/// Moves routers off a hot core: per-core busy fraction over an interval; when the spread
/// exceeds the threshold, move the router whose weight best halves it. Hysteresis: a minimum
/// interval between moves, and no move that would invert the imbalance.
pub(super) struct Rebalancer {
    last_busy: Vec<u64>,
    last_tick: Instant,
    last_move: Option<Instant>,
}

impl Rebalancer {
    pub(super) fn new(cores: usize) -> Self {
        Self { last_busy: vec![0; cores], last_tick: Instant::now(), last_move: None }
    }

    pub(super) fn tick(
        &mut self,
        plane: &DataPlane,
        model: &Model,
        config: &Config,
        stalled: &[bool],
    ) -> Option<(RouterId, usize)> {
        let interval = Duration::from_millis(config.rebalancer.interval_ms);
        let elapsed = self.last_tick.elapsed();
        if elapsed < interval || plane.cores().len() < 2 {
            return None;
        }
        self.last_tick = Instant::now();
        let busy: Vec<u64> = plane.cores().iter().map(|c| c.stats().busy_ns).collect();
        let load: Vec<f64> = busy
            .iter()
            .zip(&self.last_busy)
            .map(|(now, before)| now.saturating_sub(*before) as f64 / elapsed.as_nanos() as f64)
            .collect();
        self.last_busy = busy;
        if self
            .last_move
            .is_some_and(|t| t.elapsed() < Duration::from_millis(config.rebalancer.min_interval_ms))
        {
            return None;
        }
        let usable = |c: &usize| !stalled.get(*c).copied().unwrap_or(false);
        let hot = (0..load.len()).filter(usable).max_by(|a, b| load[*a].total_cmp(&load[*b]))?;
        let cold = (0..load.len()).filter(usable).min_by(|a, b| load[*a].total_cmp(&load[*b]))?;
        let spread = load[hot] - load[cold];
        if hot == cold || spread < config.rebalancer.threshold {
            return None;
        }
        // Weight of a router ≈ its fan-out: each producer plus each of its consumers (at least 1),
        // from the counts the model keeps (O(routers), once per interval, only when imbalanced).
        let weight = |e: &RouterEntry| (e.counts.producers + e.counts.consumers).max(1) as f64;
        let on_hot: Vec<(RouterId, f64)> =
            model.routers.iter().filter(|(_, e)| e.core == hot).map(|(id, e)| (*id, weight(e))).collect();
        if on_hot.len() < 2 {
            return None;
        }
        let total: f64 = on_hot.iter().map(|(_, w)| w).sum();
        // Moving a router with share s of the hot core's load moves s × load[hot] and narrows the
        // spread by twice that; the best move halves the spread, and a move larger than half the
        // spread is refused: it would invert the imbalance (ping-pong).
        let target = spread / 2.0;
        let best = on_hot
            .iter()
            .map(|(id, w)| (*id, w / total * load[hot]))
            .filter(|(_, moved)| *moved <= spread / 2.0)
            .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()))?;
        self.last_move = Some(Instant::now());
        Some((best.0, cold))
    }
}
