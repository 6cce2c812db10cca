#!/usr/bin/env bash
# ipi.sh NAME SCEN (uws | BIN ARGS...): IPIs and wake-ups per published message, 4 s from 5 s in.
set -u
name=$1; scen=$2; shift 2
LG=/work/main/target/release/shardcast-loadgen
mkdir -p /tmp/ipi && cd /tmp/ipi || exit 1
if [ "$1" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > $name.srv.log 2>&1 & pid=$!
else taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!; fi
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario $scen --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
perf stat -a -A -x, -e ipi:ipi_send_cpu,irq_vectors:reschedule_entry,irq_vectors:call_function_single_entry,sched:sched_wakeup,context-switches -- sleep 4 2> $name.stat >/dev/null
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'server CPU' $name.lg.log | sed 's/ \+/ /g') $(grep -E 'latency ' $name.lg.log | sed 's/ \+/ /g')"
awk -F, '{printf "  %s %s %.2f/msg\n", $1, $4, $2/4000}' $name.stat
