#!/usr/bin/env bash
# Tests of the JavaScript client (clients/js) against the real server binary.
# The binary comes from $SHARDCAST_BIN (default target/debug/shardcast, relative to the
# repository root); this script builds nothing. Installs the devDependencies (the `ws`
# package, from package-lock.json) when node_modules is missing. Needs Node >= 20 and npm.
# Exits non-zero when a test fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${SHARDCAST_BIN:-target/debug/shardcast}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
    echo "test-js: no server binary at $bin (build it: cargo build -p shardcast-server, or set SHARDCAST_BIN)" >&2
    exit 2
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "test-js: Node >= 20 needed, found $(node --version)" >&2
    exit 2
fi
cd "$root/clients/js"
if [ ! -d node_modules/ws ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
export SHARDCAST_BIN="$bin"
# One test file at a time: each starts its own servers, and this runs beside cargo's tests.
exec node --test --test-concurrency=1 --test-timeout=30000 test/*.test.js
