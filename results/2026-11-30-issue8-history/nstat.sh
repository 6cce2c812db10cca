#!/bin/bash
# nstat.sh NAME uws|BIN: system TCP counters per published message over 4 s of rooms-500 room-per-URL
name=$1; bin=$2; LG=/work/main/target/release/shardcast-loadgen; cd /tmp/cs
if [ "$bin" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > $name.srv.log 2>&1 & pid=$!
else taskset -c 0 $bin --shards 1 --no-demo --listen 127.0.0.1:0 > $name.srv.log 2>&1 & pid=$!; fi
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6; nstat -n; sleep 4; nstat > $name.nstat
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name"; awk '$2 > 0 {printf "%-32s %9d %8.3f/msg\n", $1, $2, $2/4000}' $name.nstat | grep -E "Tcp|Ip(In|Out)" | head -40
