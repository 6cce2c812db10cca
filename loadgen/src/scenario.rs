//! Scenarios (TOML files or built-in presets) and their expansion into a concrete [`Plan`].
//!
//! A scenario names publisher groups (kind, count, rate, room templates) and subscriber groups
//! (how many clients, which rooms each follows). `{id}` in a room template is replaced by the
//! entity index. Example (the `fleet` preset):
//!
//! ```toml
//! name = "fleet"
//! [[publishers]]
//! kind = "vehicle"          # vehicle | flight | sensor | order
//! count = 500
//! rate = 2.0                # Hz per publisher
//! rooms = ["vehicle:{id}", "fleet:city"]   # each tick is published to every listed room
//! [[subscribers]]
//! name = "vehicle-watchers"
//! count = 2000              # clients
//! room = "vehicle:{id}"
//! ids = 500                 # {id} ranges over 0..ids
//! per_client = 1            # rooms per client: ids (i*stride + k) % ids for k < per_client
//! stride = 1
//! [[subscribers]]
//! name = "dashboards"
//! count = 20
//! room = "fleet:city"
//! ```

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::sim::Kind;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub publishers: Vec<PublisherGroup>,
    #[serde(default)]
    pub subscribers: Vec<SubscriberGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherGroup {
    pub kind: Kind,
    pub count: u32,
    /// Messages per second per publisher.
    pub rate: f64,
    /// Room templates; every tick is published to each of them.
    pub rooms: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberGroup {
    #[serde(default)]
    pub name: String,
    /// Number of subscriber clients.
    pub count: u32,
    /// Room template (`{id}` = entity index).
    pub room: String,
    /// Range of `{id}`: 0..ids (default 1).
    #[serde(default = "one")]
    pub ids: u32,
    /// Rooms per client (default: all `ids`).
    #[serde(default)]
    pub per_client: Option<u32>,
    /// Offset between consecutive clients' windows (default: `per_client`).
    #[serde(default)]
    pub stride: Option<u32>,
}

fn one() -> u32 {
    1
}

/// Names of the built-in presets, for `--help` and errors.
pub const PRESETS: &[&str] =
    &["fanout-1k", "fanout-5k", "hot-100", "fleet", "rooms-500", "iot", "connections"];

/// Overrides from the command line applied to a preset or file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Per-publisher rate (Hz) for every publisher group.
    pub rate: Option<f64>,
    /// Client count of the first subscriber group.
    pub subscribers: Option<u32>,
    /// Idle connections for the `connections` preset.
    pub connections: Option<u32>,
}

fn sub(name: &str, count: u32, room: &str, ids: u32, per_client: u32, stride: u32) -> SubscriberGroup {
    SubscriberGroup {
        name: name.into(),
        count,
        room: room.into(),
        ids,
        per_client: Some(per_client),
        stride: Some(stride),
    }
}

fn pubg(kind: Kind, count: u32, rate: f64, rooms: &[&str]) -> PublisherGroup {
    PublisherGroup { kind, count, rate, rooms: rooms.iter().map(|s| s.to_string()).collect() }
}

