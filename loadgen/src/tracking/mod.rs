//! `shardcast-loadgen tracking --mode viewports|pacing|presence`: measurements of the
//! tracking-native subscriptions of issue 11 (DESIGN §3 "Tracking") against a shardcast
//! server whose `--config` gives the namespace `key = "id"`, `geo = { lat = "lat", lon =
//! "lon" }` (and `presence = true` for presence).
//!
//! One thread, one clock: publishers and subscribers live in this process (a [`net::Net`]),
//! every payload carries its intended send time (`{"t":..,"p":..,"s":..`, as the other
//! scenarios) and latency is receive time − intended send time. The loadgen also computes
//! what each subscriber *should* get (from the positions it published and each viewport)
//! and reports misses and extras.
//!
//! - [`viewports`]: a city room, one random viewport per subscriber, some panning (`view`);
//!   then the same subscribers on the whole room, for CPU per published message.
//! - [`pacing`]: phones with `max_rate`/`min_move_m`/`max_silence_s` against the same phones
//!   unfiltered: frames and bytes, and the last-position delay.
//! - [`presence`]: members joining one room within a couple of seconds: `presence_diff`
//!   frames (coalesced, measured) against one event per join to every member (computed).

pub mod geo;
pub mod net;
pub mod pacing;
pub mod presence;
pub mod viewports;

use std::io::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::sim::Rng;
use crate::stats::{new_hist, Percentiles};
use crate::sys;
use geo::{Vehicle, CITY};
use net::Net;

/// Options shared by the modes (each mode reads its own subset).
#[derive(Debug, Clone)]
pub struct Opts {
    pub url: String,
    pub server_pid: Option<u32>,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub connect_timeout: Duration,
    pub seed: u64,
}

/// Monotonic ns since the loadgen's start: the payloads' `t`.
pub fn now_rel() -> u64 {
    let e = crate::runner::epoch(); // first: it may be set by this call
    sys::mono_ns().saturating_sub(e)
}

/// A phase's schedule, in [`now_rel`] ns: warm-up from `t0`, the window `[win_start,
/// win_end)` (only messages sent in it count), then the drain until `end`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub t0: u64,
    pub win_start: u64,
    pub win_end: u64,
    pub end: u64,
}

impl Timing {
    pub fn start(o: &Opts) -> Timing {
        let t0 = now_rel() + 20_000_000;
        let win_start = t0 + o.warmup.as_nanos() as u64;
        let win_end = win_start + o.duration.as_nanos() as u64;
        Timing { t0, win_start, win_end, end: win_end + o.drain.as_nanos() as u64 }
    }
    pub fn in_window(&self, t: u64) -> bool {
        t >= self.win_start && t < self.win_end
    }
    pub fn window_s(&self) -> f64 {
        (self.win_end - self.win_start) as f64 / 1e9
    }
}

/// Server and loadgen CPU over the window: sampled when the window starts and ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuMeter {
    start: Option<(u64, Option<u64>, u64)>,
    end: Option<(u64, Option<u64>, u64)>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Cpu {
    pub server_cpu_s: Option<f64>,
    pub server_cores: Option<f64>,
    pub loadgen_cores: f64,
}

impl CpuMeter {
    fn sample(pid: Option<u32>) -> (u64, Option<u64>, u64) {
        let (u, s) = sys::process_cpu_ns();
        (now_rel(), pid.and_then(sys::pid_cpu_ns), u + s)
    }
    /// Call often: samples once at the window's start and once at its end.
    pub fn tick(&mut self, t: &Timing, pid: Option<u32>) {
        let now = now_rel();
        if self.start.is_none() && now >= t.win_start {
            self.start = Some(Self::sample(pid));
        }
        if self.end.is_none() && now >= t.win_end {
            self.end = Some(Self::sample(pid));
        }
    }
    pub fn result(&self) -> Cpu {
        match (self.start, self.end) {
            (Some(a), Some(b)) => {
                let wall = (b.0 - a.0).max(1) as f64;
                let srv = match (a.1, b.1) {
                    (Some(x), Some(y)) => Some(y.saturating_sub(x)),
                    _ => None,
                };
                Cpu {
                    server_cpu_s: srv.map(|n| n as f64 / 1e9),
                    server_cores: srv.map(|n| n as f64 / wall),
                    loadgen_cores: b.2.saturating_sub(a.2) as f64 / wall,
                }
            }
            _ => Cpu::default(),
        }
    }
}

/// Simulated vehicles publishing over `/ws` `pub` from a few publisher connections, on an
/// open-loop round-robin schedule: tick `j` is vehicle `j % n` at `t0 + j / (rate·n)` s.
pub struct Fleet {
    pub vehicles: Vec<Vehicle>,
    /// Last seq per vehicle (from 1).
    pub seq: Vec<u64>,
    pub pub_clients: Vec<usize>,
    rng: Rng,
    rate_hz: f64,
    step_s: f64,
    t0: u64,
    j: u64,
    buf: Vec<u8>,
    pub sent: u64,
}

