#!/bin/bash
# syscalls.sh: trace the shard threads' system calls for 2 s, 5 s into a rooms-500 run (BIN=server binary).
# Then: perf script -i /tmp/st.data -F tid,time,event,trace > t.txt; python3 count.py t.txt
BIN=${BIN:-target/release/shardcast}
env $SENV taskset -c 0 $BIN --shards 1 --no-demo --listen 127.0.0.1:0 > /tmp/st.srv.log 2>&1 &
SP=$!
sleep 1
ADDR=$(grep -o '127.0.0.1:[0-9]*' /tmp/st.srv.log | head -1)
taskset -c 1 target/release/shardcast-loadgen run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 8s --warmup 1s --cpus 1 > /tmp/st.lg.log 2>&1 &
LP=$!
sleep 5
TID=$(ls /proc/$SP/task | while read t; do n=$(cat /proc/$SP/task/$t/comm); echo "$t $n"; done | grep -i shard | head -1 | cut -d' ' -f1)
echo "threads:"; for t in /proc/$SP/task/*; do echo "$(basename $t) $(cat $t/comm)"; done
timeout 2 perf record -q -e raw_syscalls:sys_enter -e raw_syscalls:sys_exit -t $(for t in /proc/$SP/task/*; do [ "$(cat $t/comm)" = shard-0-1 ] && echo -n "$(basename $t),"; done | sed "s/,$//") -o /tmp/st.data 2>/dev/null
wait $LP
kill $SP; wait $SP 2>/dev/null
tail -3 /tmp/st.lg.log
