#!/usr/bin/env bash
# usage: [RATE=HZ] [PERF=1] cs.sh NAME CMD... : rooms-500 (at RATE Hz per publisher if set); the
# server threads' context switches and CPU ticks over 5 s from 5 s in (PERF=1: perf record -g then).
set -u
. "$(dirname "$0")/lib.sh"
name=$1; shift
start "$name" rooms-500 "${RATE:+--rate $RATE}" "$@"
sleep 5
snap > $name.cs0
if [ -n "${PERF:-}" ]; then perf record -F 8000 -g -o $name.perf.data -p $pid -- sleep 5 >/dev/null 2>&1; else sleep 5; fi
snap > $name.cs1
finish; rates 5
