#!/usr/bin/env bash
# The standard recorded set against one server (default: shardcast if built, else baseline).
#   scripts/loadgen-all.sh [baseline|shardcast]
set -euo pipefail
dir="$(dirname "$0")"
server="${1:-$([[ -x "$dir/../target/release/shardcast" ]] && echo shardcast || echo baseline)}"
"$dir/loadgen-run.sh" "$server" run --scenario fanout-1k --rate 100
"$dir/loadgen-run.sh" "$server" run --scenario fanout-5k --rate 20
"$dir/loadgen-run.sh" "$server" run --scenario hot-100
"$dir/loadgen-run.sh" "$server" run --scenario fleet
"$dir/loadgen-run.sh" "$server" run --scenario rooms-500
"$dir/loadgen-run.sh" "$server" run --scenario iot
"$dir/loadgen-run.sh" "$server" capacity --scenario fanout-1k --rates 25,50,100,200,400,800 --slo-ms 10
"$dir/loadgen-run.sh" "$server" connections -n 15000
