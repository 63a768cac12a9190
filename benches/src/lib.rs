//! shardcast-benches: the load generator and helpers shared by the benches.
pub mod loadgen;
