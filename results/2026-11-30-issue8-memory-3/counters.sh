#!/bin/bash
# counters.sh NAME uws|BIN: counters per published message over 4 s of rooms-500 room-per-URL
# (EXTRA_EVENTS: more perf events to count, comma-separated, e.g. uprobes)
name=$1; bin=$2; here=$(cd "$(dirname "$0")" && pwd)
source "$here/rooms-500-run.sh"
tid=$pid; [ "$bin" != uws ] && tid=$(for t in /proc/$pid/task/*; do echo "$(cut -d" " -f1 $t/schedstat) $(basename $t)"; done | sort -n | tail -1 | cut -d" " -f2)
perf stat -e context-switches,task-clock,${EXTRA_EVENTS:+$EXTRA_EVENTS,}syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_pwait2,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_timerfd_settime,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_futex,syscalls:sys_enter_mprotect -t $tid -- sleep 4 2> $name.stat
finish
echo "== $name tid $tid $(grep -o 'lost [0-9]*' $name.lg.log | head -1)"
grep -E 'syscalls|context|task-clock|probe' $name.stat | awk '$1 != "0" {gsub(",","",$1); printf "%-45s %10s  %.3f/msg\n", $2, $1, $1/4000}'
