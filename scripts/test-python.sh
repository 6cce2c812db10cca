#!/usr/bin/env bash
# Tests of the Python client and its Django integration (clients/python) against the real
# server binary. Idempotent: the virtual environment clients/python/.venv is created, and the
# package installed into it (`pip install -e clients/python[test]`), only when missing or when
# pyproject.toml changed since the last install. Needs python3 (>= 3.9) with venv, and PyPI
# (or a configured index/mirror) the first time.
#
#   SHARDCAST_BIN  server binary to test against (default: target/debug/shardcast under the
#                  repository root; build it with `cargo build -p shardcast-server`)
#   PYTHON         interpreter that creates the venv (default: python3)
#
# Extra arguments go to pytest (e.g. `scripts/test-python.sh -k django -x`). Exits with
# pytest's status: non-zero when a test failed or none ran.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkg="$root/clients/python"
venv="$pkg/.venv"
bin="${SHARDCAST_BIN:-$root/target/debug/shardcast}"

if [[ ! -x "$bin" ]]; then
    echo "test-python: no server binary at $bin (cargo build -p shardcast-server, or set SHARDCAST_BIN)" >&2
    exit 2
fi
# Absolute, since pytest runs from clients/python.
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
stamp="$venv/.installed-pyproject.sha256"
want="$(sha256sum "$pkg/pyproject.toml" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]] || ! "$venv/bin/python" -c 'import shardcast, pytest' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$pkg[test]"
    echo "$want" > "$stamp"
fi

cd "$pkg"
export SHARDCAST_BIN="$bin"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
