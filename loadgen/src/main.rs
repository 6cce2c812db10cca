//! `shardcast-loadgen` — command line. Parses flags and calls [`runner::run_once`] per
//! measurement, [`compare::run`], [`series::repeat`], or the `abuse` / `soak` handlers in
//! [`cli`]; see `--help` and results/LOADGEN.md.

mod cli;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use shardcast_loadgen::nodes::{self, Placement, PublishOn};
use shardcast_loadgen::runner::{self, RunOpts, Target};
use shardcast_loadgen::scenario::{self, Overrides, Scenario};
use shardcast_loadgen::stats::Summary;
use shardcast_loadgen::{compare, report, series};

#[derive(Parser)]
#[command(
    name = "shardcast-loadgen",
    version,
    about = "Open-loop WebSocket load generator and latency meter for shardcast (and room-per-URL servers)",
    long_about = "Simulates publishers (vehicles, flights, IoT sensors, orders) and subscribers over real \
WebSocket connections from one process and measures delivery latency from each message's *intended* send \
time (no coordinated omission), loss, duplicates, reordering and fan-out completion.\n\n\
Targets: shardcast's multiplexed protocol (--url ws://HOST:PORT/ws, the default) or any room-per-URL server \
(--url-template 'ws://HOST:PORT/ws/{room}/', one connection per client and room). Several --url (a cluster's \
nodes) spread the clients over them; --publish-node and --subscribe-nodes choose where publishers and \
subscribers go.\n\n\
Presets: fanout-1k, fanout-5k, hot-100, fleet, rooms-500, iot, connections (or --scenario-file FILE.toml).\n\n\
`abuse` measures what one hostile client does to healthy neighbours; `soak` runs a realistic fleet with \
churn and misbehaving clients for minutes and reports minute by minute.\n\n\
Example:\n  taskset -c 0 target/release/shardcast --listen 127.0.0.1:8080 --shards 1 --no-demo &\n  \
shardcast-loadgen run --scenario fanout-1k --rate 100 --cpus 1 --duration 10s --record results\n  \
shardcast-loadgen run --compare 'ws://127.0.0.1:8300/ws/{room}/' 'ws://127.0.0.1:8080/ws/{room}/' \
--server-pids $UWS_PID,$SC_PID --scenario rooms-500 --rounds 5 --record results\n  \
shardcast-loadgen run --scenario rooms-500 --url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws,ws://127.0.0.1:8083/ws \
--publish-node 0 --subscribe-nodes 1,2\n  \
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
    #[command(after_help = cli::abuse::HELP)]
    Abuse(cli::abuse::AbuseArgs),
    /// Minutes of a realistic fleet plus connection churn plus a few misbehaving clients; one
    /// line per minute (deliveries, p50/p99/p99.9/max, server RSS, reconnects, verified
    /// resumes, gaps, loss) and a verdict comparing the first and last minute. Loopback only.
    #[command(after_help = cli::soak::HELP)]
    Soak(cli::soak::SoakArgs),
    /// Issue 11's tracking measurements against a server with geo/key/presence namespaces:
    /// `--mode viewports` (per-subscriber boxes and pans vs the whole room: delivered/s, server
    /// CPU per published message, p99, bytes, misses/extras), `--mode pacing` (max_rate /
    /// min_move_m vs unfiltered: frames, bytes, last-position delay), `--mode presence`
    /// (coalesced presence_diff frames vs one event per join, computed). Loopback only.
    #[command(after_help = cli::tracking::HELP)]
    Tracking(cli::tracking::TrackingArgs),
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
    /// shardcast multiplexed endpoint (used unless --url-template is given). Repeat it (or
    /// give a comma-separated list) to measure a cluster's nodes from one process and one
    /// clock: node 0 is the first URL; subscriber clients go round-robin over the nodes,
    /// publishers too unless --publish-node.
    #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// Room-per-URL target: one connection per (client, room) to this URL with {room} replaced
    /// by the room name; publishers send raw payloads, subscribers receive the exact bytes.
    /// Repeatable, like --url, for several nodes.
    #[arg(long)]
    url_template: Vec<String>,
    /// Several targets: every publisher on node K (0 = the first --url) instead of
    /// round-robin over all nodes.
    #[arg(long, value_name = "K")]
    publish_node: Option<usize>,
    /// Several targets: subscriber clients go round-robin over these nodes only (e.g. 1,2 or
    /// 1-2) instead of all. With --publish-node 0, `--subscribe-nodes 1,2` makes every
    /// delivery cross nodes; `--subscribe-nodes 0` makes none.
    #[arg(long, value_name = "LIST")]
    subscribe_nodes: Option<String>,
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
    #[command(flatten)]
    window: cli::Window,
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
    #[command(flatten)]
    out: cli::Output,
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

    /// The targets: the `--url-template`s if any, else the `--url`s.
    fn targets(&self) -> Vec<Target> {
        if self.url_template.is_empty() {
            self.url.iter().map(|u| Target::Mux(u.clone())).collect()
        } else {
            self.url_template.iter().map(|t| Target::PerRoom(t.clone())).collect()
        }
    }

    /// Where connections go over `nodes` targets (`--publish-node`, `--subscribe-nodes`).
    fn placement(&self, nodes: usize) -> Result<Placement> {
        let subscribe = match &self.subscribe_nodes {
            Some(s) => nodes::parse_list(s)?,
            None => Vec::new(),
        };
        let publish = self.publish_node.map_or(PublishOn::Spread, PublishOn::Node);
        Placement::new(nodes, publish, subscribe)
    }

    /// Options for one measurement against this command's targets (`--url`, repeatable).
    fn run_opts(&self, scenario: Scenario) -> Result<RunOpts> {
        let targets = self.targets();
        let placement = self.placement(targets.len())?;
        self.opts(targets, placement, scenario, self.server_pid)
    }

    /// Options for one measurement against `targets`, placed by `placement`, whose server
    /// process is `server_pid` (`--server-pid`, or one side of `--server-pids`).
    fn opts(
        &self,
        targets: Vec<Target>,
        placement: Placement,
        scenario: Scenario,
        server_pid: Option<u32>,
    ) -> Result<RunOpts> {
        for t in &targets {
            if let Target::PerRoom(t) = t {
                if !t.contains("{room}") {
                    bail!("--url-template must contain {{room}}");
                }
            }
        }
        let cpus = match &self.cpus {
            Some(s) => runner::parse_cpus(s)?,
            None => runner::default_cpus(server_pid),
        };
        Ok(RunOpts {
            targets,
            placement,
            scenario,
            warmup: self.window.warmup,
            duration: self.window.duration,
            drain: self.window.drain,
            connect_timeout: self.window.connect_timeout,
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
        self.out.emit(&json, |dir, command, notes| {
            report::record(dir, scenario, command, runs, &format!("{notes}{extra_md}"), &json)
        })
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
                    if common.url.len() > 1 || common.url_template.len() > 1 {
                        bail!("--compare takes one target per side; several --url are for `run` without it");
                    }
                    if common.publish_node.is_some() || common.subscribe_nodes.is_some() {
                        bail!("--publish-node and --subscribe-nodes need several --url, not --compare");
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
                let s = runner::run_once(&common.run_opts(sc)?)?;
                let pass = s.ok(Some(slo_ms));
                println!(
                    "rate {r:>8.1} Hz/publisher: acked {:>8.0}/s  delivered {:>9.0}/s  p50 {:>8}  p99 {:>8}  max {:>8}  lost {}  {}{}",
                    s.acked_per_s,
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
        Cmd::Abuse(a) => cli::abuse::run(a),
        Cmd::Soak(a) => cli::soak::run(a),
        Cmd::Tracking(a) => cli::tracking::run(a),
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
            let mut o = common.run_opts(sc.clone())?;
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
    let o = common.run_opts(sc.clone())?;
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
    let json = serde_json::json!({ "mode": "repeat", "target": runner::targets_label(&o.targets),
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
    let a = common.opts(vec![ta], Placement::single(), sc.clone(), pids[0])?;
    let b = common.opts(vec![tb], Placement::single(), sc.clone(), pids[1])?;
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
