#!/usr/bin/env bash
# usage: sys.sh NAME SCENARIO CMD... : from 5 s in, each send's length for 1 s (perf record of the
# sendto/sendmsg tracepoints, NAME.tr.data), then system calls counted for 4 s (NAME.stat).
set -u
. "$(dirname "$0")/lib.sh"
name=$1; scen=$2; shift 2
start "$name" "$scen" "" "$@"
sleep 5
perf record -e syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg -p $pid -o $name.tr.data -- sleep 1 >/dev/null 2>&1
perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_pwait2,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_pwait' -p $pid -- sleep 4 2> $name.stat >/dev/null
finish; grep syscalls $name.stat
