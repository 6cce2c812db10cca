//! Runs in a row against one server process: `run --repeat N`, and each side's rounds of
//! `run --compare` (the two servers live through all rounds).
//!
//! Every run opens fresh connections but the server is *not* restarted, so whatever it
//! accumulates with uptime (a fragmented heap, grown tables, history buffers, timers that pile
//! up) shows as a trend from the first run to the last instead of being reset by a restart. A
//! single run cannot show that, and a median over rounds hides it. So: one line per run, in
//! order, to keep the noise visible, and last/first ratios for the trend. The first run on a
//! fresh server also pays one-off costs (page faults, allocator growth), so last/first below 1
//! is normal; well above 1 is degradation worth a look.

use anyhow::Result;
use serde::Serialize;

use crate::report::fmt_us;
use crate::runner::{self, RunOpts};
use crate::stats::Summary;

/// `n` measurements in a row with the same options; `each(k, summary)` is called after run `k`
/// (from 1) so the caller can print lines as they come.
pub fn repeat(o: &RunOpts, n: usize, mut each: impl FnMut(usize, &Summary)) -> Result<Vec<Summary>> {
    let mut runs = Vec::with_capacity(n);
    for k in 1..=n.max(1) {
        let s = runner::run_once(o)?;
        each(k, &s);
        runs.push(s);
    }
    Ok(runs)
}

/// One line per run: delivery rate, latency, loss, and (with a server pid) server CPU and RSS.
pub fn run_line(label: &str, s: &Summary) -> String {
    let mut l = format!(
        "{label}: delivered {:.0}/s  p50 {}  p99 {}  p99.9 {}  max {}  lost {}",
        s.delivered_per_s,
        fmt_us(s.latency.p50_us),
        fmt_us(s.latency.p99_us),
        fmt_us(s.latency.p999_us),
        fmt_us(s.latency.max_us),
        s.lost
    );
    if let Some(c) = s.server_cpu_cores {
        l.push_str(&format!("  server {c:.3} cores"));
        if let Some(us) = s.server_cpu_us_per_delivery {
            l.push_str(&format!(" = {us:.2} µs/delivery"));
        }
    }
    if let (Some(b), Some(a)) = (s.server_rss_kib_before, s.server_rss_kib_after) {
        l.push_str(&format!("  RSS {:.1}→{:.1} MiB", b as f64 / 1024.0, a as f64 / 1024.0));
    }
    if s.loadgen_saturated {
        l.push_str("  (loadgen near saturation)");
    }
    l
}

/// `last / first`; NaN when there is no first value or it is zero (nothing to compare with).
pub fn last_over_first(v: &[f64]) -> f64 {
    match (v.first(), v.last()) {
        (Some(&f), Some(&l)) if f > 0.0 && f.is_finite() => l / f,
        _ => f64::NAN,
    }
}

/// The figures of runs in a row, in order, and their last/first ratios.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub p999_us: Vec<f64>,
    pub max_us: Vec<f64>,
    /// Server RSS after each run (connections still open), KiB; empty without a server pid.
    pub rss_kib_after: Vec<u64>,
    pub last_over_first_p999: f64,
    pub last_over_first_max: f64,
    pub last_over_first_rss: f64,
}

pub fn trend(runs: &[Summary]) -> Trend {
    let p999_us: Vec<f64> = runs.iter().map(|s| s.latency.p999_us).collect();
    let max_us: Vec<f64> = runs.iter().map(|s| s.latency.max_us).collect();
    let rss: Vec<u64> = runs.iter().filter_map(|s| s.server_rss_kib_after).collect();
    // All or nothing: a partial RSS series would pair the wrong runs.
    let rss_kib_after = if rss.len() == runs.len() { rss } else { vec![] };
    let rss_f: Vec<f64> = rss_kib_after.iter().map(|&k| k as f64).collect();
    Trend {
        last_over_first_p999: last_over_first(&p999_us),
        last_over_first_max: last_over_first(&max_us),
        last_over_first_rss: last_over_first(&rss_f),
        p999_us,
        max_us,
        rss_kib_after,
    }
}

