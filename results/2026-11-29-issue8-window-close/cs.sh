#!/usr/bin/env bash
# usage: cs.sh NAME CMD... : context switches and syscalls of the server during rooms-500
set -u
name=$1; shift
LG=/work/main/target/release/shardcast-loadgen
cd /tmp/prof
taskset -c 0 "$@" > $name.srv.log 2>&1 & pid=$!
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 5
snap() { for t in /proc/$pid/task/*; do echo "$(cat $t/comm) $(awk '/^voluntary/{v=$2}/^nonvoluntary/{n=$2}END{print v, n}' $t/status) $(awk '{print $14, $15}' $t/stat)"; done; }
snap > $name.cs0; sleep 5; snap > $name.cs1
wait $lg; kill $pid; wait $pid 2>/dev/null
echo "== $name $(grep -E 'server CPU' $name.lg.log)"
paste $name.cs0 $name.cs1 | awk '{dv=$7-$2; dn=$8-$3; du=$9-$4; ds=$10-$5; if (dv+dn+du+ds>0) print $1, "vol/s", dv/5, "invol/s", dn/5, "utime", du, "stime", ds}'
