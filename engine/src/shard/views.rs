//! Filtered subscriptions of one room on one shard (issue 11): **viewports** (`bbox`: only
//! messages whose position is inside, a `leave` when a shown key moves out, `view` to pan)
//! and **pacing** (`max_rate`, `min_move_m`, `max_silence_s`, via [`Pacer`]).
//!
//! Why here, at the shard's fan-out: the frame is already built and shared; filtering is a
//! few float comparisons per *matching* subscriber, and a paced message is held as one more
//! reference to the same `Arc<Message>` — frames are never copied per subscriber.
//!
//! Cost per message is not O(viewports): boxes are filed in a [`GeoIndex`] grid, so a
//! message at `p` is checked against the viewports whose cells cover `p` plus the viewports
//! that showed its key (for `leave`), found through `shown`. Viewports without a box (only
//! pacing) see every message, as plain followers do.
//!
//! Invariants:
//! - `slot.keys` (keys a viewport shows) and `shown[key].views` are the same relation seen
//!   from both sides; a key is shown only after a message of it inside the box was
//!   delivered to that viewport, and a `leave` is sent exactly when it stops being shown
//!   while the subscription lasts (moved out, or the box moved) — never for a key never
//!   shown, never twice for one exit.
//! - A viewport shows at most [`MAX_VIEW_KEYS`] keys: memory per viewport is bounded
//!   whatever the room's key space; a key that would pass it is not delivered, and the
//!   subscriber is told once (`too_many_keys`).
//! - `scheduled` is the earliest instant the shard's pacing heap holds for the slot.

use rustc_hash::{FxHashMap, FxHashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::envelope;
use crate::geo::{BBox, GeoIndex, Pos};
use crate::message::Message;
use crate::outbox::Pushed;
use crate::pace::{Offer, PaceRule, Pacer};
use crate::rooms::Notice;
use crate::subscriber::Subscriber;

/// Most keys one viewport shows (and most keys one pacer tracks). A city map shows a few
/// thousand markers; this bounds a viewport's memory at roughly 0.5 MB.
pub const MAX_VIEW_KEYS: usize = 10_000;

/// A subscription's filter, validated: a viewport and/or pacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewSpec {
    /// Deliver only messages whose position is inside (keyed ones: plus `leave` on exit).
    pub bbox: Option<BBox>,
    /// Per-key rate limit and dead-band.
    pub pace: Option<PaceRule>,
}

struct Slot {
    sub: Rc<Subscriber>,
    bbox: Option<BBox>,
    pacer: Option<Pacer<Arc<Message>>>,
    /// Keys this viewport shows (viewports only).
    keys: FxHashSet<Rc<str>>,
    /// Per-message scratch: equals `Views::gen` while the message is inside the box.
    mark: u64,
    /// Told `too_many_keys` already.
    warned: bool,
    scheduled: Option<Instant>,
}

struct Shown {
    /// The key's last position seen on this shard.
    pos: Option<Pos>,
    /// Viewports showing it.
    views: Vec<u32>,
}

/// What delivering needs from the shard, and what it hands back.
pub(super) struct Ctx<'a> {
    pub direct: bool,
    pub window: Duration,
    pub now: Instant,
    /// Replay (snapshot/history at subscribe, entries on a pan): queued, not paced.
    pub replay: bool,
    pub pushed: &'a mut dyn FnMut(Pushed),
    /// `(due, connection)` pairs the shard must visit (`Views::pace_due`).
    pub schedule: &'a mut Vec<(Instant, u64)>,
}

/// See the module documentation.
#[derive(Default)]
pub(super) struct Views {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_conn: FxHashMap<u64, u32>,
    grid: GeoIndex,
    /// Views without a box.
    open: Vec<u32>,
    shown: FxHashMap<Rc<str>, Shown>,
    gen: u64,
    scratch: Vec<u32>,
}

fn pt(p: Option<Pos>) -> Option<(f64, f64)> {
    p.map(|p| (p.lat, p.lon))
}

impl Slot {
    /// Delivers `m` to this subscriber, through its pacer if it has one.
    fn send(&mut self, m: &Arc<Message>, ctx: &mut Ctx<'_>) {
        let key = m.key.as_deref();
        match (&mut self.pacer, key) {
            (Some(p), Some(k)) if ctx.replay => {
                p.note_sent(k, pt(m.fix.pos), m.fix.status, ctx.now);
                (ctx.pushed)(self.sub.push_msg(m));
            }
            (Some(p), Some(k)) => match p.offer(k, pt(m.fix.pos), m.fix.status, m.clone(), ctx.now) {
                Offer::Send(m) => (ctx.pushed)(self.sub.deliver(&m, ctx.direct, ctx.window, ctx.now)),
                Offer::Held { new_due: Some(d) } if self.scheduled.is_none_or(|s| d < s) => {
                    self.scheduled = Some(d);
                    ctx.schedule.push((d, self.sub.id()));
                }
                Offer::Held { .. } | Offer::Skipped => {}
            },
            _ if ctx.replay => (ctx.pushed)(self.sub.push_msg(m)),
            _ => (ctx.pushed)(self.sub.deliver(m, ctx.direct, ctx.window, ctx.now)),
        }
    }

