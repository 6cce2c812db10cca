//! Output: the human summary, JSON, and recorded run folders (`README.md`, `summary.json`,
//! `intervals.csv`, `latency.svg`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::stats::{Percentiles, Summary};

/// Serialises a `Duration` as seconds (`f64`), the unit of every recorded option
/// (`#[serde(serialize_with = "crate::report::secs")]`).
pub fn secs<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn pct_line(name: &str, p: &Percentiles) -> String {
    if p.count == 0 {
        return format!("  {name:<18} (no samples)\n");
    }
    format!(
        "  {name:<18} p50 {:>9}  p90 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}  (n={})\n",
        fmt_us(p.p50_us),
        fmt_us(p.p90_us),
        fmt_us(p.p99_us),
        fmt_us(p.p999_us),
        fmt_us(p.max_us),
        p.count
    )
}

pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{us:.0}µs")
    }
}

/// The human summary printed on stdout.
pub fn human(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "scenario {}  →  {}", s.scenario, s.target);
    if s.nodes.len() > 1 {
        let _ = writeln!(o, "  placement          {}", s.placement);
    }
    let _ = writeln!(
        o,
        "  connections        {} of {} ({} publishers, {} subscriber clients); connect failures {}, sub failures {}, disconnects {}",
        s.connected, s.connections, s.publishers, s.subscriber_clients, s.connect_failures, s.sub_failures, s.disconnects
    );
    let _ = writeln!(
        o,
        "  window             {:.1}s after {:.1}s warm-up; offered {:.1} publishes/s",
        s.duration_s, s.warmup_s, s.offered_rate_hz
    );
    let _ = writeln!(
        o,
        "  messages           sent {}  expected {}  received {}  lost {}  duplicated {}  reordered {}",
        s.sent, s.expected, s.received, s.lost, s.duplicated, s.reordered
    );
    if s.server_errors + s.gap_notices + s.unparsed + s.send_skipped > 0 {
        let _ = writeln!(
            o,
            "  anomalies          server errors {}  gap notices {} ({} msgs)  unparsed {}  sends skipped (conn down) {}",
            s.server_errors, s.gap_notices, s.gap_messages, s.unparsed, s.send_skipped
        );
    }
    if s.acked + s.seq_holes + s.acked_unseen > 0 {
        let _ = writeln!(
            o,
            "  acknowledged       {} publishes in the window ({:.0}/s); seq holes {}; acknowledged but never delivered to a live subscription {}",
            s.acked, s.acked_per_s, s.seq_holes, s.acked_unseen
        );
    }
    let _ = writeln!(o, "  delivered          {:.0} msgs/s", s.delivered_per_s);
    o.push_str(&pct_line("latency", &s.latency));
    if s.nodes.len() > 1 {
        o.push_str(&node_lines(s));
    }
    o.push_str(&pct_line("fan-out completion", &s.fanout_completion));
    if s.incomplete_fanouts > 0 {
        let _ = writeln!(o, "  incomplete fan-outs {}", s.incomplete_fanouts);
    }
    o.push_str(&pct_line("send lag (loadgen)", &s.send_lag));
    let threads: Vec<String> = s
        .loadgen_threads
        .iter()
        .map(|t| {
            let cpu = if t.cpu == usize::MAX { "-".into() } else { t.cpu.to_string() };
            format!("cpu{cpu} {:.0}%", t.utilisation * 100.0)
        })
        .collect();
    let _ = writeln!(
        o,
        "  loadgen            {:.2} CPU-s, {:.2} µs CPU per delivery, threads [{}]{}",
        s.loadgen_cpu_s,
        s.loadgen_cpu_us_per_delivery,
        threads.join(", "),
        if s.loadgen_saturated {
            "  ⚠ loadgen near saturation (>85% of a core): figures are a lower bound"
        } else {
            ""
        }
    );
    if let Some(c) = s.server_cpu_cores {
        let _ = write!(o, "  server CPU         {c:.2} cores");
        if let (Some(cs), Some(us)) = (s.server_cpu_s, s.server_cpu_us_per_delivery) {
            let _ = write!(o, " ({cs:.2} CPU-s, {us:.2} µs per delivery)");
        }
        o.push('\n');
    }
    if let (Some(b), Some(a)) = (s.server_rss_kib_before, s.server_rss_kib_after) {
        let _ = write!(o, "  server RSS         {} KiB → {} KiB", b, a);
        if let Some(p) = s.rss_bytes_per_connection {
            let _ = write!(o, "  ({:.0} bytes per connection)", p);
        }
        o.push('\n');
    }
    if let Some(e) = &s.first_error {
        let _ = writeln!(o, "  first error        {e}");
    }
    o
}

/// Per node: where it is, what was placed on it, and what its subscribers saw.
fn node_lines(s: &Summary) -> String {
    let mut o = String::new();
    for n in &s.nodes {
        let _ = writeln!(
            o,
            "  node {:<13} {}  ({} publishers, {} subscriber connections, {} live at the end)",
            n.node, n.url, n.publishers, n.subscriber_connections, n.live_subscriptions
        );
        let _ = writeln!(
            o,
            "    messages         expected {}  received {}  lost {}  seq holes {}  acknowledged but unseen {}",
            n.expected, n.received, n.lost, n.seq_holes, n.acked_unseen
        );
        o.push_str(&pct_line("  latency", &n.latency));
    }
    o
}

