//! Vehicles: simulated cars driving a street grid over Berlin (`fleet:demo`, keyed by `id`, and
//! `vehicle:<id>`).
//!
//! Pure simulation — time goes in, `(room, json)` pairs come out — so the server can drive it
//! from a timer on one shard and tests can check it without a clock. It exists so that a fresh
//! `shardcast` shows a moving map at `/` with no publisher set up, and so loadgen and the map
//! page have realistic ~150-byte GPS updates to chew on.

use std::fmt::Write;
use std::time::Duration;

use super::{Rng, Sim, Update};

/// Bounding box of the simulated streets (latitude, longitude in degrees).
pub const LAT: (f64, f64) = (52.45, 52.56);
pub const LON: (f64, f64) = (13.28, 13.48);
/// Street spacing: roughly 550 m north-south and east-west blocks.
const LAT_STEP: f64 = 0.005;
const LON_STEP: f64 = 0.008;
const ROWS: i32 = 22; // (52.56 - 52.45) / 0.005
const COLS: i32 = 25; // (13.48 - 13.28) / 0.008
const METERS_PER_DEG_LAT: f64 = 111_320.0;
/// cos(52.5°): a degree of longitude is this much shorter than one of latitude here.
const COS_LAT: f64 = 0.6088;

pub const DEFAULT_VEHICLES: usize = 40;

#[derive(Debug, Clone)]
struct Vehicle {
    id: String,
    route: u32,
    /// Current position in grid units (row, col as floats).
    pos: (f64, f64),
    /// Intersection being driven to.
    target: (i32, i32),
    /// Direction index: 0 N, 1 E, 2 S, 3 W.
    dir: usize,
    cruise_kmh: f64,
    speed_kmh: f64,
    /// Seconds left standing at a light / stop.
    stopped_for: f64,
}

const DIRS: [(i32, i32); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// A deterministic fleet of vehicles publishing into `fleet:demo` and `vehicle:<id>`.
#[derive(Debug, Clone)]
pub struct DemoFleet {
    vehicles: Vec<Vehicle>,
    rng: Rng,
    last: Duration,
    epoch_ms: u64,
}

impl DemoFleet {
    pub fn new(n_vehicles: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let vehicles = (0..n_vehicles)
            .map(|i| {
                let (r, c) = (rng.below(ROWS as u64 + 1) as i32, rng.below(COLS as u64 + 1) as i32);
                let mut v = Vehicle {
                    id: format!("v{}", i + 1),
                    route: 100 + rng.below(150) as u32,
                    pos: (r as f64, c as f64),
                    target: (r, c),
                    dir: rng.below(4) as usize,
                    cruise_kmh: 25.0 + rng.unit() * 30.0,
                    speed_kmh: 0.0,
                    stopped_for: 0.0,
                };
                pick_next(&mut v, &mut rng);
                v
            })
            .collect();
        DemoFleet { vehicles, rng, last: Duration::ZERO, epoch_ms: 0 }
    }

    /// Sets the Unix time (ms) of `t = 0`, so `ts` fields carry wall-clock time.
    pub fn with_epoch_ms(mut self, epoch_ms: u64) -> Self {
        self.epoch_ms = epoch_ms;
        self
    }

    /// Advances the simulation to `t` (time since start) and returns one update per vehicle,
    /// each for both `fleet:demo` and `vehicle:<id>`. A `t` in the past moves nothing.
    pub fn tick(&mut self, t: Duration) -> Vec<Update> {
        let dt = t.saturating_sub(self.last).as_secs_f64().min(60.0);
        self.last = self.last.max(t);
        let ts = self.epoch_ms + t.as_millis() as u64;
        let mut out = Vec::with_capacity(self.vehicles.len() * 2);
        for v in &mut self.vehicles {
            step(v, dt, &mut self.rng);
            let json = to_json(v, ts).into_bytes();
            out.push((format!("vehicle:{}", v.id), json.clone()));
            out.push(("fleet:demo".to_owned(), json));
        }
        out
    }
}

fn pick_next(v: &mut Vehicle, rng: &mut Rng) {
    // Mostly straight on, sometimes turn, U-turn only at the edge of the map.
    let back = (v.dir + 2) % 4;
    let choice = match rng.below(10) {
        0..=5 => v.dir,
        6 | 7 => (v.dir + 1) % 4,
        _ => (v.dir + 3) % 4,
    };
    let ok = |d: usize| {
        let (r, c) = (v.target.0 + DIRS[d].0, v.target.1 + DIRS[d].1);
        (0..=ROWS).contains(&r) && (0..=COLS).contains(&c)
    };
    let dir =
        [choice, v.dir, (v.dir + 1) % 4, (v.dir + 3) % 4, back].into_iter().find(|&d| ok(d)).unwrap_or(back);
    v.dir = dir;
    v.target = (v.target.0 + DIRS[dir].0, v.target.1 + DIRS[dir].1);
}

fn step(v: &mut Vehicle, mut dt: f64, rng: &mut Rng) {
    while dt > 0.0 {
        if v.stopped_for > 0.0 {
            let wait = v.stopped_for.min(dt);
            v.stopped_for -= wait;
            dt -= wait;
            v.speed_kmh = 0.0;
            continue;
        }
        // Speed wanders around the cruise speed, as in traffic.
        v.speed_kmh = (v.cruise_kmh * (0.8 + 0.4 * rng.unit())).max(5.0);
        let meters_per_s = v.speed_kmh / 3.6;
        let (dr, dc) = (v.target.0 as f64 - v.pos.0, v.target.1 as f64 - v.pos.1);
        let block_m =
            if dr != 0.0 { LAT_STEP * METERS_PER_DEG_LAT } else { LON_STEP * METERS_PER_DEG_LAT * COS_LAT };
        let left_m = (dr.abs() + dc.abs()) * block_m;
        let can_m = meters_per_s * dt;
        if can_m < left_m {
            let f = can_m / block_m;
            // Not f64::signum: it maps 0.0 to 1.0 and would drift a car off its street.
            let sign = |d: f64| if d == 0.0 { 0.0 } else { d.signum() };
            v.pos.0 += sign(dr) * f;
            v.pos.1 += sign(dc) * f;
            return;
        }
        dt -= left_m / meters_per_s;
        v.pos = (v.target.0 as f64, v.target.1 as f64);
        if rng.below(4) == 0 {
            v.stopped_for = 5.0 + rng.unit() * 25.0; // red light or delivery stop
        }
        pick_next(v, rng);
    }
}

fn to_json(v: &Vehicle, ts: u64) -> String {
    let lat = LAT.0 + v.pos.0 * LAT_STEP;
    let lon = LON.0 + v.pos.1 * LON_STEP;
    let status = if v.stopped_for > 0.0 { "stopped" } else { "moving" };
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        r#"{{"id":"{}","lat":{lat:.5},"lon":{lon:.5},"speed":{:.1},"heading":{},"status":"{status}","route":"R{}","ts":{ts}}}"#,
        v.id,
        if status == "stopped" { 0.0 } else { v.speed_kmh },
        v.dir * 90,
        v.route,
    );
    s
}

