//! `shardcast-loadgen abuse`: what one hostile client does to healthy neighbours (issue 7).
//!
//! Per attack, on a fresh victim room: N subscribers over `/ws` and N over `/ws/<room>`, one
//! backend publisher (`POST /api/publish`, pipelined) every 20 ms; a warm-up with no attack
//! (the quiet baseline), then the attacker on its own thread for `--duration`, then a drain
//! until the neighbours have every acknowledged message (or `--drain` passes). Neighbours'
//! latency is counted for messages whose *intended* send time fell in the attack period, so a
//! message held up by the attack counts against it however late it arrives. Server RSS is
//! sampled every 100 ms (peak) and read before the attack and once the server is idle again
//! after the drain (which also keeps one attack's aftermath out of the next one's warm-up).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::attack::{self, Attack, AttackOpts, AttackReport};
use crate::crowd::{
    self, Control, CrowdSpec, Payload, Proto, PublisherSpec, SubscriberSpec, Tally, TallySummary, Via,
};
use crate::report::{self, fmt_us};
use crate::sampler::RssSampler;
use crate::sys;

#[derive(Debug, Clone, Serialize)]
pub struct AbuseOpts {
    pub addr: SocketAddr,
    pub server_pid: Option<u32>,
    pub attacks: Vec<Attack>,
    #[serde(serialize_with = "crate::report::secs")]
    pub duration: Duration,
    /// Subscribers of each kind (`/ws` and `/ws/<room>`).
    pub neighbours: u32,
    #[serde(serialize_with = "crate::report::secs")]
    pub publish_every: Duration,
    #[serde(serialize_with = "crate::report::secs")]
    pub warmup: Duration,
    #[serde(serialize_with = "crate::report::secs")]
    pub drain: Duration,
    pub garbage_rate: u32,
    #[serde(serialize_with = "crate::report::secs")]
    pub zero_window_wait: Duration,
}

/// One attack's outcome: a row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseRow {
    pub attack: Attack,
    pub description: &'static str,
    /// Neighbours' deliveries of messages sent during the attack period.
    pub during: TallySummary,
    /// Neighbours' deliveries of messages sent during the quiet warm-up, for comparison.
    pub quiet: TallySummary,
    /// Counters over the whole run (loss, gaps, disconnects, …), warm-up to end of drain.
    pub total: TallySummary,
    /// Every live neighbour had every acknowledged message when the drain ended.
    pub drained: bool,
    pub drain_ms: f64,
    /// After the drain: how long the server took to go idle again (CPU < 20 % over 200 ms),
    /// and whether it did within 10 s. `None` without `--server-pid`.
    pub settle_ms: Option<f64>,
    pub settled: Option<bool>,
    pub rss_kib_before: Option<u64>,
    pub rss_kib_peak: Option<u64>,
    pub rss_kib_after: Option<u64>,
    /// (seconds since the attack started, VmRSS KiB), every 100 ms.
    pub rss_samples: Vec<(f64, u64)>,
    pub attacker: AttackReport,
    /// The first thing that went wrong for a neighbour, if anything did.
    pub first_neighbour_error: Option<String>,
}

impl AbuseRow {
    pub fn rss_growth_kib(&self) -> Option<i64> {
        Some(self.rss_kib_peak? as i64 - self.rss_kib_before? as i64)
    }
}

/// Runs every attack in turn; prints a line per attack on stderr unless `quiet`.
pub fn run(o: &AbuseOpts, quiet: bool) -> Result<Vec<AbuseRow>> {
    sys::raise_nofile();
    std::net::TcpStream::connect_timeout(&o.addr, Duration::from_secs(2))
        .with_context(|| format!("cannot reach the server at {}", o.addr))?;
    let sampler = RssSampler::start(o.server_pid, Duration::from_millis(100));
    let mut rows = Vec::new();
    for (i, &a) in o.attacks.iter().enumerate() {
        if !quiet {
            eprintln!("[{}/{}] {} for {:.1} s …", i + 1, o.attacks.len(), a.name(), o.duration.as_secs_f64());
        }
        let row = run_one(o, a, &sampler)?;
        if !quiet {
            eprintln!("{}", short_line(&row));
        }
        rows.push(row);
    }
    Ok(rows)
}

