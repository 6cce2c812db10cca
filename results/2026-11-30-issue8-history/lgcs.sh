#!/bin/bash
# lgcs.sh NAME uws|BIN: context switches and CPU of the loadgen and the server per published message, 4 s of rooms-500
name=$1; bin=$2; LG=/work/main/target/release/shardcast-loadgen; cd /tmp/cs
if [ "$bin" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > $name.srv.log 2>&1 & pid=$!
else taskset -c 0 $bin --shards 1 --no-demo --listen 127.0.0.1:0 > $name.srv.log 2>&1 & pid=$!; fi
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
perf stat -e context-switches,task-clock,cpu-migrations -p $lg -- sleep 4 2> $name.lg.stat &
perf stat -e context-switches,task-clock -p $pid -- sleep 4 2> $name.sv.stat
wait $lg; kill $pid; wait $pid 2>/dev/null
for f in lg sv; do awk -v w=$f -v n=$name '/context-switches|task-clock/{gsub(",","",$1); printf "%s %s %-18s %10s %8.3f/msg\n", n, w, $2, $1, $1/4000}' $name.$f.stat; done