pub fn preset(name: &str, o: &Overrides) -> Result<Scenario> {
    let (description, publishers, subscribers) = match name {
        "fanout-1k" => (
            "1 room, 1000 subscribers, 1 vehicle publisher at --rate Hz (default 100)",
            vec![pubg(Kind::Vehicle, 1, 100.0, &["fanout"])],
            vec![sub("subscribers", 1000, "fanout", 1, 1, 1)],
        ),
        "fanout-5k" => (
            "1 room, 5000 subscribers, 1 vehicle publisher at --rate Hz (default 20)",
            vec![pubg(Kind::Vehicle, 1, 20.0, &["fanout"])],
            vec![sub("subscribers", 5000, "fanout", 1, 1, 1)],
        ),
        "hot-100" => (
            "1 hot room, 100 subscribers, 1 sensor publisher at 2000 Hz",
            vec![pubg(Kind::Sensor, 1, 2000.0, &["hot"])],
            vec![sub("subscribers", 100, "hot", 1, 1, 1)],
        ),
        "fleet" => (
            "500 vehicles at 2 Hz, each tick published to vehicle:<id> and fleet:city; \
             4 subscribers per vehicle room, 20 dashboards on fleet:city",
            vec![pubg(Kind::Vehicle, 500, 2.0, &["vehicle:{id}", "fleet:city"])],
            vec![
                sub("vehicle-watchers", 2000, "vehicle:{id}", 500, 1, 1),
                sub("dashboards", 20, "fleet:city", 1, 1, 1),
            ],
        ),
        // `fleet` without the shared fleet:city room: many small rooms at a light load, the
        // shape where tail latency comes from per-message overhead rather than fan-out width
        // (issue 8), and which room-per-URL servers serve without a 500-publisher hot room.
        "rooms-500" => (
            "500 vehicles at 2 Hz, each publishing only to its own vehicle:<id>; 4 subscribers per \
             vehicle room (2000 clients): 1000 msgs/s in, 4000 deliveries/s out",
            vec![pubg(Kind::Vehicle, 500, 2.0, &["vehicle:{id}"])],
            vec![sub("vehicle-watchers", 2000, "vehicle:{id}", 500, 1, 1)],
        ),
        "iot" => (
            "2000 sensors at 10 Hz into sensor:<id>; 50 dashboards, each on a different 10% \
             (200 rooms, window offset 40 per dashboard) of the sensor rooms",
            vec![pubg(Kind::Sensor, 2000, 10.0, &["sensor:{id}"])],
            vec![sub("dashboards", 50, "sensor:{id}", 2000, 200, 40)],
        ),
        "connections" => {
            let n = o.connections.unwrap_or(50_000);
            return Ok(Scenario {
                name: "connections".into(),
                description: format!("{n} idle subscribers, one room each (idle:<id>), no publishers"),
                publishers: vec![],
                subscribers: vec![sub("idle", n, "idle:{id}", n.max(1), 1, 1)],
            });
        }
        other => bail!("unknown scenario {other:?}; built-in presets: {}", PRESETS.join(", ")),
    };
    let mut s = Scenario { name: name.into(), description: description.into(), publishers, subscribers };
    s.apply(o);
    Ok(s)
}

impl Scenario {
    pub fn from_file(path: &str, o: &Overrides) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let mut s: Scenario = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
        s.apply(o);
        Ok(s)
    }

    pub fn apply(&mut self, o: &Overrides) {
        if let Some(r) = o.rate {
            for p in &mut self.publishers {
                p.rate = r;
            }
        }
        if let (Some(n), Some(g)) = (o.subscribers, self.subscribers.first_mut()) {
            g.count = n;
        }
    }

    /// Total offered publish rate (ticks/s, before fan-out).
    pub fn offered_rate(&self) -> f64 {
        self.publishers.iter().fold(0.0, |a, p| a + p.count as f64 * p.rate)
    }
}

/// One simulated publisher.
#[derive(Debug, Clone)]
pub struct PubSpec {
    pub id: u32,
    pub kind: Kind,
    pub rate: f64,
    /// Entity index within its group (`{id}`).
    pub entity: u64,
    pub rooms: Vec<u32>,
}

/// The scenario expanded: room table, publishers and subscriber clients.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rooms: Vec<String>,
    pub room_index: HashMap<String, u32>,
    pub publishers: Vec<PubSpec>,
    /// Each subscriber client's rooms.
    pub clients: Vec<Vec<u32>>,
}

pub fn valid_room(r: &str) -> bool {
    !r.is_empty() && r.len() <= 200 && r.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-:./@".contains(&c))
}

