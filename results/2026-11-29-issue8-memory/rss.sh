#!/bin/bash
# rss.sh BIN ws|room [N] [loadgen args...] -> the loadgen's RSS per idle connection against a
# fresh `BIN --shards 1 --no-demo`, server on core 0, loadgen on core 1. Run from the repo root.
set -u
BIN=$1; KIND=$2; N=${3:-15000}; shift 3 || shift $#
T=${CARGO_TARGET_DIR:-$(pwd)/target}; OUT=$(mktemp)
taskset -c 0 "$BIN" --shards 1 --no-demo --listen 127.0.0.1:0 > "$OUT" 2>&1 &
SP=$!
for i in $(seq 200); do grep -q "listening on" "$OUT" && break; sleep 0.1; done
ADDR=$(grep -o 'listening on [^ ]*' "$OUT" | awk '{print $3}')
if [ "$KIND" = room ]; then U="--url-template ws://$ADDR/ws/{room}/"; else U="--url ws://$ADDR/ws"; fi
taskset -c 1 "$T/release/shardcast-loadgen" connections -n "$N" $U --cpus 1 --duration 3s --quiet --server-pid $SP "$@"
kill -INT $SP; wait $SP; rm -f "$OUT"
