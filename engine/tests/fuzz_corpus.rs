//! Replays the `engine_model` fuzz corpus (`fuzz/corpus/engine_model`) and the built-in seeds
//! on stable, so CI catches a regression on any input the fuzzer ever kept (see
//! `fuzz/README.md`).

use std::path::{Path, PathBuf};

use shardcast_engine::fuzzing;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

#[test]
fn engine_model_corpus() {
    fuzzing::replay_dir(&corpus("engine_model"), &fuzzing::engine_model_seeds(), fuzzing::engine_model);
}

/// Writes the built-in seeds into the corpus: `cargo test -p shardcast-engine --test
/// fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to (re)seed the corpus"]
fn write_engine_seeds() {
    fuzzing::write_seeds(&corpus("engine_model"), &fuzzing::engine_model_seeds());
}
