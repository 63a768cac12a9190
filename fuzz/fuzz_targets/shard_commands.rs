#![no_main]
//! See `shardcast_fuzz::shard::shard_commands` for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_fuzz::shard::shard_commands(data));
