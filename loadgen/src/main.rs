//! `shardcast-loadgen` — command line. Parses flags and calls [`runner::run_once`] per
//! measurement, [`abuse::run`] or [`soak::run`]; see `--help` and results/LOADGEN.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use shardcast_loadgen::attack::Attack;
use shardcast_loadgen::runner::{self, RunOpts, Target};
use shardcast_loadgen::scenario::{self, Overrides, Scenario};
use shardcast_loadgen::stats::Summary;
use shardcast_loadgen::ws::WsUrl;
use shardcast_loadgen::{abuse, compare, report, series, soak};

#[derive(Parser)]
#[command(
    name = "shardcast-loadgen",
    version,
    about = "Open-loop WebSocket load generator and latency meter for shardcast (and room-per-URL servers)",
    long_about = "Simulates publishers (vehicles, flights, IoT sensors, orders) and subscribers over real \
WebSocket connections from one process and measures delivery latency from each message's *intended* send \
time (no coordinated omission), loss, duplicates, reordering and fan-out completion.\n\n\
Targets: shardcast's multiplexed protocol (--url ws://HOST:PORT/ws, the default) or any room-per-URL server \
(--url-template 'ws://HOST:PORT/ws/{room}/', one connection per client and room).\n\n\
Presets: fanout-1k, fanout-5k, hot-100, fleet, rooms-500, iot, connections (or --scenario-file FILE.toml).\n\n\
`abuse` measures what one hostile client does to healthy neighbours; `soak` runs a realistic fleet with \
churn and misbehaving clients for minutes and reports minute by minute.\n\n\
Example:\n  taskset -c 0 target/release/shardcast --listen 127.0.0.1:8080 --shards 1 --no-demo &\n  \
shardcast-loadgen run --scenario fanout-1k --rate 100 --cpus 1 --duration 10s --record results\n  \
shardcast-loadgen run --compare ws://127.0.0.1:8300/ws/{room}/ ws://127.0.0.1:8080/ws/{room}/ \
--server-pids $UWS_PID,$SC_PID --scenario rooms-500 --rounds 5 --record results\n  \
shardcast-loadgen abuse --url ws://127.0.0.1:8080 --attack all --server-pid $! --record results\n  \
shardcast-loadgen soak --url ws://127.0.0.1:8080 --minutes 10 --server-pid $! --record results"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario at a fixed offered load and report latency, loss and CPU.
    Run {
        #[command(flatten)]
        common: Common,
        /// Run the same scenario against two targets, interleaved A B A B ... (each a /ws URL
        /// or a template containing {room}); prints medians over rounds side by side with B/A
        /// ratios, then each side's rounds in order (runs in a row on one server) with
        /// last/first ratios.
        #[arg(long, num_args = 2, value_names = ["TARGET_A", "TARGET_B"])]
        compare: Option<Vec<String>>,
        /// Rounds for --compare (default 3).
        #[arg(long)]
        rounds: Option<usize>,
        /// With --compare: the server processes of TARGET_A and TARGET_B, for each side's server
        /// CPU over the window, CPU µs per delivery and RSS (as --server-pid for one target).
        #[arg(long, value_delimiter = ',', value_name = "PID_A,PID_B", requires = "compare")]
        server_pids: Option<Vec<u32>>,
        /// N runs in a row against the same server (new connections each run, no restart), one
        /// line per run and last/first ratios, to show degradation with uptime. With --compare
        /// it is the number of rounds (each server's rounds are its runs in a row).
        #[arg(long, alias = "runs-in-a-row", value_name = "N")]
        repeat: Option<usize>,
    },
    /// Step the offered load (per-publisher rate) up until p99 exceeds --slo-ms or anything is
    /// lost; each step is a fresh measurement with new connections. Reports the highest passing step.
    Capacity {
        #[command(flatten)]
        common: Common,
        /// Explicit per-publisher rates in Hz, e.g. 50,100,200,400.
        #[arg(long, value_delimiter = ',')]
        rates: Option<Vec<f64>>,
        /// Geometric steps: first rate (Hz) ...
        #[arg(long, default_value_t = 50.0)]
        start: f64,
        /// ... multiplied by this factor per step ...
        #[arg(long, default_value_t = 2.0)]
        factor: f64,
        /// ... for at most this many steps.
        #[arg(long, default_value_t = 8)]
        steps: usize,
        /// Latency objective: a step passes if p99 <= this many milliseconds (and nothing is lost).
        #[arg(long, default_value_t = 10.0)]
        slo_ms: f64,
    },
    /// What one hostile client does to healthy neighbours (issue 7). Per attack, on a fresh
    /// victim room: --neighbours subscribers over /ws and as many over /ws/<room>, one HTTP
    /// publisher every --publish-every; a quiet warm-up, then the attack for --duration, then a
    /// drain. Reports the neighbours' latency (messages sent during the attack, receive −
    /// intended send time), loss, server RSS before/peak/after (sampled every 100 ms) and the
    /// attacker's counters. Loopback targets only; every attack stops itself.
    #[command(after_help = ABUSE_HELP)]
    Abuse(AbuseArgs),
    /// Minutes of a realistic fleet plus connection churn plus a few misbehaving clients; one
    /// line per minute (deliveries, p50/p99/p99.9/max, server RSS, reconnects, verified
    /// resumes, gaps, loss) and a verdict comparing the first and last minute. Loopback only.
    #[command(after_help = SOAK_HELP)]
    Soak(SoakArgs),
    /// Open and hold N idle subscribers (one room each); with --server-pid, report the server's
    /// RSS growth per connection (VmRSS from /proc/PID/status before and after).
    Connections {
        #[command(flatten)]
        common: Common,
        /// Idle connections to open.
        #[arg(long, short = 'n', default_value_t = 50_000)]
        connections: u32,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// shardcast multiplexed endpoint (used unless --url-template is given).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Room-per-URL target: one connection per (client, room) to this URL with {room} replaced
    /// by the room name; publishers send raw payloads, subscribers receive the exact bytes.
    #[arg(long)]
    url_template: Option<String>,
    /// Built-in scenario: fanout-1k, fanout-5k, hot-100, fleet, rooms-500, iot, connections.
    #[arg(long, default_value = "fanout-1k")]
    scenario: String,
    /// Scenario TOML file (overrides --scenario); format in results/LOADGEN.md.
    #[arg(long)]
    scenario_file: Option<PathBuf>,
    /// Per-publisher rate in Hz for every publisher group (fanout-1k default 100, fanout-5k 20).
    #[arg(long)]
    rate: Option<f64>,
    /// Number of clients in the scenario's first subscriber group.
    #[arg(long)]
    subscribers: Option<u32>,
    /// Warm-up excluded from the figures (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measurement window after the warm-up (the run always ends by itself).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// After the window, wait at most this long for in-flight deliveries; later ones count as lost.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    drain: Duration,
    /// Give up on connections not set up (handshake + subscriptions) within this time.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Loadgen worker threads, one pinned per CPU: a count (the last N CPUs) or a list
    /// (1,3 or 2-5). Default: CPUs not in the server's affinity (--server-pid), else the upper half.
    #[arg(long)]
    cpus: Option<String>,
    /// Spread client sockets over source addresses 127.0.0.1..N (each gives ~28k ports per
    /// target). Default: one per 25,000 connections.
    #[arg(long)]
    source_ips: Option<u32>,
    /// Server process id: its CPU use during the window, its RSS, and its CPU affinity (to
    /// keep the loadgen off the server's cores).
    #[arg(long)]
    server_pid: Option<u32>,
    /// No progress line on stderr (it is also off when stderr is not a terminal).
    #[arg(long, short)]
    quiet: bool,
    /// Write the summary (all runs) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Record the run into DIR/<date>-<scenario>/ (README.md with command, commit, machine;
    /// summary.json; intervals.csv; latency.svg). Usually `--record results`.
    #[arg(long)]
    record: Option<PathBuf>,
    /// A note for the recorded README (repeatable), e.g. which server each target is.
    #[arg(long = "note", value_name = "TEXT")]
    notes: Vec<String>,
}

