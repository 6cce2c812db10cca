#!/usr/bin/env bash
# uWebSockets.js (npm `uwebsockets`, Node) against shardcast (1 shard): the same scenarios over
# the same protocol — room-per-URL (/ws/<room>/) and/or the multiplexed /ws, whose benchmark
# subset scripts/uws/server.js also speaks — both servers pinned to SERVER_CPU, the loadgen
# to LOADGEN_CPU. One `run --compare` per scenario (A = uWS, B = shardcast), rounds interleaved
# A B A B on the same two server processes, each side's server CPU, CPU µs per delivery and
# RSS measured through --server-pids; one record per scenario in RECORD (results/).
#
#   scripts/compare-uws.sh
#   ROUNDS=2 DURATION=3s SCENARIOS=rooms-500 RECORD=/tmp/smoke scripts/compare-uws.sh
#   PROTOCOLS="per-room ws" SCENARIOS=rooms-500 scripts/compare-uws.sh
#
# Environment (defaults):
#   SCENARIOS  "rooms-500 fanout-1k fanout-5k hot-100" (names; fanout-1k runs at --rate 100,
#              fanout-5k at --rate 20, others at their preset rates)
#   PROTOCOLS "per-room" (space-separated: per-room = /ws/<room>/, ws = multiplexed /ws)
#   ROUNDS 5   DURATION 10s   WARMUP 2s   (per run; each round runs A then B)
#   SERVER_CPU 0   LOADGEN_CPU 1   RECORD results (empty: no record)
#   UWS_DIR /tmp/shardcast-uws (scratch folder for the npm package)
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIOS="${SCENARIOS:-rooms-500 fanout-1k fanout-5k hot-100}"
PROTOCOLS="${PROTOCOLS:-per-room}"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
SERVER_CPU="${SERVER_CPU:-0}"
LOADGEN_CPU="${LOADGEN_CPU:-1}"
RECORD="${RECORD-results}"
UWS_DIR="${UWS_DIR:-/tmp/shardcast-uws}"
UWS_VERSION=3.0.6
TARGET="${CARGO_TARGET_DIR:-target}"
ulimit -n "$(ulimit -Hn)"

mkdir -p "$UWS_DIR"
[[ -d "$UWS_DIR/node_modules/uwebsockets" ]] ||
  (cd "$UWS_DIR" && npm install --silent "uwebsockets@$UWS_VERSION" >&2)
cp scripts/uws/server.js "$UWS_DIR/server.js"
cargo build --release -p shardcast-server -p shardcast-loadgen --bin shardcast --bin shardcast-loadgen >&2
LG="$TARGET/release/shardcast-loadgen"

TMP="$(mktemp -d)"
source scripts/procs-lib.sh
cleanup() {
  stop_all
  rm -rf "$TMP"
}
trap cleanup EXIT

# start NAME COMMAND... → STARTED_PID, STARTED_ADDR (from the "listening on ADDR" line).
start() {
  local name="$1"; shift
  taskset -c "$SERVER_CPU" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  for _ in $(seq 200); do
    grep -q "listening on" "$TMP/$name.out" && break
    kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 0.05
  done
  STARTED_ADDR="$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$TMP/$name.out" | head -1)"
  if [[ -z "$STARTED_ADDR" ]]; then
    echo "$name did not start:" >&2; cat "$TMP/$name.out" "$TMP/$name.err" >&2; exit 1
  fi
  echo "$name: pid $STARTED_PID on $STARTED_ADDR (cpu $SERVER_CPU)" >&2
}

start uws node "$UWS_DIR/server.js" 0
UWS_PID=$STARTED_PID; UWS_ADDR=$STARTED_ADDR
start shardcast "$TARGET/release/shardcast" --shards 1 --no-demo --listen 127.0.0.1:0
SC_PID=$STARTED_PID; SC_ADDR=$STARTED_ADDR

record=(); [[ -n "$RECORD" ]] && record=(--record "$RECORD")
notes=(--note "A = uWebSockets.js (npm uwebsockets@$UWS_VERSION, node $(node --version)), scripts/uws/server.js, taskset -c $SERVER_CPU"
       --note "B = shardcast --shards 1 --no-demo, taskset -c $SERVER_CPU; loadgen taskset -c $LOADGEN_CPU"
       --note "scripts/compare-uws.sh: SCENARIOS='$SCENARIOS' ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP")
for proto in $PROTOCOLS; do
  case "$proto" in
    per-room) path="/ws/{room}/" ;;
    ws) path="/ws" ;;
    *) echo "unknown protocol '$proto' (per-room or ws)" >&2; exit 2 ;;
  esac
  A="ws://$UWS_ADDR$path"; B="ws://$SC_ADDR$path"
  for sc in $SCENARIOS; do
    case "$sc" in
      fanout-1k) extra=(--rate 100) ;;
      fanout-5k) extra=(--rate 20) ;;
      *) extra=() ;;
    esac
    echo "== $sc ($proto) ${extra[*]}" >&2
    taskset -c "$LOADGEN_CPU" "$LG" run --compare "$A" "$B" --server-pids "$UWS_PID,$SC_PID" \
      --scenario "$sc" "${extra[@]}" --rounds "$ROUNDS" --warmup "$WARMUP" --duration "$DURATION" \
      --cpus 1 --quiet "${notes[@]}" --note "protocol: $proto ($A vs $B)" "${record[@]}"
  done
done
