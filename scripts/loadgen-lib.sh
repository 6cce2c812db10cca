#!/usr/bin/env bash
# Shared helpers for scripts/loadgen-*.sh: build, start a server pinned to a core, stop it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVER_CPU="${SERVER_CPU:-0}"          # core(s) for the server (taskset -c)
LOADGEN_CPUS="${LOADGEN_CPUS:-}"       # loadgen --cpus; empty = the cores the server doesn't use
LG="$ROOT/target/release/shardcast-loadgen"
# Servers inherit this; tens of thousands of connections need more than the usual 1024/20000.
ulimit -n "$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 65536)" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

build() {
  cargo build --release -p shardcast-loadgen -p shardcast-benches --bin shardcast-loadgen --bin baseline >&2
  if [[ -f server/Cargo.toml ]]; then cargo build --release -p shardcast-server >&2 || echo "warning: shardcast server did not build" >&2; fi
}

# start_server NAME → sets SERVER_PID and SERVER_ADDR. NAME: baseline | shardcast
start_server() {
  local name="$1" out; out="$(mktemp)"
  case "$name" in
    baseline)  taskset -c "$SERVER_CPU" "$ROOT/target/release/baseline" --listen 127.0.0.1:0 >"$out" 2>/dev/null & ;;
    shardcast) taskset -c "$SERVER_CPU" "$ROOT/target/release/shardcast" --listen 127.0.0.1:0 --shards 1 --no-demo >"$out" 2>/dev/null & ;;
    *) echo "unknown server $name" >&2; return 1 ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.05; done
  SERVER_ADDR="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$out" | head -1)"
  rm -f "$out"
  [[ -n "$SERVER_ADDR" ]] || { echo "$name did not start" >&2; kill "$SERVER_PID" 2>/dev/null; return 1; }
  echo "$name pid $SERVER_PID on $SERVER_ADDR (cpu $SERVER_CPU)" >&2
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

cpus_flag() { if [[ -n "$LOADGEN_CPUS" ]]; then echo "--cpus $LOADGEN_CPUS"; fi; }
