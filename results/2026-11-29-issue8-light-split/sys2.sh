#!/usr/bin/env bash
# usage: sys2.sh NAME CMD...   (server command printing "listening on ADDR")
set -u
name=$1; shift
LG=/work/main/target/release/shardcast-loadgen
cd /tmp/prof
taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario ${SCEN:-rooms-500} --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
perf stat -e 'syscalls:sys_enter_*' -e context-switches,task-clock -p $pid -- sleep 5 2> $name.stat
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name"; grep -E 'lost|p99|cpu' $name.lg.log | head -5
awk '$1 ~ /^[0-9,.]+$/ {gsub(",","",$1); if ($1+0 > 100) printf "%-45s %10.0f  %.2f/msg\n", $2, $1, $1/5000}' $name.stat
