//! `shardcast-loadgen soak`: minutes of a realistic fleet with connection churn and a few
//! misbehaving clients, one line per minute, and a verdict comparing the first and last
//! minute (issue 7: flat RSS, no growth in p99, nothing lost).
//!
//! The fleet: `--vehicles` publishers over `/ws`, each at `--rate` Hz into `vehicle:<i>` and
//! `fleet:<i mod fleets>`; `/ws` subscribers following one fleet room and three vehicle rooms;
//! `/ws/<room>` subscribers on one vehicle room (one in ten on a fleet room). Every second
//! `--churn` subscribers close: `/ws` ones come back resuming with `since` (share
//! `--resume-share`), the rest are replaced by fresh subscribers. Each resume is verified: the
//! first message after it must be `since + 1` (or a `gap` notice starting there).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::crowd::{
    self, Churn, Control, CrowdSpec, Payload, Proto, PublisherSpec, SubscriberSpec, Tally, TallySummary, Via,
};
use crate::misbehave::{self, Counters, Snapshot};
use crate::report::{self, fmt_us};
use crate::sampler::RssSampler;
use crate::sim::Rng;
use crate::sys;

#[derive(Debug, Clone, Serialize)]
pub struct SoakOpts {
    pub addr: SocketAddr,
    pub server_pid: Option<u32>,
    pub minutes: u32,
    #[serde(serialize_with = "crate::report::secs")]
    pub minute: Duration,
    pub vehicles: u32,
    pub rate_hz: f64,
    pub fleets: u32,
    pub mux_subscribers: u32,
    pub room_subscribers: u32,
    pub churn_per_s: u32,
    pub resume_share: f64,
    pub misbehaving: bool,
    #[serde(serialize_with = "crate::report::secs")]
    pub drain: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct MinuteRow {
    /// From 1.
    pub minute: usize,
    pub crowd: TallySummary,
    pub rss_kib_end: Option<u64>,
    pub rss_kib_peak: Option<u64>,
    /// What the misbehaving clients did in this minute.
    pub misbehaving: Option<Snapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// From the end of the first minute to the end of the last.
    pub rss_growth_kib: Option<i64>,
    pub rss_growth_pct: Option<f64>,
    /// Over the second half (from the end of minute `late_from_minute`), which decides.
    pub rss_late_growth_kib: Option<i64>,
    pub late_from_minute: usize,
    pub p99_first_us: f64,
    pub p99_last_us: f64,
    pub p99_ratio: Option<f64>,
    pub lost: u64,
    pub duplicates: u64,
    pub resume_failures: u64,
    pub since_ahead: u64,
    pub steady: bool,
    /// Why not steady.
    pub reasons: Vec<String>,
    pub line: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    pub options: SoakOpts,
    pub rss_kib_start: Option<u64>,
    pub minutes: Vec<MinuteRow>,
    pub verdict: Verdict,
    pub drained: bool,
    pub drain_ms: f64,
    pub first_error: Option<String>,
}

/// Room ids: `vehicle:<i>` = i, `fleet:<k>` = vehicles + k.
fn rooms(o: &SoakOpts) -> Vec<String> {
    (0..o.vehicles)
        .map(|i| format!("vehicle:{i}"))
        .chain((0..o.fleets).map(|k| format!("fleet:{k}")))
        .collect()
}

fn subscriber(rng: &mut Rng, proto: Proto, vehicles: u32, fleets: u32) -> SubscriberSpec {
    let vehicle = |rng: &mut Rng| rng.below(vehicles as u64) as u32;
    let fleet = |rng: &mut Rng| vehicles + rng.below(fleets as u64) as u32;
    let rooms = match proto {
        Proto::Mux => {
            let mut r = vec![fleet(rng)];
            while r.len() < 4.min(1 + vehicles as usize) {
                let v = vehicle(rng);
                if !r.contains(&v) {
                    r.push(v);
                }
            }
            r
        }
        Proto::PerRoom if rng.below(10) == 0 => vec![fleet(rng)],
        Proto::PerRoom => vec![vehicle(rng)],
    };
    SubscriberSpec { proto, rooms }
}

/// Runs the soak; `on_minute` gets each minute as soon as it is over (the last one after
/// the drain, with what was still missing then counted as lost).
pub fn run(o: &SoakOpts, mut on_minute: impl FnMut(&MinuteRow)) -> Result<SoakResult> {
    if o.vehicles == 0 || o.fleets == 0 || o.minutes == 0 || o.minute.is_zero() {
        bail!("soak needs at least one vehicle, one fleet and one minute");
    }
    sys::raise_nofile();
    std::net::TcpStream::connect_timeout(&o.addr, Duration::from_secs(2))
        .with_context(|| format!("cannot reach the server at {}", o.addr))?;
    let room_names = rooms(o);
    let mut rng = Rng::new(sys::mono_ns());
    let publishers = (0..o.vehicles)
        .map(|i| PublisherSpec {
            via: Via::Ws,
            rooms: vec![i, o.vehicles + i % o.fleets],
            rate_hz: o.rate_hz,
            payload: Payload::Vehicle { entity: i as u64 },
        })
        .collect();
    let mut subscribers: Vec<SubscriberSpec> =
        (0..o.mux_subscribers).map(|_| subscriber(&mut rng, Proto::Mux, o.vehicles, o.fleets)).collect();
    subscribers
        .extend((0..o.room_subscribers).map(|_| subscriber(&mut rng, Proto::PerRoom, o.vehicles, o.fleets)));
    let n_subs = subscribers.len();
    let (v, f) = (o.vehicles, o.fleets);
    let minute_ns = o.minute.as_nanos() as u64;
    let total_ns = minute_ns * o.minutes as u64;
    let (tx, rx) = mpsc::channel();
    let spec = CrowdSpec {
        dst: o.addr,
        rooms: room_names.clone(),
        publishers,
        subscribers,
        churn: (o.churn_per_s > 0).then(|| Churn {
            per_second: o.churn_per_s,
            resume_share: o.resume_share,
            join: Box::new(move |rng: &mut Rng, old: &SubscriberSpec| subscriber(rng, old.proto, v, f)),
        }),
        reconnect: true,
        periods_ns: (0..o.minutes as u64).map(|m| m * minute_ns).collect(),
        latency_by_send: false,
        publish_for_ns: total_ns,
        drain_ns: o.drain.as_nanos() as u64,
        periods_out: Some(tx),
        seed: rng.next_u64(),
    };
    let ctl = Control::new();
    let crowd = {
        let ctl = ctl.clone();
        std::thread::Builder::new().name("fleet".into()).spawn(move || crowd::run(spec, ctl))?
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctl.subs_ready.load(SeqCst) < n_subs || ctl.pubs_ready.load(SeqCst) < o.vehicles as usize {
        if ctl.setup_failures.load(SeqCst) > 0 || Instant::now() > deadline {
            let err = ctl.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
            ctl.phase.store(crowd::STOP, SeqCst);
            let _ = crowd.join();
            bail!("the fleet could not be set up: {}", err.unwrap_or_else(|| "timed out".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sampler = RssSampler::start(o.server_pid, Duration::from_millis(100));
    let rss_start = sampler.now();
    let t0 = sys::mono_ns() + 20_000_000;
    ctl.start(t0);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let misbehavers = o.misbehaving.then(|| {
        let (addr, stop, c) = (o.addr, stop.clone(), counters.clone());
        let fleets: Vec<String> = room_names[o.vehicles as usize..].to_vec();
        let until = Instant::now() + Duration::from_nanos(total_ns);
        std::thread::spawn(move || {
            sys::nice_current_thread(5);
            misbehave::run(addr, fleets[0].clone(), fleets, until, stop, c)
        })
    });
    let mut rows = Vec::new();
    let mut seen = counters.snapshot();
    let mut row_for = |k: usize, t: &Tally, sampler: &RssSampler| {
        let now = counters.snapshot();
        let start = t0 + k as u64 * minute_ns;
        let row = MinuteRow {
            minute: k + 1,
            crowd: t.summary(),
            rss_kib_end: sampler.now(),
            rss_kib_peak: sampler.peak_between(start, sys::mono_ns()),
            misbehaving: o.misbehaving.then(|| now.since(&seen)),
        };
        seen = now;
        row
    };
    for _ in 1..o.minutes {
        let Ok((k, t)) = rx.recv() else { break };
        let row = row_for(k, &t, &sampler);
        on_minute(&row);
        rows.push(row);
    }
    let result = crowd.join().map_err(|_| anyhow::anyhow!("fleet thread panicked"))?;
    stop.store(true, SeqCst);
    if let Some(h) = misbehavers {
        let _ = h.join();
    }
    let last = o.minutes as usize - 1;
    let row = row_for(last, &result.periods[last], &sampler);
    on_minute(&row);
    rows.push(row);
    let verdict = verdict(&rows);
    let first_error = ctl.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(SoakResult {
        options: o.clone(),
        rss_kib_start: rss_start,
        minutes: rows,
        verdict,
        drained: result.drained,
        drain_ms: result.drain_ns as f64 / 1e6,
        first_error,
    })
}

/// Steady = RSS grew by at most max(8 MiB, 10 %) over the second half of the soak (from the
/// end of minute ⌊M/2⌋ to the end of the last; the whole soak when M < 4), p99 grew by at most
/// 1.5× from the first minute to the last, and nothing was lost, duplicated or resumed wrongly.
///
/// Why the second half for memory: bounded start-up growth is not a leak — room histories
/// fill up first (shardcast keeps 100 messages per room by default: 100 s at 1 Hz for a
/// vehicle room) — while a leak keeps growing. First-to-last growth is reported alongside.
pub fn verdict(rows: &[MinuteRow]) -> Verdict {
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let mid = if rows.len() >= 4 { &rows[rows.len() / 2 - 1] } else { first };
    let sum = |f: fn(&TallySummary) -> u64| rows.iter().map(|r| f(&r.crowd)).sum::<u64>();
    let (lost, duplicates) = (sum(|c| c.lost), sum(|c| c.duplicates));
    let (resume_failures, since_ahead) = (sum(|c| c.resume_failures), sum(|c| c.since_ahead));
    let diff = |a: Option<u64>, b: Option<u64>| Some(b? as i64 - a? as i64);
    let growth = diff(first.rss_kib_end, last.rss_kib_end);
    let late_growth = diff(mid.rss_kib_end, last.rss_kib_end);
    let pct = growth.zip(first.rss_kib_end).map(|(g, a)| g as f64 * 100.0 / a.max(1) as f64);
    let (p1, p2) = (first.crowd.latency.p99_us, last.crowd.latency.p99_us);
    let ratio = (p1 > 0.0 && p2 > 0.0).then(|| p2 / p1);
    let mut reasons = Vec::new();
    if let (Some(g), Some(a)) = (late_growth, mid.rss_kib_end) {
        if g as f64 > (8.0 * 1024.0f64).max(a as f64 * 0.10) {
            reasons.push(format!("RSS grew {:.1} MiB after minute {}", g as f64 / 1024.0, mid.minute));
        }
    }
    if ratio.is_some_and(|r| r > 1.5) {
        reasons.push(format!("p99 grew {:.2}×", ratio.unwrap_or(0.0)));
    }
    for (n, what) in [
        (lost, "lost"),
        (duplicates, "duplicated"),
        (resume_failures, "resume failures"),
        (since_ahead, "since-ahead accepted"),
    ] {
        if n > 0 {
            reasons.push(format!("{n} {what}"));
        }
    }
    let steady = reasons.is_empty();
    let line = format!(
        "verdict: RSS {} from the end of minute 1 to the end of minute {}; p99 {} ({} → {}); lost {lost}, \
         duplicates {duplicates}, resume failures {resume_failures} → {}",
        match (growth, pct, late_growth) {
            (Some(g), Some(p), Some(l)) if mid.minute > 1 => format!(
                "{:+.1} MiB ({p:+.1} %) [{:+.1} MiB from the end of minute {}]",
                g as f64 / 1024.0,
                l as f64 / 1024.0,
                mid.minute
            ),
            (Some(g), Some(p), _) => format!("{:+.1} MiB ({p:+.1} %)", g as f64 / 1024.0),
            _ => "not measured (no --server-pid)".into(),
        },
        rows.len(),
        ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
        fmt_us(p1),
        fmt_us(p2),
        if steady { "steady".to_string() } else { format!("NOT steady: {}", reasons.join(", ")) }
    );
    Verdict {
        rss_growth_kib: growth,
        rss_growth_pct: pct,
        rss_late_growth_kib: late_growth,
        late_from_minute: mid.minute,
        p99_first_us: p1,
        p99_last_us: p2,
        p99_ratio: ratio,
        lost,
        duplicates,
        resume_failures,
        since_ahead,
        steady,
        reasons,
        line,
    }
}

/// The line printed for one minute.
pub fn minute_line(r: &MinuteRow, minutes: u32) -> String {
    let c = &r.crowd;
    let l = &c.latency;
    let mut s = format!(
        "minute {:>2}/{minutes}: deliveries {:>9}  p50 {:>8} p99 {:>8} p99.9 {:>8} max {:>8}  rss {}  \
         reconnects {}  resumed rooms {}: verified {} (+{} via gap, {} failed)  gaps {} ({} msgs)  lost {}  dup {}  \
         joins {}  disconnects {}",
        r.minute,
        c.deliveries,
        fmt_us(l.p50_us),
        fmt_us(l.p99_us),
        fmt_us(l.p999_us),
        fmt_us(l.max_us),
        match (r.rss_kib_end, r.rss_kib_peak) {
            (Some(e), Some(p)) => format!("{:.1} MiB (peak {:.1})", e as f64 / 1024.0, p as f64 / 1024.0),
            (Some(e), None) => format!("{:.1} MiB", e as f64 / 1024.0),
            _ => "—".into(),
        },
        c.reconnects,
        c.resumes,
        c.resumes_verified,
        c.resumes_via_gap,
        c.resume_failures,
        c.gap_notices,
        c.gap_messages,
        c.lost,
        c.duplicates,
        c.joins,
        c.disconnects
    );
    if c.send_skipped + c.publish_refusals + c.since_ahead + c.server_errors + c.resets > 0 {
        let _ = write!(
            s,
            "  [skipped sends {}, refused publishes {}, since-ahead {}, server errors {}, resets {}]",
            c.send_skipped, c.publish_refusals, c.since_ahead, c.server_errors, c.resets
        );
    }
    if c.send_lag.p99_us > 5_000.0 {
        let _ = write!(
            s,
            "  ⚠ loadgen sent late (p99 {}, max {}): latency includes that",
            fmt_us(c.send_lag.p99_us),
            fmt_us(c.send_lag.max_us)
        );
    }
    if let Some(m) = &r.misbehaving {
        let _ = write!(
            s,
            "  | misbehaving: slow reader {} msgs, {} gap notices, closed {}; never-reader released {}; garbage {} conns ({} refused)",
            m.slow_messages, m.slow_gap_notices, m.slow_closed, m.never_released, m.garbage_connections, m.garbage_refused
        );
    }
    s
}

/// How one minute fills one `minutes.csv` cell.
type CsvCell = fn(&MinuteRow) -> String;

/// `minutes.csv`: each column's name and how a minute fills it — one list, so the header
/// and the rows cannot disagree.
const CSV_COLUMNS: &[(&str, CsvCell)] = &[
    ("minute", |m| m.minute.to_string()),
    ("deliveries", |m| m.crowd.deliveries.to_string()),
    ("p50_us", |m| format!("{:.1}", m.crowd.latency.p50_us)),
    ("p99_us", |m| format!("{:.1}", m.crowd.latency.p99_us)),
    ("p999_us", |m| format!("{:.1}", m.crowd.latency.p999_us)),
    ("max_us", |m| format!("{:.1}", m.crowd.latency.max_us)),
    ("rss_kib_end", |m| m.rss_kib_end.map_or(String::new(), |v| v.to_string())),
    ("rss_kib_peak", |m| m.rss_kib_peak.map_or(String::new(), |v| v.to_string())),
    ("reconnects", |m| m.crowd.reconnects.to_string()),
    ("resumes", |m| m.crowd.resumes.to_string()),
    ("resumes_verified", |m| m.crowd.resumes_verified.to_string()),
    ("resumes_via_gap", |m| m.crowd.resumes_via_gap.to_string()),
    ("resume_failures", |m| m.crowd.resume_failures.to_string()),
    ("gap_notices", |m| m.crowd.gap_notices.to_string()),
    ("gap_messages", |m| m.crowd.gap_messages.to_string()),
    ("lost", |m| m.crowd.lost.to_string()),
    ("duplicates", |m| m.crowd.duplicates.to_string()),
    ("joins", |m| m.crowd.joins.to_string()),
    ("disconnects", |m| m.crowd.disconnects.to_string()),
];

/// Writes `DIR/<date>-soak/`: README.md, summary.json, minutes.csv.
pub fn record(dir: &Path, command: &str, r: &SoakResult, extra_md: &str) -> Result<PathBuf> {
    let out = report::new_record_dir(dir, "soak")?;
    let o = &r.options;
    let mut md = report::readme_head("soak", command);
    md.push_str(extra_md);
    let _ = write!(
        md,
        "{} × {:.0} s: {} vehicles publishing at {} Hz over `/ws` into `vehicle:<i>` and one of {} \
         `fleet:<k>` rooms; {} `/ws` subscribers (one fleet + three vehicle rooms each) and {} \
         `/ws/<room>` subscribers; {} subscribers churn per second ({:.0} % of `/ws` ones resume \
         with `since`); misbehaving clients: {}.\n\n```\n",
        o.minutes,
        o.minute.as_secs_f64(),
        o.vehicles,
        o.rate_hz,
        o.fleets,
        o.mux_subscribers,
        o.room_subscribers,
        o.churn_per_s,
        o.resume_share * 100.0,
        if o.misbehaving { "a slow reader, a never-reader, a garbage sender" } else { "none" }
    );
    for m in &r.minutes {
        let _ = writeln!(md, "{}", minute_line(m, o.minutes));
    }
    let _ = writeln!(md, "{}\n```", r.verdict.line);
    if let Some(e) = &r.first_error {
        let _ = writeln!(md, "\nFirst error seen by the fleet: `{e}`");
    }
    md.push_str("\nFiles: `summary.json` (everything), `minutes.csv` (one row per minute). Format: results/LOADGEN.md.\n");
    std::fs::write(out.join("README.md"), md)?;
    let json = serde_json::json!({ "mode": "soak", "result": r });
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&json)?)?;
    let header: Vec<&str> = CSV_COLUMNS.iter().map(|(name, _)| *name).collect();
    let mut csv = header.join(",") + "\n";
    for m in &r.minutes {
        let row: Vec<String> = CSV_COLUMNS.iter().map(|(_, cell)| cell(m)).collect();
        let _ = writeln!(csv, "{}", row.join(","));
    }
    std::fs::write(out.join("minutes.csv"), csv)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: usize, rss_mib: f64, p99_us: f64) -> MinuteRow {
        let mut crowd = Tally::new().summary();
        crowd.latency.p99_us = p99_us;
        crowd.deliveries = 1000;
        MinuteRow {
            minute,
            crowd,
            rss_kib_end: Some((rss_mib * 1024.0) as u64),
            rss_kib_peak: None,
            misbehaving: None,
        }
    }

    #[test]
    fn csv_columns_keep_the_recorded_header_and_cell_formats() {
        let names: Vec<&str> = CSV_COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names.join(","),
            "minute,deliveries,p50_us,p99_us,p999_us,max_us,rss_kib_end,rss_kib_peak,reconnects,resumes,\
             resumes_verified,resumes_via_gap,resume_failures,gap_notices,gap_messages,lost,duplicates,joins,disconnects"
        );
        let cells: Vec<String> = CSV_COLUMNS.iter().map(|(_, cell)| cell(&row(2, 1.0, 1234.56))).collect();
        assert_eq!(cells.join(","), "2,1000,0.0,1234.6,0.0,0.0,1024,,0,0,0,0,0,0,0,0,0,0,0");
    }

    #[test]
    fn history_fill_is_not_growth_but_a_leak_is() {
        // Histories fill in minutes 1-2, then memory is flat.
        let fill: Vec<MinuteRow> = [10.0, 22.0, 22.1, 22.2, 22.1, 22.3]
            .iter()
            .enumerate()
            .map(|(i, &m)| row(i + 1, m, 1000.0))
            .collect();
        let v = verdict(&fill);
        assert!(v.steady, "{}", v.line);
        assert_eq!(v.late_from_minute, 3);
        assert!(v.line.contains("+12.3 MiB") && v.line.contains("from the end of minute 3"), "{}", v.line);

        // Growing all along.
        let leak: Vec<MinuteRow> = (0..6).map(|i| row(i + 1, 10.0 + 6.0 * i as f64, 1000.0)).collect();
        let v = verdict(&leak);
        assert!(!v.steady && v.reasons[0].starts_with("RSS grew 18.0 MiB after minute 3"), "{:?}", v.reasons);

        // p99 growth and loss.
        let mut slow = vec![row(1, 10.0, 1000.0), row(2, 10.0, 2000.0)];
        slow[1].crowd.lost = 3;
        let v = verdict(&slow);
        assert_eq!(v.reasons, vec!["p99 grew 2.00×".to_string(), "3 lost".to_string()]);
        assert!(v.line.ends_with("NOT steady: p99 grew 2.00×, 3 lost"), "{}", v.line);
    }
}
