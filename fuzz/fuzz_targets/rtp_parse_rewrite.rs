#![no_main]
//! See `shardcast_fuzz::rtp::rtp_parse_rewrite` for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_fuzz::rtp::rtp_parse_rewrite(data));
