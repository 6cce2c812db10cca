#!/bin/bash
# usage: ab.sh ROUNDS RUNS DUR bin1 bin2 ... ("uws" = uWebSockets)
cd /work/main
ROUNDS=$1; RUNS=$2; DUR=$3; shift 3
for rd in $(seq $ROUNDS); do
for b in "$@"; do
  if [ "$b" = uws ]; then
    PORT=$((20000 + RANDOM % 20000))
    taskset -c 0 node /tmp/shardcast-uws/server.js $PORT > /tmp/diag/server.out 2>&1 &
    SP=$!; sleep 1; ADDR=127.0.0.1:$PORT
  else
    taskset -c 0 /tmp/diag/$b --shards 1 --no-demo --listen 127.0.0.1:0 $EXTRA > /tmp/diag/server.out 2>&1 &
    SP=$!
    for i in $(seq 50); do grep -q "listening on" /tmp/diag/server.out && break; sleep 0.1; done
    ADDR=$(grep -o 'listening on [^ ]*' /tmp/diag/server.out | awk '{print $3}')
  fi
  line="$b r$rd:"
  for r in $(seq $RUNS); do
    out=$(taskset -c 1 target/release/shardcast-loadgen run --url-template "ws://$ADDR/ws/{room}/" ${SCEN:---scenario-file /tmp/diag/light.toml} --warmup 1s --duration $DUR --quiet --server-pid $SP --cpus 1 2>&1)
    p=$(echo "$out" | grep -E '^  latency' | awk '{print $5"/"$9"/"$11}')
    c=$(echo "$out" | grep 'server CPU' | awk '{print $3}')
    l=$(echo "$out" | grep -o 'lost [0-9]*' | head -1 | awk '{print $2}')
    line="$line  [$p cpu$c L$l]"
  done
  echo "$line"
  kill -TERM $SP; wait $SP 2>/dev/null
done
done
