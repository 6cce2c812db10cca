#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this script).
# Needs Rust (cargo), Node >= 20, Python 3 and Linux with io_uring; installs the rest, each
# step idempotent: nats-server (scripts/install-deps.sh), the clients' npm and pip packages
# (inside scripts/test-js.sh, scripts/test-python.sh), Chromium and playwright-core
# (scripts/install-browser.sh, inside scripts/test-browser.sh).
# Ends with one summary line, "tests: N passed, M failed", over every test binary and the
# clients' and the browser suites (scripts/test-js.sh, scripts/test-python.sh, scripts/test-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests open a few hundred sockets at most; raise the soft limit anyway where allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
./scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log="$(mktemp)"
extra="$(mktemp)"
trap 'rm -f "$log" "$extra"' EXIT
status=0
cargo test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee "$log" || status=$?
read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i }
} END { print p + 0, f + 0 }' "$log")
# The clients' suites run against the server binary cargo just built.
export SHARDCAST_BIN="$PWD/target/debug/shardcast"
for suite in scripts/test-js.sh scripts/test-python.sh scripts/test-browser.sh; do
    [ -x "$suite" ] || continue
    : > "$extra"
    "$suite" 2>&1 | tee "$extra" || status=1
    # node --test: "# pass N" / "# fail N" (or "ℹ pass N"); pytest: "N passed", "N failed".
    read -r p f < <(awk '
        /^(#|ℹ) pass [0-9]+$/ { p += $3 } /^(#|ℹ) fail [0-9]+$/ { f += $3 }
        /[0-9]+ (passed|failed).* in [0-9.]+s/ {
            for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i }
        }
        END { print p + 0, f + 0 }' "$extra")
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "tests: $passed passed, $failed failed"
exit "$status"