impl Plan {
    pub fn build(s: &Scenario) -> Result<Plan> {
        let mut plan =
            Plan { rooms: vec![], room_index: HashMap::new(), publishers: vec![], clients: vec![] };
        let intern = |plan: &mut Plan, name: String| -> Result<u32> {
            if let Some(&i) = plan.room_index.get(&name) {
                return Ok(i);
            }
            if !valid_room(&name) {
                bail!("invalid room name {name:?} (1-200 bytes of A-Z a-z 0-9 _ - : . / @)");
            }
            let i = plan.rooms.len() as u32;
            plan.room_index.insert(name.clone(), i);
            plan.rooms.push(name);
            Ok(i)
        };
        for g in &s.publishers {
            if !(g.rate > 0.0 && g.rate <= 1e6) {
                bail!("publisher rate must be in (0, 1e6] Hz, got {}", g.rate);
            }
            for e in 0..g.count as u64 {
                let mut rooms = Vec::with_capacity(g.rooms.len());
                for t in &g.rooms {
                    rooms.push(intern(&mut plan, t.replace("{id}", &e.to_string()))?);
                }
                let id = plan.publishers.len() as u32;
                plan.publishers.push(PubSpec { id, kind: g.kind, rate: g.rate, entity: e, rooms });
            }
        }
        for g in &s.subscribers {
            let ids = g.ids.max(1);
            let per = g.per_client.unwrap_or(ids).clamp(1, ids);
            let stride = g.stride.unwrap_or(per);
            for i in 0..g.count as u64 {
                let mut rooms = Vec::with_capacity(per as usize);
                for k in 0..per as u64 {
                    let id = (i * stride as u64 + k) % ids as u64;
                    rooms.push(intern(&mut plan, g.room.replace("{id}", &id.to_string()))?);
                }
                plan.clients.push(rooms);
            }
        }
        Ok(plan)
    }

    /// Subscriptions per room (all clients).
    pub fn subs_per_room(&self) -> Vec<u32> {
        let mut v = vec![0u32; self.rooms.len()];
        for c in &self.clients {
            for &r in c {
                v[r as usize] += 1;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand() {
        let o = Overrides::default();
        for name in PRESETS {
            let s = preset(name, &Overrides { connections: Some(100), ..o.clone() }).unwrap();
            Plan::build(&s).unwrap();
        }
        let fleet = Plan::build(&preset("fleet", &o).unwrap()).unwrap();
        assert_eq!(fleet.publishers.len(), 500);
        assert_eq!(fleet.clients.len(), 2020);
        let per = fleet.subs_per_room();
        assert_eq!(per[fleet.room_index["vehicle:7"] as usize], 4);
        assert_eq!(per[fleet.room_index["fleet:city"] as usize], 20);
        let iot = Plan::build(&preset("iot", &o).unwrap()).unwrap();
        assert_eq!(iot.clients[0].len(), 200);
        assert_ne!(iot.clients[0], iot.clients[1]);
        let total: u32 = iot.subs_per_room().iter().sum();
        assert_eq!(total, 50 * 200);
        let f = preset("fanout-1k", &Overrides { rate: Some(7.0), ..o }).unwrap();
        assert_eq!(f.publishers[0].rate, 7.0);
    }

    #[test]
    fn rooms_500_shape() {
        let s = preset("rooms-500", &Overrides::default()).unwrap();
        assert_eq!(s.offered_rate(), 1000.0);
        let p = Plan::build(&s).unwrap();
        assert_eq!(p.publishers.len(), 500);
        assert!(p.publishers.iter().all(|x| x.rooms.len() == 1 && x.rate == 2.0));
        assert_eq!(p.publishers[42].rooms, vec![p.room_index["vehicle:42"]]);
        assert_eq!(p.rooms.len(), 500);
        assert_eq!(p.clients.len(), 2000);
        assert!(p.clients.iter().all(|c| c.len() == 1));
        let per = p.subs_per_room();
        assert!(per.iter().all(|&n| n == 4), "4 subscribers in every room");
        // Deliveries per second: each publish reaches its room's 4 subscribers.
        let out: f64 = p.publishers.iter().map(|x| x.rate * per[x.rooms[0] as usize] as f64).sum();
        assert_eq!(out, 4000.0);
    }

    #[test]
    fn toml_scenario() {
        let s: Scenario = toml::from_str(
            r#"
            name = "mini"
            [[publishers]]
            kind = "flight"
            count = 3
            rate = 0.5
            rooms = ["flight:{id}", "sky/all@eu"]
            [[subscribers]]
            count = 2
            room = "sky/all@eu"
            "#,
        )
        .unwrap();
        let p = Plan::build(&s).unwrap();
        assert_eq!(p.rooms.len(), 4);
        assert_eq!(p.clients, vec![vec![p.room_index["sky/all@eu"]]; 2]);
        assert!(Plan::build(&Scenario { publishers: vec![pubg(Kind::Sensor, 1, 1.0, &["bad room"])], ..s })
            .is_err());
    }
}
