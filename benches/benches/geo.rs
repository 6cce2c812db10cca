//! Viewport subscriptions: the grid index (`shardcast_engine::geo::GeoIndex`) with one
//! city's worth of map clients.
//!
//! Berlin (lon 13.08–13.76, lat 52.33–52.68) with 10,000 viewports, each 1–5 % of the
//! city's area (aspect 1:2 to 2:1 of the city's), anywhere inside it. Three measurements:
//! - `geo/query`: the candidates for one message position (a random point in the city);
//! - `geo/query_filter`: the same plus `BBox::contains` on each candidate — what the server
//!   does per positioned message before fanning out;
//! - `geo/pan`: one viewport moved (remove with its old box, insert with a new one).
//!
//! Mean candidates per query vs true hits is printed once (the grid's false-positive cost).
//!
//! `cargo bench -p shardcast-benches --bench geo -- --quick`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardcast_engine::geo::{BBox, GeoIndex, Pos};
use std::hint::black_box;
use std::time::Duration;

const CITY: BBox = BBox { w: 13.08, s: 52.33, e: 13.76, n: 52.68 };
const VIEWPORTS: u32 = 10_000;
const POINTS: usize = 4096;

/// xorshift64: deterministic inputs, no dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

fn viewport(rng: &mut Rng) -> BBox {
    let (cw, ch) = (CITY.e - CITY.w, CITY.n - CITY.s);
    let (f, r) = (rng.range(0.01, 0.05), rng.range(0.5, 2.0));
    let (w, h) = (cw * (f * r).sqrt(), ch * (f / r).sqrt());
    let x = rng.range(CITY.w, CITY.e - w);
    let y = rng.range(CITY.s, CITY.n - h);
    BBox::new(x, y, x + w, y + h).unwrap()
}

fn point(rng: &mut Rng) -> Pos {
    Pos::new(rng.range(CITY.s, CITY.n), rng.range(CITY.w, CITY.e)).unwrap()
}

struct City {
    index: GeoIndex,
    boxes: Vec<BBox>,
    points: Vec<Pos>,
}

fn city() -> City {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let boxes: Vec<BBox> = (0..VIEWPORTS).map(|_| viewport(&mut rng)).collect();
    let mut index = GeoIndex::new();
    for (id, b) in boxes.iter().enumerate() {
        index.insert(id as u32, b);
    }
    let points = (0..POINTS).map(|_| point(&mut rng)).collect();
    City { index, boxes, points }
}

fn report(c: &City) {
    let (mut candidates, mut hits) = (0usize, 0usize);
    let mut out = Vec::new();
    for &p in &c.points {
        out.clear();
        c.index.query(p, &mut out);
        candidates += out.len();
        hits += out.iter().filter(|&&id| c.boxes[id as usize].contains(p)).count();
    }
    let n = c.points.len() as f64;
    println!(
        "geo: {} viewports, {} cells, ~{} KiB; per query: {:.1} candidates, {:.1} true hits ({:.2}x)",
        c.index.len(),
        c.index.cell_count(),
        c.index.heap_bytes() / 1024,
        candidates as f64 / n,
        hits as f64 / n,
        candidates as f64 / hits as f64,
    );
}

fn geo(c: &mut Criterion) {
    let mut city = city();
    report(&city);
    let mut g = c.benchmark_group("geo");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(VIEWPORTS as usize);

    let mut i = 0;
    g.bench_function("query", |b| {
        b.iter(|| {
            i = (i + 1) % POINTS;
            out.clear();
            city.index.query(black_box(city.points[i]), &mut out);
            black_box(out.len())
        })
    });

    g.bench_function("query_filter", |b| {
        b.iter(|| {
            i = (i + 1) % POINTS;
            let p = black_box(city.points[i]);
            out.clear();
            city.index.query(p, &mut out);
            out.iter().filter(|&&id| city.boxes[id as usize].contains(p)).count()
        })
    });

    // Each pan moves one viewport to a fresh random place in the city; the population's
    // distribution stays the same, so every iteration sees the same kind of index.
    let mut rng = Rng(99);
    let moves: Vec<BBox> = (0..POINTS).map(|_| viewport(&mut rng)).collect();
    let (mut id, mut m) = (0usize, 0usize);
    g.bench_function("pan", |b| {
        b.iter(|| {
            id = (id + 1) % VIEWPORTS as usize;
            m = (m + 1) % POINTS;
            let new = moves[m];
            city.index.remove(id as u32, &city.boxes[id]);
            city.index.insert(id as u32, black_box(&new));
            city.boxes[id] = new;
        })
    });
    g.finish();
    report(&city);
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = geo }
criterion_main!(benches);
