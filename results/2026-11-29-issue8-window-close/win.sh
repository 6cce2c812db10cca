#!/usr/bin/env bash
# usage: win.sh NAME SCENARIO CMD... : the coalescing window gauge every 100 ms for 6 s, from 4 s in.
set -u
. "$(dirname "$0")/lib.sh"
name=$1; scen=$2; shift 2
start "$name" "$scen" "" "$@"
sleep 4
for i in $(seq 60); do
  curl -s http://$ADDR/metrics | grep -E '^shardcast_coalesce_window_microseconds' | awk '{printf "%s ", $2}'; sleep 0.1
done > $name.win; echo >> $name.win
finish; grep latency $name.lg.log | head -1; cat $name.win
