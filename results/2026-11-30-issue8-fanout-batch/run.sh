#!/usr/bin/env bash
# run.sh: builds fan.c (needs liburing-dev) and runs 6 interleaved triples of send / io_uring /
# io_uring with DEFER_TASKRUN at 5,000 and 1,000 sockets, 150 rounds each; prints medians.
set -eu
here=$(cd "$(dirname "$0")" && pwd); cd "$(mktemp -d)"
gcc -O2 "$here/fan.c" -o fan -luring -lpthread
for N in 5000 1000; do for i in 1 2 3 4 5 6; do for m in send uring uring-defer; do ./fan $m $N 150; done; done; done | tee fan-runs.txt
python3 - <<'PY'
import collections, statistics
d = collections.defaultdict(lambda: ([], []))
for l in open('fan-runs.txt'):
    f = l.split(); d[(f[2].rstrip(':'), f[0])][0].append(float(f[3])); d[(f[2].rstrip(':'), f[0])][1].append(float(f[8]))
for k in sorted(d):
    print(k, 'CPU µs/send median %.2f' % statistics.median(d[k][0]), 'wall µs/send median %.2f' % statistics.median(d[k][1]))
PY