fn run_one(o: &AbuseOpts, a: Attack, sampler: &RssSampler) -> Result<AbuseRow> {
    let run_id = format!("{}-{}", std::process::id(), sys::mono_ns() % 1_000_000_007);
    let room = format!("victim:{}-{run_id}", a.name());
    let n = o.neighbours as usize;
    let mut subscribers = vec![SubscriberSpec { proto: Proto::Mux, rooms: vec![0] }; n];
    subscribers.extend(vec![SubscriberSpec { proto: Proto::PerRoom, rooms: vec![0] }; n]);
    let warm = o.warmup.as_nanos() as u64;
    let dur = o.duration.as_nanos() as u64;
    let spec = CrowdSpec {
        dst: o.addr,
        rooms: vec![room.clone()],
        publishers: vec![PublisherSpec {
            via: Via::Http,
            rooms: vec![0],
            rate_hz: 1.0 / o.publish_every.as_secs_f64().max(1e-4),
            payload: Payload::Probe,
        }],
        subscribers,
        churn: None,
        reconnect: false,
        periods_ns: vec![0, warm, warm + dur],
        latency_by_send: true,
        publish_for_ns: warm + dur,
        drain_ns: o.drain.as_nanos() as u64,
        periods_out: None,
        seed: sys::mono_ns(),
    };
    let ctl = Control::new();
    let crowd = {
        let ctl = ctl.clone();
        std::thread::Builder::new().name("neighbours".into()).spawn(move || crowd::run(spec, ctl))?
    };
    let abort = |ctl: &Arc<Control>, crowd: std::thread::JoinHandle<crowd::CrowdResult>| {
        ctl.phase.store(crowd::STOP, SeqCst);
        let _ = crowd.join();
    };
    // Setup: every neighbour subscribed and the publisher connected.
    let deadline = sys::mono_ns() + 15_000_000_000;
    loop {
        let ready = ctl.subs_ready.load(SeqCst) == 2 * n && ctl.pubs_ready.load(SeqCst) == 1;
        let failed = ctl.setup_failures.load(SeqCst);
        if ready {
            break;
        }
        if failed > 0 || sys::mono_ns() > deadline {
            let err = ctl.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
            abort(&ctl, crowd);
            bail!(
                "neighbours could not be set up for {}: {}",
                a.name(),
                err.unwrap_or_else(|| "timed out".into())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Room-per-URL joins complete on the server after its 101; give them a moment.
    std::thread::sleep(Duration::from_millis(100));
    let t0 = sys::mono_ns() + 20_000_000;
    ctl.start(t0);
    sleep_until(t0 + warm);
    let rss_before = sampler.now();
    let attack_start = sys::mono_ns();
    let stop = Arc::new(AtomicBool::new(false));
    let aopts = AttackOpts {
        addr: o.addr,
        victim_room: room,
        run_id,
        garbage_rate: o.garbage_rate,
        zero_window_wait: o.zero_window_wait,
    };
    let attacker = {
        let (stop, duration) = (stop.clone(), o.duration);
        std::thread::Builder::new().name("attacker".into()).spawn(move || {
            // The measuring thread shares the loadgen's core(s): let it run first.
            sys::nice_current_thread(5);
            attack::run(a, &aopts, duration, &stop)
        })?
    };
    let report = attacker.join().map_err(|_| anyhow::anyhow!("attacker thread panicked"))?;
    let result = crowd.join().map_err(|_| anyhow::anyhow!("neighbour thread panicked"))?;
    let settled = settle(o.server_pid);
    let end = sys::mono_ns();
    let rss_after = sampler.now();
    let mut total = Tally::new();
    result.periods.iter().for_each(|t| total.absorb(t));
    let period =
        |i: usize| result.periods.get(i).map(Tally::summary).unwrap_or_else(|| Tally::new().summary());
    let first_neighbour_error = ctl.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(AbuseRow {
        attack: a,
        description: a.describe(),
        quiet: period(0),
        during: period(1),
        total: total.summary(),
        drained: result.drained,
        drain_ms: result.drain_ns as f64 / 1e6,
        settle_ms: settled.map(|s| s.0),
        settled: settled.map(|s| s.1),
        rss_kib_before: rss_before,
        rss_kib_peak: sampler.peak_between(attack_start, end).max(rss_before).max(rss_after),
        rss_kib_after: rss_after,
        rss_samples: sampler
            .between(attack_start, end)
            .into_iter()
            .map(|(t, k)| ((t - attack_start) as f64 / 1e9, k))
            .collect(),
        attacker: report,
        first_neighbour_error,
    })
}

/// Waits until the server is idle (CPU < 20 % of a core over 200 ms), at most 10 s, so that
/// what an attack left behind (queues being freed, work still running) is over before RSS
/// "after" is read and before the next attack's quiet warm-up. Returns (ms waited, idle).
fn settle(pid: Option<u32>) -> Option<(f64, bool)> {
    let pid = pid?;
    let start = sys::mono_ns();
    loop {
        let a = sys::pid_cpu_ns(pid)?;
        std::thread::sleep(Duration::from_millis(200));
        let b = sys::pid_cpu_ns(pid)?;
        let waited = (sys::mono_ns() - start) as f64 / 1e6;
        if (b.saturating_sub(a) as f64) < 0.2 * 200e6 {
            return Some((waited, true));
        }
        if waited >= 10_000.0 {
            return Some((waited, false));
        }
    }
}

fn sleep_until(t: u64) {
    let now = sys::mono_ns();
    if t > now {
        std::thread::sleep(Duration::from_nanos(t - now));
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("—".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn si(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1} k", n as f64 / 1e3),
        _ => format!("{:.2} M", n as f64 / 1e6),
    }
}

/// What the attacker did, in a few words.
pub fn attacker_summary(r: &AttackReport, a: Attack) -> String {
    let mut s = match a {
        Attack::PingFlood | Attack::CtrlPingFlood | Attack::PubFlood => {
            format!("sent {} frames ({:.1} MB), read 0", si(r.sent), r.bytes_sent as f64 / 1e6)
        }
        Attack::RoomChurn => format!(
            "{} rooms created, {} refused ({}), {} unanswered",
            si(r.rooms_created.unwrap_or(0)),
            si(r.refusals),
            r.outcomes
                .iter()
                .filter(|(k, _)| k.starts_with("http"))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            si(r.sent.saturating_sub(r.replies_read))
        ),
        Attack::ZeroWindow => {
            let released = match r.released_after_ms {
                Some(ms) => format!("released after {:.1} s", ms as f64 / 1e3),
                None => format!("NOT released in {:.1} s", r.watched_ms.unwrap_or(0) as f64 / 1e3),
            };
            format!(
                "{released}; close frame: {}; server unsent max {:.1} MB",
                r.close_frame.as_deref().unwrap_or("none"),
                r.server_unsent_max.unwrap_or(0) as f64 / 1e6
            )
        }
        Attack::Garbage => format!(
            "{} connections, {} refused explicitly, replies {}",
            si(r.connections),
            si(r.refusals),
            si(r.replies_read)
        ),
    };
    if let Some(e) = &r.error {
        let _ = write!(s, "; stopped: {e}");
    }
    s
}

fn short_line(r: &AbuseRow) -> String {
    format!(
        "  neighbours p99 {} max {} lost {}; RSS {} → {} MiB; {}",
        fmt_us(r.during.latency.p99_us),
        fmt_us(r.during.latency.max_us),
        r.total.lost + r.total.gap_messages,
        mib(r.rss_kib_before),
        mib(r.rss_kib_peak),
        attacker_summary(&r.attacker, r.attack)
    )
}

/// The table (Markdown, also fine on a terminal).
pub fn table(rows: &[AbuseRow]) -> String {
    let mut t = String::from(
        "| attack | neighbours' latency p50 / p99 / p99.9 / max (msgs) | quiet p99 | lost (gap msgs) | \
         neighbour disconnects | RSS MiB before / peak / after | attacker |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let l = &r.during.latency;
        let _ = writeln!(
            t,
            "| {} | {} / {} / {} / {} ({}) | {} | {} ({}){} | {} | {} / {} / {} | {} |",
            r.attack.name(),
            fmt_us(l.p50_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us),
            l.count,
            fmt_us(r.quiet.latency.p99_us),
            r.total.lost,
            r.total.gap_messages,
            if r.drained { "" } else { " not drained" },
            r.total.disconnects,
            mib(r.rss_kib_before),
            mib(r.rss_kib_peak),
            mib(r.rss_kib_after),
            attacker_summary(&r.attacker, r.attack)
        );
    }
    t
}

/// Notes per attack (attacker facts, neighbour errors).
pub fn notes(rows: &[AbuseRow]) -> String {
    let mut t = String::new();
    for r in rows {
        let _ = writeln!(t, "- **{}** ({}):", r.attack.name(), r.description);
        for n in &r.attacker.notes {
            let _ = writeln!(t, "  - {n}");
        }
        let outcomes: Vec<String> = r.attacker.outcomes.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        if !outcomes.is_empty() {
            let _ = writeln!(t, "  - attacker outcomes: {}", outcomes.join(", "));
        }
        let _ = writeln!(
            t,
            "  - neighbours: {} deliveries in the attack period, {} duplicates, {} gap notices, {} server errors, \
             publisher send lag p99 {} (max {}), {} publishes refused, drain {:.0} ms{}",
            r.during.deliveries,
            r.total.duplicates,
            r.total.gap_notices,
            r.total.server_errors,
            fmt_us(r.total.send_lag.p99_us),
            fmt_us(r.total.send_lag.max_us),
            r.total.publish_refusals,
            r.drain_ms,
            match (r.settle_ms, r.settled) {
                (Some(ms), Some(true)) => format!(", server idle again {ms:.0} ms later"),
                (Some(ms), _) => format!(", server still busy {ms:.0} ms later"),
                _ => String::new(),
            }
        );
        if let Some(e) = &r.first_neighbour_error {
            let _ = writeln!(t, "  - first neighbour error: {e}");
        }
    }
    t
}

/// Writes `DIR/<date>-abuse/`: README.md, summary.json, rss.csv.
pub fn record(
    dir: &Path,
    command: &str,
    o: &AbuseOpts,
    rows: &[AbuseRow],
    extra_md: &str,
) -> Result<PathBuf> {
    let out = report::new_record_dir(dir, "abuse")?;
    let mut md = report::readme_head("abuse", command);
    md.push_str(extra_md);
    let _ = write!(
        md,
        "One hostile client per attack against a victim room with {n} `/ws` and {n} `/ws/<room>` \
         subscribers and one HTTP publisher every {:.0} ms; attack {:.1} s after a {:.1} s quiet \
         warm-up. Latency = receive − intended send time of messages sent during the attack \
         (one monotonic clock); lost = never delivered and never announced by a `gap` (gap \
         messages in brackets); RSS = server VmRSS sampled every 100 ms, \"after\" once the \
         server is idle again after the drain.\n\n{}\n{}\n",
        o.publish_every.as_secs_f64() * 1e3,
        o.duration.as_secs_f64(),
        o.warmup.as_secs_f64(),
        table(rows),
        notes(rows),
        n = o.neighbours
    );
    md.push_str("\nFiles: `summary.json` (everything), `rss.csv` (server RSS every 100 ms per attack). Format: results/LOADGEN.md.\n");
    std::fs::write(out.join("README.md"), md)?;
    let json = serde_json::json!({ "mode": "abuse", "options": o, "attacks": rows });
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&json)?)?;
    let mut csv = String::from("attack,seconds_since_attack_start,rss_kib\n");
    for r in rows {
        for (t, k) in &r.rss_samples {
            let _ = writeln!(csv, "{},{t:.3},{k}", r.attack.name());
        }
    }
    std::fs::write(out.join("rss.csv"), csv)?;
    Ok(out)
}
