#!/usr/bin/env bash
# usage: [PERF=1] idle.sh NAME CMD... : cs.sh with rooms-500's 2,500 connections nearly idle
# (0.01 Hz per publisher).
RATE=0.01 exec "$(dirname "$0")/cs.sh" "$@"
