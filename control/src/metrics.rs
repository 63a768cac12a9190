//! `/metrics`: Prometheus text exposition (via `prometheus-client`) of every core's figures and
//! the control plane's, read from published snapshots — never from the control thread.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use shardcast_core::drop_reason::DropReason;

use crate::api::Shardcast;

type Labels = Vec<(String, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    registry.register(name, help, f.clone());
    f
}

fn gauge(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

/// Renders the current figures.
pub fn render(sc: &Shardcast) -> String {
    let mut r = Registry::with_prefix("shardcast");
    let packets_in = counter(&mut r, "packets_in", "Datagrams received by the core");
    let packets_out = counter(&mut r, "packets_out", "Datagrams handed to the kernel by the core");
    let bytes_in = counter(&mut r, "bytes_in", "Bytes received by the core");
    let bytes_out = counter(&mut r, "bytes_out", "Bytes sent by the core");
    let drops = counter(&mut r, "drops", "Packets or copies dropped, by reason");
    let hops = counter(&mut r, "hopped", "Shared-port datagrams carried to their owner core");
    let batches = counter(&mut r, "batches_applied", "Command batches applied by the core");
    let apply_ns = counter(&mut r, "apply_ns", "Nanoseconds spent applying command batches");
    let apply_max = gauge(&mut r, "apply_ns_max", "Longest batch apply, nanoseconds");
    let ring = gauge(&mut r, "ring_depth", "Batches waiting in the control-to-core ring");
    let busy = counter(&mut r, "busy_ns", "Nanoseconds the core spent working (not parked)");
    let routers = gauge(&mut r, "routers", "Routers owned by the core");
    let stalled = gauge(&mut r, "core_stalled", "1 while the core is past a reply deadline");
    let misses = counter(&mut r, "deadline_misses", "Batches the core did not apply within the deadline");
    let handoffs = counter(&mut r, "handoffs_in", "Routers imported by live handoff");
    let m = sc.metrics();
    for (i, c) in sc.cores().iter().enumerate() {
        let s = c.stats();
        let core = vec![("core".to_string(), i.to_string())];
        packets_in.get_or_create(&core).inc_by(s.counters.packets_in);
        packets_out.get_or_create(&core).inc_by(s.counters.packets_out);
        bytes_in.get_or_create(&core).inc_by(s.counters.bytes_in);
        bytes_out.get_or_create(&core).inc_by(s.counters.bytes_out);
        for reason in DropReason::ALL {
            let mut l = core.clone();
            l.push(("reason".into(), reason.as_str().into()));
            drops.get_or_create(&l).inc_by(s.counters.drops_of(reason));
        }
        hops.get_or_create(&core).inc_by(s.counters.hopped_out);
        batches.get_or_create(&core).inc_by(s.batches_applied);
        apply_ns.get_or_create(&core).inc_by(s.apply_ns_total);
        apply_max.get_or_create(&core).set(s.apply_ns_max as i64);
        ring.get_or_create(&core).set(s.ring_depth as i64);
        busy.get_or_create(&core).inc_by(s.busy_ns);
        routers.get_or_create(&core).set(s.routers as i64);
        handoffs.get_or_create(&core).inc_by(s.handoffs_in);
        if let Some(v) = m.stalled.get(i) {
            stalled.get_or_create(&core).set(v.load(Ordering::Relaxed) as i64);
        }
        if let Some(v) = m.deadline_misses.get(i) {
            misses.get_or_create(&core).inc_by(v.load(Ordering::Relaxed));
        }
    }
    let control = |r: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        r.register(name, help, c);
    };
    control(
        &mut r,
        "api_calls",
        "API calls handled by the control thread",
        m.api_calls.load(Ordering::Relaxed),
    );
    control(&mut r, "api_errors", "API calls that failed", m.api_errors.load(Ordering::Relaxed));
    control(&mut r, "router_moves", "Live router handoffs", m.moves.load(Ordering::Relaxed));
    control(
        &mut r,
        "rebalancer_moves",
        "Handoffs started by the rebalancer",
        m.rebalancer_moves.load(Ordering::Relaxed),
    );
    control(&mut r, "events_lagged", "Events lost by slow subscribers", sc.events().lagged());
    control(
        &mut r,
        "steering_lost",
        "Steering updates lost to a full ring",
        m.steering_lost.load(Ordering::Relaxed),
    );
    let steering = sc.kernel_steering();
    let enabled = Gauge::<i64>::default();
    enabled.set(i64::from(steering.is_some()));
    r.register(
        "kernel_steering",
        "1 when shared-port flows are steered to their owner in the kernel",
        enabled,
    );
    let s = steering.unwrap_or_default();
    control(&mut r, "kernel_steering_updates", "Kernel steering map updates", s.updates);
    control(&mut r, "kernel_steering_errors", "Kernel steering map updates that failed", s.errors);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}