/// A ratio as `1.23x`, or `-` when undefined.
pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".into()
    }
}

/// `runs in a row: N; p99.9 last/first 1.12x (1.20ms → 1.34ms), max last/first …, RSS after …`.
pub fn trend_line(t: &Trend) -> String {
    let n = t.p999_us.len();
    let ends = |v: &[f64]| match (v.first(), v.last()) {
        (Some(&f), Some(&l)) => format!(" ({} → {})", fmt_us(f), fmt_us(l)),
        _ => String::new(),
    };
    let mut l = format!(
        "{n} runs in a row: p99.9 last/first {}{}, max last/first {}{}",
        fmt_ratio(t.last_over_first_p999),
        ends(&t.p999_us),
        fmt_ratio(t.last_over_first_max),
        ends(&t.max_us)
    );
    if let (Some(&f), Some(&a)) = (t.rss_kib_after.first(), t.rss_kib_after.last()) {
        l.push_str(&format!(
            ", RSS after {:.1} → {:.1} MiB ({})",
            f as f64 / 1024.0,
            a as f64 / 1024.0,
            fmt_ratio(t.last_over_first_rss)
        ));
    }
    l
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::Percentiles;

    /// A summary with the given latency tail and server figures (tests of pure tables).
    pub(crate) fn summary(p999_us: f64, max_us: f64, rss: Option<(u64, u64)>) -> Summary {
        Summary {
            latency: Percentiles {
                p50_us: p999_us / 10.0,
                p99_us: p999_us / 2.0,
                p999_us,
                max_us,
                count: 100,
                ..Default::default()
            },
            received: 1000,
            connected: 100,
            delivered_per_s: 1000.0,
            server_rss_kib_before: rss.map(|r| r.0),
            server_rss_kib_after: rss.map(|r| r.1),
            ..Default::default()
        }
    }

    #[test]
    fn ratios_and_trend() {
        assert_eq!(last_over_first(&[2.0, 5.0, 3.0]), 1.5);
        assert!(last_over_first(&[]).is_nan());
        assert!(last_over_first(&[0.0, 1.0]).is_nan());
        let runs = [summary(1000.0, 4000.0, Some((100, 2048))), summary(1500.0, 2000.0, Some((2048, 3072)))];
        let t = trend(&runs);
        assert_eq!(t.p999_us, vec![1000.0, 1500.0]);
        assert_eq!(t.last_over_first_p999, 1.5);
        assert_eq!(t.last_over_first_max, 0.5);
        assert_eq!(t.last_over_first_rss, 1.5);
        let line = trend_line(&t);
        assert!(line.starts_with("2 runs in a row: p99.9 last/first 1.50x (1.00ms → 1.50ms)"), "{line}");
        assert!(line.contains("RSS after 2.0 → 3.0 MiB (1.50x)"), "{line}");
        // Without a server pid there is no RSS series and no RSS part.
        let t = trend(&[summary(1000.0, 1000.0, None)]);
        assert!(t.rss_kib_after.is_empty() && t.last_over_first_rss.is_nan());
        assert!(!trend_line(&t).contains("RSS"));
    }

    #[test]
    fn run_line_has_server_figures_when_measured() {
        let mut s = summary(1200.0, 3000.0, Some((10 * 1024, 12 * 1024)));
        assert!(!run_line("run 1", &s).contains("server"));
        s.server_cpu_cores = Some(0.05);
        s.server_cpu_us_per_delivery = Some(12.5);
        let l = run_line("run 1", &s);
        assert!(
            l.starts_with("run 1: delivered 1000/s  p50 120µs  p99 600µs  p99.9 1.20ms  max 3.00ms  lost 0")
        );
        assert!(l.ends_with("server 0.050 cores = 12.50 µs/delivery  RSS 10.0→12.0 MiB"), "{l}");
    }
}
