#!/bin/bash
# idle.sh uws|BIN: the serving thread's context switches over 5 s with no clients
bin=$1; if [ "$bin" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > idle.log 2>&1 & pid=$!
else taskset -c 0 $bin --shards 1 --no-demo --listen 127.0.0.1:0 > idle.log 2>&1 & pid=$!; fi
sleep 2
tid=$pid; [ "$bin" != uws ] && tid=$(ls /proc/$pid/task | while read t; do grep -q '^shard-0' /proc/$pid/task/$t/comm && echo $t; done | head -1)
perf stat -e context-switches -t $tid -- sleep 5 2>&1 | awk -v b="$(basename $bin)" '/context-switches/{gsub(",","",$1); print b, "tid", "'$tid'", $1/5, "wake-ups/s idle"}'
kill $pid; wait $pid 2>/dev/null
