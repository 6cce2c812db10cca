//! Fuzz harnesses for the server's pure input handling: plain functions that take the
//! fuzzer's bytes and panic when an invariant breaks.
//!
//! One definition serves both the libFuzzer targets (`fuzz/fuzz_targets/*.rs`, nightly,
//! each a one-liner) and CI's replay of `fuzz/corpus/<target>` on stable
//! (`server/tests/fuzz_corpus.rs`). Inputs are decoded by hand with
//! [`shardcast_engine::fuzzing::Input`], so no fuzzing crate is a dependency. Each module
//! documents its input layout and what it checks. Not part of the public API.

mod client_op;
mod config_toml;
mod http_head;
mod jwt;
pub(crate) mod seeds;
mod ws_frames;

pub use client_op::client_op;
pub use config_toml::config_toml;
pub use http_head::http_head;
pub use jwt::jwt;
pub use seeds::seeds;
pub use shardcast_engine::fuzzing::{replay_dir, write_seeds, Input};
pub use ws_frames::ws_frames;

/// A harness: the fuzzer's bytes in, a panic on a broken invariant.
pub type Harness = fn(&[u8]);

/// Every server target: its name (the corpus directory) and its harness.
pub const TARGETS: [(&str, Harness); 5] = [
    ("http_head", http_head),
    ("ws_frames", ws_frames),
    ("client_op", client_op),
    ("jwt", jwt),
    ("config_toml", config_toml),
];
