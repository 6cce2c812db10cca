#!/usr/bin/env bash
# pf.sh NAME (uws | BIN ARGS...): page faults and memory syscalls per published message, 4 s of rooms-500 from 5 s in
set -u
name=$1; shift
LG=/work/main/target/release/shardcast-loadgen
mkdir -p /tmp/ipi && cd /tmp/ipi || exit 1
if [ "$1" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > $name.srv.log 2>&1 & pid=$!
else taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!; fi
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
perf stat -x, -e page-faults,syscalls:sys_enter_brk,syscalls:sys_enter_madvise,syscalls:sys_enter_munmap,syscalls:sys_enter_mmap,syscalls:sys_enter_mprotect -p $pid -- sleep 4 2> $name.pf >/dev/null
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'server CPU' $name.lg.log | sed 's/ \+/ /g')"
awk -F, '{printf "  %s %.3f/msg\n", $3, $1/4000}' $name.pf
