//! The spatial index of viewport subscriptions: which boxes might contain a point, without
//! looking at all of them.
//!
//! A multi-level grid — a quadtree's levels without the tree. Level `L` splits longitude
//! into `2^L` columns and latitude into `2^L` rows (so a cell is twice as wide in degrees as
//! it is tall, which suits mid-latitude viewports). A box is filed at **one** level, the
//! finest at which it covers at most [`MAX_CELLS`] (32) cells, in every cell it covers; a query
//! looks up the point's one cell at each level that holds any box and concatenates the ids.
//! So a message costs one hash lookup per level in use (a city's viewports use two or three)
//! plus the candidates it returns, never a pass over all subscriptions, and a map pan costs
//! at most `2 × MAX_CELLS` cell updates.
//!
//! Inclusive edges come from one rule: a point's cell and a box's cell range are computed by
//! the same monotone function of the coordinate ([`lon_coord`], [`lat_coord`], then a shift
//! per level). `w <= lon <= e` then implies `coord(w) <= coord(lon) <= coord(e)` at every
//! level, so a point exactly on an edge — also an edge that falls on a cell boundary — is in
//! a cell the box was filed in. Longitudes -180 and 180 are one meridian (see
//! [`BBox::contains`]): a box reaching one of them is also filed in the column of the other.
//!
//! Invariants:
//! - an id is filed at one level, and at most once per cell (the two parts of an
//!   antimeridian box are merged where they overlap at coarse levels), so a query returns
//!   each id at most once;
//! - `per_level[l]` counts the ids filed at level `l`, and bit `l` of `used` is set iff it
//!   is non-zero;
//! - no cell is empty: a cell is freed when its last id goes, and the tables shrink as they
//!   empty, so memory follows the live boxes, not the peak.

use rustc_hash::FxHashMap;

use super::{BBox, Pos};

/// Finest level: a cell is 360/2^24° × 180/2^24°, ~2.4 m × 1.2 m at the equator, so even a
/// point-sized box is filed in a handful of cells at a level few other boxes use.
const MAX_LEVEL: u32 = 24;
const LEVELS: usize = MAX_LEVEL as usize + 1;
/// Largest column or row number at [`MAX_LEVEL`].
const MAX_COORD: u32 = (1 << MAX_LEVEL) - 1;
/// A box is filed at the finest level where it covers at most this many cells. Finer means
/// fewer false candidates per query but more cells per box (memory, pan cost). Measured with
/// `benches/benches/geo.rs` (10,000 viewports of 1–5 % of Berlin; timings from one run each
/// on a shared, noisy machine): 16 gave 2.1× as many candidates as true hits (pan ~1.7 µs,
/// 2.2 MiB), 32 gives 1.7× (pan ~2.3 µs, 3.3 MiB), 64 gave 1.4× but pan ~17 µs (~50 cells
/// touched, each a cache miss) and 7.9 MiB. The per-message filter cost follows the
/// candidates and messages outnumber pans, but 64's pan and memory are out of proportion.
const MAX_CELLS: u64 = 32;
/// A cell indexes its ids' positions once it holds more than this many, so that removing one
/// stays O(1) in a crowded cell (10,000 viewports over one district)...
const INDEX_ABOVE: usize = 32;
/// ...and drops the index once back at this many (the gap keeps a cell hovering at the
/// threshold from rebuilding it on every change).
const UNINDEX_AT: usize = 16;

/// Column of a longitude at [`MAX_LEVEL`]; column at level `l` is this `>> (MAX_LEVEL - l)`.
/// Monotone in `lon` (each step rounds monotonically), which is what edges rely on.
fn lon_coord(lon: f64) -> u32 {
    (((lon + 180.0) / 360.0 * (1u64 << MAX_LEVEL) as f64) as u32).min(MAX_COORD)
}

/// Row of a latitude at [`MAX_LEVEL`]; see [`lon_coord`].
fn lat_coord(lat: f64) -> u32 {
    (((lat + 90.0) / 180.0 * (1u64 << MAX_LEVEL) as f64) as u32).min(MAX_COORD)
}

