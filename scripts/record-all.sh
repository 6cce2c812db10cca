#!/usr/bin/env bash
# Records the standard scenarios (issue 4) on this machine: shardcast (/ws, 1 shard) and the
# tokio-tungstenite baseline (room-per-URL), both pinned to core 0, the loadgen on core 1.
# Each scenario: a shardcast run with server CPU/RSS, then interleaved rounds against both
# servers for same-run ratios. Results land in results/<date>-<scenario>/.
#   scripts/record-all.sh            (builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -p shardcast-server -p shardcast-loadgen -p shardcast-benches \
  --bin shardcast --bin shardcast-loadgen --bin baseline >&2
LG=target/release/shardcast-loadgen
wait_port() { for _ in $(seq 100); do grep -q "listening on" "$1" && break; sleep 0.05; done; sed -n 's/.*:\([0-9]*\)$/\1/p' "$1" | head -1; }
taskset -c 0 target/release/shardcast --listen 127.0.0.1:0 --shards 1 --no-demo > /tmp/rec-sc.out 2>/tmp/rec-sc.err &
SC=$!
taskset -c 0 target/release/baseline --listen 127.0.0.1:0 > /tmp/rec-bl.out 2>/tmp/rec-bl.err &
BL=$!
trap 'kill -TERM $SC $BL 2>/dev/null || true' EXIT
SCP=$(wait_port /tmp/rec-sc.out); BLP=$(wait_port /tmp/rec-bl.out)
SCURL="ws://127.0.0.1:$SCP/ws"; BLURL="ws://127.0.0.1:$BLP/ws/{room}/"
common=(--cpus 1 --warmup 1s --duration 5s --quiet --record results)
for sc in "fanout-1k --rate 100" "fanout-5k --rate 20" "hot-100" "fleet" "rooms-500" "iot"; do
  # shellcheck disable=SC2086
  $LG run --url "$SCURL" --server-pid "$SC" --scenario $sc "${common[@]}"
  # shellcheck disable=SC2086
  $LG run --compare "$BLURL" "$SCURL" --server-pids "$BL,$SC" --rounds 2 --scenario $sc "${common[@]}"
done
$LG connections -n 15000 --url "$SCURL" --server-pid "$SC" --cpus 1 --duration 3s --quiet --record results
$LG connections -n 15000 --url-template "$BLURL" --server-pid "$BL" --cpus 1 --duration 3s --quiet --record results
