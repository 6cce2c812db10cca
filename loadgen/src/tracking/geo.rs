//! The simulated city for the tracking scenarios: boxes (`[w, s, e, n]`, edges inclusive, as
//! the server's `bbox`), vehicles driving straight and bouncing off the city's edge (or
//! parked, jittering a few metres), random viewports of a given share of the city's area,
//! and a grid over the city that finds the viewports containing a point.

use crate::sim::Rng;

pub const M_PER_DEG_LAT: f64 = 111_320.0;
/// At ~52.5°N.
pub const M_PER_DEG_LON: f64 = 67_800.0;

/// `[w, s, e, n]` in degrees (lon, lat, lon, lat); never crosses the antimeridian here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub w: f64,
    pub s: f64,
    pub e: f64,
    pub n: f64,
}

/// Berlin, roughly 15 km × 13 km: the city room's extent.
pub const CITY: BBox = BBox { w: 13.28, s: 52.45, e: 13.50, n: 52.57 };

impl BBox {
    /// Edges inclusive, like the server.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        lat >= self.s && lat <= self.n && lon >= self.w && lon <= self.e
    }
    pub fn area(&self) -> f64 {
        (self.e - self.w) * (self.n - self.s)
    }
    /// The `bbox` JSON array, with enough digits that the server's box is this one.
    pub fn json(&self) -> String {
        format!("[{:.7},{:.7},{:.7},{:.7}]", self.w, self.s, self.e, self.n)
    }
    /// Rounds the edges as [`BBox::json`] writes them, so the loadgen and the server agree
    /// on points near an edge.
    pub fn rounded(&self) -> BBox {
        let r = |x: f64| (x * 1e7).round() / 1e7;
        BBox { w: r(self.w), s: r(self.s), e: r(self.e), n: r(self.n) }
    }
}

/// A viewport covering `share` of `city`'s area (same aspect ratio), placed at random inside it.
pub fn random_viewport(rng: &mut Rng, city: &BBox, share: f64) -> BBox {
    let k = share.clamp(0.0, 1.0).sqrt();
    let (w, h) = ((city.e - city.w) * k, (city.n - city.s) * k);
    let x = rng.range(city.w, city.e - w);
    let y = rng.range(city.s, city.n - h);
    BBox { w: x, s: y, e: x + w, n: y + h }.rounded()
}

/// `b` moved by up to its own size in each direction, kept inside `city`.
pub fn panned(rng: &mut Rng, city: &BBox, b: &BBox) -> BBox {
    let (w, h) = (b.e - b.w, b.n - b.s);
    let x = (b.w + rng.range(-w, w)).clamp(city.w, city.e - w);
    let y = (b.s + rng.range(-h, h)).clamp(city.s, city.n - h);
    BBox { w: x, s: y, e: x + w, n: y + h }.rounded()
}

/// One vehicle: straight line at `speed` m/s on `heading`, bouncing off the city's edges;
/// a parked one jitters within ±`jitter_m` of where it stands.
#[derive(Debug, Clone)]
pub struct Vehicle {
    pub lat: f64,
    pub lon: f64,
    /// Unit vector (north, east).
    pub dir: (f64, f64),
    pub speed: f64,
    pub parked: Option<(f64, f64)>,
}

pub const JITTER_M: f64 = 2.0;

impl Vehicle {
    pub fn new(rng: &mut Rng, city: &BBox, parked: bool) -> Vehicle {
        let lat = rng.range(city.s, city.n);
        let lon = rng.range(city.w, city.e);
        let a = rng.range(0.0, std::f64::consts::TAU);
        Vehicle {
            lat,
            lon,
            dir: (a.cos(), a.sin()),
            speed: rng.range(5.0, 15.0),
            parked: parked.then_some((lat, lon)),
        }
    }

    /// Advances by `dt` seconds.
    pub fn step(&mut self, rng: &mut Rng, city: &BBox, dt: f64) {
        if let Some((lat, lon)) = self.parked {
            self.lat = lat + rng.range(-JITTER_M, JITTER_M) / M_PER_DEG_LAT;
            self.lon = lon + rng.range(-JITTER_M, JITTER_M) / M_PER_DEG_LON;
            return;
        }
        let d = self.speed * dt;
        self.lat += self.dir.0 * d / M_PER_DEG_LAT;
        self.lon += self.dir.1 * d / M_PER_DEG_LON;
        if self.lat < city.s || self.lat > city.n {
            self.dir.0 = -self.dir.0;
            self.lat = self.lat.clamp(city.s, city.n);
        }
        if self.lon < city.w || self.lon > city.e {
            self.dir.1 = -self.dir.1;
            self.lon = self.lon.clamp(city.w, city.e);
        }
    }

    /// Position as published (6 decimals, ~0.1 m), so both sides test the same point.
    pub fn published(&self) -> (f64, f64) {
        let r = |x: f64| (x * 1e6).round() / 1e6;
        (r(self.lat), r(self.lon))
    }
}

