#!/bin/bash
# uptime.sh BIN N [server args]: N fanout-1k runs over /ws on one server process (core 0), loadgen on core 1;
# prints each run's latency, fan-out completion p50, loadgen and server CPU. PERF=1 also profiles the first and last run.
cd /work/main
BIN=$1; N=${2:-4}; shift 2; SARGS="$@"
taskset -c 0 $BIN --shards 1 --no-demo --listen 127.0.0.1:0 $SARGS > /tmp/up.srv.log 2>&1 &
SP=$!
for i in $(seq 100); do grep -q 'listening on' /tmp/up.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' /tmp/up.srv.log | head -1)
for i in $(seq $N); do
  taskset -c 1 target/release/shardcast-loadgen run --scenario fanout-1k --rate 100 --url "ws://$ADDR/ws" --duration 10s --warmup 2s --cpus 1 --server-pid $SP > /tmp/up-$i.txt 2>&1 &
  LP=$!
  if [ -n "$PERF" ] && { [ $i = 1 ] || [ $i = $N ]; }; then sleep 6; perf record -F 2000 -g -p $SP -o /tmp/up-$i.perf -- sleep 5 >/dev/null 2>&1; fi
  wait $LP
  echo "run $i: $(grep -E "latency  " /tmp/up-$i.txt | cut -c20-90) | fan-out p50 $(grep "fan-out" /tmp/up-$i.txt | awk "{print \$4}") | lg $(grep "loadgen  " /tmp/up-$i.txt | awk "{print \$4}") | $(grep "server CPU" /tmp/up-$i.txt | cut -c20-60)"
  curl -s http://$ADDR/metrics > /tmp/up-$i.metrics
done
kill $SP; wait $SP 2>/dev/null
