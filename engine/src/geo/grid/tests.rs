use super::*;

/// xorshift64: deterministic, no dependency; plenty for spreading boxes over the globe.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn bbox(w: f64, s: f64, e: f64, n: f64) -> BBox {
    BBox::new(w, s, e, n).unwrap()
}

fn pos(lat: f64, lon: f64) -> Pos {
    Pos::new(lat, lon).unwrap()
}

fn query(ix: &GeoIndex, p: Pos) -> Vec<u32> {
    let mut out = Vec::new();
    ix.query(p, &mut out);
    out
}

/// A cell boundary of some level, as a longitude or latitude (`span` 360 or 180).
fn boundary(rng: &mut Rng, span: f64) -> f64 {
    let level = rng.below(u64::from(MAX_LEVEL) + 1) as i32;
    let cells = 2f64.powi(level);
    -span / 2.0 + span * (rng.below(cells as u64 + 1) as f64) / cells
}

/// Boxes of every kind the server may see: tiny, point-sized, city, continent, world,
/// crossing the antimeridian, touching ±180 or a pole, and edges on cell boundaries.
fn random_box(rng: &mut Rng) -> BBox {
    let lon = |rng: &mut Rng| rng.range(-180.0, 180.0);
    let lat = |rng: &mut Rng| rng.range(-90.0, 90.0);
    let around = |rng: &mut Rng, half_lon: f64, half_lat: f64| {
        let (x, y) = (lon(rng), lat(rng));
        let (hx, hy) = (rng.range(0.0, half_lon), rng.range(0.0, half_lat));
        bbox((x - hx).max(-180.0), (y - hy).max(-90.0), (x + hx).min(180.0), (y + hy).min(90.0))
    };
    match rng.below(10) {
        0 => {
            let (x, y) = (lon(rng), lat(rng));
            bbox(x, y, x, y)
        }
        1 => around(rng, 1e-5, 1e-5),
        2 | 3 => around(rng, 0.5, 0.3),
        4 => around(rng, 30.0, 20.0),
        5 => around(rng, 180.0, 90.0),
        6 => {
            let (s, n) = (lat(rng), lat(rng));
            bbox(rng.range(90.0, 180.0), s.min(n), rng.range(-180.0, -90.0), s.max(n))
        }
        7 => {
            let (a, b) = (boundary(rng, 360.0), boundary(rng, 360.0));
            let (s, n) = (boundary(rng, 180.0), boundary(rng, 180.0));
            // Either ordering of a and b: w > e crosses the antimeridian.
            bbox(a, s.min(n), b, s.max(n))
        }
        8 => {
            let b = around(rng, 5.0, 5.0);
            match rng.below(5) {
                0 => bbox(-180.0, b.s, b.e, b.n),
                1 => bbox(b.w, b.s, 180.0, b.n),
                2 => bbox(b.w, b.s, b.e, 90.0),
                3 => bbox(b.w, -90.0, b.e, b.n),
                _ => bbox(180.0, b.s, -180.0, b.n),
            }
        }
        _ => bbox(-180.0, -90.0, 180.0, 90.0),
    }
}

/// Points on the edges and corners of `b`, and its middle.
fn edge_points(b: &BBox) -> Vec<Pos> {
    let mid_lon = if b.crosses_antimeridian() { b.w } else { (b.w + b.e) / 2.0 };
    let mid_lat = (b.s + b.n) / 2.0;
    let mut v = Vec::new();
    for lat in [b.s, b.n, mid_lat] {
        for lon in [b.w, b.e, mid_lon] {
            v.push(pos(lat, lon));
        }
    }
    v
}

/// query(p) ⊇ {ids whose box contains p}, with no duplicates.
fn check(ix: &GeoIndex, live: &FxHashMap<u32, BBox>, p: Pos) {
    let mut got = query(ix, p);
    got.sort_unstable();
    let n = got.len();
    got.dedup();
    assert_eq!(got.len(), n, "duplicate ids for {p:?}");
    for (&id, b) in live {
        if b.contains(p) {
            assert!(got.binary_search(&id).is_ok(), "id {id} {b:?} contains {p:?} but was not returned");
        }
    }
}

#[test]
fn random_boxes_are_found_and_removed() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ix = GeoIndex::new();
    let mut live: FxHashMap<u32, BBox> = FxHashMap::default();
    let mut next_id = 0u32;
    for round in 0..6 {
        // Insert, then move (pan) and drop some.
        for _ in 0..500 {
            let b = random_box(&mut rng);
            ix.insert(next_id, &b);
            live.insert(next_id, b);
            next_id += 1;
        }
        let ids: Vec<u32> = live.keys().copied().collect();
        for &id in &ids {
            match rng.below(4) {
                0 => {
                    let old = live[&id];
                    ix.remove(id, &old);
                    let new = random_box(&mut rng);
                    ix.insert(id, &new);
                    live.insert(id, new);
                }
                1 if round % 2 == 1 => {
                    ix.remove(id, &live.remove(&id).unwrap());
                }
                _ => {}
            }
        }
        assert_eq!(ix.len(), live.len());
        for _ in 0..500 {
            check(&ix, &live, pos(rng.range(-90.0, 90.0), rng.range(-180.0, 180.0)));
        }
        for b in live.values().take(200) {
            for p in edge_points(b) {
                check(&ix, &live, p);
            }
        }
        for (lat, lon) in
            [(90.0, 180.0), (-90.0, -180.0), (0.0, 180.0), (0.0, -180.0), (90.0, 0.0), (0.0, 0.0)]
        {
            check(&ix, &live, pos(lat, lon));
        }
        for _ in 0..300 {
            check(&ix, &live, pos(boundary(&mut rng, 180.0), boundary(&mut rng, 360.0)));
        }
    }
    for (id, b) in live.drain() {
        ix.remove(id, &b);
    }
    assert!(ix.is_empty());
    assert_eq!(ix.cell_count(), 0);
    assert_eq!(ix.used, 0);
    assert!(ix.per_level.iter().all(|&c| c == 0));
    assert!(ix.heap_bytes() < 4096, "{} bytes held when empty", ix.heap_bytes());
}

