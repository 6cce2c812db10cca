//! Traffic: incidents appearing and clearing over the vehicles' city (accidents, roadworks,
//! congestion, closures), each with a severity, a place, a position and an expiry. An incident
//! is published when it appears (`"status":"active"`) and once more when it clears
//! (`"status":"cleared"`), so a list or map drops it; `expires_at` (Unix ms) lets a page hide it
//! even if it missed the clearing.
//!
//! Room: `traffic` (the seed tutorial's `ws/traffic/`), keyed by `id`, so a snapshot gives the
//! last state of every incident a page should know.

use std::fmt::Write;
use std::time::Duration;

use super::{elapsed, Arrivals, Rng, Sim, Update, LAT, LON};

/// Incidents active at once, at most.
pub const MAX_ACTIVE: usize = 12;
/// Mean real seconds between new incidents.
const EVERY_S: f64 = 4.0;

const KINDS: [(&str, &str); 4] = [
    ("accident", "Collision blocking one lane"),
    ("roadworks", "Lane closed for roadworks"),
    ("congestion", "Slow traffic, expect delays"),
    ("closure", "Road closed, follow the detour"),
];
const PLACES: [&str; 10] = [
    "A100 at Tempelhofer Damm",
    "Frankfurter Allee",
    "Karl-Marx-Straße",
    "Unter den Linden",
    "Kurfürstendamm",
    "Schönhauser Allee",
    "Potsdamer Platz",
    "Alexanderplatz",
    "Sonnenallee",
    "Heerstraße",
];
const SEVERITIES: [&str; 3] = ["minor", "moderate", "major"];

#[derive(Debug, Clone)]
struct Incident {
    id: u64,
    kind: usize,
    place: usize,
    severity: usize,
    lat: f64,
    lon: f64,
    /// Real seconds since start when it clears.
    clears_at: f64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Traffic {
    active: Vec<Incident>,
    rng: Rng,
    arrivals: Arrivals,
    last: Duration,
    epoch_ms: u64,
}

impl Traffic {
    pub fn new(seed: u64, epoch_ms: u64) -> Self {
        Traffic {
            active: Vec::new(),
            rng: Rng(seed ^ 0x7AF),
            arrivals: Arrivals::new(1, EVERY_S),
            last: Duration::ZERO,
            epoch_ms,
        }
    }

    fn json(&self, i: &Incident, status: &str, ts: u64) -> Vec<u8> {
        let (kind, message) = KINDS[i.kind];
        let expires_at = self.epoch_ms + (i.clears_at * 1000.0) as u64;
        let mut s = String::with_capacity(260);
        let _ = write!(
            s,
            r#"{{"id":"inc-{}","kind":"{kind}","severity":"{}","place":"{}","lat":{:.5},"lon":{:.5},"message":"{message}","status":"{status}","expires_at":{expires_at},"ts":{ts}}}"#,
            i.id, SEVERITIES[i.severity], PLACES[i.place], i.lat, i.lon,
        );
        s.into_bytes()
    }
}

impl Sim for Traffic {
    fn tick(&mut self, t: Duration) -> Vec<Update> {
        elapsed(&mut self.last, t);
        let now = t.as_secs_f64();
        let ts = self.epoch_ms + t.as_millis() as u64;
        let mut out = Vec::new();
        let (cleared, active): (Vec<_>, Vec<_>) = self.active.drain(..).partition(|i| i.clears_at <= now);
        self.active = active;
        for i in &cleared {
            out.push(("traffic".to_owned(), self.json(i, "cleared", ts)));
        }
        while self.arrivals.due(now) && self.active.len() < MAX_ACTIVE {
            let r = &mut self.rng;
            let i = Incident {
                id: self.arrivals.id(),
                kind: r.below(KINDS.len() as u64) as usize,
                place: r.below(PLACES.len() as u64) as usize,
                severity: r.below(SEVERITIES.len() as u64) as usize,
                lat: r.range(LAT.0, LAT.1),
                lon: r.range(LON.0, LON.1),
                clears_at: now + r.range(30.0, 120.0),
            };
            self.arrivals.next(r);
            out.push(("traffic".to_owned(), self.json(&i, "active", ts)));
            self.active.push(i);
        }
        self.arrivals.settle(now);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::testing::run;

    #[test]
    fn incidents_appear_and_clear_and_stay_bounded() {
        let mut sim = Traffic::new(9, 1_700_000_000_000);
        let ticks = run(&mut sim, 600, |room, _| room == "traffic");
        let (mut opened, mut cleared) = (std::collections::HashSet::new(), 0);
        for (_, json) in ticks.iter().flatten() {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            match v["status"].as_str().unwrap() {
                "active" => assert!(opened.insert(id), "opened twice"),
                "cleared" => {
                    assert!(opened.contains(&id), "cleared before it opened");
                    cleared += 1;
                }
                s => panic!("status {s}"),
            }
            assert!(v["expires_at"].as_u64().unwrap() > 1_700_000_000_000);
        }
        assert!(opened.len() > 50 && cleared > 40, "{} opened, {cleared} cleared", opened.len());
        assert!(sim.active.len() <= MAX_ACTIVE);
    }
}
