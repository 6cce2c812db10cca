#!/bin/bash
# compare.sh OLD_BIN NEW_BIN SCENARIO ROUNDS [ws|room] [loadgen args...]: both servers fresh,
# pinned to core 0, loadgen on core 1, `run --compare` interleaved; records into results/.
set -u
A=$1; B=$2; SC=$3; R=$4; KIND=${5:-ws}; shift 5 || shift $#
T=${CARGO_TARGET_DIR:-$(pwd)/target}
OA=$(mktemp); OB=$(mktemp)
taskset -c 0 "$A" --shards 1 --no-demo --listen 127.0.0.1:0 > "$OA" 2>&1 &
PA=$!
taskset -c 0 "$B" --shards 1 --no-demo --listen 127.0.0.1:0 > "$OB" 2>&1 &
PB=$!
for i in $(seq 200); do grep -q "listening on" "$OA" && grep -q "listening on" "$OB" && break; sleep 0.1; done
AA=$(grep -o 'listening on [^ ]*' "$OA" | awk '{print $3}'); AB=$(grep -o 'listening on [^ ]*' "$OB" | awk '{print $3}')
if [ "$KIND" = room ]; then UA="ws://$AA/ws/{room}/"; UB="ws://$AB/ws/{room}/"; else UA="ws://$AA/ws"; UB="ws://$AB/ws"; fi
taskset -c 1 "$T/release/shardcast-loadgen" run --scenario "$SC" --compare "$UA" "$UB" --server-pids $PA,$PB \
  --rounds "$R" --cpus 1 --quiet --record results --note "A = $(basename $A) (before), B = $(basename $B) (after); each --shards 1 --no-demo on core 0, loadgen on core 1" "$@"
kill -INT $PA $PB; wait $PA $PB; rm -f "$OA" "$OB"
