#!/usr/bin/env bash
# thr.sh NAME SCEN (uws | BIN ARGS...): per-thread run time (schedstat) and switches over 4 s from 5 s in.
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
snap() { for t in /proc/$pid/task/*; do echo "$(basename $t) $(cat $t/comm|tr ' ' _) $(cut -d' ' -f1,3 $t/schedstat) $(awk '/^voluntary/{v=$2}/^nonvoluntary/{n=$2}END{print v, n}' $t/status)"; done; }
snap > $name.t0; sleep 4; snap > $name.t1
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'server CPU' $name.lg.log | sed 's/ \+/ /g')"
join $name.t0 $name.t1 | awk '{run=($8-$3)/4000/1e3; if (run>0.01) printf "  %-16s %7.2f us/msg  runs %5.2f/msg  vol %5.2f/msg invol %5.2f/msg\n", $2, run, ($9-$4)/4000, ($10-$5)/4000, ($11-$6)/4000}'
