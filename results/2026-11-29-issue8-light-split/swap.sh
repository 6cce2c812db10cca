#!/usr/bin/env bash
# swap.sh FIRST(uws|sc) ROUNDS SCEN — compare with the given server as A (runs first each round)
set -u
first=$1; rounds=$2; scen=${3:-rooms-500}
cd /tmp/prof
taskset -c 0 node /tmp/shardcast-uws/server.js 0 > su.log 2>&1 & up=$!
taskset -c 0 /tmp/prof/sc-final --shards 1 --no-demo --listen 127.0.0.1:0 > ss.log 2>&1 & sp=$!
sleep 1.5
UA=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' su.log|head -1); SA=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' ss.log|head -1)
if [ $first = uws ]; then A=$UA; B=$SA; P="$up,$sp"; else A=$SA; B=$UA; P="$sp,$up"; fi
taskset -c 1 /tmp/prof/lg run --compare "ws://$A/ws/{room}/" "ws://$B/ws/{room}/" --server-pids $P --scenario $scen --rounds $rounds --warmup 2s --duration 10s --cpus 1 --quiet ${REC:+--record $REC} ${NOTE:+--note "$NOTE"} 2>&1 | grep -E "^round|p99 µs|p99.9 µs|max µs|CPU µs"
kill $up $sp; wait 2>/dev/null
