#!/usr/bin/env bash
# pairs.sh N BIN: N interleaved rooms-500 pairs (uWS then shardcast), server thread run time per message.
n=$1; bin=$2; here=$(cd "$(dirname "$0")" && pwd); mkdir -p /tmp/ipi && cd /tmp/ipi || exit 1
for r in $(seq $n); do
  for who in u s; do
    if [ $who = u ]; then $here/thr.sh p$who$r rooms-500 uws; else $here/thr.sh p$who$r rooms-500 $bin --shards 1 --no-demo --listen 127.0.0.1:0; fi
  done
done > pairs.out 2>&1
grep -A1 '^== p' pairs.out | awk '/^== pu/{getline; u=$2} /^== ps/{getline; s=$2; print u, s, s/u}' | tee pairs.ratios | sort -k3 -n | awk '{a[NR]=$3} END{print "median ratio", a[int((NR+1)/2)], "n", NR}'
