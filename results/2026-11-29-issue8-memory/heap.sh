#!/bin/bash
# heap.sh BIN URLKIND(ws|room) [N] [loadgen args...] -> per-connection heap breakdown at N (15,000)
# idle connections.
# Run from the repository root; the loadgen is $CARGO_TARGET_DIR/release/shardcast-loadgen
# (default target/). Work files go to ${DIAG:-/tmp/diag-mem}. Adapted from
# ../2026-11-29-issue8-diagnosis/heap.sh: paths relative to the repository, and the server is
# stopped by the PIDs this script started (heaptrack's child), not by name.
set -u
BIN=$(realpath "$1"); KIND=$2; N=${3:-15000}; shift 3 || shift $#
ROOT=$(pwd); T=${CARGO_TARGET_DIR:-$ROOT/target}; D=${DIAG:-/tmp/diag-mem}
mkdir -p "$D" && rm -f "$D"/heaptrack.sc*.zst "$D/server.out"
taskset -c 0 heaptrack -o "$D/heaptrack.sc" "$BIN" --shards 1 --no-demo --listen 127.0.0.1:0 > "$D/server.out" 2>&1 &
HP=$!
for i in $(seq 200); do grep -q "listening on" "$D/server.out" && break; sleep 0.1; done
ADDR=$(grep -o 'listening on [^ ]*' "$D/server.out" | awk '{print $3}')
if [ "$KIND" = room ]; then U="--url-template ws://$ADDR/ws/{room}/"; else U="--url ws://$ADDR/ws"; fi
taskset -c 1 "$T/release/shardcast-loadgen" connections -n "$N" $U --cpus 1 --duration 3s --quiet "$@" > /dev/null 2>&1
# heaptrack runs the server as its child (possibly under a shell): signal the process that is BIN.
for c in $(pgrep -P $HP) $(for p in $(pgrep -P $HP); do pgrep -P $p; done); do
  [ "$(readlink /proc/$c/exe)" = "$BIN" ] && kill -INT $c
done
wait $HP
heaptrack_print -f "$D"/heaptrack.sc*.zst --print-flamegraph "$D/fg.txt" --flamegraph-cost-type peak > /dev/null 2>&1
N=$N python3 - "$D/fg.txt" <<'PY'
import re, sys, os, collections
n = int(os.environ["N"]); tot = collections.Counter(); total = 0
for line in open(sys.argv[1]):
    stack, cnt = line.rsplit(' ', 1); cnt = int(cnt); total += cnt
    frames = stack.split(';'); key = None
    for f in reversed(frames):
        if re.search(r'shardcast|glommio|tungstenite|hashbrown', f):
            key = re.sub(r'::h[0-9a-f]{16}', '', f)[:120]; break
    tot[key or frames[-1][:100]] += cnt
print(f"peak heap {total/n:.0f} B/conn")
for k, v in tot.most_common(24): print(f"{v/n:8.0f} B/conn  {k}")
PY
