//! `run --compare A B`: one scenario against two servers, interleaved A B A B …, each side
//! with its own server process (`--server-pids`) so server CPU, CPU per delivery and RSS are
//! measured per side exactly as `--server-pid` does for one run.
//!
//! Why interleaved rounds and medians: absolute times on a shared machine drift (frequency,
//! neighbours, page cache), so the two servers are measured alternately in one session and
//! compared by the ratio of their medians, which holds where absolute figures do not. Both
//! servers stay up through all rounds, so each side's rounds are also runs in a row on one
//! process: the table lists them in order (p99.9, max, RSS) with last/first ratios
//! ([`crate::series`]), and a tail that grows with uptime is not averaged away.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::report::fmt_us;
use crate::runner::{self, RunOpts};
use crate::series::{self, fmt_ratio, Trend};
use crate::stats::Summary;

/// One side of a comparison: its target, server process and runs in round order.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub target: String,
    pub server_pid: Option<u32>,
    pub runs: Vec<Summary>,
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub a: Side,
    pub b: Side,
}

/// Runs `rounds` rounds of A then B; `each(label, round, summary)` after every run.
pub fn run(
    a: &RunOpts,
    b: &RunOpts,
    rounds: usize,
    mut each: impl FnMut(&str, usize, &Summary),
) -> Result<Comparison> {
    let side = |o: &RunOpts| Side {
        target: runner::targets_label(&o.targets),
        server_pid: o.server_pid,
        runs: vec![],
    };
    let mut c = Comparison { a: side(a), b: side(b) };
    for round in 1..=rounds.max(1) {
        for (label, o, out) in [("A", a, &mut c.a), ("B", b, &mut c.b)] {
            let s = runner::run_once(o)?;
            each(label, round, &s);
            out.runs.push(s);
        }
    }
    Ok(c)
}

/// How a metric is folded over rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Median,
    /// Loss is summed: one lossy round must not vanish under a median of clean ones.
    Sum,
}

struct Metric {
    /// Also the JSON key (the first eight are the keys of earlier records).
    name: &'static str,
    decimals: usize,
    fold: Fold,
    get: fn(&Summary) -> Option<f64>,
}

const MIB: f64 = 1024.0;

const METRICS: &[Metric] = &[
    Metric { name: "latency p50 µs", decimals: 1, fold: Fold::Median, get: |s| Some(s.latency.p50_us) },
    Metric { name: "latency p99 µs", decimals: 1, fold: Fold::Median, get: |s| Some(s.latency.p99_us) },
    Metric { name: "latency p99.9 µs", decimals: 1, fold: Fold::Median, get: |s| Some(s.latency.p999_us) },
    Metric { name: "latency max µs", decimals: 1, fold: Fold::Median, get: |s| Some(s.latency.max_us) },
    Metric {
        name: "fan-out completion p99 µs",
        decimals: 1,
        fold: Fold::Median,
        get: |s| Some(s.fanout_completion.p99_us),
    },
    Metric { name: "delivered msgs/s", decimals: 1, fold: Fold::Median, get: |s| Some(s.delivered_per_s) },
    Metric { name: "lost", decimals: 0, fold: Fold::Median, get: |s| Some(s.lost as f64) },
    Metric { name: "lost, all rounds", decimals: 0, fold: Fold::Sum, get: |s| Some(s.lost as f64) },
    Metric { name: "server CPU cores", decimals: 3, fold: Fold::Median, get: |s| s.server_cpu_cores },
    Metric {
        name: "server CPU µs/delivery",
        decimals: 2,
        fold: Fold::Median,
        get: |s| s.server_cpu_us_per_delivery,
    },
    Metric {
        name: "server RSS before MiB",
        decimals: 1,
        fold: Fold::Median,
        get: |s| s.server_rss_kib_before.map(|k| k as f64 / MIB),
    },
    Metric {
        name: "server RSS after MiB",
        decimals: 1,
        fold: Fold::Median,
        get: |s| s.server_rss_kib_after.map(|k| k as f64 / MIB),
    },
    Metric { name: "server RSS growth B/conn", decimals: 0, fold: Fold::Median, get: rss_growth_per_conn },
    Metric {
        name: "loadgen µs CPU/delivery",
        decimals: 2,
        fold: Fold::Median,
        get: |s| Some(s.loadgen_cpu_us_per_delivery),
    },
];

/// Server RSS growth during one run (before the first connect → after the drain, connections
/// still open) per connection, bytes. In later rounds the server reuses memory freed by the
/// previous round's connections, so this is the *warm* cost per connection; round 1 shows
/// the cold one (per-round figures are in the records).
pub fn rss_growth_per_conn(s: &Summary) -> Option<f64> {
    match (s.server_rss_kib_before, s.server_rss_kib_after) {
        (Some(b), Some(a)) if s.connected > 0 => Some((a as f64 - b as f64) * 1024.0 / s.connected as f64),
        _ => None,
    }
}

