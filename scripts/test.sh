#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this script).
# Needs Rust (cargo) and Linux with io_uring; installs the rest (nats-server, for the cluster
# tests) through scripts/install-deps.sh, which does nothing when it is already there.
# Ends with one summary line, "tests: N passed, M failed", over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests open a few hundred sockets at most; raise the soft limit anyway where allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
./scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee "$log" || status=$?
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i }
} END { print p + 0, f + 0 }' "$log")
echo "tests: $passed passed, $failed failed"
exit "$status"
