//! Flights: aircraft flying great circles between real airports, on a clock sped up
//! [`SPEEDUP`]× so a world map shows them move (a 7-hour crossing takes 7 minutes). Each flight
//! boards, climbs, cruises, descends, lands, then turns around to a new destination.
//!
//! Rooms: `flights:all` (every flight, keyed by `id`: the board and the world map) and
//! `tracker/<id>` (one flight: the seed tutorial's `ws/tracker/<room_id>/`).

use std::fmt::Write;
use std::time::Duration;

use super::{elapsed, Rng, Sim, Update};

/// Simulated seconds per real second.
pub const SPEEDUP: f64 = 60.0;
/// Flights in the air at once.
pub const FLIGHTS: usize = 24;
const CRUISE_KT: f64 = 460.0;
const CRUISE_FT: f64 = 36_000.0;
const EARTH_KM: f64 = 6_371.0;
const KM_PER_NM: f64 = 1.852;
/// Real seconds on the ground before departure and after landing.
const GROUND_S: f64 = 20.0;
/// Distance of the climb and of the descent.
const CLIMB_KM: f64 = 250.0;

const AIRPORTS: [(&str, f64, f64); 16] = [
    ("FRA", 50.03, 8.57),
    ("JFK", 40.64, -73.78),
    ("LHR", 51.47, -0.45),
    ("CDG", 49.01, 2.55),
    ("DXB", 25.25, 55.36),
    ("SIN", 1.36, 103.99),
    ("HND", 35.55, 139.78),
    ("LAX", 33.94, -118.41),
    ("ORD", 41.98, -87.90),
    ("GRU", -23.43, -46.47),
    ("JNB", -26.14, 28.24),
    ("SYD", -33.94, 151.18),
    ("BER", 52.37, 13.50),
    ("IST", 41.26, 28.74),
    ("DEL", 28.56, 77.10),
    ("MAD", 40.49, -3.57),
];
const AIRLINES: [&str; 6] = ["DLH", "BAW", "AFR", "UAE", "SIA", "JAL"];

#[derive(Debug, Clone)]
struct Flight {
    id: String,
    from: usize,
    to: usize,
    /// Kilometres flown on this leg.
    flown_km: f64,
    /// Real seconds left on the ground (boarding or after landing); negative: airborne.
    ground_s: f64,
    landed: bool,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Flights {
    flights: Vec<Flight>,
    rng: Rng,
    last: Duration,
    epoch_ms: u64,
}

fn unit(lat: f64, lon: f64) -> [f64; 3] {
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()]
}

fn angle(a: [f64; 3], b: [f64; 3]) -> f64 {
    (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]).clamp(-1.0, 1.0).acos()
}

/// Great-circle distance between two airports.
fn leg_km(from: usize, to: usize) -> f64 {
    let (a, b) = (AIRPORTS[from], AIRPORTS[to]);
    angle(unit(a.1, a.2), unit(b.1, b.2)) * EARTH_KM
}

/// The point a fraction `f` of the way along the great circle, and the heading there.
fn along(from: usize, to: usize, f: f64) -> (f64, f64, f64) {
    let (a, b) = (AIRPORTS[from], AIRPORTS[to]);
    let (pa, pb) = (unit(a.1, a.2), unit(b.1, b.2));
    let w = angle(pa, pb);
    let p = if w < 1e-9 {
        pa
    } else {
        let (sa, sb) = (((1.0 - f) * w).sin() / w.sin(), (f * w).sin() / w.sin());
        [sa * pa[0] + sb * pb[0], sa * pa[1] + sb * pb[1], sa * pa[2] + sb * pb[2]]
    };
    let lat = p[2].clamp(-1.0, 1.0).asin().to_degrees();
    let lon = p[1].atan2(p[0]).to_degrees();
    // Initial bearing from here to the destination.
    let (la1, lo1, la2, lo2) = (lat.to_radians(), lon.to_radians(), b.1.to_radians(), b.2.to_radians());
    let y = (lo2 - lo1).sin() * la2.cos();
    let x = la1.cos() * la2.sin() - la1.sin() * la2.cos() * (lo2 - lo1).cos();
    let heading = (y.atan2(x).to_degrees() + 360.0) % 360.0;
    (lat, lon, heading)
}

impl Flights {
    pub fn new(seed: u64, epoch_ms: u64) -> Self {
        let mut rng = Rng(seed ^ 0xF11);
        let flights = (0..FLIGHTS)
            .map(|i| {
                let from = rng.below(AIRPORTS.len() as u64) as usize;
                let to = (from + 1 + rng.below(AIRPORTS.len() as u64 - 1) as usize) % AIRPORTS.len();
                // Unique flight numbers (two flights with one id would share a room).
                let id = format!("{}{}", AIRLINES[i % AIRLINES.len()], 101 + 37 * i);
                // Spread over their legs, so the map is full at once.
                let flown_km = leg_km(from, to) * rng.range(0.0, 0.9);
                Flight { id, from, to, flown_km, ground_s: -1.0, landed: false }
            })
            .collect();
        Flights { flights, rng, last: Duration::ZERO, epoch_ms }
    }
}

