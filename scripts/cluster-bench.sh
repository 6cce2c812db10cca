#!/usr/bin/env bash
# Cluster figures (issue 9): a NATS JetStream broker and 3 shardcast nodes (--nats), plus one
# node without --nats as the baseline, measured by one loadgen process (one clock) over
# several targets (`run --url A,B,C --publish-node K --subscribe-nodes LIST`).
#
#   scripts/cluster-bench.sh                       # all parts (about 6 minutes)
#   PARTS="latency failover" DURATION=5s scripts/cluster-bench.sh
#
# Parts (each recorded as RECORD/<UTC date-time>-cluster-<part>/ with a README, the loadgen's
# stdout per run (*.txt) and its JSON (*.json)):
#   latency     rooms-500 (LAT_PUBS 500 vehicles at 2 Hz, each into its own room, 4 subscribers
#               per room) on the solo node; on the cluster with publishers and subscribers on
#               node 0 (same-node); publishers on node 0 and subscribers on nodes 1 and 2
#               (cross-node). Each run on fresh rooms (its own room prefix), as the solo node
#               starts empty; then cross-node once more on the rooms the previous run filled
#               (cross-node-again: subscribing to rooms with retained history).
#   hot         1 room × HOT_SUBS (600) subscribers, 1 publisher at HOT_RATE (20) Hz: solo node;
#               cluster with the subscribers spread over the 3 nodes (publisher on node 0).
#   throughput  `capacity` into one room: TP_PUBS (6) publishers spread over the 3 nodes and 3
#               subscribers (one per node); the same with every publisher on node 0; and on
#               the solo node. Several publishers because one /ws connection may publish at
#               most 2,000/s (the server's per-connection rate limit).
#               Per step: acknowledged publishes per second, deliveries, p99; the highest
#               step with p99 <= SLO_MS (100) and no loss.
#   failover    FO_PUBS (10) publishers at FO_RATE (20) Hz into 10 rooms, 60 subscribers, all
#               spread over the 3 nodes; node 2 is SIGKILLed KILL_AT (5s) into the window.
#               Per surviving node: loss, seq holes, acknowledged-but-undelivered, latency.
#   burst       a subscription burst on rooms another node filled: rooms-500 same-node on node 0
#               (fills 500 fresh rooms), then cross-node on the same rooms (nodes 1 and 2 take
#               their first interest in 500 rooms with retained history, 1,000 subs each).
#               Reports sub failures and the nodes' shardcast_broker_failed_total.
#
# Pinning: nats-server and every shardcast node on SERVER_CPU (0), the loadgen on LOADGEN_CPU (1)
# (the machine this was written for has 2 cores): the cluster's 4 processes share one core, as
# the solo node has one core. All processes are started here and stopped by PID on exit.
#
# Environment (defaults): PARTS "latency hot throughput failover burst"  WARMUP 2s  DURATION 10s
#   SERVER_CPU 0  LOADGEN_CPU 1  RECORD results  LAT_PUBS 500  HOT_SUBS 600  HOT_RATE 20
#   TP_PUBS 6  RATES "50,100,150,200,300,400,600,800,1200,1600" (Hz per publisher)
#   SLO_MS 100  FO_PUBS 10  FO_RATE 20
#   FO_DURATION 15s  KILL_AT 5s (seconds into the window)
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS="${PARTS:-latency hot throughput failover burst}"
WARMUP="${WARMUP:-2s}"
DURATION="${DURATION:-10s}"
SERVER_CPU="${SERVER_CPU:-0}"
LOADGEN_CPU="${LOADGEN_CPU:-1}"
RECORD="${RECORD:-results}"
LAT_PUBS="${LAT_PUBS:-500}"
TP_PUBS="${TP_PUBS:-6}"
HOT_SUBS="${HOT_SUBS:-600}"
HOT_RATE="${HOT_RATE:-20}"
RATES="${RATES:-50,100,150,200,300,400,600,800,1200,1600}"
SLO_MS="${SLO_MS:-100}"
FO_PUBS="${FO_PUBS:-10}"
FO_RATE="${FO_RATE:-20}"
FO_DURATION="${FO_DURATION:-15s}"
KILL_AT="${KILL_AT:-5}"
TARGET="${CARGO_TARGET_DIR:-target}"
ulimit -n "$(ulimit -Hn)"

