//! `shardcast-loadgen tracking`: flags and handler for the issue 11 measurements
//! ([`shardcast_loadgen::tracking`]).

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use shardcast_loadgen::report;
use shardcast_loadgen::tracking::{pacing, presence, viewports, Opts};

use super::{parse_duration, Output};

pub const HELP: &str = "The server needs a --config whose namespaces give the wire fields, e.g.\n\
  [namespaces.fleet]\n  key = \"id\"\n  geo = { lat = \"lat\", lon = \"lon\" }\n\
  [namespaces.chat]\n  presence = true\n  presence_members = 5000\n\n\
Examples:\n  shardcast-loadgen tracking --mode viewports --url ws://127.0.0.1:8080/ws --vehicles 5000 --rate 0.02 \
--subscribers 10000 --whole-rate 0.0006 --server-pid $PID\n  \
shardcast-loadgen tracking --mode pacing --vehicles 2000 --phones 1000 --rooms 50 --max-rate 0.5 --min-move-m 10 \
--max-silence-s 10\n  shardcast-loadgen tracking --mode presence --members 2000 --join-over 2s";

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    Viewports,
    Pacing,
    Presence,
}

#[derive(Args)]
pub struct TrackingArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    /// shardcast's multiplexed endpoint (loopback only).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Server process: its CPU over each window.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(flatten)]
    window: super::Window,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Vehicles (viewports default 5000, pacing 2000).
    #[arg(long)]
    vehicles: Option<usize>,
    /// Per-vehicle publish rate, Hz (viewports phase / both pacing phases). Default 1.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// viewports: subscribers, each with its own viewport.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// viewports: smallest and largest viewport, share of the city's area.
    #[arg(long, default_value_t = 0.01)]
    view_min: f64,
    #[arg(long, default_value_t = 0.05)]
    view_max: f64,
    /// viewports: share of subscribers that pan ...
    #[arg(long, default_value_t = 0.2)]
    pan_share: f64,
    /// ... each this often.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pan_every: Duration,
    /// viewports: per-vehicle rate (Hz) of the second phase, where the same subscribers
    /// follow a room without a box; 0 = skip it.
    #[arg(long, default_value_t = 0.0)]
    whole_rate: f64,
    /// viewports: seconds of driving per publish; 1 keeps positions moving as in a 1 Hz fleet
    /// when --rate is scaled down.
    #[arg(long, default_value_t = 1.0)]
    step_s: f64,
    /// pacing: phones.
    #[arg(long, default_value_t = 1000)]
    phones: usize,
    /// pacing: rooms the fleet is split into (each phone follows one).
    #[arg(long, default_value_t = 50)]
    rooms: usize,
    #[arg(long)]
    max_rate: Option<f64>,
    #[arg(long)]
    min_move_m: Option<f64>,
    #[arg(long)]
    max_silence_s: Option<f64>,
    /// pacing: share of vehicles parked (jittering ±2 m).
    #[arg(long, default_value_t = 0.2)]
    parked: f64,
    /// presence: members joining.
    #[arg(long, default_value_t = 2000)]
    members: usize,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    join_over: Duration,
    /// presence: how long to keep counting after the last join.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    settle: Duration,
    /// presence: the room (its namespace needs presence = true).
    #[arg(long, default_value = "chat:lobby")]
    presence_room: String,
    #[command(flatten)]
    out: Output,
}

pub fn run(a: TrackingArgs) -> Result<()> {
    let o = Opts {
        url: a.url.clone(),
        server_pid: a.server_pid,
        warmup: a.window.warmup,
        duration: a.window.duration,
        drain: a.window.drain,
        connect_timeout: a.window.connect_timeout,
        seed: a.seed,
    };
    if a.rate.is_nan() || a.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let (name, table, json) = match a.mode {
        Mode::Viewports => {
            let v = viewports::ViewportOpts {
                vehicles: a.vehicles.unwrap_or(5000),
                rate_hz: a.rate,
                subscribers: a.subscribers,
                view_min: a.view_min,
                view_max: a.view_max.max(a.view_min),
                pan_share: a.pan_share,
                pan_every: a.pan_every,
                whole_rate_hz: (a.whole_rate > 0.0).then_some(a.whole_rate),
                room: "fleet:city".into(),
                whole_room: "fleet:all".into(),
                step_s: a.step_s,
            };
            let r = viewports::run(&o, &v)?;
            ("tracking-viewports", r.table(), serde_json::to_value(&r)?)
        }
        Mode::Pacing => {
            let p = pacing::PacingOpts {
                vehicles: a.vehicles.unwrap_or(2000),
                rate_hz: a.rate,
                phones: a.phones,
                rooms: a.rooms,
                max_rate: a.max_rate,
                min_move_m: a.min_move_m,
                max_silence_s: a.max_silence_s,
                parked_share: a.parked,
            };
            if p.max_rate.is_none() && p.min_move_m.is_none() {
                bail!("pacing needs --max-rate and/or --min-move-m");
            }
            let r = pacing::run(&o, &p)?;
            ("tracking-pacing", r.table(), serde_json::to_value(&r)?)
        }
        Mode::Presence => {
            let p = presence::PresenceOpts {
                members: a.members,
                join_over: a.join_over,
                settle: a.settle,
                room: a.presence_room.clone(),
            };
            let r = presence::run(&o, &p)?;
            ("tracking-presence", r.table(), serde_json::to_value(&r)?)
        }
    };
    print!("{table}");
    a.out.emit(&json, |dir, command, notes| {
        let out = report::new_record_dir(dir, name)?;
        let md = format!(
            "{}{notes}{table}\nFiles: `summary.json` (everything).\n",
            report::readme_head(name, command)
        );
        std::fs::write(out.join("README.md"), md)?;
        std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&json)?)?;
        Ok(out)
    })
}