    /// The key stopped being shown: `leave`, and its pending paced message is dropped.
    fn leave(&mut self, room: &str, key: &str) {
        self.keys.remove(key);
        if let Some(p) = &mut self.pacer {
            p.forget(key);
        }
        self.sub.push_ctrl(envelope::leave_frame(room, key));
    }

    /// Starts showing `key`, unless the viewport is full (then tells the client once).
    fn show(&mut self, room: &str, key: &Rc<str>) -> bool {
        if self.keys.contains(key) {
            return true;
        }
        if self.keys.len() >= MAX_VIEW_KEYS {
            if !self.warned {
                self.warned = true;
                let msg =
                    format!("the viewport on {room} shows its maximum of {MAX_VIEW_KEYS} keys; zoom in");
                self.sub.push_ctrl(envelope::error_frame(None, "too_many_keys", &msg));
            }
            return false;
        }
        self.keys.insert(key.clone());
        true
    }
}

impl Views {
    pub(super) fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }

    pub(super) fn contains(&self, conn: u64) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// Whether `conn` follows through a viewport (a box).
    pub(super) fn has_box(&self, conn: u64) -> bool {
        self.slot_of(conn).is_some_and(|s| s.bbox.is_some())
    }

    fn slot_of(&self, conn: u64) -> Option<&Slot> {
        self.by_conn.get(&conn).and_then(|&v| self.slots[v as usize].as_ref())
    }

    /// Adds `sub` with `spec`; returns its view id.
    pub(super) fn insert(&mut self, sub: Rc<Subscriber>, spec: ViewSpec) -> u32 {
        let conn = sub.id();
        let slot = Slot {
            sub,
            bbox: spec.bbox,
            pacer: spec.pace.map(|r| Pacer::new(r, MAX_VIEW_KEYS)),
            keys: FxHashSet::default(),
            mark: 0,
            warned: false,
            scheduled: None,
        };
        let v = match self.free.pop() {
            Some(v) => {
                self.slots[v as usize] = Some(slot);
                v
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        match &spec.bbox {
            Some(b) => self.grid.insert(v, b),
            None => self.open.push(v),
        }
        self.by_conn.insert(conn, v);
        v
    }

    /// Removes `conn`'s view; false if it had none. O(keys it showed).
    pub(super) fn remove(&mut self, conn: u64) -> bool {
        let Some(v) = self.by_conn.remove(&conn) else { return false };
        let Some(slot) = self.slots[v as usize].take() else { return false };
        self.free.push(v);
        match &slot.bbox {
            Some(b) => self.grid.remove(v, b),
            None => self.open.retain(|&x| x != v),
        }
        for k in &slot.keys {
            self.unshow(k, v);
        }
        if self.by_conn.is_empty() {
            *self = Views::default(); // give every table back
        }
        true
    }

    fn unshow(&mut self, key: &str, v: u32) {
        if let Some(s) = self.shown.get_mut(key) {
            s.views.retain(|&x| x != v);
            if s.views.is_empty() {
                self.shown.remove(key);
            }
        }
    }

    /// Live fan-out of `m` to the views.
    pub(super) fn deliver(&mut self, m: &Arc<Message>, ctx: &mut Ctx<'_>) {
        let Views { slots, grid, open, shown, gen, scratch, .. } = self;
        let pos = m.fix.pos;
        scratch.clear();
        if let Some(p) = pos {
            grid.query(p, scratch);
            scratch.retain(|&v| {
                slots[v as usize].as_ref().is_some_and(|s| s.bbox.is_some_and(|b| b.contains(p)))
            });
        }
        if let Some(key) = m.key.as_deref() {
            let prior = shown.remove_entry(key);
            let (rc, prior) = match prior {
                Some((rc, s)) => (rc, Some(s)),
                None => (Rc::from(key), None),
            };
            if pos.is_none() {
                // No position: the key stays where it was for the viewports showing it.
                scratch.extend(prior.iter().flat_map(|s| s.views.iter().copied()));
            }
            *gen += 1;
            for &v in scratch.iter() {
                if let Some(s) = slots[v as usize].as_mut() {
                    s.mark = *gen;
                }
            }
            for &v in prior.iter().flat_map(|s| s.views.iter()) {
                if let Some(s) = slots[v as usize].as_mut().filter(|s| s.mark != *gen) {
                    s.leave(&m.room, key);
                }
            }
            let mut views = Vec::new();
            for &v in scratch.iter() {
                let Some(s) = slots[v as usize].as_mut() else { continue };
                if s.show(&m.room, &rc) {
                    views.push(v);
                    s.send(m, ctx);
                }
            }
            if !views.is_empty() {
                let pos = pos.or(prior.and_then(|s| s.pos));
                shown.insert(rc, Shown { pos, views });
            }
        } else {
            for &v in scratch.iter() {
                if let Some(s) = slots[v as usize].as_mut() {
                    s.send(m, ctx);
                }
            }
        }
        for &v in open.iter() {
            if let Some(s) = slots[v as usize].as_mut() {
                s.send(m, ctx);
            }
        }
    }

    /// A new view's replay (snapshot/history of its `sub`): what is inside its box, in
    /// order, queued, with `leave` for a key the replay itself moves out.
    pub(super) fn replay(&mut self, conn: u64, msgs: &[Arc<Message>], ctx: &mut Ctx<'_>) {
        let Some(&v) = self.by_conn.get(&conn) else { return };
        for m in msgs {
            self.one(v, m, ctx);
        }
    }

    /// One message for one view `v` (replays and pans).
    fn one(&mut self, v: u32, m: &Arc<Message>, ctx: &mut Ctx<'_>) {
        let Some(s) = self.slots[v as usize].as_mut() else { return };
        let Some(b) = s.bbox else { return s.send(m, ctx) };
        let inside = m.fix.pos.is_some_and(|p| b.contains(p));
        let Some(key) = m.key.as_deref() else {
            if inside {
                s.send(m, ctx);
            }
            return;
        };
        let was = s.keys.contains(key);
        // Outside, unless it has no position and was shown (it stays where it was).
        if !(inside || was && m.fix.pos.is_none()) {
            if was {
                s.leave(&m.room, key);
                self.unshow(key, v);
            }
            return;
        }
        let rc = self.shown.get_key_value(key).map_or_else(|| Rc::from(key), |(k, _)| k.clone());
        if !s.show(&m.room, &rc) {
            return;
        }
        s.send(m, ctx);
        let entry = self.shown.entry(rc).or_insert(Shown { pos: None, views: Vec::new() });
        if m.fix.pos.is_some() {
            entry.pos = m.fix.pos;
        }
        if !was {
            entry.views.push(v);
        }
    }

    /// `offline` notices of a replay, for the keys the view shows (all, for open views).
    pub(super) fn replay_offline(&self, conn: u64, room: &str, offline: &[Arc<Message>]) {
        let Some(s) = self.slot_of(conn) else { return };
        for m in offline {
            let key = m.key.as_deref().unwrap_or_default();
            if s.bbox.is_none() || s.keys.contains(key) {
                s.sub.push_ctrl(envelope::offline_frame(room, key, m.seq));
            }
        }
    }

    /// A notice for the room: presence diffs to every view, a key's notice to the views
    /// showing it (and the open ones).
    pub(super) fn notice(&self, n: &Notice) {
        let targets: Box<dyn Iterator<Item = &u32>> = match n.key.as_deref() {
            Some(k) => {
                Box::new(self.shown.get(k).map(|s| s.views.iter()).into_iter().flatten().chain(&self.open))
            }
            None => Box::new(self.by_conn.values()),
        };
        for &v in targets {
            if let Some(s) = &self.slots[v as usize] {
                s.sub.push_ctrl(n.frame.clone());
            }
        }
    }

    /// Moves `conn`'s box to `bbox` (a map pan): `leave` for shown keys now outside, then
    /// `entries` (the room's snapshot inside `bbox`) it does not show yet. Returns false if
    /// `conn` has no viewport here.
    pub(super) fn pan(
        &mut self,
        conn: u64,
        room: &str,
        bbox: BBox,
        entries: &[Arc<Message>],
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let Some(&v) = self.by_conn.get(&conn) else { return false };
        let Some(s) = self.slots[v as usize].as_mut() else { return false };
        let Some(old) = s.bbox.replace(bbox) else {
            s.bbox = None;
            return false;
        };
        self.grid.remove(v, &old);
        self.grid.insert(v, &bbox);
        let gone: Vec<Rc<str>> = s
            .keys
            .iter()
            .filter(|k| self.shown.get(&***k).and_then(|e| e.pos).is_none_or(|p| !bbox.contains(p)))
            .cloned()
            .collect();
        for k in gone {
            s.leave(room, &k);
            if let Some(e) = self.shown.get_mut(&*k) {
                e.views.retain(|&x| x != v);
                if e.views.is_empty() {
                    self.shown.remove(&*k);
                }
            }
        }
        for m in entries {
            let shows = m
                .key
                .as_deref()
                .is_some_and(|k| self.slots[v as usize].as_ref().is_some_and(|s| s.keys.contains(k)));
            if !shows {
                self.one(v, m, ctx);
            }
        }
        true
    }

    /// Delivers `conn`'s paced messages due at `ctx.now`; schedules its next due.
    pub(super) fn pace_due(&mut self, conn: u64, at: Instant, ctx: &mut Ctx<'_>) {
        let Some(&v) = self.by_conn.get(&conn) else { return };
        let Some(s) = self.slots[v as usize].as_mut() else { return };
        if s.scheduled != Some(at) {
            return; // superseded by an earlier visit
        }
        s.scheduled = None;
        let Some(p) = &mut s.pacer else { return };
        let mut due = Vec::new();
        p.take_due(ctx.now, &mut due);
        let next = p.next_due();
        for m in &due {
            (ctx.pushed)(s.sub.deliver(m, ctx.direct, ctx.window, ctx.now));
        }
        if let Some(d) = next {
            s.scheduled = Some(d);
            ctx.schedule.push((d, conn));
        }
    }
}