/// A `cells × cells` grid over the city; each cell lists the boxes (by id) that overlap it.
/// Points outside the city fall into the nearest edge cell.
pub struct Grid {
    city: BBox,
    cells: usize,
    slots: Vec<Vec<u32>>,
}

impl Grid {
    pub fn new(city: BBox, cells: usize) -> Grid {
        Grid { city, cells, slots: vec![Vec::new(); cells * cells] }
    }

    fn col(&self, lon: f64) -> usize {
        let f = (lon - self.city.w) / (self.city.e - self.city.w);
        ((f * self.cells as f64).floor().max(0.0) as usize).min(self.cells - 1)
    }
    fn row(&self, lat: f64) -> usize {
        let f = (lat - self.city.s) / (self.city.n - self.city.s);
        ((f * self.cells as f64).floor().max(0.0) as usize).min(self.cells - 1)
    }
    fn span(&self, b: &BBox) -> impl Iterator<Item = usize> + '_ {
        let (c0, c1, r0, r1) = (self.col(b.w), self.col(b.e), self.row(b.s), self.row(b.n));
        (r0..=r1).flat_map(move |r| (c0..=c1).map(move |c| r * self.cells + c))
    }

    pub fn insert(&mut self, id: u32, b: &BBox) {
        let cells: Vec<usize> = self.span(b).collect();
        for c in cells {
            self.slots[c].push(id);
        }
    }

    pub fn remove(&mut self, id: u32, b: &BBox) {
        let cells: Vec<usize> = self.span(b).collect();
        for c in cells {
            let v = &mut self.slots[c];
            if let Some(k) = v.iter().position(|&x| x == id) {
                v.swap_remove(k);
            }
        }
    }

    /// Ids whose box may contain the point (a superset; test each box).
    pub fn candidates(&self, lat: f64, lon: f64) -> &[u32] {
        &self.slots[self.row(lat) * self.cells + self.col(lon)]
    }
}

/// Great-circle distance in metres (haversine), as the server measures `min_move_m`.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewports_have_the_asked_share_and_stay_inside() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let share = rng.range(0.01, 0.05);
            let b = random_viewport(&mut rng, &CITY, share);
            assert!((b.area() / CITY.area() - share).abs() < 1e-3, "{b:?} {share}");
            assert!(
                b.w >= CITY.w - 1e-7 && b.e <= CITY.e + 1e-7 && b.s >= CITY.s - 1e-7 && b.n <= CITY.n + 1e-7
            );
            let p = panned(&mut rng, &CITY, &b);
            assert!(((p.e - p.w) - (b.e - b.w)).abs() < 1e-6);
            assert!(p.w >= CITY.w - 1e-7 && p.e <= CITY.e + 1e-7);
        }
        assert_eq!(
            BBox { w: 1.0, s: 2.0, e: 3.0, n: 4.0 }.json(),
            "[1.0000000,2.0000000,3.0000000,4.0000000]"
        );
    }

    #[test]
    fn grid_finds_every_box_containing_a_point() {
        let mut rng = Rng::new(7);
        let mut g = Grid::new(CITY, 16);
        let boxes: Vec<BBox> = (0..300)
            .map(|_| {
                let share = rng.range(0.01, 0.05);
                random_viewport(&mut rng, &CITY, share)
            })
            .collect();
        for (i, b) in boxes.iter().enumerate() {
            g.insert(i as u32, b);
        }
        g.remove(5, &boxes[5]);
        for _ in 0..2000 {
            let (lat, lon) = (rng.range(CITY.s, CITY.n), rng.range(CITY.w, CITY.e));
            let cand = g.candidates(lat, lon);
            for (i, b) in boxes.iter().enumerate() {
                if i != 5 && b.contains(lat, lon) {
                    assert!(cand.contains(&(i as u32)), "box {i} missed");
                }
            }
            assert!(!cand.contains(&5));
        }
    }

    #[test]
    fn vehicles_stay_in_the_city_and_parked_ones_stay_put() {
        let mut rng = Rng::new(3);
        let mut v = Vehicle::new(&mut rng, &CITY, false);
        let mut p = Vehicle::new(&mut rng, &CITY, true);
        let home = (p.lat, p.lon);
        let mut moved = 0.0;
        for _ in 0..20_000 {
            let before = (v.lat, v.lon);
            v.step(&mut rng, &CITY, 1.0);
            moved += distance_m(before, (v.lat, v.lon));
            p.step(&mut rng, &CITY, 1.0);
            assert!(CITY.contains(v.lat, v.lon));
            assert!(distance_m(home, (p.lat, p.lon)) <= JITTER_M * 1.5);
        }
        assert!(moved / 20_000.0 > 4.0, "{moved}");
        // 1° of latitude.
        assert!((distance_m((52.0, 13.0), (53.0, 13.0)) - 111_195.0).abs() < 100.0);
    }
}
