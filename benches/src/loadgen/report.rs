//! Human summaries, markdown tables and an SVG plot of a rate ladder.

use std::fmt::Write;

use crate::loadgen::run::RunResult;

/// A one-paragraph human summary.
pub fn summary(r: &RunResult) -> String {
    let mut s = format!(
        "{} {:?} rate {:.0}: in {:.0} pps, delivered {:.0} pps, loss {:.3}% ({} of {}), dup {}, reorder {}, late sends {}\n  latency p50/p99/p99.9/max {}/{}/{}/{} µs",
        r.target, r.profile, r.rate, r.input_pps, r.delivered_pps, r.loss_pct, r.lost, r.expected_out, r.duplicated,
        r.reordered, r.late_sends, r.latency_us_p50, r.latency_us_p99, r.latency_us_p999, r.latency_us_max
    );
    if let (Some(cpu), Some(ns)) = (r.relay_cpu_pct, r.relay_ns_per_pkt) {
        let _ = write!(s, "\n  relay cpu {cpu:.1}%, {ns:.0} ns per delivered packet");
    }
    if !r.relay_threads.is_empty() {
        let t: Vec<String> = r.relay_threads.iter().map(|(n, p)| format!("{n} {p:.1}%")).collect();
        let _ = write!(s, "\n  relay threads: {}", t.join(", "));
    }
    let _ = write!(
        s,
        "\n  kernel UDP deltas: InErrors {} RcvbufErrors {} SndbufErrors {}",
        r.udp_in_errors, r.udp_rcvbuf_errors, r.udp_sndbuf_errors
    );
    s
}

/// Median of a non-empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// An SVG line plot: x = rate, y = ns/packet (solid) and loss % (dashed, right axis); one
/// colour per target.
/// One line of the plot: a target's `(rate, ns per packet, loss %)` points.
pub type Series = (String, Vec<(f64, f64, f64)>);

pub fn svg(title: &str, series: &[Series]) -> String {
    let (w, h, m) = (720.0, 420.0, 60.0);
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let max_x = pts.clone().map(|p| p.0).fold(1.0, f64::max);
    let max_ns = pts.clone().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let max_loss = pts.map(|p| p.2).fold(1.0, f64::max).max(1.0);
    let x = |v: f64| m + v / max_x * (w - 2.0 * m);
    let y = |v: f64, max: f64| h - m - v / max * (h - 2.0 * m);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{title}</text>\n",
        w / 2.0
    );
    let _ =
        writeln!(s, "<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>", h - m, w - m, h - m);
    let _ = writeln!(s, "<line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>", h - m);
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.0}k</text>",
            x(f * max_x),
            h - m + 16.0,
            f * max_x / 1000.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}</text>",
            m - 4.0,
            y(f * max_ns, max_ns) + 4.0,
            f * max_ns
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\">{:.1}%</text>",
            w - m + 4.0,
            y(f * max_loss, max_loss) + 4.0,
            f * max_loss
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">offered rate (pps)</text>",
        w / 2.0,
        h - 12.0
    );
    let _ = writeln!(s, "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">relay ns per delivered packet</text>", h / 2.0, h / 2.0);
    for (k, (name, p)) in series.iter().enumerate() {
        let c = colours[k % colours.len()];
        let line: Vec<String> =
            p.iter().map(|(r, ns, _)| format!("{:.1},{:.1}", x(*r), y(*ns, max_ns))).collect();
        let loss: Vec<String> =
            p.iter().map(|(r, _, l)| format!("{:.1},{:.1}", x(*r), y(*l, max_loss))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-dasharray=\"4 3\" points=\"{}\"/>",
            loss.join(" ")
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{c}\">{name} (solid: ns/pkt, dashed: loss %)</text>",
            m + 10.0,
            m + 16.0 * k as f64
        );
    }
    s.push_str("</svg>\n");
    s
}
