#!/usr/bin/env bash
# Same scenario against shardcast and the baseline (both room-per-URL, both pinned to
# SERVER_CPU), interleaved A B A B, ratios B/A recorded in results/<date>-compare-<scenario>/.
#   scripts/loadgen-compare.sh [loadgen run flags...]     e.g. --scenario fanout-1k --rate 100 --rounds 3
# A = baseline, B = shardcast. Both servers stay up for the whole comparison; only the one
# being measured gets traffic.
source "$(dirname "$0")/loadgen-lib.sh"
build
[[ -x target/release/shardcast ]] || { echo "target/release/shardcast missing" >&2; exit 1; }
start_server baseline; A_PID=$SERVER_PID; A_ADDR=$SERVER_ADDR
start_server shardcast; B_PID=$SERVER_PID; B_ADDR=$SERVER_ADDR
trap 'kill $A_PID $B_PID 2>/dev/null || true' EXIT
# shellcheck disable=SC2046
"$LG" run --compare "ws://$A_ADDR/ws/{room}/" "ws://$B_ADDR/ws/{room}/" --server-pids "$A_PID,$B_PID" \
  $(cpus_flag) --record results "$@"
