#!/usr/bin/env bash
set -u
name=$1; bin=$2
# Run from the repository root with absolute binary paths; logs go to $OUT.
LG="${LG:-$PWD/target/release/shardcast-loadgen}"
OUT="${OUT:-/tmp}"; cd "$OUT"
taskset -c 0 $bin --shards 1 --no-demo --listen 127.0.0.1:0 > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 7
perf stat -e syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_fcntl,syscalls:sys_enter_close,context-switches -p $pid -- sleep 5 2> $name.stat
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'lost' $name.lg.log | grep -o 'lost [0-9]*')"
grep -E 'syscalls|context' $name.stat | awk '{printf "%-45s %8d  %.2f/msg\n", $2, $1, $1/5000}'
