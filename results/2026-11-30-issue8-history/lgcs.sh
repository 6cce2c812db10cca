#!/bin/bash
# lgcs.sh NAME uws|BIN: context switches and CPU of the loadgen and the server per published message, 4 s of rooms-500
name=$1; bin=$2; here=$(cd "$(dirname "$0")" && pwd)
source "$here/../2026-11-30-issue8-memory-3/rooms-500-run.sh"
perf stat -e context-switches,task-clock,cpu-migrations -p $lg -- sleep 4 2> $name.lg.stat &
perf stat -e context-switches,task-clock -p $pid -- sleep 4 2> $name.sv.stat
finish
for f in lg sv; do awk -v w=$f -v n=$name '/context-switches|task-clock/{gsub(",","",$1); printf "%s %s %-18s %10s %8.3f/msg\n", n, w, $2, $1, $1/4000}' $name.$f.stat; done