impl Sim for DemoFleet {
    fn tick(&mut self, t: Duration) -> Vec<Update> {
        DemoFleet::tick(self, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Vec<Vec<(String, Vec<u8>)>> {
        let mut f = DemoFleet::new(DEFAULT_VEHICLES, seed).with_epoch_ms(1_700_000_000_000);
        (1..=600).map(|i| f.tick(Duration::from_millis(i * 500))).collect()
    }

    #[test]
    fn stays_in_the_box_and_parses() {
        for tick in run(7) {
            assert_eq!(tick.len(), 2 * DEFAULT_VEHICLES);
            for (room, json) in tick {
                let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
                let (lat, lon) = (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap());
                assert!((LAT.0..=LAT.1).contains(&lat) && (LON.0..=LON.1).contains(&lon), "{v}");
                assert!(room == "fleet:demo" || room == format!("vehicle:{}", v["id"].as_str().unwrap()));
                assert!(matches!(v["heading"].as_u64(), Some(0 | 90 | 180 | 270)));
                assert!((100..=170).contains(&json.len()), "{} bytes", json.len());
            }
        }
    }

    #[test]
    fn deterministic_and_moving() {
        let (a, b) = (run(42), run(42));
        assert_eq!(a, b);
        assert_ne!(a, run(43));
        let first = &a[0][1].1;
        let later = a.iter().map(|t| &t[1].1).find(|j| {
            let (x, y): (serde_json::Value, serde_json::Value) =
                (serde_json::from_slice(first).unwrap(), serde_json::from_slice(j).unwrap());
            x["lat"] != y["lat"] || x["lon"] != y["lon"]
        });
        assert!(later.is_some(), "vehicle never moved");
        let text = String::from_utf8(a[0][0].1.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"id":"v1","lat":52."#) && text.contains(r#""ts":1700000000500}"#),
            "{text}"
        );
    }
}
