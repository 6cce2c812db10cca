# rooms-500-run.sh, sourced by counters.sh here and by ../2026-11-30-issue8-history/{lgcs,nstat}.sh:
# with $name and $bin (uws or a shardcast binary) set, starts that server on core 0 and a
# rooms-500 room-per-URL loadgen run (2 s warm-up, 10 s window) on core 1, in /tmp/cs, and
# returns 6 s later, 4 s into the window, with $pid (server), $lg (loadgen) and $ADDR set.
# `finish` then waits for the run and stops the server by PID.
LG=/work/main/target/release/shardcast-loadgen; cd /tmp/cs || exit 1
if [ "$bin" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > $name.srv.log 2>&1 & pid=$!
else taskset -c 0 $bin --shards 1 --no-demo --listen 127.0.0.1:0 > $name.srv.log 2>&1 & pid=$!; fi
for i in $(seq 100); do grep -q 'listening on' $name.srv.log && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' $name.srv.log | head -1)
taskset -c 1 "$LG" run --scenario rooms-500 --url-template "ws://$ADDR/ws/{room}/" --duration 10s --warmup 2s --cpus 1 --server-pid $pid --quiet > $name.lg.log 2>&1 & lg=$!
sleep 6
finish() { wait $lg; kill $pid; wait $pid 2>/dev/null; }
