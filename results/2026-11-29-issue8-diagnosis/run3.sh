#!/bin/bash
# usage: run3.sh BIN N [extra server args]
cd /work/main
BIN=$1; N=$2; shift 2
taskset -c 0 $BIN --shards 1 --no-demo --listen 127.0.0.1:0 "$@" > /tmp/diag/server.out 2>&1 &
SP=$!
for i in $(seq 50); do grep -q "listening on" /tmp/diag/server.out && break; sleep 0.1; done
ADDR=$(grep -o 'listening on [^ ]*' /tmp/diag/server.out | awk '{print $3}')
echo "server $SP at $ADDR"
fdinfo() {
  for fd in /proc/$SP/fd/*; do
    if [ "$(readlink $fd)" = "anon_inode:[io_uring]" ]; then
      f=/proc/$SP/fdinfo/$(basename $fd)
      echo "  ring $(basename $fd): polls=$(grep -c 'op=6\|POLL_ADD' $f) lines=$(wc -l < $f) $(grep -E 'SqHead|CqHead|CachedSqHead' $f | tr '\n' ' ')"
    fi
  done
}
for r in $(seq $N); do
  taskset -c 1 target/release/shardcast-loadgen run --url-template "ws://$ADDR/ws/{room}/" ${SCEN:---scenario fleet} --warmup 1s --duration 10s --quiet --server-pid $SP --cpus 1 2>&1 | grep -E 'p99|lat|cpu|CPU|lost|rss|RSS' | head -12
  fdinfo
done
kill -TERM $SP; wait $SP
