//! Publisher models: vehicles, flights, IoT sensors and delivery orders.
//!
//! Each model keeps a little state and, on every tick, appends a ~100–300 byte JSON object to
//! a buffer. The measurement fields come first — `{"t":..,"p":..,"s":..` — so the receiver
//! can find them with a short scan (see `payload.rs`); the model fields follow.

use std::io::Write as _;

use serde::{Deserialize, Serialize};

/// Small, fast, seedable PRNG (xorshift64*); good enough for simulation and masks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 the seed so nearby seeds diverge.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Kind of simulated publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Vehicle,
    Flight,
    Sensor,
    Order,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vehicle => "vehicle",
            Kind::Flight => "flight",
            Kind::Sensor => "sensor",
            Kind::Order => "order",
        }
    }
}

// City bounding box (Berlin) and a street grid of ~150 m blocks.
const CITY_LAT: (f64, f64) = (52.45, 52.57);
const CITY_LON: (f64, f64) = (13.28, 13.50);
const BLOCK_DEG_LAT: f64 = 0.00135;
const BLOCK_DEG_LON: f64 = 0.0022;
const M_PER_DEG_LAT: f64 = 111_320.0;
const M_PER_DEG_LON: f64 = 67_800.0; // at ~52.5°N

const AIRPORTS: &[(&str, f64, f64)] = &[
    ("BER", 52.366, 13.503),
    ("FRA", 50.037, 8.562),
    ("LHR", 51.470, -0.454),
    ("CDG", 49.009, 2.548),
    ("MAD", 40.472, -3.561),
    ("FCO", 41.800, 12.239),
    ("IST", 41.275, 28.752),
    ("JFK", 40.641, -73.778),
    ("DXB", 25.253, 55.365),
    ("ARN", 59.650, 17.930),
];
const STATUSES: &[&str] = &["created", "accepted", "preparing", "picked_up", "en_route", "delivered"];

/// State of one simulated entity.
#[derive(Debug, Clone)]
pub enum Model {
    Vehicle { lat: f64, lon: f64, dir: u8, speed: f64, to_corner_m: f64, line: u16 },
    Flight { from: usize, to: usize, frac: f64, dur_s: f64, callsign: u32 },
    Sensor { temp: f64, hum: f64, batt: f64 },
    Order { status: usize, lat: f64, lon: f64, dlat: f64, dlon: f64, next_status_s: f64, courier: u32 },
}

impl Model {
    pub fn new(kind: Kind, rng: &mut Rng) -> Model {
        match kind {
            Kind::Vehicle => Model::Vehicle {
                lat: snap(rng.range(CITY_LAT.0, CITY_LAT.1), CITY_LAT.0, BLOCK_DEG_LAT),
                lon: snap(rng.range(CITY_LON.0, CITY_LON.1), CITY_LON.0, BLOCK_DEG_LON),
                dir: rng.below(4) as u8,
                speed: rng.range(4.0, 14.0),
                to_corner_m: rng.range(0.0, 150.0),
                line: 100 + rng.below(300) as u16,
            },
            Kind::Flight => {
                let from = rng.below(AIRPORTS.len() as u64) as usize;
                let to = (from + 1 + rng.below(AIRPORTS.len() as u64 - 1) as usize) % AIRPORTS.len();
                Model::Flight {
                    from,
                    to,
                    frac: rng.f64(),
                    dur_s: rng.range(3600.0, 30000.0),
                    callsign: rng.below(9000) as u32 + 1000,
                }
            }
            Kind::Sensor => Model::Sensor {
                temp: rng.range(15.0, 28.0),
                hum: rng.range(30.0, 70.0),
                batt: rng.range(40.0, 100.0),
            },
            Kind::Order => Model::Order {
                status: 0,
                lat: rng.range(CITY_LAT.0, CITY_LAT.1),
                lon: rng.range(CITY_LON.0, CITY_LON.1),
                dlat: rng.range(CITY_LAT.0, CITY_LAT.1),
                dlon: rng.range(CITY_LON.0, CITY_LON.1),
                next_status_s: rng.range(5.0, 30.0),
                courier: rng.below(5000) as u32,
            },
        }
    }