/// Median of the present values; NaN if none (e.g. no server pid for that side).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One metric's folded values and `B / A` (NaN unless A is positive).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    #[serde(skip)]
    pub name: &'static str,
    #[serde(skip)]
    pub decimals: usize,
    pub a: f64,
    pub b: f64,
    pub b_over_a: f64,
}

fn fold(m: &Metric, runs: &[Summary]) -> f64 {
    let v: Vec<f64> = runs.iter().map(|s| (m.get)(s).unwrap_or(f64::NAN)).collect();
    match m.fold {
        Fold::Median => median(v),
        Fold::Sum if v.iter().all(|x| x.is_nan()) => f64::NAN,
        Fold::Sum => v.iter().filter(|x| !x.is_nan()).sum(),
    }
}

pub fn rows(c: &Comparison) -> Vec<Row> {
    METRICS
        .iter()
        .map(|m| {
            let (a, b) = (fold(m, &c.a.runs), fold(m, &c.b.runs));
            // Only over a positive A: RSS growth can be negative, and a ratio to it means nothing.
            let b_over_a = if a > 0.0 && a.is_finite() { b / a } else { f64::NAN };
            Row { name: m.name, decimals: m.decimals, a, b, b_over_a }
        })
        .collect()
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

fn pid(p: Option<u32>) -> String {
    p.map_or("no server pid: no server CPU/RSS".into(), |p| format!("server pid {p}"))
}

/// The human table: medians with B/A, then each side's runs in order (runs in a row).
pub fn table(c: &Comparison) -> String {
    let rounds = c.a.runs.len().min(c.b.runs.len());
    let mut t = format!("\nmedians over {rounds} rounds (A B A B … on the same two server processes)\n");
    let _ = writeln!(t, "  A = {}  ({})", c.a.target, pid(c.a.server_pid));
    let _ = writeln!(t, "  B = {}  ({})", c.b.target, pid(c.b.server_pid));
    let _ = writeln!(t, "  {:<28} {:>12} {:>12} {:>8}", "metric", "A", "B", "B/A");
    for r in rows(c) {
        let _ = writeln!(
            t,
            "  {:<28} {:>12} {:>12} {:>8}",
            r.name,
            num(r.a, r.decimals),
            num(r.b, r.decimals),
            num(r.b_over_a, 3)
        );
    }
    let _ = writeln!(t, "\nruns in a row (round k = each server's k-th run; RSS after, connections open)");
    let _ = writeln!(
        t,
        "  {:<10} {:>9} {:>9} {:>10}   {:>9} {:>9} {:>10}",
        "round", "A p99.9", "A max", "A RSS MiB", "B p99.9", "B max", "B RSS MiB"
    );
    let rss = |s: &Summary| s.server_rss_kib_after.map_or("-".into(), |k| format!("{:.1}", k as f64 / MIB));
    for (k, (x, y)) in c.a.runs.iter().zip(&c.b.runs).enumerate() {
        let _ = writeln!(
            t,
            "  {:<10} {:>9} {:>9} {:>10}   {:>9} {:>9} {:>10}",
            k + 1,
            fmt_us(x.latency.p999_us),
            fmt_us(x.latency.max_us),
            rss(x),
            fmt_us(y.latency.p999_us),
            fmt_us(y.latency.max_us),
            rss(y)
        );
    }
    let (ta, tb) = (series::trend(&c.a.runs), series::trend(&c.b.runs));
    let _ = writeln!(
        t,
        "  {:<10} {:>9} {:>9} {:>10}   {:>9} {:>9} {:>10}",
        "last/first",
        fmt_ratio(ta.last_over_first_p999),
        fmt_ratio(ta.last_over_first_max),
        fmt_ratio(ta.last_over_first_rss),
        fmt_ratio(tb.last_over_first_p999),
        fmt_ratio(tb.last_over_first_max),
        fmt_ratio(tb.last_over_first_rss)
    );
    t
}

/// `{"mode":"compare","a","b","a_server_pid","b_server_pid","rounds","medians":{metric:{a,b,b_over_a}},
/// "in_a_row":{"a":Trend,"b":Trend},"a_runs","b_runs"}` (NaN is written as null).
pub fn json(c: &Comparison) -> serde_json::Value {
    let medians: serde_json::Map<String, serde_json::Value> =
        rows(c).into_iter().map(|r| (r.name.to_string(), serde_json::json!(r))).collect();
    let in_a_row: [(&str, Trend); 2] = [("a", series::trend(&c.a.runs)), ("b", series::trend(&c.b.runs))];
    serde_json::json!({
        "mode": "compare",
        "a": c.a.target, "b": c.b.target,
        "a_server_pid": c.a.server_pid, "b_server_pid": c.b.server_pid,
        "rounds": c.a.runs.len().min(c.b.runs.len()),
        "medians": medians,
        "in_a_row": in_a_row.into_iter().map(|(k, t)| (k.to_string(), serde_json::json!(t))).collect::<serde_json::Map<_, _>>(),
        "a_runs": c.a.runs, "b_runs": c.b.runs,
    })
}

/// The runs labelled for a record (`A round 1`, `B round 1`, …), in the order they ran.
pub fn labelled(c: &Comparison) -> Vec<(String, &Summary)> {
    let mut runs = Vec::new();
    for (i, (x, y)) in c.a.runs.iter().zip(&c.b.runs).enumerate() {
        runs.push((format!("A round {}", i + 1), x));
        runs.push((format!("B round {}", i + 1), y));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::tests::summary;

    fn side(pid: Option<u32>, runs: Vec<Summary>) -> Side {
        Side { target: "ws://x/ws/{room}/".into(), server_pid: pid, runs }
    }

    fn with_cpu(mut s: Summary, cores: f64, us: f64) -> Summary {
        s.server_cpu_cores = Some(cores);
        s.server_cpu_us_per_delivery = Some(us);
        s
    }

    #[test]
    fn medians_ignore_missing_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn rows_fold_and_ratio() {
        let a = vec![
            with_cpu(summary(1000.0, 5000.0, Some((40 * 1024, 50 * 1024))), 0.20, 20.0),
            with_cpu(summary(3000.0, 9000.0, Some((50 * 1024, 50 * 1024))), 0.30, 30.0),
            with_cpu(summary(2000.0, 7000.0, Some((50 * 1024, 51 * 1024))), 0.25, 25.0),
        ];
        let mut b = vec![
            with_cpu(summary(500.0, 1000.0, Some((4 * 1024, 6 * 1024))), 0.05, 5.0),
            with_cpu(summary(600.0, 1200.0, Some((6 * 1024, 6 * 1024))), 0.06, 6.0),
            with_cpu(summary(700.0, 1400.0, Some((6 * 1024, 6 * 1024))), 0.07, 7.0),
        ];
        b[1].lost = 3;
        let c = Comparison { a: side(Some(1), a), b: side(Some(2), b) };
        let r = rows(&c);
        let get = |n: &str| r.iter().find(|x| x.name == n).unwrap().clone();
        let p = get("latency p99.9 µs");
        assert_eq!((p.a, p.b), (2000.0, 600.0));
        assert!((p.b_over_a - 0.3).abs() < 1e-12);
        assert_eq!(get("latency max µs").a, 7000.0);
        assert_eq!(get("server CPU µs/delivery").b_over_a, 6.0 / 25.0);
        assert_eq!(get("server RSS after MiB").a, 50.0);
        // 1 MiB growth over 100 connections in A's middle round: median of 10 MiB, 0, 1 MiB.
        assert_eq!(get("server RSS growth B/conn").a, 1024.0 * 1024.0 / 100.0);
        let lost = get("lost");
        assert_eq!((lost.b, lost.b_over_a.is_nan()), (0.0, true));
        assert_eq!(get("lost, all rounds").b, 3.0);
        // B's RSS stayed flat in two rounds of three: growth median 0, and no ratio over that.
        let mut c2 = c.clone();
        std::mem::swap(&mut c2.a, &mut c2.b);
        assert!(rows(&c2).iter().find(|x| x.name == "server RSS growth B/conn").unwrap().b_over_a.is_nan());

        let t = table(&c);
        assert!(t.contains("medians over 3 rounds"), "{t}");
        assert!(t.contains("A = ws://x/ws/{room}/  (server pid 1)"), "{t}");
        assert!(t.contains("  latency p99.9 µs                   2000.0        600.0    0.300\n"), "{t}");
        assert!(t.contains("  server CPU cores                    0.250        0.060    0.240\n"), "{t}");
        // Runs in a row: every round in order, then last/first per side.
        assert!(
            t.contains("  1             1.00ms    5.00ms       50.0       500µs    1.00ms        6.0\n"),
            "{t}"
        );
        assert!(
            t.contains("  last/first     2.00x     1.40x      1.02x       1.40x     1.40x      1.00x\n"),
            "{t}"
        );

        let j = json(&c);
        assert_eq!(j["medians"]["latency p99.9 µs"]["b_over_a"].as_f64().unwrap(), p.b_over_a);
        assert_eq!(j["in_a_row"]["a"]["last_over_first_p999"], 2.0);
        assert_eq!(j["b_server_pid"], 2);
        assert_eq!(j["rounds"], 3);
        assert_eq!(labelled(&c)[1].0, "B round 1");
    }

    #[test]
    fn without_server_pids_server_rows_are_dashes() {
        let c = Comparison {
            a: side(None, vec![summary(1000.0, 2000.0, None)]),
            b: side(None, vec![summary(900.0, 1800.0, None)]),
        };
        let t = table(&c);
        assert!(t.contains("(no server pid: no server CPU/RSS)"), "{t}");
        assert!(t.contains("  server CPU µs/delivery                  -            -        -\n"), "{t}");
        assert!(json(&c)["medians"]["server CPU cores"]["a"].is_null());
    }
}
