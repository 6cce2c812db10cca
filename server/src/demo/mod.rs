//! The built-in demo: one simulated publisher per tracking app, so a fresh `shardcast` shows
//! live data with nothing else set up (`--demo vehicles,flights,traffic,orders,iot`, all by
//! default; `--no-demo` for production).
//!
//! Each simulator is pure — time goes in, `(room, json)` updates come out ([`Sim`]) — so the
//! server drives them from one timer on shard 0 and tests check them without a clock. They
//! publish into the rooms the seed tutorials' URLs name (`/ws/tracker/<id>/`, `/ws/traffic/`,
//! `/ws/order-tracking/<id>/`, `/ws/sensor/`) plus keyed all-in-one rooms for maps and boards
//! (`fleet:demo`, `flights:all`, `orders:all`; `traffic` and `sensor` are keyed themselves):
//!
//! | app | rooms | payload fields |
//! |---|---|---|
//! | vehicles | `fleet:demo` (key `id`), `vehicle:<id>` | id lat lon speed heading status route ts |
//! | flights | `flights:all` (key `id`), `tracker/<id>` | id callsign from to lat lon alt_ft speed_kt heading status progress ts |
//! | traffic | `traffic` (key `id`) | id kind severity place lat lon message status expires_at ts |
//! | orders | `orders:all` (key `id`), `order-tracking/<id>` | id status restaurant courier lat lon dest_lat dest_lon eta_s ts |
//! | iot | `sensor` (key `id`) | id kind value unit battery lat lon ts |
//!
//! Every simulator is deterministic for a seed, bounded (a fixed number of vehicles, flights,
//! sensors; at most [`orders::MAX_ACTIVE`] orders and [`traffic::MAX_ACTIVE`] incidents at
//! once), and stamps `ts` with wall-clock milliseconds.

use std::time::Duration;

pub mod flights;
pub mod iot;
pub mod orders;
pub mod traffic;
pub mod vehicles;

pub use vehicles::{DemoFleet, DEFAULT_VEHICLES, LAT, LON};

/// One message to publish: its room and its JSON bytes.
pub type Update = (String, Vec<u8>);

/// A simulated publisher.
pub trait Sim {
    /// Advances to `t` (time since start) and returns what to publish now. A `t` in the
    /// past changes nothing.
    fn tick(&mut self, t: Duration) -> Vec<Update>;
}

/// The demo apps, as `--demo` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DemoKind {
    Vehicles,
    Flights,
    Traffic,
    Orders,
    Iot,
}

impl DemoKind {
    /// Every app, in `--demo` order.
    pub const ALL: [DemoKind; 5] =
        [DemoKind::Vehicles, DemoKind::Flights, DemoKind::Traffic, DemoKind::Orders, DemoKind::Iot];

    /// The name `--demo` takes.
    pub fn name(self) -> &'static str {
        match self {
            DemoKind::Vehicles => "vehicles",
            DemoKind::Flights => "flights",
            DemoKind::Traffic => "traffic",
            DemoKind::Orders => "orders",
            DemoKind::Iot => "iot",
        }
    }

    /// Parses one `--demo` name.
    pub fn parse(s: &str) -> Result<DemoKind, String> {
        let s = s.trim().to_ascii_lowercase();
        DemoKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = DemoKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown demo {s:?}: expected some of {}", names.join(","))
        })
    }

    /// The simulator of this app, seeded, with `ts` counted from `epoch_ms` (Unix ms).
    pub fn sim(self, seed: u64, epoch_ms: u64) -> Box<dyn Sim> {
        match self {
            DemoKind::Vehicles => Box::new(DemoFleet::new(DEFAULT_VEHICLES, seed).with_epoch_ms(epoch_ms)),
            DemoKind::Flights => Box::new(flights::Flights::new(seed, epoch_ms)),
            DemoKind::Traffic => Box::new(traffic::Traffic::new(seed, epoch_ms)),
            DemoKind::Orders => Box::new(orders::Orders::new(seed, epoch_ms)),
            DemoKind::Iot => Box::new(iot::Sensors::new(seed, epoch_ms)),
        }
    }
}

/// Small deterministic PRNG (SplitMix64): the demo must replay identically for a seed, and
/// needs no cryptographic quality.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// New items (orders, incidents) arriving about every `every` real seconds (each gap 0.5–1.5×
/// that), numbered from a first id. Arrivals held back by a bound are dropped, not queued: a
/// sim that was full does not burst when room frees.
#[derive(Debug, Clone)]
pub(crate) struct Arrivals {
    next_id: u64,
    next_at: f64,
    every: f64,
}

impl Arrivals {
    pub(crate) fn new(first_id: u64, every: f64) -> Self {
        Arrivals { next_id: first_id, next_at: 0.0, every }
    }

    /// Whether an item is due at `now` (seconds since start).
    pub(crate) fn due(&self, now: f64) -> bool {
        self.next_at <= now
    }

    /// The id of the item arriving now.
    pub(crate) fn id(&self) -> u64 {
        self.next_id
    }

    /// The item arrived: schedules the next one.
    pub(crate) fn next(&mut self, rng: &mut Rng) {
        self.next_id += 1;
        self.next_at += rng.range(0.5, 1.5) * self.every;
    }

    /// Ends a tick: what was due but held back by a bound is dropped.
    pub(crate) fn settle(&mut self, now: f64) {
        self.next_at = self.next_at.max(now);
    }
}

/// Seconds between `last` and `t`, at most a minute (a stalled timer must not teleport).
pub(crate) fn elapsed(last: &mut Duration, t: Duration) -> f64 {
    let dt = t.saturating_sub(*last).as_secs_f64().min(60.0);
    *last = (*last).max(t);
    dt
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Runs `sim` for `secs` seconds in 1 s ticks; every update must be a JSON object with
    /// an `id` and a `ts`, in a room `rooms` accepts.
    pub fn run(
        sim: &mut dyn Sim,
        secs: u64,
        rooms: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> Vec<Vec<Update>> {
        let ticks: Vec<Vec<Update>> = (1..=secs).map(|i| sim.tick(Duration::from_secs(i))).collect();
        for (room, json) in ticks.iter().flatten() {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            assert!(v["id"].is_string() && v["ts"].is_u64(), "{room}: {v}");
            assert!(rooms(room, &v), "unexpected room {room} for {v}");
            crate::protocol::validate_room(room).unwrap();
        }
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_explained() {
        for k in DemoKind::ALL {
            assert_eq!(DemoKind::parse(k.name()), Ok(k));
        }
        assert!(DemoKind::parse("boats").unwrap_err().contains("vehicles,flights,traffic,orders,iot"));
    }

    #[test]
    fn every_app_is_deterministic() {
        for k in DemoKind::ALL {
            let mut a = k.sim(5, 1_700_000_000_000);
            let mut b = k.sim(5, 1_700_000_000_000);
            for i in 1..=120 {
                let t = Duration::from_secs(i);
                assert_eq!(a.tick(t), b.tick(t), "{k:?}");
            }
        }
    }
}