    /// Advances the model by `dt` seconds and appends one JSON payload to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn tick(
        &mut self,
        rng: &mut Rng,
        dt: f64,
        t_ns: u64,
        pid: u32,
        seq: u64,
        entity: u64,
        out: &mut Vec<u8>,
    ) {
        let _ = write!(out, "{{\"t\":{t_ns},\"p\":{pid},\"s\":{seq},");
        match self {
            Model::Vehicle { lat, lon, dir, speed, to_corner_m, line } => {
                // Drive along the grid; at a corner, go straight, left or right.
                let mut left = *speed * dt;
                while left > 0.0 {
                    let step = left.min(*to_corner_m);
                    let (dlat, dlon) = dir_vec(*dir);
                    *lat += dlat * step / M_PER_DEG_LAT;
                    *lon += dlon * step / M_PER_DEG_LON;
                    *to_corner_m -= step;
                    left -= step;
                    if *to_corner_m <= 1e-9 {
                        *dir = match rng.below(4) {
                            0 => (*dir + 1) % 4,
                            1 => (*dir + 3) % 4,
                            _ => *dir,
                        };
                        // Bounce off the city's edge.
                        if *lat < CITY_LAT.0 {
                            *dir = 0
                        } else if *lat > CITY_LAT.1 {
                            *dir = 2
                        } else if *lon < CITY_LON.0 {
                            *dir = 1
                        } else if *lon > CITY_LON.1 {
                            *dir = 3
                        }
                        *to_corner_m = if *dir % 2 == 0 {
                            BLOCK_DEG_LAT * M_PER_DEG_LAT
                        } else {
                            BLOCK_DEG_LON * M_PER_DEG_LON
                        };
                    }
                }
                *speed = (*speed + rng.range(-1.0, 1.0)).clamp(0.0, 16.0);
                let heading = [0, 90, 180, 270][*dir as usize];
                let status = if *speed < 0.5 { "stopped" } else { "in_service" };
                let _ = write!(
                    out,
                    "\"kind\":\"vehicle\",\"id\":\"veh-{entity}\",\"line\":\"M{line}\",\"lat\":{lat:.6},\"lon\":{lon:.6},\
                     \"speed\":{:.1},\"heading\":{heading},\"status\":\"{status}\",\"occupancy\":{}}}",
                    *speed * 3.6,
                    rng.below(80)
                );
            }
            Model::Flight { from, to, frac, dur_s, callsign } => {
                *frac += dt / *dur_s;
                if *frac >= 1.0 {
                    *from = *to;
                    *to = (*to + 1 + rng.below(AIRPORTS.len() as u64 - 1) as usize) % AIRPORTS.len();
                    *frac = 0.0;
                }
                let (a, b) = (AIRPORTS[*from], AIRPORTS[*to]);
                let (lat, lon, track) = great_circle(a.1, a.2, b.1, b.2, *frac);
                // Climb over the first 8%, descend over the last 10%.
                let (alt, vs) = if *frac < 0.08 {
                    (37000.0 * *frac / 0.08, 1800)
                } else if *frac > 0.9 {
                    (37000.0 * (1.0 - *frac) / 0.1, -1500)
                } else {
                    (37000.0, 0)
                };
                let gs = if alt < 10000.0 { 250.0 + alt / 40.0 } else { 450.0 + rng.range(-5.0, 5.0) };
                let _ = write!(
                    out,
                    "\"kind\":\"flight\",\"id\":\"flt-{entity}\",\"callsign\":\"DLH{callsign}\",\"from\":\"{}\",\"to\":\"{}\",\
                     \"lat\":{lat:.5},\"lon\":{lon:.5},\"alt_ft\":{:.0},\"gs_kt\":{gs:.0},\"track\":{track:.1},\"vs_fpm\":{vs},\"squawk\":\"{:04}\"}}",
                    a.0,
                    b.0,
                    alt,
                    (*callsign * 7) % 7777
                );
            }
            Model::Sensor { temp, hum, batt } => {
                *temp = (*temp + rng.range(-0.05, 0.05)).clamp(-20.0, 45.0);
                *hum = (*hum + rng.range(-0.2, 0.2)).clamp(5.0, 100.0);
                *batt = (*batt - dt * 0.0005).max(0.0);
                let _ = write!(
                    out,
                    "\"kind\":\"sensor\",\"id\":\"sen-{entity}\",\"temp_c\":{temp:.2},\"humidity\":{hum:.1},\"battery\":{batt:.1},\
                     \"rssi\":{},\"fw\":\"2.4.1\",\"site\":\"plant-{}\"}}",
                    -40 - rng.below(50) as i64,
                    entity % 12
                );
            }
            Model::Order { status, lat, lon, dlat, dlon, next_status_s, courier } => {
                *next_status_s -= dt;
                if *next_status_s <= 0.0 {
                    *status = (*status + 1) % STATUSES.len();
                    *next_status_s = rng.range(5.0, 30.0);
                    if *status == 0 {
                        *dlat = rng.range(CITY_LAT.0, CITY_LAT.1);
                        *dlon = rng.range(CITY_LON.0, CITY_LON.1);
                        *courier = rng.below(5000) as u32;
                    }
                }
                if STATUSES[*status] == "en_route" || STATUSES[*status] == "picked_up" {
                    *lat += (*dlat - *lat) * (dt * 0.02).min(1.0);
                    *lon += (*dlon - *lon) * (dt * 0.02).min(1.0);
                }
                let dist_m = (((*dlat - *lat) * M_PER_DEG_LAT).powi(2)
                    + ((*dlon - *lon) * M_PER_DEG_LON).powi(2))
                .sqrt();
                let _ = write!(
                    out,
                    "\"kind\":\"order\",\"id\":\"ord-{entity}\",\"status\":\"{}\",\"courier\":\"c-{courier}\",\
                     \"lat\":{lat:.6},\"lon\":{lon:.6},\"dest\":[{dlat:.5},{dlon:.5}],\"eta_s\":{:.0}}}",
                    STATUSES[*status],
                    dist_m / 6.0
                );
            }
        }
    }
}

