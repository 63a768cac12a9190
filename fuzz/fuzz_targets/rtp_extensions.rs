#![no_main]
//! See `shardcast_fuzz::rtp::rtp_extensions` for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_fuzz::rtp::rtp_extensions(data));
