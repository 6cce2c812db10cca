#!/bin/bash
# anon.sh BIN ws|room|shared -> RssAnon growth per connection at 15,000 idle connections
# BIN=uws runs scripts/uws/server.js (uWebSockets.js, installed in /tmp/shardcast-uws by
# scripts/compare-uws.sh) instead; it speaks room-per-URL only.
BIN=$1; KIND=$2; N=15000  # run from the repository root
O=$(mktemp)
if [ "$BIN" = uws ]; then taskset -c 0 node "${UWS_DIR:-/tmp/shardcast-uws}/server.js" 0 > $O 2>&1 & SP=$!
else taskset -c 0 "$BIN" --shards 1 --no-demo --listen 127.0.0.1:0 > $O 2>&1 & SP=$!; fi
for i in $(seq 200); do grep -q "listening on" $O && break; sleep 0.1; done
ADDR=$(grep -o 'listening on [^ ]*' $O | awk '{print $3}')
X=""; U="--url ws://$ADDR/ws"
[ $KIND = room ] && U="--url-template ws://$ADDR/ws/{room}/"
[ $KIND = shared ] && X="--scenario-file results/2026-11-29-issue8-memory/shared-rooms.toml"
# shared-room: the same 100 subscribers per room, each joining its room by URL
[ $KIND = shared-room ] && X="--scenario-file results/2026-11-29-issue8-memory/shared-rooms.toml" && U="--url-template ws://$ADDR/ws/{room}/"
a0=$(awk '/RssAnon/{print $2}' /proc/$SP/status)
taskset -c 1 target/release/shardcast-loadgen connections -n $N $U $X --cpus 1 --duration 3s --quiet > /dev/null 2>&1 & LP=$!
mx=0; while kill -0 $LP 2>/dev/null; do a=$(awk '/RssAnon/{print $2}' /proc/$SP/status); [ $a -gt $mx ] && mx=$a; sleep 0.2; done
echo "$(basename $BIN) $KIND anon ${a0} -> ${mx} KiB: $(( (mx-a0)*1024/N )) B/conn"
kill -INT $SP; wait $SP; rm -f $O
