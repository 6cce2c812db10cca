#!/usr/bin/env bash
# usage: rec.sh NAME SCEN URLTEMPLATE_SUFFIX CMD...
set -u
name=$1; scen=$2; shift 2
LG=/work/main/target/release/shardcast-loadgen
cd /tmp/prof
taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario $scen --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
perf record -F ${FREQ:-2000} ${CG:--g} -o $name.perf.data -p $pid -- sleep 5 2> /dev/null >/dev/null
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name"; grep -E 'lost|latency  |server CPU' $name.lg.log | head -5
