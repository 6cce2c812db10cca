#!/usr/bin/env bash
# Shard scaling on a machine with free cores: the same capacity search against shardcast
# with 1 shard (core 0) and 2 shards (cores 0-1), and the baseline on core 0, loadgen on
# cores it does not share with the server. Needs release binaries in BIN (default
# target/release). Writes everything under OUT (default results/scaling-<date>).
#   scripts/scaling.sh [BIN] [OUT]
set -euo pipefail
BIN="${1:-target/release}"
OUT="${2:-results/scaling-$(date +%Y-%m-%d)}"
LGCPUS="${LGCPUS:-4-11}"
mkdir -p "$OUT"
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
{ echo "date: $(date -u +%FT%TZ)"; echo "nproc: $(nproc)"; grep -m1 "model name" /proc/cpuinfo; echo "kernel: $(uname -r)"; } > "$OUT/machine.txt"

start() { # start CPUS ARGS... → PID in SPID, port in SPORT
  local cpus="$1"; shift
  local log="$OUT/server-$RANDOM.log"
  taskset -c "$cpus" "$@" > "$log.out" 2> "$log" &
  SPID=$!
  for _ in $(seq 100); do grep -q "listening on" "$log.out" 2>/dev/null && break; sleep 0.05; done
  SPORT="$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$log.out" | head -1)"
}
stop() { kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }

cap() { # NAME URLFLAG... : capacity search for fanout-1k and fanout-5k
  local name="$1"; shift
  "$BIN/shardcast-loadgen" capacity --scenario fanout-1k --rates 100,200,400,800,1600 --slo-ms 20 \
    --warmup 1s --duration 3s --cpus "$LGCPUS" --server-pid "$SPID" --quiet --json "$OUT/$name-fanout-1k.json" "$@" \
    > "$OUT/$name-fanout-1k.txt" 2>&1 || true
  "$BIN/shardcast-loadgen" capacity --scenario fanout-5k --rates 20,40,80,160,320 --slo-ms 50 \
    --warmup 1s --duration 3s --cpus "$LGCPUS" --server-pid "$SPID" --quiet --json "$OUT/$name-fanout-5k.json" "$@" \
    > "$OUT/$name-fanout-5k.txt" 2>&1 || true
  "$BIN/shardcast-loadgen" run --scenario hot-100 --warmup 1s --duration 4s --cpus "$LGCPUS" \
    --server-pid "$SPID" --quiet --json "$OUT/$name-hot-100.json" "$@" > "$OUT/$name-hot-100.txt" 2>&1 || true
}

start 0 "$BIN/shardcast" --listen 127.0.0.1:0 --shards 1 --no-demo
cap shardcast-1shard --url "ws://127.0.0.1:$SPORT/ws"; stop
start 0-1 "$BIN/shardcast" --listen 127.0.0.1:0 --shards 2 --no-demo
cap shardcast-2shards --url "ws://127.0.0.1:$SPORT/ws"; stop
start 0 "$BIN/baseline" --listen 127.0.0.1:0
cap baseline --url-template "ws://127.0.0.1:$SPORT/ws/{room}/"; stop
grep -h -E "capacity|highest|scenario|p99|server CPU" "$OUT"/*.txt > "$OUT/summary.txt" || true
echo "done: $OUT"