fn key(level: u32, x: u32, y: u32) -> u64 {
    (u64::from(level) << 58) | (u64::from(x) << 29) | u64::from(y)
}

/// The cells of a box at [`MAX_LEVEL`]: one or two inclusive column ranges (sorted,
/// disjoint; two when it wraps at ±180) times one row range.
struct Footprint {
    cols: [(u32, u32); 2],
    two: bool,
    rows: (u32, u32),
}

impl Footprint {
    fn of(b: &BBox) -> Footprint {
        let (w, e) = (lon_coord(b.w), lon_coord(b.e));
        let rows = (lat_coord(b.s), lat_coord(b.n));
        let (cols, two) = if b.crosses_antimeridian() {
            ([(0, e), (w, MAX_COORD)], true)
        } else if b.w == -180.0 && b.e != 180.0 {
            // Reaches -180: points given as lon 180 land in the last column.
            ([(0, e), (MAX_COORD, MAX_COORD)], true)
        } else if b.e == 180.0 && b.w != -180.0 {
            ([(0, 0), (w, MAX_COORD)], true)
        } else {
            ([(w, e), (w, e)], false)
        };
        Footprint { cols, two, rows }
    }

    /// Column ranges at `level`: the two ranges merge when shifting makes them meet.
    fn cols_at(&self, level: u32) -> ([(u32, u32); 2], bool) {
        let s = MAX_LEVEL - level;
        let a = (self.cols[0].0 >> s, self.cols[0].1 >> s);
        if !self.two {
            return ([a, a], false);
        }
        let b = (self.cols[1].0 >> s, self.cols[1].1 >> s);
        if b.0 <= a.1 + 1 {
            ([(a.0, a.1.max(b.1)), (0, 0)], false)
        } else {
            ([a, b], true)
        }
    }

    fn cells_at(&self, level: u32) -> u64 {
        let (cols, two) = self.cols_at(level);
        let width = |r: (u32, u32)| u64::from(r.1 - r.0) + 1;
        let ncols = width(cols[0]) + if two { width(cols[1]) } else { 0 };
        let s = MAX_LEVEL - level;
        ncols * width((self.rows.0 >> s, self.rows.1 >> s))
    }

    /// The finest level at which the box covers at most [`MAX_CELLS`] cells. The count never
    /// shrinks as the level gets finer (a range at `l` is the range at `l + 1` shifted), so
    /// the scan stops at the first level that is too fine.
    fn level(&self) -> u32 {
        (1..=MAX_LEVEL).find(|&l| self.cells_at(l) > MAX_CELLS).map_or(MAX_LEVEL, |l| l - 1)
    }

    fn for_each_cell(&self, level: u32, mut f: impl FnMut(u64)) {
        let (cols, two) = self.cols_at(level);
        let s = MAX_LEVEL - level;
        let ranges = if two { &cols[..] } else { &cols[..1] };
        for &(x0, x1) in ranges {
            for x in x0..=x1 {
                for y in self.rows.0 >> s..=self.rows.1 >> s {
                    f(key(level, x, y));
                }
            }
        }
    }
}

/// The ids filed in one cell, in no order. Invariant: `at`, when present, maps each id in
/// `ids` to its position there.
#[derive(Debug, Default)]
struct Cell {
    ids: Vec<u32>,
    at: Option<Box<FxHashMap<u32, u32>>>,
}

impl Cell {
    fn push(&mut self, id: u32) {
        if let Some(at) = &mut self.at {
            at.insert(id, self.ids.len() as u32);
        }
        self.ids.push(id);
        if self.at.is_none() && self.ids.len() > INDEX_ABOVE {
            self.at = Some(Box::new(self.ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect()));
        }
    }

