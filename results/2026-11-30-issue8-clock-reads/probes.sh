#!/bin/bash
# probes.sh NAME uws|BIN: ../2026-11-30-issue8-memory-3/counters.sh (rooms-500 room-per-URL, perf stat -t
# of the serving thread over 4 s, run from /tmp/cs) with uprobe counts of libc's clock_gettime and malloc
# added. First: perf probe -x /lib/x86_64-linux-gnu/libc.so.6 clock_gettime; the same for malloc.
here=$(cd "$(dirname "$0")" && pwd)
EXTRA_EVENTS=probe_libc:clock_gettime,probe_libc:malloc exec bash "$here/../2026-11-30-issue8-memory-3/counters.sh" "$@"
