#!/usr/bin/env bash
# Tracking figures (issue 11): `shardcast-loadgen tracking` in its three modes, each against a
# fresh `shardcast --shards 1 --no-demo --config <tracking namespaces>`, recorded under
# RECORD/<UTC date>-issue11-tracking/ (README with machine, commit, commands and the tables;
# per mode the loadgen's stdout *.txt, its JSON *.json and the server's log).
#
#   scripts/bench-tracking.sh                      # all three (about 3 minutes)
#   MODES="presence" scripts/bench-tracking.sh
#
# Modes:
#   viewports  VP_VEHICLES (5000) vehicles at VP_RATE Hz in fleet:city; VP_SUBS (10000)
#              subscribers, each with a random viewport of 1–5% of the city, 20% panning every
#              5 s; then the same connections on fleet:all (no box) at VP_WHOLE_RATE Hz per
#              vehicle. The rates are scaled down from 1 Hz so that one server core and one
#              loadgen core keep up (at 1 Hz the viewports alone would be ~1.5 M deliveries/s,
#              the whole room 50 M/s); the ratios per *published* message do not depend on it.
#              Run VP_ROUNDS (2) times on fresh servers (the spread is the host's noise), then once
#              as viewports-half: half the subscribers with twice the viewport area (2–10%), so
#              about as many subscribers match each publish out of half as many in the room.
#   pacing     PC_VEHICLES (2000) vehicles at 1 Hz (20% parked) in PC_ROOMS (50) rooms,
#              PC_PHONES (1000) phones each on one room, unfiltered then with
#              max_rate PC_MAX_RATE (0.5) / min_move_m PC_MIN_MOVE (10) / max_silence_s
#              PC_SILENCE (10).
#   presence   PR_MEMBERS (2000) members joining chat:lobby within PR_JOIN (2s).
#
# Pinning: the server on SERVER_CPU (0), the loadgen on LOADGEN_CPU (1). Every server is started
# here and stopped by its PID. Binaries: $CARGO_TARGET_DIR/release (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
MODES="${MODES:-viewports pacing presence}"
SERVER_CPU="${SERVER_CPU:-0}"
LOADGEN_CPU="${LOADGEN_CPU:-1}"
RECORD="${RECORD:-results}"
WARMUP="${WARMUP:-2s}"
DURATION="${DURATION:-10s}"
VP_VEHICLES="${VP_VEHICLES:-5000}"
VP_RATE="${VP_RATE:-0.02}"
VP_SUBS="${VP_SUBS:-10000}"
VP_WHOLE_RATE="${VP_WHOLE_RATE:-0.0006}"
VP_ROUNDS="${VP_ROUNDS:-2}"
PC_VEHICLES="${PC_VEHICLES:-2000}"
PC_PHONES="${PC_PHONES:-1000}"
PC_ROOMS="${PC_ROOMS:-50}"
PC_MAX_RATE="${PC_MAX_RATE:-0.5}"
PC_MIN_MOVE="${PC_MIN_MOVE:-10}"
PC_SILENCE="${PC_SILENCE:-10}"
PR_MEMBERS="${PR_MEMBERS:-2000}"
PR_JOIN="${PR_JOIN:-2s}"
TARGET="${CARGO_TARGET_DIR:-target}"
SRV="$TARGET/release/shardcast"
LG="$TARGET/release/shardcast-loadgen"
if [[ ! -x "$SRV" || ! -x "$LG" ]]; then
  cargo build --release -p shardcast-server -p shardcast-loadgen
fi
# shellcheck source=scripts/procs-lib.sh
. scripts/procs-lib.sh
trap stop_all EXIT

OUT="$RECORD/$(date -u +%Y-%m-%d)-issue11-tracking"
mkdir -p "$OUT"
CFG="$OUT/shardcast.toml"
cat > "$CFG" <<'TOML'
[namespaces.fleet]
key = "id"
geo = { lat = "lat", lon = "lon" }

[namespaces.chat]
presence = true
presence_members = 5000
TOML

COMMANDS=()
NAMES=()
# One mode against a fresh server: NAME, then the loadgen's tracking flags.
measure() {
  local name="$1"; shift
  local log="$OUT/server-$name.log"
  taskset -c "$SERVER_CPU" "$SRV" --shards 1 --no-demo --listen 127.0.0.1:0 --config "$CFG" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local addr=""
  for _ in $(seq 100); do
    addr="$(sed -n 's/^listening on //p' "$log" | head -1)"
    [[ -n "$addr" ]] && break
    sleep 0.1
  done
  [[ -n "$addr" ]] || { echo "server did not start: $(cat "$log")" >&2; exit 1; }
  local cmd=(taskset -c "$LOADGEN_CPU" "$LG" tracking --url "ws://$addr/ws" --server-pid "$pid"
    --json "$OUT/$name.json" "$@")
  NAMES+=("$name")
  COMMANDS+=("# $name: $(uptime | sed 's/.*load average/load average/')" "${cmd[*]}")
  echo "== $name: ${cmd[*]}"
  "${cmd[@]}" | tee "$OUT/$name.txt"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  PIDS=()
}

for m in $MODES; do
  case "$m" in
    viewports)
      for r in $(seq "$VP_ROUNDS"); do
        measure "viewports-$r" --mode viewports --vehicles "$VP_VEHICLES" --rate "$VP_RATE" \
          --subscribers "$VP_SUBS" --view-min 0.01 --view-max 0.05 --pan-share 0.2 --pan-every 5s \
          --whole-rate "$VP_WHOLE_RATE" --warmup "$WARMUP" --duration "$DURATION" --drain 2s
      done
      measure viewports-half --mode viewports --vehicles "$VP_VEHICLES" --rate "$VP_RATE" \
        --subscribers $((VP_SUBS / 2)) --view-min 0.02 --view-max 0.10 --pan-share 0.2 --pan-every 5s \
        --warmup "$WARMUP" --duration "$DURATION" --drain 2s ;;
    pacing)
      measure pacing --mode pacing --vehicles "$PC_VEHICLES" --rate 1 --phones "$PC_PHONES" \
        --rooms "$PC_ROOMS" --max-rate "$PC_MAX_RATE" --min-move-m "$PC_MIN_MOVE" \
        --max-silence-s "$PC_SILENCE" --parked 0.2 --warmup "$WARMUP" --duration "$DURATION" --drain 2s ;;
    presence)
      measure presence --mode presence --members "$PR_MEMBERS" --join-over "$PR_JOIN" --settle 4s ;;
    *) echo "unknown mode $m" >&2; exit 2 ;;
  esac
done

{
  echo "# Issue 11: tracking-native subscriptions, measured"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| git commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!results' || echo ' (uncommitted changes)') |"
  echo "| machine | $(nproc --all) vCPU $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr) |"
  echo "| pinning | server \`taskset -c $SERVER_CPU\` (\`--shards 1 --no-demo\`), loadgen \`taskset -c $LOADGEN_CPU\`, loopback |"
  echo "| server config | \`shardcast.toml\` in this folder |"
  echo
  echo "Commands (with the 1-minute load average when each started):"
  echo
  echo '```'
  printf '%s\n' "${COMMANDS[@]}"
  echo '```'
  for m in "${NAMES[@]}"; do
    echo
    echo "## $m"
    echo
    cat "$OUT/$m.txt"
  done
  echo
  echo "Files: \`<name>.json\` (everything the loadgen measured), \`<name>.txt\` (its stdout), \`server-<name>.log\`."
} > "$OUT/README.md"
echo "recorded in $OUT"