cargo build --release -p shardcast-server -p shardcast-loadgen --bin shardcast --bin shardcast-loadgen >&2
SC="$TARGET/release/shardcast"
LG="$TARGET/release/shardcast-loadgen"

TMP="$(mktemp -d)"
source scripts/procs-lib.sh
cleanup() {
  stop_all
  rm -rf "$TMP"
}
trap cleanup EXIT


# start_node NAME ARGS... → STARTED_PID, STARTED_ADDR (from its "listening on ADDR" line).
start_node() {
  local name="$1"; shift
  taskset -c "$SERVER_CPU" "$SC" --shards 1 --no-demo --listen 127.0.0.1:0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  for _ in $(seq 200); do
    grep -qs "listening on" "$TMP/$name.out" "$TMP/$name.err" && break
    kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 0.05
  done
  STARTED_ADDR="$(cat "$TMP/$name.out" "$TMP/$name.err" | sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' | head -1)"
  if [[ -z "$STARTED_ADDR" ]]; then
    echo "$name did not start:" >&2; cat "$TMP/$name.out" "$TMP/$name.err" >&2; exit 1
  fi
  echo "$name: pid $STARTED_PID on $STARTED_ADDR (cpu $SERVER_CPU) $*" >&2
}

# A cluster node's broker counters "published conflicts failed filled" from /metrics (0s if gone).
broker() {
  curl -s -m 2 "http://$1/metrics" | awk '
    /^shardcast_broker_published_total /{p=$2} /^shardcast_broker_conflicts_total /{c=$2}
    /^shardcast_broker_failed_total /{f=$2} /^shardcast_broker_filled_total /{h=$2}
    END{printf "%d %d %d %d", p, c, f, h}' || echo "0 0 0 0"
}

# CPU ticks (utime + stime, 1/100 s) of a process, 0 once it is gone.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

NATS_PORT="$(free_port)"
mkdir -p "$TMP/js"
taskset -c "$SERVER_CPU" nats-server -js -sd "$TMP/js" -a 127.0.0.1 -p "$NATS_PORT" >"$TMP/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
echo "nats-server: pid $NATS_PID on 127.0.0.1:$NATS_PORT (cpu $SERVER_CPU)" >&2
NATS="nats://127.0.0.1:$NATS_PORT"

declare -a NODE_PID NODE_ADDR NODE_URL
for k in 0 1 2; do
  start_node "node$k" --nats "$NATS" --node-id "n$k"
  NODE_PID[k]=$STARTED_PID; NODE_ADDR[k]=$STARTED_ADDR; NODE_URL[k]="ws://$STARTED_ADDR/ws"
done
start_node solo
SOLO_PID=$STARTED_PID; SOLO_URL="ws://$STARTED_ADDR/ws"
CLUSTER="${NODE_URL[0]},${NODE_URL[1]},${NODE_URL[2]}"

COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!results' || echo ' (dirty)')"
NATS_VERSION="$(nats-server --version)"

# new_dir PART → DIR (RECORD/<date>-cluster-PART) with the README's head.
new_dir() {
  DIR="$RECORD/$(date -u +%Y-%m-%d-%H%M%S)-cluster-$1"
  mkdir -p "$DIR"
  {
    echo "# cluster-$1"
    echo
    echo "Recorded by \`scripts/cluster-bench.sh\` (PARTS=$1 WARMUP=$WARMUP DURATION=$DURATION)."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| machine | $(nproc --all) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), loopback, $(free -g | awk '/Mem:/{print $2}') GiB; shared with other work, so compare within one folder |"
    echo "| commit | $COMMIT |"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M:%S') |"
    echo "| load average at start | $(cut -d" " -f1-3 /proc/loadavg) (2 cores; another helper's work ran at the same time) |"
    echo "| broker | $NATS_VERSION, started as \`nats-server -js -sd TMPDIR -a 127.0.0.1 -p $NATS_PORT\` (pid $NATS_PID) |"
    echo "| cluster nodes | \`shardcast --shards 1 --no-demo --listen 127.0.0.1:0 --nats $NATS --node-id nK\`: n0 ${NODE_URL[0]} (pid ${NODE_PID[0]}), n1 ${NODE_URL[1]} (pid ${NODE_PID[1]}), n2 ${NODE_URL[2]} (pid ${NODE_PID[2]}) |"
    echo "| baseline | \`shardcast --shards 1 --no-demo --listen 127.0.0.1:0\` (no --nats): $SOLO_URL (pid $SOLO_PID) |"
    echo "| pinning | nats-server and all shardcast nodes \`taskset -c $SERVER_CPU\` (they share one core); loadgen \`taskset -c $LOADGEN_CPU --cpus $LOADGEN_CPU\` |"
    echo
  } >"$DIR/README.md"
}

