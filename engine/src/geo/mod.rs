//! Geometry for viewport subscriptions: positions, great-circle distance, and the
//! viewport box a map client subscribes with.
//!
//! Pure and I/O-free. The server parses a client's `[w, s, e, n]` with
//! [`BBox::from_slice`] (whose errors read well in a wire error), files it in a
//! [`GeoIndex`], and for each positioned message asks the index for candidates and keeps
//! those whose box [`contains`](BBox::contains) the position.
//!
//! Coordinates are compared as numbers, with one exception: longitudes -180 and 180 are the
//! same meridian, so a point on it is in every box that reaches either value. (A point on a
//! pole is not treated specially: it is inside a box only if its longitude is.)

mod grid;

pub use grid::GeoIndex;

/// Mean Earth radius in metres (IUGG), used by [`distance_m`].
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS84 position in degrees.
///
/// The fields are public for reading; build one with [`Pos::new`] so the ranges hold —
/// [`GeoIndex::query`] relies on them (an out-of-range position lands in an edge cell).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pos {
    pub lat: f64,
    pub lon: f64,
}

impl Pos {
    /// None unless both finite, lat in [-90, 90], lon in [-180, 180].
    pub fn new(lat: f64, lon: f64) -> Option<Pos> {
        // Range checks are false for NaN, and a finite range excludes infinities.
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some(Pos { lat, lon })
    }
}

/// Great-circle distance in metres (haversine, mean Earth radius 6_371_008.8 m).
///
/// Haversine rather than the spherical law of cosines because it stays accurate for the
/// short distances that matter here (metres between two vehicles); the sphere itself is off
/// from the ellipsoid by up to ~0.5 %, which is fine for "how far", not for surveying.
pub fn distance_m(a: Pos, b: Pos) -> f64 {
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lb - la;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    // Rounding can push h a hair past 1 for antipodal points; asin would then be NaN.
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A viewport [w, s, e, n] = lon, lat, lon, lat (degrees). w > e means the box crosses the
/// antimeridian (covers lon >= w OR lon <= e). Edges are inclusive.
///
/// Invariant (when built by [`BBox::new`]): all four finite, longitudes in [-180, 180],
/// latitudes in [-90, 90], s <= n. w == e (and s == n) is a valid, zero-width box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub w: f64,
    pub s: f64,
    pub e: f64,
    pub n: f64,
}

/// Why a viewport was refused. Messages are short enough to send back to the client as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BBoxError {
    #[error("bbox needs exactly 4 numbers [w, s, e, n], got {0}")]
    WrongLength(usize),
    #[error("bbox has a non-finite number")]
    NotFinite,
    #[error("bbox longitude outside [-180, 180]")]
    LonOutOfRange,
    #[error("bbox latitude outside [-90, 90]")]
    LatOutOfRange,
    #[error("bbox south edge above north edge")]
    SouthAboveNorth,
}

impl BBox {
    /// Checks the invariant; w > e is accepted and means the box crosses the antimeridian.
    pub fn new(w: f64, s: f64, e: f64, n: f64) -> Result<BBox, BBoxError> {
        if ![w, s, e, n].iter().all(|v| v.is_finite()) {
            return Err(BBoxError::NotFinite);
        }
        let lon = -180.0..=180.0;
        if !lon.contains(&w) || !lon.contains(&e) {
            return Err(BBoxError::LonOutOfRange);
        }
        let lat = -90.0..=90.0;
        if !lat.contains(&s) || !lat.contains(&n) {
            return Err(BBoxError::LatOutOfRange);
        }
        if s > n {
            return Err(BBoxError::SouthAboveNorth);
        }
        Ok(BBox { w, s, e, n })
    }

    /// From a JSON-ish array of exactly 4 numbers (helper for the server's parser).
    pub fn from_slice(v: &[f64]) -> Result<BBox, BBoxError> {
        match *v {
            [w, s, e, n] => BBox::new(w, s, e, n),
            _ => Err(BBoxError::WrongLength(v.len())),
        }
    }

    /// Inclusive on all four edges; handles w > e; lon -180 and 180 are the same meridian.
    pub fn contains(&self, p: Pos) -> bool {
        if p.lat < self.s || p.lat > self.n {
            return false;
        }
        self.has_lon(p.lon)
            || (p.lon == 180.0 && self.has_lon(-180.0))
            || (p.lon == -180.0 && self.has_lon(180.0))
    }

    /// True when w > e: the box is the union of [w, 180] and [-180, e].
    pub fn crosses_antimeridian(&self) -> bool {
        self.w > self.e
    }

