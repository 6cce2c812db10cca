#!/bin/bash
# swap.sh: rooms-500 room-per-URL compare with shardcast as A and uWS as B (the reverse of compare-uws.sh)
cd /tmp/swap || exit 1
LG=/work/main/target/release/shardcast-loadgen
taskset -c 0 /work/main/target/release/shardcast --shards 1 --no-demo --listen 127.0.0.1:0 > sc.log 2>&1 & sc=$!
taskset -c 0 node /tmp/shardcast-uws/server.js 0 > uws.log 2>&1 & uw=$!
for i in $(seq 100); do grep -q 'listening on' sc.log && grep -q 'listening on' uws.log && break; sleep 0.05; done
SA=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' sc.log | head -1); UA=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' uws.log | head -1)
taskset -c 1 $LG run --compare "ws://$SA/ws/{room}/" "ws://$UA/ws/{room}/" --server-pids $sc,$uw --scenario rooms-500 --rounds ${ROUNDS:-5} --warmup 2s --duration 10s --cpus 1 --quiet --note "swapped: A = shardcast, B = uWS" ${RECORD:+--record $RECORD} 2>&1 | sed -n -e '/^round [0-9]/p' -e '/medians over/,/last\/first/p'
kill $sc $uw; wait 2>/dev/null