# lg NAME ARGS...: runs the loadgen, stdout to DIR/NAME.txt and JSON to DIR/NAME.json; appends
# the command, the server CPU per process over the run, and the output to the README.
lg() {
  local name="$1"; shift
  local pids=("$NATS_PID" "${NODE_PID[@]}" "$SOLO_PID") before=() after=() i
  for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
  local bb=() ba=() k
  for k in 0 1 2; do bb+=("$(broker "${NODE_ADDR[k]}")"); done
  echo "== $name: $LG $*" >&2
  taskset -c "$LOADGEN_CPU" "$LG" "$@" --cpus "$LOADGEN_CPU" --quiet --json "$DIR/$name.json" | tee "$DIR/$name.txt"
  for p in "${pids[@]}"; do after+=("$(ticks "$p")"); done
  for k in 0 1 2; do ba+=("$(broker "${NODE_ADDR[k]}")"); done
  local brk=""
  for k in 0 1 2; do
    brk+="n$k $(awk -v a="${bb[k]}" -v b="${ba[k]}" 'BEGIN{split(a,x," "); split(b,y," ");
      if (y[1] + y[2] + y[3] + y[4] == 0 && x[1] + x[2] + x[3] + x[4] > 0) { printf "gone"; exit }
      printf "published %d, conflicts %d, failed %d, filled %d", y[1]-x[1], y[2]-x[2], y[3]-x[3], y[4]-x[4]}'); "
  done
  local cpu="" labels=(nats n0 n1 n2 solo)
  for i in "${!pids[@]}"; do
    cpu+="${labels[i]} $(awk -v a="${before[i]}" -v b="${after[i]}" 'BEGIN{printf "%.2f", (b-a)/100}') CPU-s, "
  done
  {
    echo "## $name"
    echo
    echo '```'
    echo "taskset -c $LOADGEN_CPU $LG $* --cpus $LOADGEN_CPU --quiet --json $DIR/$name.json"
    echo '```'
    echo
    echo "Server CPU over the whole command (setup and drain included): ${cpu%, }."
    echo
    echo "Cluster nodes' broker counters over the command (/metrics shardcast_broker_*_total, after − before; \"gone\" once killed): ${brk%; }."
    echo
    echo '```'
    cat "$DIR/$name.txt"
    echo '```'
    echo
  } >>"$DIR/README.md"
}

common=(--warmup "$WARMUP" --duration "$DURATION")

# lat_toml PREFIX → DIR/PREFIX.toml: rooms-500 (with LAT_PUBS vehicles) on rooms PREFIX:<id>.
lat_toml() {
  cat >"$DIR/$1.toml" <<EOF
name = "rooms-$LAT_PUBS-$1"
description = "rooms-500 on fresh rooms: $LAT_PUBS vehicles at 2 Hz, each into $1:<id>; 4 subscribers per room"
[[publishers]]
kind = "vehicle"
count = $LAT_PUBS
rate = 2.0
rooms = ["$1:{id}"]
[[subscribers]]
count = $((LAT_PUBS * 4))
room = "$1:{id}"
ids = $LAT_PUBS
per_client = 1
stride = 1
EOF
}

part_latency() {
  new_dir latency
  local run
  for run in solo same cross; do lat_toml "$run"; done
  lg solo run --scenario-file "$DIR/solo.toml" --url "$SOLO_URL" "${common[@]}"
  lg same-node run --scenario-file "$DIR/same.toml" --url "$CLUSTER" --publish-node 0 --subscribe-nodes 0 "${common[@]}"
  lg cross-node run --scenario-file "$DIR/cross.toml" --url "$CLUSTER" --publish-node 0 --subscribe-nodes 1,2 "${common[@]}"
  lg cross-node-again run --scenario-file "$DIR/cross.toml" --url "$CLUSTER" --publish-node 0 --subscribe-nodes 1,2 "${common[@]}"
}

