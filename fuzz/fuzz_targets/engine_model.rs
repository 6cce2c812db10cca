#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shardcast_engine::fuzzing::engine_model(data));
