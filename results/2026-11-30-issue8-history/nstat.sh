#!/bin/bash
# nstat.sh NAME uws|BIN: system TCP counters per published message over 4 s of rooms-500 room-per-URL
name=$1; bin=$2; here=$(cd "$(dirname "$0")" && pwd)
source "$here/../2026-11-30-issue8-memory-3/rooms-500-run.sh"
nstat -n; sleep 4; nstat > $name.nstat
finish
echo "== $name"; awk '$2 > 0 {printf "%-32s %9d %8.3f/msg\n", $1, $2, $2/4000}' $name.nstat | grep -E "Tcp|Ip(In|Out)" | head -40
