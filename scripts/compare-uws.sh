#!/usr/bin/env bash
# Optional: the same scenarios against uWebSockets.js (npm `uwebsockets`, Node 20) and
# shardcast, both pinned to core 0 and spoken to over the same room-per-URL protocol
# (/ws/<room>/), loadgen on core 1, interleaved rounds (A = uWS, B = shardcast).
# Installs the npm package into a scratch folder; records into results/.
#   scripts/compare-uws.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
UWS_DIR="${UWS_DIR:-/tmp/shardcast-uws}"
mkdir -p "$UWS_DIR"
[[ -d "$UWS_DIR/node_modules/uwebsockets" ]] || (cd "$UWS_DIR" && npm install --silent uwebsockets@3.0.6 >&2)
cp scripts/uws/server.js "$UWS_DIR/server.js"
cargo build --release -p shardcast-server -p shardcast-loadgen --bin shardcast --bin shardcast-loadgen >&2
LG=target/release/shardcast-loadgen
taskset -c 0 node "$UWS_DIR/server.js" 8300 > /tmp/uws.out 2>&1 &
UWS=$!
taskset -c 0 target/release/shardcast --listen 127.0.0.1:8301 --shards 1 --no-demo > /tmp/sc-uws.out 2>&1 &
SC=$!
trap 'kill -TERM $UWS $SC 2>/dev/null || true' EXIT
sleep 1
A='ws://127.0.0.1:8300/ws/{room}/'; B='ws://127.0.0.1:8301/ws/{room}/'
common=(--cpus 1 --warmup 1s --duration 5s --quiet --record results)
for sc in "fanout-1k --rate 100" "fanout-5k --rate 20" "hot-100" "fleet" "iot"; do
  # shellcheck disable=SC2086
  $LG run --compare "$A" "$B" --rounds 2 --scenario $sc "${common[@]}"
done
# Server CPU per delivery needs one server at a time.
$LG run --url-template "$A" --server-pid "$UWS" --scenario hot-100 "${common[@]}"
$LG run --url-template "$B" --server-pid "$SC" --scenario hot-100 "${common[@]}"
