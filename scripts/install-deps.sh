#!/usr/bin/env bash
# Installs what the tests need beyond Rust, idempotently: nats-server (Debian package,
# JetStream built in) for the cluster tests. Does nothing when it is already there.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1; then
    exit 0
fi
echo "install-deps: installing nats-server (Debian package)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y nats-server --no-install-recommends >/dev/null 2>&1 || {
    $SUDO apt-get update -qq >/dev/null 2>&1
    $SUDO apt-get install -y nats-server --no-install-recommends >/dev/null
}
command -v nats-server >/dev/null
