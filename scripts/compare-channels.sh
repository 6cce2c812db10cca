#!/usr/bin/env bash
# Django Channels (Daphne, in-memory channel layer; scripts/channels/chanapp.py, the seed
# tutorials' consumer shape) against shardcast (1 shard) over the same room-per-URL protocol
# (/ws/<room>/): each load step on a fresh pair of servers, both pinned to SERVER_CPU, the
# loadgen on LOADGEN_CPU, `run --compare` (A = Channels, B = shardcast) with rounds
# interleaved; one record per step in RECORD (results/). Everything is stopped by PID.
#
#   scripts/compare-channels.sh
#   ROUNDS=2 DURATION=3s RECORD=/tmp/smoke scripts/compare-channels.sh
#
# Environment (defaults): ROUNDS 3  DURATION 5s  WARMUP 2s  SERVER_CPU 0  LOADGEN_CPU 1
#   RECORD results  VENV /tmp/shardcast-channels/venv (django, channels, daphne from PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-5s}"; WARMUP="${WARMUP:-2s}"
SERVER_CPU="${SERVER_CPU:-0}"; LOADGEN_CPU="${LOADGEN_CPU:-1}"; RECORD="${RECORD:-results}"
VENV="${VENV:-/tmp/shardcast-channels/venv}"
TARGET="${CARGO_TARGET_DIR:-target}"
# Load steps: "name|loadgen args". Deliveries/s in the name.
STEPS=(
  "fanout-1k-100x10Hz|--scenario fanout-1k --subscribers 100 --rate 10"
  "rooms-500-at-0.5Hz|--scenario rooms-500 --rate 0.5"
  "rooms-500|--scenario rooms-500"
)

if [[ ! -x "$VENV/bin/daphne" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "django>=5.2,<5.3" "channels>=4.3,<4.4" "daphne>=4.1,<5"
fi
cargo build --release -p shardcast-server -p shardcast-loadgen --bin shardcast --bin shardcast-loadgen >&2
LG="$TARGET/release/shardcast-loadgen"
source scripts/procs-lib.sh

TMP="$(mktemp -d)"
trap 'stop_all; rm -rf "$TMP"' EXIT

for step in "${STEPS[@]}"; do
  name="${step%%|*}"; read -r -a args <<< "${step#*|}"
  port="$(free_port)"
  (cd scripts/channels && DJANGO_SETTINGS_MODULE=chanapp exec taskset -c "$SERVER_CPU" \
     "$VENV/bin/daphne" -b 127.0.0.1 -p "$port" chanapp:application) >"$TMP/daphne.log" 2>&1 &
  CH_PID=$!; PIDS+=("$CH_PID")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  taskset -c "$SERVER_CPU" "$TARGET/release/shardcast" --shards 1 --no-demo --listen 127.0.0.1:0 >"$TMP/sc.out" 2>&1 &
  SC_PID=$!; PIDS+=("$SC_PID")
  for _ in $(seq 100); do grep -q "listening on" "$TMP/sc.out" && break; sleep 0.05; done
  sc_addr="$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$TMP/sc.out" | head -1)"
  echo "== $name: channels pid $CH_PID port $port, shardcast pid $SC_PID on $sc_addr" >&2
  record=(); [[ -n "$RECORD" ]] && record=(--record "$RECORD")
  taskset -c "$LOADGEN_CPU" "$LG" run --compare "ws://127.0.0.1:$port/ws/{room}/" "ws://$sc_addr/ws/{room}/" \
    --server-pids "$CH_PID,$SC_PID" "${args[@]}" --rounds "$ROUNDS" --warmup "$WARMUP" --duration "$DURATION" \
    --cpus 1 --quiet "${record[@]}" \
    --note "step $name; A = Django Channels $("$VENV/bin/python" -c 'import channels,django,daphne;print(channels.__version__, "on Django", django.__version__, "Daphne", daphne.__version__)') (scripts/channels/chanapp.py, InMemoryChannelLayer), taskset -c $SERVER_CPU" \
    --note "B = shardcast --shards 1 --no-demo, taskset -c $SERVER_CPU; loadgen taskset -c $LOADGEN_CPU; fresh servers per step" || true
  stop_all
done