fn snap(v: f64, origin: f64, step: f64) -> f64 {
    origin + ((v - origin) / step).round() * step
}

/// Unit (north, east) vector for directions 0=N, 1=E, 2=S, 3=W.
fn dir_vec(dir: u8) -> (f64, f64) {
    match dir {
        0 => (1.0, 0.0),
        1 => (0.0, 1.0),
        2 => (-1.0, 0.0),
        _ => (0.0, -1.0),
    }
}

/// Point at fraction `f` along the great circle from (lat1,lon1) to (lat2,lon2), and the
/// initial bearing there, all in degrees.
fn great_circle(lat1: f64, lon1: f64, lat2: f64, lon2: f64, f: f64) -> (f64, f64, f64) {
    let (p1, l1, p2, l2) = (lat1.to_radians(), lon1.to_radians(), lat2.to_radians(), lon2.to_radians());
    let d = 2.0
        * (((p2 - p1) / 2.0).sin().powi(2) + p1.cos() * p2.cos() * ((l2 - l1) / 2.0).sin().powi(2))
            .sqrt()
            .asin();
    if d < 1e-9 {
        return (lat1, lon1, 0.0);
    }
    let a = ((1.0 - f) * d).sin() / d.sin();
    let b = (f * d).sin() / d.sin();
    let x = a * p1.cos() * l1.cos() + b * p2.cos() * l2.cos();
    let y = a * p1.cos() * l1.sin() + b * p2.cos() * l2.sin();
    let z = a * p1.sin() + b * p2.sin();
    let (lat, lon) = (z.atan2((x * x + y * y).sqrt()), y.atan2(x));
    let brg =
        ((l2 - lon).sin() * p2.cos()).atan2(lat.cos() * p2.sin() - lat.sin() * p2.cos() * (l2 - lon).cos());
    (lat.to_degrees(), lon.to_degrees(), (brg.to_degrees() + 360.0) % 360.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{stamp, Stamp};

    #[test]
    fn payloads_are_json_with_stamp_first_and_realistic_size() {
        let mut rng = Rng::new(1);
        for kind in [Kind::Vehicle, Kind::Flight, Kind::Sensor, Kind::Order] {
            let mut m = Model::new(kind, &mut rng);
            for s in 1..200u64 {
                let mut out = Vec::new();
                m.tick(&mut rng, 1.0, 1_000_000 + s, 9, s, 42, &mut out);
                let v: serde_json::Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{kind:?}: {e}: {}", String::from_utf8_lossy(&out)));
                assert_eq!(v["kind"], kind.name());
                assert!(
                    (100..=300).contains(&out.len()),
                    "{kind:?} len {}: {}",
                    out.len(),
                    String::from_utf8_lossy(&out)
                );
                assert!(out.starts_with(b"{\"t\":"));
                assert_eq!(stamp(&out, 0), Some(Stamp { t: 1_000_000 + s, p: 9, s }));
            }
        }
    }

    #[test]
    fn vehicles_stay_near_the_city() {
        let mut rng = Rng::new(7);
        let mut m = Model::new(Kind::Vehicle, &mut rng);
        let mut out = Vec::new();
        for s in 0..5000 {
            out.clear();
            m.tick(&mut rng, 1.0, 0, 0, s, 0, &mut out);
        }
        if let Model::Vehicle { lat, lon, .. } = m {
            assert!((52.40..52.62).contains(&lat) && (13.2..13.6).contains(&lon), "{lat} {lon}");
        }
    }
}
