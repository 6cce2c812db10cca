#!/bin/bash
# probes.sh NAME uws|BIN: like ../2026-11-30-issue8-memory-3/counters.sh, plus uprobe counts of libc clock_gettime and
# malloc (first: perf probe -x /lib/x86_64-linux-gnu/libc.so.6 clock_gettime; and malloc). Run from /tmp/cs.
name=$1; bin=$2; LG=/work/main/target/release/shardcast-loadgen; cd /tmp/cs
if [ "$bin" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > $name.srv.log 2>&1 & pid=$!
else taskset -c 0 $bin --shards 1 --no-demo --listen 127.0.0.1:0 > $name.srv.log 2>&1 & pid=$!; fi
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
tid=$pid; [ "$bin" != uws ] && tid=$(for t in /proc/$pid/task/*; do echo "$(cut -d" " -f1 $t/schedstat) $(basename $t)"; done | sort -n | tail -1 | cut -d" " -f2)
perf stat -e context-switches,task-clock,probe_libc:clock_gettime,probe_libc:malloc,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_pwait2,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_timerfd_settime,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_futex,syscalls:sys_enter_mprotect -t $tid -- sleep 4 2> $name.stat
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name tid $tid $(grep -o 'lost [0-9]*' $name.lg.log | head -1)"
grep -E 'syscalls|context|task-clock|probe' $name.stat | awk '$1 != "0" {gsub(",","",$1); printf "%-45s %10s  %.3f/msg\n", $2, $1, $1/4000}'