/// One publish as the fleet sent it.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub v: u32,
    pub s: u64,
    pub t: u64,
    pub lat: f64,
    pub lon: f64,
}

/// Publisher connections for `per_s` publishes a second (the server allows 2,000 a second
/// per connection).
pub fn publisher_conns(per_s: f64) -> usize {
    (per_s / 1000.0).ceil() as usize + 1
}

impl Fleet {
    pub fn new(n: usize, parked_share: f64, seed: u64, pub_clients: Vec<usize>) -> Fleet {
        let mut rng = Rng::new(seed);
        let vehicles = (0..n).map(|_| {
            let parked = rng.f64() < parked_share;
            Vehicle::new(&mut rng, &CITY, parked)
        });
        let vehicles: Vec<Vehicle> = vehicles.collect();
        Fleet {
            seq: vec![0; vehicles.len()],
            vehicles,
            pub_clients,
            rng,
            rate_hz: 1.0,
            step_s: 1.0,
            t0: 0,
            j: 0,
            buf: Vec::with_capacity(512),
            sent: 0,
        }
    }

    /// Starts a schedule at `t0` with `rate_hz` per vehicle, each publish moving its vehicle
    /// by `step_s` seconds of driving (`1 / rate_hz` for real time; 1 s when a lower rate
    /// stands for a 1 Hz fleet, so that positions change between publishes as at 1 Hz).
    pub fn start(&mut self, t0: u64, rate_hz: f64, step_s: f64) {
        self.t0 = t0;
        self.rate_hz = rate_hz;
        self.step_s = step_s;
        self.j = 0;
    }

    /// When tick `j` is due.
    pub fn due(&self) -> u64 {
        let n = self.vehicles.len().max(1) as f64;
        self.t0 + (self.j as f64 * 1e9 / (self.rate_hz * n)) as u64
    }

    /// Sends every tick due by `now` before `until`, each into `room(v)`; `on_pub` sees each.
    pub fn fire(
        &mut self,
        net: &mut Net,
        now: u64,
        until: u64,
        room: &impl Fn(u32) -> String,
        on_pub: &mut impl FnMut(Published),
    ) {
        if self.vehicles.is_empty() {
            return;
        }
        let dt = self.step_s;
        loop {
            let due = self.due();
            if due > now || due >= until {
                return;
            }
            let v = (self.j % self.vehicles.len() as u64) as usize;
            self.j += 1;
            self.vehicles[v].step(&mut self.rng, &CITY, dt);
            self.seq[v] += 1;
            let (lat, lon) = self.vehicles[v].published();
            let p = Published { v: v as u32, s: self.seq[v], t: due, lat, lon };
            self.buf.clear();
            let _ = write!(
                self.buf,
                "{{\"op\":\"pub\",\"room\":\"{}\",\"data\":{{\"t\":{},\"p\":{},\"s\":{},\"id\":\"v{}\",\"lat\":{:.6},\"lon\":{:.6},\"speed\":{:.1}}}}}",
                room(p.v),
                p.t,
                p.v,
                p.s,
                p.v,
                lat,
                lon,
                if self.vehicles[v].parked.is_some() { 0.0 } else { self.vehicles[v].speed }
            );
            let c = self.pub_clients[v % self.pub_clients.len()];
            net.send_text(c, &self.buf);
            self.sent += 1;
            on_pub(p);
        }
    }
}

/// Latency percentiles (µs) of a histogram in ns.
pub fn pct(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
    Percentiles::of(h)
}

pub fn hist() -> hdrhistogram::Histogram<u64> {
    new_hist()
}

/// `"op":"<name>"` of a server reply, if it is one.
pub fn op_of(b: &[u8]) -> Option<&[u8]> {
    let k = b.windows(6).position(|w| w == b"\"op\":\"")?;
    let rest = &b[k + 6..];
    let e = rest.iter().position(|&c| c == b'"')?;
    Some(&rest[..e])
}

/// Milliseconds with one decimal, for tables.
pub fn ms(us: f64) -> String {
    format!("{:.1} ms", us / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_found() {
        assert_eq!(op_of(br#"{"op":"leave","room":"r","key":"v1"}"#), Some(&b"leave"[..]));
        assert_eq!(op_of(br#"{"room":"r","seq":1,"data":{}}"#), None);
        assert_eq!(publisher_conns(5000.0), 6);
        assert_eq!(publisher_conns(10.0), 2);
    }

    #[test]
    fn fleet_schedule_is_round_robin_and_open_loop() {
        let mut f = Fleet::new(4, 0.0, 1, vec![]);
        f.start(1_000, 2.0, 0.5);
        // 4 vehicles at 2 Hz: a tick every 125 ms.
        assert_eq!(f.due(), 1_000);
        f.j = 3;
        assert_eq!(f.due(), 1_000 + 375_000_000);
        let t = Timing { t0: 0, win_start: 10, win_end: 20, end: 30 };
        assert!(t.in_window(10) && !t.in_window(20) && !t.in_window(9));
    }
}
