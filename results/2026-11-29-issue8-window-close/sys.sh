#!/usr/bin/env bash
set -u
name=$1; scen=$2; shift 2
LG=/work/main/target/release/shardcast-loadgen
cd /tmp/prof
taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario $scen --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 5
perf record -e syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg -p $pid -o $name.tr.data -- sleep 1 >/dev/null 2>&1
perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_pwait2,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_pwait' -p $pid -- sleep 4 2> $name.stat >/dev/null
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'server CPU' $name.lg.log)"; grep syscalls $name.stat
