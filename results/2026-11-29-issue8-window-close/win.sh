#!/usr/bin/env bash
set -u
name=$1; scen=$2; shift 2
LG=/work/main/target/release/shardcast-loadgen
cd /tmp/prof
taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario $scen --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 4
for i in $(seq 60); do curl -s http://$ADDR/metrics | grep -E '^shardcast_coalesce_window_microseconds' | awk '{printf "%s ", $2}'; sleep 0.1; done > $name.win; echo >> $name.win
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'server CPU' $name.lg.log)"; grep latency $name.lg.log | head -1; cat $name.win