const ABUSE_HELP: &str = "Attacks (--attack NAME, repeatable, or all):
  ping-flood       pipelines {\"op\":\"ping\"} text frames on /ws as fast as the socket takes them, never reads
  ctrl-ping-flood  the same with WebSocket ping control frames (opcode 0x9, masked)
  pub-flood        {\"op\":\"pub\",\"room\":\"abuse:x\",\"data\":{}} far over any rate limit, never reads
  room-churn       keep-alive pipelined POST /api/publish of 1 KiB, each to a new room; counts 200/429/503/other
  zero-window      4 KiB receive buffer, subscribes to the victim room and to a room a second connection fills
                   with 16 KiB publishes (200/s during the attack), never reads; reports when the server releases
                   the socket (/proc/net/tcp, up to --zero-window-wait after the attack) and the close frame
  garbage          up to --garbage-rate new connections/s, each sending one kind of invalid input
                   (random bytes, unmasked frame, invalid UTF-8, reserved bits, huge length, binary, bad opcode)
Output: one table row per attack: neighbours' latency p50/p99/p99.9/max for messages sent during the attack,
the quiet warm-up's p99, lost messages (never delivered and never announced by a gap notice; gap-notice
messages in brackets), neighbours the server disconnected, server RSS before / peak / after (every 100 ms with
--server-pid; after = once the server is idle again, at most 10 s) and what the attacker did. --record writes README.md, summary.json and rss.csv.
The target must be a loopback address; connections are bounded (garbage: rate x duration, room-churn: 1000).";

#[derive(Args)]
struct AbuseArgs {
    /// Server base URL (ws://HOST:PORT); the paths /ws, /ws/<room> and /api/publish are used.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Server process id, for its RSS (VmRSS from /proc/PID/status).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Attack to run (repeatable), or `all`. Default: all.
    #[arg(long = "attack", value_name = "NAME")]
    attacks: Vec<String>,
    /// How long each attack runs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Healthy subscribers of each kind (/ws and /ws/<room>) on the victim room.
    #[arg(long, default_value_t = 20)]
    neighbours: u32,
    /// Interval of the neighbours' publisher (POST /api/publish, small timestamped JSON).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    publish_every: Duration,
    /// Quiet period before each attack (its latency is the "quiet" column).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// After the attack, wait at most this long for the neighbours to get everything.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain: Duration,
    /// Garbage connections per second (at most).
    #[arg(long, default_value_t = 200)]
    garbage_rate: u32,
    /// zero-window: how long after the attack period to keep watching for the release.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    zero_window_wait: Duration,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Write everything as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A note for the recorded README (repeatable), e.g. how the server was started.
    #[arg(long = "note", value_name = "TEXT")]
    notes: Vec<String>,
    /// Record into DIR/<date>-abuse/ (README.md with command, commit, machine; summary.json; rss.csv).
    #[arg(long)]
    record: Option<PathBuf>,
}

const SOAK_HELP: &str = "Each minute line: live deliveries and their latency (receive - intended send time) in that minute,
server RSS at the minute's end (and peak, sampled every 100 ms), reconnects, room subscriptions resumed with
since and how each resume went (verified = the first message was since+1; via gap = the server announced a
gap from since+1; failed = anything else), gap notices to well-behaved clients, lost (never delivered and never
announced; what is still missing after --drain is added to the last minute), duplicates, joins, disconnects
by the server, and what the misbehaving clients saw (slow reader: reads 20 KiB/s of a fleet room; never-reader:
follows every fleet room with a 4 KiB receive buffer, reconnects when the server releases it; garbage: one
invalid connection per second).
Verdict: steady when RSS grew at most max(8 MiB, 10 %) over the second half (end of minute M/2 to the end of the
last; the whole soak when M < 4: room histories fill up first, 100 s at 1 Hz with the default history of 100,
which is bounded growth, not a leak), p99 grew at most 1.5x from the first minute to the last, and nothing was
lost, duplicated or resumed wrongly. Growth from minute 1 is printed too. A minute in which the loadgen itself
sent late (publish send lag p99 > 5 ms) is flagged: its latency includes the loadgen's delay.";

#[derive(Args)]
struct SoakArgs {
    /// Server base URL (ws://HOST:PORT).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Server process id, for its RSS (VmRSS from /proc/PID/status).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Number of minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u32,
    /// Length of one "minute" (shorter for quick checks, e.g. 5s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    minute: Duration,
    /// Vehicles publishing over /ws into vehicle:<i> and fleet:<i mod fleets>.
    #[arg(long, default_value_t = 500)]
    vehicles: u32,
    /// Publishes per second per vehicle.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Number of fleet:<k> rooms.
    #[arg(long, default_value_t = 5)]
    fleets: u32,
    /// /ws subscribers (one fleet room + three vehicle rooms each).
    #[arg(long, default_value_t = 200)]
    mux_subscribers: u32,
    /// /ws/<room> subscribers (a vehicle room; one in ten a fleet room).
    #[arg(long, default_value_t = 100)]
    room_subscribers: u32,
    /// Subscribers closing per second (0 = no churn).
    #[arg(long, default_value_t = 5)]
    churn: u32,
    /// Share of closing /ws subscribers that come back resuming with `since` (the rest are
    /// replaced by fresh subscribers).
    #[arg(long, default_value_t = 0.5)]
    resume_share: f64,
    /// Leave out the slow reader, never-reader and garbage sender.
    #[arg(long)]
    no_misbehaving: bool,
    /// After the last minute, wait at most this long for in-flight messages.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Write everything as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A note for the recorded README (repeatable), e.g. how the server was started.
    #[arg(long = "note", value_name = "TEXT")]
    notes: Vec<String>,
    /// Record into DIR/<date>-soak/ (README.md with command, commit, machine; summary.json; minutes.csv).
    #[arg(long)]
    record: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len()));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?} (use e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (s, ms, us, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Common {
    fn scenario(&self, extra: &Overrides) -> Result<Scenario> {
        let o = Overrides {
            rate: extra.rate.or(self.rate),
            subscribers: self.subscribers,
            connections: extra.connections,
        };
        match &self.scenario_file {
            Some(f) => Scenario::from_file(&f.to_string_lossy(), &o),
            None => scenario::preset(&self.scenario, &o),
        }
    }

    fn target(&self) -> Target {
        match &self.url_template {
            Some(t) => Target::PerRoom(t.clone()),
            None => Target::Mux(self.url.clone()),
        }
    }

    /// Options for one measurement against `target`, whose server process is `server_pid`
    /// (`--server-pid`, or one side of `--server-pids`).
    fn opts(&self, target: Target, scenario: Scenario, server_pid: Option<u32>) -> Result<RunOpts> {
        if let Target::PerRoom(t) = &target {
            if !t.contains("{room}") {
                bail!("--url-template must contain {{room}}");
            }
        }
        let cpus = match &self.cpus {
            Some(s) => runner::parse_cpus(s)?,
            None => runner::default_cpus(server_pid),
        };
        Ok(RunOpts {
            target,
            scenario,
            warmup: self.warmup,
            duration: self.duration,
            drain: self.drain,
            connect_timeout: self.connect_timeout,
            cpus,
            source_ips: self.source_ips,
            server_pid,
            progress: !self.quiet,
            hold_only: false,
        })
    }

    fn output(
        &self,
        scenario: &str,
        runs: &[(String, &Summary)],
        extra_md: &str,
        json: serde_json::Value,
    ) -> Result<()> {
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_string_pretty(&json)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(dir) = &self.record {
            let md = format!("{}{extra_md}", notes_md(&self.notes));
            let out = report::record(dir, scenario, &command_line(), runs, &md, &json)?;
            println!("recorded in {}", out.display());
        }
        Ok(())
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run { common, compare, rounds, server_pids, repeat } => {
            let sc = common.scenario(&Overrides::default())?;
            match compare {
                None if rounds.is_some() => {
                    bail!("--rounds is for --compare; use --repeat N for runs in a row")
                }
                None => run_cmd(&common, sc, repeat.unwrap_or(1)),
                Some(t) => {
                    let rounds = match (rounds, repeat) {
                        (Some(r), Some(n)) if r != n => bail!("--rounds {r} and --repeat {n} disagree"),
                        (r, n) => r.or(n).unwrap_or(3).max(1),
                    };
                    let pids = match server_pids.as_deref() {
                        None => [None, None],
                        Some([a, b]) => [Some(*a), Some(*b)],
                        Some(_) => bail!("--server-pids takes two process ids: PID_A,PID_B"),
                    };
                    if common.server_pid.is_some() {
                        bail!("with --compare, give each side's server as --server-pids PID_A,PID_B");
                    }
                    compare_cmd(&common, sc, [Target::parse(&t[0]), Target::parse(&t[1])], pids, rounds)
                }
            }
        }
        Cmd::Capacity { common, rates, start, factor, steps, slo_ms } => {
            let rates = rates.unwrap_or_else(|| (0..steps).map(|i| start * factor.powi(i as i32)).collect());
            if rates.is_empty() || rates.iter().any(|r| r.is_nan() || *r <= 0.0) {
                bail!("capacity needs positive rates");
            }
            let mut results: Vec<(f64, Summary)> = Vec::new();
            let mut best: Option<(f64, f64)> = None;
            let mut name = String::new();
            for &r in &rates {
                let sc = common.scenario(&Overrides { rate: Some(r), ..Default::default() })?;
                name.clone_from(&sc.name);
                let s = runner::run_once(&common.opts(common.target(), sc, common.server_pid)?)?;
                let pass = s.ok(Some(slo_ms));
                println!(
                    "rate {r:>8.1} Hz/publisher: delivered {:>9.0}/s  p50 {:>8}  p99 {:>8}  max {:>8}  lost {}  {}{}",
                    s.delivered_per_s,
                    report::fmt_us(s.latency.p50_us),
                    report::fmt_us(s.latency.p99_us),
                    report::fmt_us(s.latency.max_us),
                    s.lost,
                    if pass { "PASS" } else { "FAIL" },
                    if s.loadgen_saturated { "  (loadgen near saturation)" } else { "" }
                );
                results.push((r, s));
                if pass {
                    best = Some((r, results.last().map(|x| x.1.delivered_per_s).unwrap_or(0.0)));
                } else {
                    break;
                }
            }
            let verdict = match best {
                Some((r, d)) => format!("capacity: highest passing step {r} Hz/publisher = {d:.0} delivered msgs/s (p99 ≤ {slo_ms} ms, no loss)"),
                None => format!("capacity: no step passed (p99 ≤ {slo_ms} ms, no loss)"),
            };
            println!("{verdict}");
            let runs: Vec<(String, &Summary)> = results.iter().map(|(r, s)| (format!("{r} Hz"), s)).collect();
            let json = serde_json::json!({
                "mode": "capacity", "slo_ms": slo_ms,
                "best_rate_hz": best.map(|b| b.0), "best_delivered_per_s": best.map(|b| b.1),
                "steps": results.iter().map(|(r, s)| serde_json::json!({"rate_hz": r, "pass": s.ok(Some(slo_ms)), "summary": s})).collect::<Vec<_>>(),
            });
            common.output(&format!("capacity-{name}"), &runs, &format!("**{verdict}**\n"), json)
        }
        Cmd::Abuse(a) => abuse_cmd(a),
        Cmd::Soak(a) => soak_cmd(a),
        Cmd::Connections { common, connections } => {
            let sc = if common.scenario_file.is_some()
                || common.scenario != "fanout-1k" && common.scenario != "connections"
            {
                common.scenario(&Overrides { connections: Some(connections), ..Default::default() })?
            } else {
                scenario::preset(
                    "connections",
                    &Overrides { connections: Some(connections), ..Default::default() },
                )?
            };
            let mut o = common.opts(common.target(), sc.clone(), common.server_pid)?;
            o.hold_only = true;
            let s = runner::run_once(&o)?;
            print!("{}", report::human(&s));
            if common.server_pid.is_none() {
                println!("  (pass --server-pid PID to measure the server's RSS per connection)");
            }
            common.output(
                &sc.name,
                &[("connections".into(), &s)],
                "",
                serde_json::json!({ "mode": "connections", "runs": [&s] }),
            )
        }
    }
}

/// `run` against one target: one measurement, or `--repeat N` runs in a row on the same server.
fn run_cmd(common: &Common, sc: Scenario, n: usize) -> Result<()> {
    let o = common.opts(common.target(), sc.clone(), common.server_pid)?;
    if n <= 1 {
        let s = runner::run_once(&o)?;
        print!("{}", report::human(&s));
        return common.output(
            &sc.name,
            &[("run".into(), &s)],
            "",
            serde_json::json!({ "mode": "run", "runs": [&s] }),
        );
    }
    let mut lines = String::new();
    let runs = series::repeat(&o, n, |k, s| {
        let l = series::run_line(&format!("run {k}"), s);
        println!("{l}");
        lines.push_str(&l);
        lines.push('\n');
    })?;
    let t = series::trend(&runs);
    let verdict = series::trend_line(&t);
    println!("{verdict}");
    let labelled: Vec<(String, &Summary)> =
        runs.iter().enumerate().map(|(i, s)| (format!("run {}", i + 1), s)).collect();
    let json = serde_json::json!({ "mode": "repeat", "target": o.target.as_str(),
        "server_pid": o.server_pid, "in_a_row": t, "runs": runs });
    common.output(&format!("repeat-{}", sc.name), &labelled, &format!("```\n{lines}{verdict}\n```\n"), json)
}

/// `run --compare A B`: interleaved rounds, each side with its own server pid.
fn compare_cmd(
    common: &Common,
    sc: Scenario,
    targets: [Target; 2],
    pids: [Option<u32>; 2],
    rounds: usize,
) -> Result<()> {
    let [ta, tb] = targets;
    let a = common.opts(ta, sc.clone(), pids[0])?;
    let b = common.opts(tb, sc.clone(), pids[1])?;
    let c = compare::run(&a, &b, rounds, |label, round, s| {
        println!("{}", series::run_line(&format!("round {round} {label}"), s));
    })?;
    let table = compare::table(&c);
    print!("{table}");
    common.output(
        &format!("compare-{}", sc.name),
        &compare::labelled(&c),
        &format!("```{table}```\n"),
        compare::json(&c),
    )
}

fn abuse_cmd(a: AbuseArgs) -> Result<()> {
    let mut attacks = Vec::new();
    for name in if a.attacks.is_empty() { vec!["all".to_string()] } else { a.attacks.clone() } {
        if name == "all" {
            attacks.extend(Attack::ALL);
        } else {
            let names: Vec<&str> = Attack::ALL.iter().map(|x| x.name()).collect();
            attacks.push(
                Attack::parse(&name).with_context(|| {
                    format!("unknown attack {name:?}; attacks: {}, all", names.join(", "))
                })?,
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    attacks.retain(|a| seen.insert(*a));
    let o = abuse::AbuseOpts {
        addr: WsUrl::loopback_addr(&a.url)?,
        server_pid: a.server_pid,
        attacks,
        duration: a.duration,
        neighbours: a.neighbours.max(1),
        publish_every: a.publish_every,
        warmup: a.warmup,
        drain: a.drain,
        garbage_rate: a.garbage_rate.max(1),
        zero_window_wait: a.zero_window_wait,
    };
    let rows = abuse::run(&o, a.quiet)?;
    print!("{}", abuse::table(&rows));
    if a.server_pid.is_none() {
        println!("(pass --server-pid PID for the server's RSS)");
    }
    let json = serde_json::json!({ "mode": "abuse", "options": &o, "attacks": &rows });
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &a.record {
        let out = abuse::record(dir, &command_line(), &o, &rows, &notes_md(&a.notes))?;
        println!("recorded in {}", out.display());
    }
    Ok(())
}

fn soak_cmd(a: SoakArgs) -> Result<()> {
    let o = soak::SoakOpts {
        addr: WsUrl::loopback_addr(&a.url)?,
        server_pid: a.server_pid,
        minutes: a.minutes,
        minute: a.minute,
        vehicles: a.vehicles,
        rate_hz: a.rate,
        fleets: a.fleets,
        mux_subscribers: a.mux_subscribers,
        room_subscribers: a.room_subscribers,
        churn_per_s: a.churn,
        resume_share: a.resume_share.clamp(0.0, 1.0),
        misbehaving: !a.no_misbehaving,
        drain: a.drain,
    };
    if !(o.rate_hz > 0.0 && o.rate_hz <= 1000.0) {
        bail!("--rate must be in (0, 1000] Hz");
    }
    let r = soak::run(&o, |m| {
        use std::io::Write as _;
        println!("{}", soak::minute_line(m, o.minutes));
        let _ = std::io::stdout().flush();
    })?;
    println!("{}", r.verdict.line);
    if let Some(e) = &r.first_error {
        println!("first error seen by the fleet: {e}");
    }
    let json = serde_json::json!({ "mode": "soak", "result": &r });
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &a.record {
        let out = soak::record(dir, &command_line(), &r, &notes_md(&a.notes))?;
        println!("recorded in {}", out.display());
    }
    Ok(())
}

/// `--note`s as a Markdown list for a recorded README.
fn notes_md(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut md = String::from("Notes:\n");
    for n in notes {
        md.push_str(&format!("- {n}\n"));
    }
    md.push('\n');
    md
}
