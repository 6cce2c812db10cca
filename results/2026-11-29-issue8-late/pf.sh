#!/usr/bin/env bash
# pf.sh NAME (uws | BIN ARGS...): page faults and memory syscalls per published message, 4 s of rooms-500 from 5 s in
set -u
name=$1; shift
source "$(dirname "$0")/lib.sh"
start "$name" rooms-500 "$@"
perf stat -x, -e page-faults,syscalls:sys_enter_brk,syscalls:sys_enter_madvise,syscalls:sys_enter_munmap,syscalls:sys_enter_mmap,syscalls:sys_enter_mprotect -p $pid -- sleep 4 2> $name.pf >/dev/null
finish
awk -F, '{printf "  %s %.3f/msg\n", $3, $1/4000}' $name.pf