part_hot() {
  new_dir hot
  cat >"$DIR/hot.toml" <<EOF
name = "hot-room"
description = "1 room, $HOT_SUBS subscribers, 1 publisher at $HOT_RATE Hz"
[[publishers]]
kind = "vehicle"
count = 1
rate = $HOT_RATE
rooms = ["hot:room"]
[[subscribers]]
count = $HOT_SUBS
room = "hot:room"
EOF
  lg solo run --scenario-file "$DIR/hot.toml" --url "$SOLO_URL" "${common[@]}"
  lg cluster-spread run --scenario-file "$DIR/hot.toml" --url "$CLUSTER" --publish-node 0 "${common[@]}"
}

part_throughput() {
  new_dir throughput
  cat >"$DIR/one-room.toml" <<EOF
name = "one-room"
description = "$TP_PUBS publishers into one room, 3 subscribers"
[[publishers]]
kind = "sensor"
count = $TP_PUBS
rate = 100.0
rooms = ["tp:room"]
[[subscribers]]
count = 3
room = "tp:room"
EOF
  local c=(--scenario-file "$DIR/one-room.toml" --rates "$RATES" --slo-ms "$SLO_MS" "${common[@]}")
  lg solo capacity --url "$SOLO_URL" "${c[@]}"
  lg cluster-3-nodes capacity --url "$CLUSTER" "${c[@]}"
  lg cluster-1-node capacity --url "$CLUSTER" --publish-node 0 "${c[@]}"
}

part_failover() {
  new_dir failover
  cat >"$DIR/failover.toml" <<EOF
name = "failover"
description = "$FO_PUBS publishers at $FO_RATE Hz, one room each; 6 subscribers per room"
[[publishers]]
kind = "vehicle"
count = $FO_PUBS
rate = $FO_RATE
rooms = ["fo:{id}"]
[[subscribers]]
count = $((FO_PUBS * 6))
room = "fo:{id}"
ids = $FO_PUBS
per_client = 1
stride = 1
EOF
  # Publisher i and subscriber client i go to node i % 3 and room i % FO_PUBS. With FO_PUBS
  # not a multiple of 3 (10), room r's 6 subscribers (clients r, r+10, ...) are on nodes r,
  # r+1, r+2 (mod 3), two per node, so every node receives every room's messages (a multiple
  # of 3 would put a room's publisher and all its subscribers on one node).
  if (( FO_PUBS % 3 == 0 )); then echo "FO_PUBS must not be a multiple of 3" >&2; exit 1; fi
  local w="${WARMUP%s}"
  ( sleep "$(awk -v w="$w" -v k="$KILL_AT" 'BEGIN{print w + k + 1}')"
    kill -KILL "${NODE_PID[2]}" && echo "SIGKILL node 2 (pid ${NODE_PID[2]}) at $(date -u +%H:%M:%S.%N)" >&2 ) &
  local killer=$!
  lg kill-node-2 run --scenario-file "$DIR/failover.toml" --url "$CLUSTER" --warmup "$WARMUP" --duration "$FO_DURATION" --drain 5s
  wait "$killer" || true
  {
    echo "Node 2 (pid ${NODE_PID[2]}) was sent SIGKILL about $KILL_AT s into the window (the loadgen's"
    echo "setup takes a fraction of a second, counted in the '+1 s' of the sleep). Its clients see"
    echo "disconnects; its publishers' later sends are 'skipped'. What matters is nodes 0 and 1."
    echo
  } >>"$DIR/README.md"
}

part_burst() {
  new_dir burst
  lat_toml burst
  lg fill-on-node-0 run --scenario-file "$DIR/burst.toml" --url "$CLUSTER" --publish-node 0 --subscribe-nodes 0 "${common[@]}"
  lg subscribe-on-nodes-1-2 run --scenario-file "$DIR/burst.toml" --url "$CLUSTER" --publish-node 0 --subscribe-nodes 1,2 "${common[@]}"
}

for part in $PARTS; do
  "part_$part"
  echo "recorded in $DIR" >&2
done
