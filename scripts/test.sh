#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this script).
# Installs nothing system-wide; needs only Rust (cargo) and Linux with io_uring.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests open a few hundred sockets at most; raise the soft limit anyway where allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace -- --test-threads=2
