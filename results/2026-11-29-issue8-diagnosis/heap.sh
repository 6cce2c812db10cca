#!/bin/bash
# heap.sh BIN URLKIND(ws|room) -> per-connection heap breakdown at 15k idle connections
cd /tmp/diag && rm -f heaptrack.sc.zst
taskset -c 0 heaptrack -o /tmp/diag/heaptrack.sc $1 --shards 1 --no-demo --listen 127.0.0.1:0 > /tmp/diag/server.out 2>&1 &
HP=$!
for i in $(seq 100); do grep -q "listening on" /tmp/diag/server.out && break; sleep 0.1; done
ADDR=$(grep -o 'listening on [^ ]*' /tmp/diag/server.out | awk '{print $3}')
if [ "$2" = room ]; then U="--url-template ws://$ADDR/ws/{room}/"; else U="--url ws://$ADDR/ws"; fi
cd /work/main && taskset -c 1 target/release/shardcast-loadgen connections -n 15000 $U --cpus 1 --duration 3s --quiet > /dev/null 2>&1
SP=$(pgrep -P $HP | head -1); [ -z "$SP" ] && SP=$(pgrep -f "$1 --shards" | tail -1)
kill -INT $SP 2>/dev/null; kill -INT $(pgrep -f "^$1 --shards") 2>/dev/null; wait $HP
cd /tmp/diag && heaptrack_print -f heaptrack.sc.zst --print-flamegraph fg.txt --flamegraph-cost-type peak >/dev/null 2>&1
python3 - <<'PY'
import re,collections
tot=collections.Counter(); total=0
for line in open('/tmp/diag/fg.txt'):
    stack,cnt=line.rsplit(' ',1); cnt=int(cnt); total+=cnt
    frames=stack.split(';'); key=None
    for f in reversed(frames):
        if re.search(r'shardcast|glommio|tungstenite|hashbrown', f):
            key=re.sub(r'::h[0-9a-f]{16}','',f)[:120]; break
    tot[key or frames[-1][:100]]+=cnt
print(f"peak heap {total/15000:.0f} B/conn")
for k,v in tot.most_common(22): print(f"{v/15000:8.0f} B/conn  {k}")
PY
