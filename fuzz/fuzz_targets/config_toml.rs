#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_server::fuzzing::config_toml(data));
