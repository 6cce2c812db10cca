#!/usr/bin/env bash
# Installs what the browser tests need (idempotent): Debian's chromium and playwright-core
# (from tests/browser/package-lock.json, into tests/browser/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y chromium fonts-dejavu-core -qq --no-install-recommends >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
/usr/bin/chromium --version 2>/dev/null
