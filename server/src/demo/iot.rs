//! IoT: a city's sensors (temperature, humidity, fine dust, noise) posting readings once a
//! second — values wander around a daily cycle, batteries drain — and now and then a sensor
//! goes silent for a while, so a dashboard has "offline" to show (from the reading's age).
//!
//! Room: `sensor` (the seed tutorial's `ws/sensor/`), keyed by `id`: a snapshot gives every
//! sensor's latest reading.

use std::fmt::Write;
use std::time::Duration;

use super::{elapsed, Rng, Sim, Update, LAT, LON};

/// Sensors in the city.
pub const SENSORS: usize = 24;

/// (kind, unit, typical value, daily swing, noise per reading)
const KINDS: [(&str, &str, f64, f64, f64); 4] = [
    ("temperature", "°C", 14.0, 6.0, 0.15),
    ("humidity", "%", 60.0, 15.0, 0.6),
    ("pm25", "µg/m³", 12.0, 8.0, 1.2),
    ("noise", "dB", 55.0, 10.0, 2.0),
];

#[derive(Debug, Clone)]
struct Sensor {
    id: String,
    kind: usize,
    lat: f64,
    lon: f64,
    drift: f64,
    battery: f64,
    /// Real seconds left offline (no readings while positive).
    silent_s: f64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Sensors {
    sensors: Vec<Sensor>,
    rng: Rng,
    last: Duration,
    epoch_ms: u64,
}

impl Sensors {
    pub fn new(seed: u64, epoch_ms: u64) -> Self {
        let mut rng = Rng(seed ^ 0x107);
        let sensors = (0..SENSORS)
            .map(|i| Sensor {
                id: format!("sensor-{:02}", i + 1),
                kind: i % KINDS.len(),
                lat: rng.range(LAT.0, LAT.1),
                lon: rng.range(LON.0, LON.1),
                drift: 0.0,
                battery: rng.range(40.0, 100.0),
                silent_s: 0.0,
            })
            .collect();
        Sensors { sensors, rng, last: Duration::ZERO, epoch_ms }
    }
}

impl Sim for Sensors {
    fn tick(&mut self, t: Duration) -> Vec<Update> {
        let dt = elapsed(&mut self.last, t);
        let ts = self.epoch_ms + t.as_millis() as u64;
        // A "day" passes every 10 minutes so the curves visibly move.
        let phase = (t.as_secs_f64() / 600.0) * std::f64::consts::TAU;
        let mut out = Vec::with_capacity(self.sensors.len());
        for s in &mut self.sensors {
            let r = &mut self.rng;
            if s.silent_s > 0.0 {
                s.silent_s -= dt;
                continue;
            }
            if r.below(400) == 0 {
                s.silent_s = r.range(15.0, 60.0); // a dropout: the dashboard shows it offline
                continue;
            }
            let (kind, unit, base, swing, noise) = KINDS[s.kind];
            s.drift = (s.drift + r.range(-noise, noise)).clamp(-swing, swing);
            let value = (base + swing * phase.sin() + s.drift).max(0.0);
            s.battery = (s.battery - 0.002 * dt).max(1.0);
            let mut j = String::with_capacity(180);
            let _ = write!(
                j,
                r#"{{"id":"{}","kind":"{kind}","value":{value:.1},"unit":"{unit}","battery":{:.0},"lat":{:.5},"lon":{:.5},"ts":{ts}}}"#,
                s.id, s.battery, s.lat, s.lon,
            );
            out.push(("sensor".to_owned(), j.into_bytes()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::testing::run;

    #[test]
    fn sensors_report_within_range_and_sometimes_go_silent() {
        let mut sim = Sensors::new(2, 1_700_000_000_000);
        let ticks = run(&mut sim, 600, |room, _| room == "sensor");
        assert!(ticks.iter().any(|t| t.len() < SENSORS), "no sensor ever went offline");
        assert!(ticks.iter().all(|t| t.len() <= SENSORS));
        for (_, json) in ticks.iter().flatten() {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            let value = v["value"].as_f64().unwrap();
            assert!((0.0..120.0).contains(&value), "{v}");
        }
    }
}