#[test]
fn edge_on_cell_boundary_is_inclusive() {
    // 22.5° is a column boundary at every level from 4 on, 0° from level 1 on.
    let mut ix = GeoIndex::new();
    let b = bbox(0.0, 0.0, 22.5, 22.5);
    ix.insert(1, &b);
    for (lat, lon) in [(22.5, 22.5), (0.0, 0.0), (10.0, 22.5), (22.5, 10.0), (0.0, 22.5)] {
        assert_eq!(query(&ix, pos(lat, lon)), [1], "{lat} {lon}");
    }
    // A point-sized box exactly on a boundary of every level.
    ix.insert(2, &bbox(0.0, 0.0, 0.0, 0.0));
    let mut got = query(&ix, pos(0.0, 0.0));
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
    assert!(query(&ix, pos(-0.001, -0.001)).is_empty());
}

#[test]
fn antimeridian_and_poles() {
    let mut ix = GeoIndex::new();
    ix.insert(1, &bbox(170.0, -10.0, -170.0, 10.0));
    ix.insert(2, &bbox(170.0, 80.0, 180.0, 90.0));
    ix.insert(3, &bbox(-180.0, -90.0, -170.0, -80.0));
    ix.insert(4, &bbox(-180.0, -90.0, 180.0, 90.0));
    let has = |p: Pos, id: u32| query(&ix, p).contains(&id);
    for lon in [170.0, 180.0, -180.0, -170.0] {
        assert!(has(pos(0.0, lon), 1), "{lon}");
    }
    // ±180 is one meridian, from either side.
    assert!(has(pos(85.0, -180.0), 2) && has(pos(90.0, 180.0), 2));
    assert!(has(pos(-85.0, 180.0), 3) && has(pos(-90.0, -180.0), 3));
    for p in [pos(90.0, 0.0), pos(-90.0, 0.0), pos(0.0, 180.0), pos(0.0, -180.0)] {
        assert!(has(p, 4));
    }
    // A coarse antimeridian box whose two parts meet at coarse levels: filed once per cell.
    ix.insert(5, &bbox(1.0, -80.0, -1.0, 80.0));
    let got = query(&ix, pos(0.0, 90.0));
    assert_eq!(got.iter().filter(|&&id| id == 5).count(), 1);
}

#[test]
fn far_boxes_are_not_candidates() {
    // The point of the index: a Berlin message never looks at Tokyo's viewports.
    let mut rng = Rng(7);
    let mut ix = GeoIndex::new();
    for id in 0..2_000u32 {
        let (x, y) = if id % 2 == 0 { (13.4, 52.5) } else { (139.7, 35.7) };
        let (dx, dy) = (rng.range(-0.3, 0.3), rng.range(-0.2, 0.2));
        ix.insert(id, &bbox(x + dx - 0.05, y + dy - 0.03, x + dx + 0.05, y + dy + 0.03));
    }
    let got = query(&ix, pos(52.5, 13.4));
    assert!(!got.is_empty());
    assert!(got.iter().all(|id| id % 2 == 0));
}

#[test]
fn crowded_cell_removes_in_any_order() {
    // 10,000 identical viewports: every cell they cover holds 10,000 ids, indexed.
    let b = bbox(13.40, 52.50, 13.41, 52.51);
    let mut ix = GeoIndex::new();
    for id in 0..10_000 {
        ix.insert(id, &b);
    }
    assert!(ix.cells.values().all(|c| c.ids.len() == 10_000 && c.at.is_some()));
    assert_eq!(query(&ix, pos(52.505, 13.405)).len(), 10_000);
    let mut ids: Vec<u32> = (0..10_000).collect();
    let mut rng = Rng(42);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (n, &id) in ids.iter().enumerate() {
        ix.remove(id, &b);
        if n == 5_000 {
            let mut got = query(&ix, pos(52.505, 13.405));
            got.sort_unstable();
            let mut want = ids[5_001..].to_vec();
            want.sort_unstable();
            assert_eq!(got, want);
        }
    }
    assert!(ix.is_empty() && ix.cell_count() == 0);
}

#[test]
fn levels_follow_box_size() {
    let level = |b: BBox| Footprint::of(&b).level();
    assert_eq!(level(bbox(-180.0, -90.0, 180.0, 90.0)), 2);
    assert_eq!(level(bbox(10.0, 10.0, 10.0, 10.0)), MAX_LEVEL);
    let city = level(bbox(13.08, 52.33, 13.76, 52.68));
    let street = level(bbox(13.40, 52.50, 13.41, 52.51));
    assert!(city < street, "{city} {street}");
    for b in [bbox(13.08, 52.33, 13.76, 52.68), bbox(170.0, -10.0, -170.0, 10.0), bbox(-180.0, 0.0, 0.0, 1.0)]
    {
        let fp = Footprint::of(&b);
        let mut n = 0;
        fp.for_each_cell(fp.level(), |_| n += 1);
        assert!(n <= MAX_CELLS && n == fp.cells_at(fp.level()), "{b:?}: {n}");
    }
}
