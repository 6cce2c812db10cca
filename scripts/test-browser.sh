#!/usr/bin/env bash
# The web apps in headless Chromium against the real server (tests/browser, Node's test
# runner). The server binary: $SHARDCAST_BIN, default target/debug/shardcast (build it first).
# Installs Chromium and playwright-core when missing (scripts/install-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export SHARDCAST_BIN="${SHARDCAST_BIN:-target/debug/shardcast}"
if [ ! -x "$SHARDCAST_BIN" ]; then
    echo "test-browser: no server binary at $SHARDCAST_BIN (cargo build --bin shardcast)" >&2
    exit 1
fi
scripts/install-browser.sh >/dev/null
cd tests/browser
exec node --test --test-concurrency=1 --test-timeout=120000 ./*.test.js
