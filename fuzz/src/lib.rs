//! The checks behind shardcast's fuzz targets.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling `<module>::<name>(data)`; the checks live
//! here so the regression tests (`tests/regressions.rs`, stable toolchain) replay the seed corpora
//! and every recorded finding (`regressions/<target>/`) through exactly the code the fuzzer runs.
//! A check panics (with the violated invariant) when an input breaks one; it never returns an
//! error for "uninteresting" input.

pub mod api;
pub mod rtcp;
pub mod rtp;
pub mod seeds;
pub mod shard;

/// A target's check: panics when the input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every target, by name, and its check: what `run.sh`, the regression tests and the seed
/// generator iterate over.
pub const TARGETS: [(&str, Check); 6] = [
    ("rtp_parse_rewrite", rtp::rtp_parse_rewrite),
    ("rtp_extensions", rtp::rtp_extensions),
    ("rtcp_compound", rtcp::rtcp_compound),
    ("shard_forward", shard::shard_forward),
    ("shard_commands", shard::shard_commands),
    ("api_request", api::api_request),
];

/// Known, reported findings that a run may be told to tolerate (comma-separated names in the
/// environment variable `SHARDCAST_FUZZ_KNOWN`; `regressions/KNOWN.md` lists them), so a
/// shake-out run explores past them. Announced on stderr once; `run.sh` never sets it.
pub fn tolerated(name: &str) -> bool {
    static ANNOUNCE: std::sync::Once = std::sync::Once::new();
    let known = std::env::var("SHARDCAST_FUZZ_KNOWN").unwrap_or_default();
    if known.is_empty() {
        return false;
    }
    ANNOUNCE.call_once(|| eprintln!("shardcast-fuzz: NOT checking known findings: {known}"));
    known.split(',').any(|k| k.trim() == name)
}
