#!/usr/bin/env bash
# scripts/compare-uws.sh REPEAT times, each with fresh server processes, then one table per
# scenario and protocol: B/A (shardcast over uWebSockets.js) of each run's medians for CPU per
# delivery, p99, p99.9 and max, each side's "runs in a row" p99.9 last/first, and the median
# over the runs.
#
# Why: on a small shared VM one compare resolves CPU to about ±5%, p99 to ±13%, max to ±16%,
# p99.9 to ±32%, and "runs in a row" ranges 0.66–1.89 for a server compared with itself
# (results/2026-11-29-issue8-late/, §7). The spread is between pairs of server processes, not
# between the rounds of one run, so only several runs decide a target near 1.0×.
#
#   REPEAT=3 PROTOCOLS="per-room ws" SCENARIOS=rooms-500 scripts/compare-uws-repeat.sh
#   REPEAT=2 ROUNDS=2 DURATION=3s SCENARIOS=rooms-500 RECORD=/tmp/smoke scripts/compare-uws-repeat.sh
#
# Environment: REPEAT (3), and everything scripts/compare-uws.sh takes (SCENARIOS, PROTOCOLS,
# ROUNDS, DURATION, WARMUP, SERVER_CPU, LOADGEN_CPU, RECORD, UWS_DIR). Every run is recorded
# in RECORD as compare-uws.sh records it; the table reads those records' summary.json. With
# RECORD empty the records go to a scratch folder that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT="${REPEAT:-3}"
RECORD="${RECORD-results}"
scratch=""
if [[ -z "$RECORD" ]]; then
  scratch="$(mktemp -d)"
  RECORD="$scratch"
  trap 'rm -rf "$scratch"' EXIT
fi
mkdir -p "$RECORD"
before="$(mktemp)"
ls -1 "$RECORD" > "$before"
for i in $(seq "$REPEAT"); do
  echo "== run $i of $REPEAT" >&2
  RECORD="$RECORD" scripts/compare-uws.sh
done
new=$(ls -1 "$RECORD" | grep -- '-compare-' | grep -vxFf "$before" || true)
rm -f "$before"
[[ -n "$new" ]] || { echo "no new compare records in $RECORD" >&2; exit 1; }
python3 - "$RECORD" $new <<'PY'
import json, os, statistics, sys

root, names = sys.argv[1], sys.argv[2:]
groups = {}
for name in sorted(names):
    with open(os.path.join(root, name, "summary.json")) as f:
        s = json.load(f)
    scenario = name.split("-compare-", 1)[1]
    protocol = "ws" if s["b"].endswith("/ws") else "per-room"
    groups.setdefault((scenario, protocol), []).append((name, s))

metrics = [
    ("CPU/delivery", "server CPU \u00b5s/delivery"),
    ("p99", "latency p99 \u00b5s"),
    ("p99.9", "latency p99.9 \u00b5s"),
    ("max", "latency max \u00b5s"),
]


def fmt(x):
    return "-" if x is None else f"{x:.3f}"


for (scenario, protocol), runs in sorted(groups.items()):
    print(f"\n{scenario} ({protocol}): B/A of each run's medians (A = uWS, B = shardcast)")
    head = f"  {'run':<37}" + "".join(f"{m:>14}" for m, _ in metrics)
    print(head + f"{'A in a row':>12}{'B in a row':>12}")
    cols = {m: [] for m, _ in metrics}
    rows_a, rows_b = [], []
    for name, s in runs:
        line = f"  {name:<37}"
        for m, key in metrics:
            v = s["medians"].get(key, {}).get("b_over_a")
            if v is not None:
                cols[m].append(v)
            line += f"{fmt(v):>14}"
        a = s["in_a_row"]["a"].get("last_over_first_p999")
        b = s["in_a_row"]["b"].get("last_over_first_p999")
        rows_a += [a] if a is not None else []
        rows_b += [b] if b is not None else []
        print(line + f"{fmt(a):>12}{fmt(b):>12}")
    med = lambda v: statistics.median(v) if v else None
    line = f"  {'median of ' + str(len(runs)) + ' runs':<37}"
    line += "".join(f"{fmt(med(cols[m])):>14}" for m, _ in metrics)
    print(line + f"{fmt(med(rows_a)):>12}{fmt(med(rows_b)):>12}")
PY