impl Sim for Flights {
    fn tick(&mut self, t: Duration) -> Vec<Update> {
        let dt = elapsed(&mut self.last, t);
        let ts = self.epoch_ms + t.as_millis() as u64;
        let mut out = Vec::with_capacity(self.flights.len() * 2);
        for f in &mut self.flights {
            step(f, dt, &mut self.rng);
            let json = to_json(f, ts).into_bytes();
            out.push((format!("tracker/{}", f.id), json.clone()));
            out.push(("flights:all".to_owned(), json));
        }
        out
    }
}

fn step(f: &mut Flight, dt: f64, rng: &mut Rng) {
    if f.ground_s >= 0.0 {
        f.ground_s -= dt;
        if f.ground_s < 0.0 && f.landed {
            // Turn around: board for the next leg from where it landed.
            f.from = f.to;
            f.to = (f.from + 1 + rng.below(AIRPORTS.len() as u64 - 1) as usize) % AIRPORTS.len();
            f.flown_km = 0.0;
            f.landed = false;
            f.ground_s = GROUND_S;
        }
        return;
    }
    f.flown_km += CRUISE_KT * KM_PER_NM / 3600.0 * SPEEDUP * dt;
    if f.flown_km >= leg_km(f.from, f.to) {
        f.flown_km = leg_km(f.from, f.to);
        f.landed = true;
        f.ground_s = GROUND_S;
    }
}

fn to_json(f: &Flight, ts: u64) -> String {
    let total = leg_km(f.from, f.to).max(1.0);
    let progress = (f.flown_km / total).clamp(0.0, 1.0);
    let (lat, lon, heading) = along(f.from, f.to, progress);
    let left = total - f.flown_km;
    let (status, alt, speed) = if f.ground_s >= 0.0 {
        (if f.landed { "landed" } else { "boarding" }, 0.0, 0.0)
    } else if f.flown_km < CLIMB_KM {
        ("climbing", CRUISE_FT * f.flown_km / CLIMB_KM, CRUISE_KT * 0.7)
    } else if left < CLIMB_KM {
        ("descending", CRUISE_FT * left / CLIMB_KM, CRUISE_KT * 0.7)
    } else {
        ("cruising", CRUISE_FT, CRUISE_KT)
    };
    let mut s = String::with_capacity(220);
    let _ = write!(
        s,
        r#"{{"id":"{id}","callsign":"{id}","from":"{}","to":"{}","lat":{lat:.4},"lon":{lon:.4},"alt_ft":{alt:.0},"speed_kt":{speed:.0},"heading":{heading:.0},"status":"{status}","progress":{progress:.3},"ts":{ts}}}"#,
        AIRPORTS[f.from].0,
        AIRPORTS[f.to].0,
        id = f.id,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::testing::run;

    #[test]
    fn flights_cross_the_map_land_and_turn_around() {
        let mut sim = Flights::new(3, 1_700_000_000_000);
        let ticks = run(&mut sim, 900, |room, v| {
            room == "flights:all" || room == format!("tracker/{}", v["id"].as_str().unwrap())
        });
        let mut statuses = std::collections::BTreeSet::new();
        for (_, json) in ticks.iter().flatten() {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            assert!(v["lat"].as_f64().unwrap().abs() <= 90.0 && v["lon"].as_f64().unwrap().abs() <= 180.0);
            assert!((0.0..=CRUISE_FT).contains(&v["alt_ft"].as_f64().unwrap()));
            statuses.insert(v["status"].as_str().unwrap().to_owned());
        }
        for s in ["boarding", "climbing", "cruising", "descending", "landed"] {
            assert!(statuses.contains(s), "no flight was ever {s}: {statuses:?}");
        }
        // Visible motion: a cruising flight moves ~0.1° or more per real second.
        let pos = |i: usize| -> (f64, f64) {
            let v: serde_json::Value = serde_json::from_slice(&ticks[i][1].1).unwrap();
            (v["lat"].as_f64().unwrap(), v["lon"].as_f64().unwrap())
        };
        assert_ne!(pos(10), pos(20));
    }

    #[test]
    fn flight_ids_are_unique() {
        let mut sim = Flights::new(3, 0);
        let ids: std::collections::HashSet<String> = sim
            .tick(Duration::from_secs(1))
            .iter()
            .map(|(_, j)| {
                serde_json::from_slice::<serde_json::Value>(j).unwrap()["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids.len(), FLIGHTS);
    }

    #[test]
    fn the_great_circle_ends_at_the_destination() {
        let (lat, lon, _) = along(0, 1, 1.0);
        assert!((lat - AIRPORTS[1].1).abs() < 1e-6 && (lon - AIRPORTS[1].2).abs() < 1e-6);
        let (_, _, heading) = along(0, 1, 0.0);
        assert!((280.0..320.0).contains(&heading), "FRA→JFK starts west-north-west: {heading}");
    }
}
