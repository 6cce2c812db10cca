# Shared by thr.sh, ipi.sh and pf.sh: start a server (uWS or a shardcast binary) on core 0 and
# a 10 s loadgen run against it on core 1, then wait 6 s (the counters read from 5–6 s in).
# start NAME SCEN (uws | BIN ARGS...) → $pid (server), $lg (loadgen); files in /tmp/ipi/NAME.*
# finish → waits for the loadgen, stops the server by PID, prints the loadgen's CPU line.
LG=/work/main/target/release/shardcast-loadgen
mkdir -p /tmp/ipi && cd /tmp/ipi || exit 1
start() {
  name=$1; local scen=$2; shift 2
  if [ "$1" = uws ]; then taskset -c 0 node /tmp/shardcast-uws/server.js 0 > "$name.srv.log" 2>&1 & pid=$!
  else taskset -c 0 "$@" > "$name.srv.log" 2>&1 & pid=$!; fi
  for _ in $(seq 100); do grep -q 'listening on' "$name.srv.log" && break; sleep 0.05; done
  local addr; addr=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$name.srv.log" | head -1)
  taskset -c 1 "$LG" run --scenario "$scen" --url-template "ws://$addr/ws/{room}/" --duration 10s --warmup 2s \
    --cpus 1 --server-pid $pid --quiet > "$name.lg.log" 2>&1 & lg=$!
  sleep 6
}
finish() {
  wait $lg; kill $pid; wait $pid 2>/dev/null
  echo "== $name $(grep -E 'server CPU' "$name.lg.log" | sed 's/ \+/ /g') $(grep -E 'latency ' "$name.lg.log" | sed 's/ \+/ /g')"
}