    fn has_lon(&self, lon: f64) -> bool {
        if self.crosses_antimeridian() {
            lon >= self.w || lon <= self.e
        } else {
            self.w <= lon && lon <= self.e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Pos {
        Pos::new(lat, lon).unwrap()
    }

    #[test]
    fn pos_ranges() {
        assert!(Pos::new(90.0, 180.0).is_some());
        assert!(Pos::new(-90.0, -180.0).is_some());
        assert!(Pos::new(90.1, 0.0).is_none());
        assert!(Pos::new(0.0, -180.1).is_none());
        assert!(Pos::new(f64::NAN, 0.0).is_none());
        assert!(Pos::new(0.0, f64::INFINITY).is_none());
    }

    #[test]
    fn known_distances() {
        // One degree of latitude on the mean sphere: 2πR/360.
        let d = distance_m(p(0.0, 0.0), p(1.0, 0.0));
        assert!((d - 111_195.08).abs() < 1.0, "{d}");
        // Berlin – Paris, city centres: ~878 km (877.46 km on this sphere).
        let d = distance_m(p(52.5200, 13.4050), p(48.8566, 2.3522));
        assert!((d - 878_000.0).abs() < 1_000.0, "{d}");
        assert_eq!(distance_m(p(10.0, 20.0), p(10.0, 20.0)), 0.0);
        // Across the antimeridian is short, and ±180 is one meridian.
        let d = distance_m(p(0.0, 179.5), p(0.0, -179.5));
        assert!((d - 111_195.08).abs() < 1.0, "{d}");
        assert!(distance_m(p(0.0, 180.0), p(0.0, -180.0)) < 1e-6);
        // Antipodes: half the circumference, not NaN.
        let d = distance_m(p(0.0, 0.0), p(0.0, 180.0));
        assert!((d - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1.0, "{d}");
        let d = distance_m(p(90.0, 0.0), p(-90.0, 0.0));
        assert!((d - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1.0, "{d}");
    }

    #[test]
    fn bbox_validation() {
        assert_eq!(BBox::new(0.0, 1.0, 2.0, 0.0), Err(BBoxError::SouthAboveNorth));
        assert_eq!(BBox::new(-181.0, 0.0, 0.0, 1.0), Err(BBoxError::LonOutOfRange));
        assert_eq!(BBox::new(0.0, 0.0, 180.5, 1.0), Err(BBoxError::LonOutOfRange));
        assert_eq!(BBox::new(0.0, -91.0, 1.0, 1.0), Err(BBoxError::LatOutOfRange));
        assert_eq!(BBox::new(f64::NAN, 0.0, 1.0, 1.0), Err(BBoxError::NotFinite));
        assert_eq!(BBox::new(0.0, 0.0, 1.0, f64::INFINITY), Err(BBoxError::NotFinite));
        assert_eq!(BBox::from_slice(&[1.0, 2.0, 3.0]), Err(BBoxError::WrongLength(3)));
        assert_eq!(BBox::from_slice(&[1.0, 2.0, 3.0, 4.0]), Ok(BBox { w: 1.0, s: 2.0, e: 3.0, n: 4.0 }));
        assert_eq!(BBoxError::SouthAboveNorth.to_string(), "bbox south edge above north edge");
        // w > e is valid: it crosses the antimeridian; w == e is a zero-width box.
        assert!(BBox::new(170.0, 0.0, -170.0, 1.0).unwrap().crosses_antimeridian());
        assert!(!BBox::new(5.0, 1.0, 5.0, 1.0).unwrap().crosses_antimeridian());
    }

    #[test]
    fn contains_edges_inclusive() {
        let b = BBox::new(13.0, 52.0, 14.0, 53.0).unwrap();
        for (lat, lon) in [(52.0, 13.0), (53.0, 14.0), (52.0, 14.0), (53.0, 13.0), (52.5, 13.5)] {
            assert!(b.contains(p(lat, lon)), "{lat} {lon}");
        }
        for (lat, lon) in [(51.999, 13.5), (53.001, 13.5), (52.5, 12.999), (52.5, 14.001)] {
            assert!(!b.contains(p(lat, lon)), "{lat} {lon}");
        }
        let dot = BBox::new(13.0, 52.0, 13.0, 52.0).unwrap();
        assert!(dot.contains(p(52.0, 13.0)));
        assert!(!dot.contains(p(52.0, 13.000001)));
    }

    #[test]
    fn contains_antimeridian() {
        let b = BBox::new(170.0, -10.0, -170.0, 10.0).unwrap();
        for lon in [170.0, 175.0, 180.0, -180.0, -175.0, -170.0] {
            assert!(b.contains(p(0.0, lon)), "{lon}");
        }
        for lon in [169.9, 0.0, -169.9] {
            assert!(!b.contains(p(0.0, lon)), "{lon}");
        }
        // Boxes that stop at one side of the antimeridian still hold a point on the other.
        let east = BBox::new(170.0, -10.0, 180.0, 10.0).unwrap();
        let west = BBox::new(-180.0, -10.0, -170.0, 10.0).unwrap();
        assert!(east.contains(p(0.0, -180.0)) && west.contains(p(0.0, 180.0)));
        assert!(!east.contains(p(0.0, -179.9)) && !west.contains(p(0.0, 179.9)));
    }

    #[test]
    fn contains_poles_and_world() {
        let world = BBox::new(-180.0, -90.0, 180.0, 90.0).unwrap();
        for (lat, lon) in [(90.0, 0.0), (-90.0, 180.0), (0.0, -180.0), (45.0, 45.0)] {
            assert!(world.contains(p(lat, lon)));
        }
        let arctic = BBox::new(-30.0, 80.0, 30.0, 90.0).unwrap();
        assert!(arctic.contains(p(90.0, 0.0)));
        assert!(!arctic.contains(p(79.0, 0.0)));
        // Coordinates, not geometry: the pole at a longitude outside the box is outside.
        assert!(!arctic.contains(p(90.0, 100.0)));
    }
}
