//! Orders: food deliveries through their life — placed, preparing, picked up, on the way (the
//! courier driving from the restaurant to the customer, position every update), delivered.
//!
//! Rooms: `order-tracking/<id>` (one order: the seed tutorial's `ws/order-tracking/<order_id>/`,
//! numeric ids) and `orders:all` (every order, keyed by `id`: the operator's page).

use std::fmt::Write;
use std::time::Duration;

use super::{elapsed, Arrivals, Rng, Sim, Update, LAT, LON};

/// Orders in progress at once, at most.
pub const MAX_ACTIVE: usize = 16;
/// Mean real seconds between new orders.
const EVERY_S: f64 = 6.0;
/// Courier speed in degrees of latitude per real second (a city crossing in about a minute).
const COURIER_DEG_S: f64 = 0.0012;

const RESTAURANTS: [(&str, f64, f64); 5] = [
    ("Curry 36", 52.4934, 13.3880),
    ("Mustafa's Gemüse Kebap", 52.4889, 13.3883),
    ("Burgermeister", 52.5003, 13.4418),
    ("Konnopke's Imbiss", 52.5405, 13.4122),
    ("Lon Men's Noodle House", 52.5052, 13.3101),
];
const COURIERS: [&str; 6] = ["Ana", "Ben", "Chiara", "Deniz", "Emil", "Farah"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Placed,
    Preparing,
    PickedUp,
    OnTheWay,
    Delivered,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Placed => "placed",
            Stage::Preparing => "preparing",
            Stage::PickedUp => "picked_up",
            Stage::OnTheWay => "on_the_way",
            Stage::Delivered => "delivered",
        }
    }
}

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    restaurant: usize,
    courier: usize,
    dest: (f64, f64),
    pos: (f64, f64),
    stage: Stage,
    /// Real seconds left in this stage (except on the way, which ends on arrival).
    left_s: f64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Orders {
    active: Vec<Order>,
    rng: Rng,
    arrivals: Arrivals,
    last: Duration,
    epoch_ms: u64,
}

impl Orders {
    pub fn new(seed: u64, epoch_ms: u64) -> Self {
        Orders {
            active: Vec::new(),
            rng: Rng(seed ^ 0x0DE),
            arrivals: Arrivals::new(1001, EVERY_S),
            last: Duration::ZERO,
            epoch_ms,
        }
    }
}

fn eta_s(o: &Order) -> f64 {
    let (dy, dx) = (o.dest.0 - o.pos.0, (o.dest.1 - o.pos.1) * 0.61);
    let drive = (dy * dy + dx * dx).sqrt() / COURIER_DEG_S;
    match o.stage {
        Stage::OnTheWay => drive,
        Stage::Delivered => 0.0,
        _ => drive + o.left_s,
    }
}

fn to_json(o: &Order, ts: u64) -> Vec<u8> {
    let (name, rlat, rlon) = RESTAURANTS[o.restaurant];
    let mut s = String::with_capacity(280);
    let _ = write!(
        s,
        r#"{{"id":"{}","status":"{}","restaurant":"{name}","restaurant_lat":{rlat:.5},"restaurant_lon":{rlon:.5},"courier":"{}","lat":{:.5},"lon":{:.5},"dest_lat":{:.5},"dest_lon":{:.5},"eta_s":{:.0},"ts":{ts}}}"#,
        o.id,
        o.stage.name(),
        COURIERS[o.courier],
        o.pos.0,
        o.pos.1,
        o.dest.0,
        o.dest.1,
        eta_s(o),
    );
    s.into_bytes()
}

/// Moves `o` on by `dt` real seconds; returns whether it changed in a way worth publishing.
fn step(o: &mut Order, dt: f64, rng: &mut Rng) -> bool {
    match o.stage {
        Stage::OnTheWay => {
            let (dy, dx) = (o.dest.0 - o.pos.0, o.dest.1 - o.pos.1);
            let dist = (dy * dy + (dx * 0.61) * (dx * 0.61)).sqrt();
            let can = COURIER_DEG_S * dt;
            if can >= dist {
                o.pos = o.dest;
                o.stage = Stage::Delivered;
                o.left_s = 30.0; // shown as delivered for a while, then retired
            } else {
                o.pos = (o.pos.0 + dy * can / dist, o.pos.1 + dx * can / dist);
            }
            true
        }
        Stage::Delivered => {
            o.left_s -= dt; // retired once it runs out
            false
        }
        _ => {
            o.left_s -= dt;
            if o.left_s > 0.0 {
                return false;
            }
            o.stage = match o.stage {
                Stage::Placed => Stage::Preparing,
                Stage::Preparing => Stage::PickedUp,
                Stage::PickedUp => Stage::OnTheWay,
                Stage::OnTheWay | Stage::Delivered => o.stage,
            };
            o.left_s = rng.range(5.0, 15.0);
            true
        }
    }
}

impl Sim for Orders {
    fn tick(&mut self, t: Duration) -> Vec<Update> {
        let dt = elapsed(&mut self.last, t);
        let now = t.as_secs_f64();
        let ts = self.epoch_ms + t.as_millis() as u64;
        let mut out = Vec::new();
        let publish = |out: &mut Vec<Update>, o: &Order| {
            let json = to_json(o, ts);
            out.push((format!("order-tracking/{}", o.id), json.clone()));
            out.push(("orders:all".to_owned(), json));
        };
        for o in &mut self.active {
            if step(o, dt, &mut self.rng) {
                publish(&mut out, o);
            }
        }
        self.active.retain(|o| !(o.stage == Stage::Delivered && o.left_s <= 0.0));
        while self.arrivals.due(now) && self.active.len() < MAX_ACTIVE {
            let r = &mut self.rng;
            let restaurant = r.below(RESTAURANTS.len() as u64) as usize;
            let (_, lat, lon) = RESTAURANTS[restaurant];
            let o = Order {
                id: self.arrivals.id(),
                restaurant,
                courier: r.below(COURIERS.len() as u64) as usize,
                dest: (r.range(LAT.0, LAT.1), r.range(LON.0, LON.1)),
                pos: (lat, lon),
                stage: Stage::Placed,
                left_s: r.range(3.0, 8.0),
            };
            self.arrivals.next(r);
            publish(&mut out, &o);
            self.active.push(o);
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
    fn orders_go_through_every_stage_in_order() {
        let mut sim = Orders::new(4, 1_700_000_000_000);
        let ticks = run(&mut sim, 600, |room, v| {
            room == "orders:all" || room == format!("order-tracking/{}", v["id"].as_str().unwrap())
        });
        let order = ["placed", "preparing", "picked_up", "on_the_way", "delivered"];
        let mut stage: std::collections::HashMap<String, usize> = Default::default();
        let mut delivered = 0;
        for (room, json) in ticks.iter().flatten().filter(|(r, _)| r == "orders:all") {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            let s = order.iter().position(|&x| x == v["status"].as_str().unwrap()).unwrap();
            let prev = stage.insert(v["id"].as_str().unwrap().to_owned(), s);
            assert!(prev.is_none_or(|p| p <= s && s <= p + 1), "{room}: {v} after stage {prev:?}");
            assert!(!(prev == Some(4) && s == 4), "delivered is published once");
            if s == 4 && prev != Some(4) {
                delivered += 1;
            }
        }
        assert!(delivered > 20, "{delivered} delivered");
        assert!(sim.active.len() <= MAX_ACTIVE);
    }
}
