#!/usr/bin/env bash
set -u
name=$1; shift
cd /tmp/prof
taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 /tmp/prof/lg run --scenario ${SCEN:-hot-100} --url-template "ws://$ADDR/ws/{room}/" --duration 8s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 5
perf record ${PG:-} -e syscalls:sys_enter_sendmsg,syscalls:sys_exit_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_exit_sendto -p $pid -o $name.pt.data -- sleep 2 >/dev/null 2>&1
wait $lg; kill $pid; wait $pid 2>/dev/null
perf script -i $name.pt.data -F time,event,trace 2>/dev/null > $name.pt.txt
grep -E 'latency  |server CPU' $name.lg.log
