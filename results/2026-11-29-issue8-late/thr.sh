#!/usr/bin/env bash
# thr.sh NAME SCEN (uws | BIN ARGS...): per-thread run time (schedstat) and switches over 4 s from 5 s in.
set -u
name=$1; scen=$2; shift 2
source "$(dirname "$0")/lib.sh"
start "$name" "$scen" "$@"
snap() { for t in /proc/$pid/task/*; do echo "$(basename $t) $(cat $t/comm|tr ' ' _) $(cut -d' ' -f1,3 $t/schedstat) $(awk '/^voluntary/{v=$2}/^nonvoluntary/{n=$2}END{print v, n}' $t/status)"; done; }
snap > $name.t0; sleep 4; snap > $name.t1
finish
join $name.t0 $name.t1 | awk '{run=($8-$3)/4000/1e3; if (run>0.01) printf "  %-16s %7.2f us/msg  runs %5.2f/msg  vol %5.2f/msg invol %5.2f/msg\n", $2, run, ($9-$4)/4000, ($10-$5)/4000, ($11-$6)/4000}'
