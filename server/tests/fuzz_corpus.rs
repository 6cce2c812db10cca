//! Replays every server fuzz target's corpus (`fuzz/corpus/<target>`) and built-in seeds on
//! stable, so CI catches a regression on any input the fuzzer ever kept (see
//! `fuzz/README.md`). A failure names the input file.

use std::path::{Path, PathBuf};

use shardcast_server::fuzzing::{self, TARGETS};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn replay(target: &str) {
    let (_, harness) = TARGETS.iter().find(|(t, _)| *t == target).expect("a server target");
    fuzzing::replay_dir(&corpus(target), &fuzzing::seeds(target), *harness);
}

#[test]
fn http_head_corpus() {
    replay("http_head");
}

#[test]
fn ws_frames_corpus() {
    replay("ws_frames");
}

#[test]
fn client_op_corpus() {
    replay("client_op");
}

#[test]
fn jwt_corpus() {
    replay("jwt");
}

#[test]
fn config_toml_corpus() {
    replay("config_toml");
}

/// Writes the built-in seeds into the corpora: `cargo test -p shardcast-server --test
/// fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to (re)seed the corpora"]
fn write_server_seeds() {
    for (target, _) in TARGETS {
        fuzzing::write_seeds(&corpus(target), &fuzzing::seeds(target));
    }
}
