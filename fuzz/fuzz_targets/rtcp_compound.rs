#![no_main]
//! See `shardcast_fuzz::rtcp::rtcp_compound` for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_fuzz::rtcp::rtcp_compound(data));