/// One-second series as CSV.
pub fn intervals_csv(s: &Summary) -> String {
    let n = s.loadgen_threads.len();
    let mut o = String::from("second,warmup,sent,received,p50_us,p99_us,max_us");
    for i in 0..n {
        let _ = write!(o, ",thread{i}_util");
    }
    o.push('\n');
    for r in &s.intervals {
        let _ = write!(
            o,
            "{},{},{},{},{:.1},{:.1},{:.1}",
            r.second, r.warmup, r.sent, r.received, r.p50_us, r.p99_us, r.max_us
        );
        for u in &r.thread_util {
            let _ = write!(o, ",{u:.3}");
        }
        o.push('\n');
    }
    o
}

/// Latency-by-percentile plot of one or more runs (x on a "nines" scale).
pub fn svg_plot(path: &Path, title: &str, runs: &[(String, &Summary)]) -> Result<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(name, s)| {
            let pts = s.latency_curve.iter().map(|&(q, us)| (nines(q), us / 1000.0)).collect();
            (name.clone(), pts)
        })
        .collect();
    let ymax = curves.iter().flat_map(|c| c.1.iter().map(|p| p.1)).fold(0.01f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..5.3f64, 0f64..ymax)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(7)
        .x_label_formatter(&|x| match (*x * 10.0).round() as i64 {
            0 => "0%".into(),
            10 => "90%".into(),
            20 => "99%".into(),
            30 => "99.9%".into(),
            40 => "99.99%".into(),
            50 => "99.999%".into(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        5.3
    } else {
        (-(1.0 - q).log10()).min(5.3)
    }
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Machine/toolchain facts for recorded runs.
pub fn machine() -> Vec<(&'static str, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1048576.0))
        .unwrap_or_default();
    vec![
        ("git commit", sh("git", &["rev-parse", "--short", "HEAD"])),
        (
            "git dirty",
            if sh("git", &["status", "--porcelain"]).is_empty() {
                "no".into()
            } else {
                "yes (uncommitted changes)".into()
            },
        ),
        // `--all`: the machine's CPUs, not the loadgen's affinity (it usually runs under taskset).
        ("nproc", sh("nproc", &["--all"])),
        (
            "loadgen CPUs (affinity)",
            crate::sys::affinity_of(0).map_or("unknown".into(), |c| format!("{c:?}")),
        ),
        ("cpu", cpu),
        ("memory", mem),
        ("kernel", sh("uname", &["-sr"])),
        ("rustc", sh("rustc", &["--version"])),
        ("date (UTC)", sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
    ]
}

/// Creates a fresh `DIR/<UTC date-time>-<name>/` (suffixed `-2`, `-3`… if taken).
pub fn new_record_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let date = sh("date", &["-u", "+%Y-%m-%d-%H%M%S"]);
    let mut out = dir.join(format!("{date}-{name}"));
    let mut k = 2;
    while out.exists() {
        out = dir.join(format!("{date}-{name}-{k}"));
        k += 1;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(out)
}

/// The start of every recorded README: title, exact command, machine and toolchain facts.
pub fn readme_head(name: &str, command: &str) -> String {
    let mut md = format!("# {name}\n\n```\n{command}\n```\n\n| | |\n|---|---|\n");
    for (k, v) in machine() {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    md.push('\n');
    md
}

/// Writes `DIR/<date>-<scenario>/` and returns its path.
pub fn record(
    dir: &Path,
    scenario: &str,
    command: &str,
    summaries: &[(String, &Summary)],
    extra_md: &str,
    json: &serde_json::Value,
) -> Result<PathBuf> {
    let out = new_record_dir(dir, scenario)?;
    let mut md = readme_head(scenario, command);
    md.push_str(extra_md);
    for (name, s) in summaries {
        let _ = write!(md, "\n## {name}\n\n```\n{}```\n", human(s));
    }
    md.push_str("\nFiles: `summary.json` (everything), `intervals.csv` (one row per second per run), `latency.svg` (latency by percentile). Format: results/LOADGEN.md.\n");
    std::fs::write(out.join("README.md"), md)?;
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(json)?)?;
    let mut csv = String::new();
    for (i, (name, s)) in summaries.iter().enumerate() {
        let body = intervals_csv(s);
        for (j, line) in body.lines().enumerate() {
            if j == 0 {
                if i == 0 {
                    let _ = writeln!(csv, "run,{line}");
                }
            } else {
                let _ = writeln!(csv, "{name},{line}");
            }
        }
    }
    std::fs::write(out.join("intervals.csv"), csv)?;
    svg_plot(&out.join("latency.svg"), &format!("{scenario}: delivery latency by percentile"), summaries)?;
    Ok(out)
}
