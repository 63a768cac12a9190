#![no_main]
//! See `shardcast_fuzz::api::api_request` for the input format and the invariants checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_fuzz::api::api_request(data));
