#!/usr/bin/env bash
# ipi.sh NAME SCEN (uws | BIN ARGS...): IPIs and wake-ups per published message, 4 s from 5 s in.
set -u
name=$1; scen=$2; shift 2
source "$(dirname "$0")/lib.sh"
start "$name" "$scen" "$@"
perf stat -a -A -x, -e ipi:ipi_send_cpu,irq_vectors:reschedule_entry,irq_vectors:call_function_single_entry,sched:sched_wakeup,context-switches -- sleep 4 2> $name.stat >/dev/null
finish
awk -F, '{printf "  %s %s %.2f/msg\n", $1, $4, $2/4000}' $name.stat
