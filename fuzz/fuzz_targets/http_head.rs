#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_server::fuzzing::http_head(data));
