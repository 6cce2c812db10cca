#!/usr/bin/env bash
# Record one scenario against one server into results/<date>-<scenario>/.
#   scripts/loadgen-run.sh SERVER MODE [loadgen flags...]
#   SERVER: baseline | shardcast      MODE: run | capacity | connections
# Examples:
#   scripts/loadgen-run.sh baseline run --scenario fanout-1k --rate 100
#   scripts/loadgen-run.sh shardcast run --scenario fleet --proto mux
#   scripts/loadgen-run.sh shardcast capacity --scenario fanout-1k --rates 50,100,200,400,800 --slo-ms 10
#   scripts/loadgen-run.sh baseline connections -n 15000
# --proto mux (shardcast only) uses the multiplexed /ws protocol; default is room-per-URL
# (/ws/{room}/), which both servers speak, so their figures compare.
source "$(dirname "$0")/loadgen-lib.sh"
server="$1"; mode="$2"; shift 2
proto=per-room
if [[ "${1:-}" == "--proto" ]]; then proto="$2"; shift 2; fi
build
start_server "$server"
trap stop_server EXIT
if [[ "$proto" == mux ]]; then target=(--url "ws://$SERVER_ADDR/ws"); else target=(--url-template "ws://$SERVER_ADDR/ws/{room}/"); fi
# shellcheck disable=SC2046
"$LG" "$mode" "${target[@]}" --server-pid "$SERVER_PID" $(cpus_flag) --record results "$@"
