#!/usr/bin/env bash
# ab.sh BIN_A BIN_B SCENARIO ROUNDS [record-dir] [extra loadgen args]
# WSPATH=/ws compares over the multiplexed protocol (default: room-per-URL /ws/{room}/); prints
# each round, then the medians; the loadgen's whole output is left in $OUT/ab.raw.
set -u
A=$1; B=$2; scen=$3; rounds=$4; rec=${5:-}; shift 5 || shift $#
# Run from the repository root with absolute binary paths; logs go to $OUT.
LG="${LG:-$PWD/target/release/shardcast-loadgen}"
OUT="${OUT:-/tmp}"; cd "$OUT"
DEFP='/ws/{room}/'; P=${WSPATH:-$DEFP}
start() { taskset -c 0 "$1" --shards 1 --no-demo --listen 127.0.0.1:0 > $2.log 2>&1 & echo $! > $2.pid
  for i in $(seq 100); do grep -q 'listening on' $2.log && break; sleep 0.05; done
  sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $2.log | head -1; }
if [ "$A" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > a.log 2>&1 & echo $! > a.pid; sleep 1; AA=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' a.log|head -1); else AA=$(start $A a); fi
BB=$(start $B b)
extra=""; [ "$scen" = fanout-1k ] && extra="--rate ${RATE:-100}"; [ "$scen" = fanout-5k ] && extra="--rate 20"
r=""; [ -n "$rec" ] && r="--record $rec"
taskset -c 1 "$LG" run --compare "ws://$AA$P" "ws://$BB$P" --server-pids $(cat a.pid),$(cat b.pid) --scenario $scen $extra --rounds $rounds --warmup 2s --duration 10s --cpus 1 --quiet $r "$@" 2>&1 | tee $OUT/ab.raw | sed -n -e '/^round [0-9]/p' -e '/medians over/,/last\/first/p'
kill $(cat a.pid) $(cat b.pid); wait 2>/dev/null
