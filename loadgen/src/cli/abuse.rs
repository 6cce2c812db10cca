//! `abuse`: flags and handler (the measurement is [`shardcast_loadgen::abuse`]).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use shardcast_loadgen::abuse;
use shardcast_loadgen::attack::Attack;
use shardcast_loadgen::ws::WsUrl;

use super::parse_duration;

pub const HELP: &str = "Attacks (--attack NAME, repeatable, or all):
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
pub struct AbuseArgs {
    /// Server base URL (ws://HOST:PORT); the paths /ws, /ws/<room> and /api/publish are used.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Server process id, for its RSS (VmRSS from /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Attack to run (repeatable), or `all`. Default: all.
    #[arg(long = "attack", value_name = "NAME")]
    pub attacks: Vec<String>,
    /// How long each attack runs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Healthy subscribers of each kind (/ws and /ws/<room>) on the victim room.
    #[arg(long, default_value_t = 20)]
    pub neighbours: u32,
    /// Interval of the neighbours' publisher (POST /api/publish, small timestamped JSON).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub publish_every: Duration,
    /// Quiet period before each attack (its latency is the "quiet" column).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// After the attack, wait at most this long for the neighbours to get everything.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Garbage connections per second (at most).
    #[arg(long, default_value_t = 200)]
    pub garbage_rate: u32,
    /// zero-window: how long after the attack period to keep watching for the release.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub zero_window_wait: Duration,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub out: super::Output,
}

pub fn run(a: AbuseArgs) -> Result<()> {
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
    a.out.emit(&json, |dir, command, notes| abuse::record(dir, command, &o, &rows, notes))
}
