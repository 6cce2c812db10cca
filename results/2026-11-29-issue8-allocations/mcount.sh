#!/bin/bash
# mcount.sh BIN: allocator calls (libc malloc/free/realloc uprobes) per published message on the
# shard thread at rooms-500, counted against recvfrom (one per published message). Needs
# `perf probe -x /lib/x86_64-linux-gnu/libc.so.6 --add malloc --add free --add realloc` once,
# and /tmp/prof. CG="--call-graph dwarf,8192" records the callers.
cd /tmp/prof
taskset -c 0 $1 --shards 1 --no-demo --listen 127.0.0.1:0 > m.srv.log 2>&1 &
SP=$!
sleep 1
ADDR=$(grep -o '127.0.0.1:[0-9]*' m.srv.log | head -1)
taskset -c 1 /work/main/target/release/shardcast-loadgen run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 8s --warmup 1s --cpus 1 > m.lg.log 2>&1 &
LP=$!
sleep 5
TIDS=$(for t in /proc/$SP/task/*; do [ "$(cat $t/comm)" = shard-0-1 ] && basename $t; done | paste -sd,)
echo "tids $TIDS"
perf record -q -e probe_libc:malloc -e probe_libc:free -e probe_libc:realloc -e syscalls:sys_enter_recvfrom ${CG:-} -t $TIDS -o /tmp/prof/malloc.data -- sleep 2 > /dev/null 2> m.perf.err
wait $LP; kill $SP; wait $SP 2>/dev/null
perf script -i /tmp/prof/malloc.data -F event 2>/dev/null | sort | uniq -c