    /// False when `id` is not here (the caller removed with another box than it inserted).
    fn remove(&mut self, id: u32) -> bool {
        let found = match &mut self.at {
            Some(at) => at.remove(&id).map(|i| i as usize),
            None => self.ids.iter().position(|&x| x == id),
        };
        let Some(i) = found else { return false };
        self.ids.swap_remove(i);
        if let (Some(at), Some(&moved)) = (&mut self.at, self.ids.get(i)) {
            at.insert(moved, i as u32);
        }
        let len = self.ids.len();
        if len <= UNINDEX_AT {
            self.at = None;
        } else if let Some(at) = &mut self.at {
            if at.capacity() > 4 * len {
                at.shrink_to(2 * len);
            }
        }
        // Halve when three quarters are unused: amortised O(1), and memory follows `len`.
        if self.ids.capacity() > 8 && len < self.ids.capacity() / 4 {
            self.ids.shrink_to(self.ids.capacity() / 2);
        }
        true
    }

    fn heap_bytes(&self) -> usize {
        let at = self.at.as_ref().map_or(0, |m| {
            std::mem::size_of::<FxHashMap<u32, u32>>()
                + m.capacity() * (std::mem::size_of::<(u32, u32)>() + 1)
        });
        self.ids.capacity() * std::mem::size_of::<u32>() + at
    }
}

/// Maps viewport ids (u32, chosen by the caller) to the grid cells their boxes cover.
#[derive(Debug, Default)]
pub struct GeoIndex {
    cells: FxHashMap<u64, Cell>,
    per_level: [u32; LEVELS],
    /// Bit `l` set iff `per_level[l] > 0`: the levels a query visits.
    used: u32,
    len: usize,
}

impl GeoIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Files `id` under the cells `bbox` covers. The caller guarantees an id is inserted once
    /// (remove before re-inserting with a new box: a map pan).
    pub fn insert(&mut self, id: u32, bbox: &BBox) {
        let fp = Footprint::of(bbox);
        let level = fp.level();
        fp.for_each_cell(level, |k| self.cells.entry(k).or_default().push(id));
        self.per_level[level as usize] += 1;
        self.used |= 1 << level;
        self.len += 1;
    }

    /// Removes `id`, which was inserted with exactly this `bbox`.
    ///
    /// Another box leaves the index inconsistent (ids left in cells); debug builds panic.
    pub fn remove(&mut self, id: u32, bbox: &BBox) {
        let fp = Footprint::of(bbox);
        let level = fp.level();
        let mut found = false;
        fp.for_each_cell(level, |k| {
            if let Some(cell) = self.cells.get_mut(&k) {
                found |= cell.remove(id);
                if cell.ids.is_empty() {
                    self.cells.remove(&k);
                }
            }
        });
        debug_assert!(found, "GeoIndex::remove: id {id} not filed under {bbox:?}");
        if !found {
            return;
        }
        if self.cells.capacity() > 64 && self.cells.len() < self.cells.capacity() / 4 {
            self.cells.shrink_to(self.cells.len() * 2);
        }
        self.per_level[level as usize] -= 1;
        if self.per_level[level as usize] == 0 {
            self.used &= !(1 << level);
        }
        self.len -= 1;
    }

    /// Appends to `out` every id whose covered cells include `p` — a superset of the boxes
    /// that contain p (the caller then tests `BBox::contains`); each id at most once.
    ///
    /// Allocates nothing but `out`'s growth: one hash lookup per level in use.
    pub fn query(&self, p: Pos, out: &mut Vec<u32>) {
        let (x, y) = (lon_coord(p.lon), lat_coord(p.lat));
        let mut levels = self.used;
        while levels != 0 {
            let level = levels.trailing_zeros();
            levels &= levels - 1;
            let s = MAX_LEVEL - level;
            if let Some(cell) = self.cells.get(&key(level, x >> s, y >> s)) {
                out.extend_from_slice(&cell.ids);
            }
        }
    }

    /// Number of ids filed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of non-empty cells (all cells held are non-empty).
    pub fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// Heap bytes held, roughly (for memory accounting in docs/tests): the cell table, each
    /// cell's id vector and position index; not the allocator's overhead.
    pub fn heap_bytes(&self) -> usize {
        let table = self.cells.capacity() * (std::mem::size_of::<(u64, Cell)>() + 1);
        table + self.cells.values().map(Cell::heap_bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
