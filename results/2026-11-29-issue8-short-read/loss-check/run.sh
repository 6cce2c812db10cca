#!/bin/bash
# Loss check: A = sc-base (5a65071, EAGAIN-only read rule), B = HEAD (short read clears the flag, deferral);
# rooms-500 over /ws (multiplexed), 6 interleaved rounds; first with a nice-5 busy loop pinned to core 0, then without.
cd /work/main
A=/tmp/prof/sc-base; B=/tmp/prof/sc-head
for k in 1 2; do
  if [ $k = 1 ]; then taskset -c 0 nice -n 5 sh -c 'while :; do :; done' & HOG=$!; fi
  OA=$(mktemp); OB=$(mktemp)
  taskset -c 0 $A --shards 1 --no-demo --listen 127.0.0.1:0 > $OA 2>&1 &
  PA=$!
  taskset -c 0 $B --shards 1 --no-demo --listen 127.0.0.1:0 > $OB 2>&1 &
  PB=$!
  for i in $(seq 200); do grep -q "listening on" $OA && grep -q "listening on" $OB && break; sleep 0.1; done
  AA=$(grep -o 'listening on [^ ]*' $OA | awk '{print $3}'); AB=$(grep -o 'listening on [^ ]*' $OB | awk '{print $3}')
  taskset -c 1 target/release/shardcast-loadgen run --scenario rooms-500 --compare "ws://$AA/ws" "ws://$AB/ws" --server-pids $PA,$PB --rounds 6 --cpus 1 --quiet > /tmp/lossck/compare$k.txt 2>&1
  kill -INT $PA $PB; sleep 2; kill -9 $PA $PB 2>/dev/null; wait $PA $PB 2>/dev/null
  [ -n "${HOG:-}" ] && kill $HOG && unset HOG
done
echo done > /tmp/lossck/done
