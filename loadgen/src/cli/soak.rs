//! `soak`: flags and handler (the measurement is [`shardcast_loadgen::soak`]).

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use shardcast_loadgen::soak;
use shardcast_loadgen::ws::WsUrl;

use super::parse_duration;

pub const HELP: &str = "Each minute line: live deliveries and their latency (receive - intended send time) in that minute,
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
pub struct SoakArgs {
    /// Server base URL (ws://HOST:PORT).
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Server process id, for its RSS (VmRSS from /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Number of minutes.
    #[arg(long, default_value_t = 10)]
    pub minutes: u32,
    /// Length of one "minute" (shorter for quick checks, e.g. 5s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub minute: Duration,
    /// Vehicles publishing over /ws into vehicle:<i> and fleet:<i mod fleets>.
    #[arg(long, default_value_t = 500)]
    pub vehicles: u32,
    /// Publishes per second per vehicle.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Number of fleet:<k> rooms.
    #[arg(long, default_value_t = 5)]
    pub fleets: u32,
    /// /ws subscribers (one fleet room + three vehicle rooms each).
    #[arg(long, default_value_t = 200)]
    pub mux_subscribers: u32,
    /// /ws/<room> subscribers (a vehicle room; one in ten a fleet room).
    #[arg(long, default_value_t = 100)]
    pub room_subscribers: u32,
    /// Subscribers closing per second (0 = no churn).
    #[arg(long, default_value_t = 5)]
    pub churn: u32,
    /// Share of closing /ws subscribers that come back resuming with `since` (the rest are
    /// replaced by fresh subscribers).
    #[arg(long, default_value_t = 0.5)]
    pub resume_share: f64,
    /// Leave out the slow reader, never-reader and garbage sender.
    #[arg(long)]
    pub no_misbehaving: bool,
    /// After the last minute, wait at most this long for in-flight messages.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
    #[command(flatten)]
    pub out: super::Output,
}

pub fn run(a: SoakArgs) -> Result<()> {
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
    a.out.emit(&json, |dir, command, notes| soak::record(dir, command, &r, notes))
}
