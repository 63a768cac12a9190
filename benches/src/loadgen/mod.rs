//! `shardcast-loadgen`: seeded load profiles, precise pacing, per-(consumer, stream) accounting
//! (delivered, lost, duplicated, reordered), latency histograms, and the relay's CPU cost per
//! delivered packet read from `/proc`, so shardcast and the kernel-floor relay are compared on
//! the same topology in the same run.

pub mod account;
pub mod cpu;
pub mod flood;
pub mod profile;
pub mod report;
pub mod run;
pub mod target;

pub use account::SeqTracker;
pub use profile::{Profile, Stream};
pub use run::{run, DuringContext, RunConfig, RunResult, StreamFigures};
pub use target::Target;
