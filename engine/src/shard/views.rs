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

use rustc_hash::FxHashMap;
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
/// thousand markers; per key a view holds ~30 B (viewport) and ~100 B (pacer), so this
/// bounds one filtered subscription at ~0.7 MB.
pub const MAX_VIEW_KEYS: usize = 5_000;
/// Pans one view may make per second, on average (bursts of [`PAN_BURST`]): a pan costs
/// the room's owner a scan of its snapshot, so a client panning in a loop must not own it.
pub const PAN_RATE: f64 = 10.0;
/// Pans a view may make at once.
pub const PAN_BURST: f64 = 20.0;

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
    /// Keys this viewport shows (viewports only), each with this view's position in
    /// `shown[key].views`, so leaving costs O(1) however many viewports show the key.
    keys: FxHashMap<Rc<str>, u32>,
    /// Per-message scratch: equals `Views::gen` while the message is inside the box.
    mark: u64,
    /// Told `too_many_keys` already.
    warned: bool,
    /// Position in `Views::open` (views without a box).
    open_at: u32,
    /// Pan budget: tokens and when they were counted.
    pans: (f64, Option<Instant>),
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
    /// What the filters did, for the shard's counters.
    pub counts: Counts,
}

/// What filtering did during one delivery (see the `paced_*`/`view_*` shard counters).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub held: u64,
    pub skipped: u64,
    pub refused: u64,
    pub leaves: u64,
    /// Messages passed unpaced because the subscriber's pacer tracks its maximum of keys.
    pub unpaced: u64,
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

/// [`Pacer::offer`] of `m` for `key`, counting in `ctx` a pass-through of a key beyond the
/// pacer's bound.
fn offer_counted(
    p: &mut Pacer<Arc<Message>>,
    key: &str,
    m: &Arc<Message>,
    ctx: &mut Ctx<'_>,
) -> Offer<Arc<Message>> {
    let before = p.overflowed();
    let offer = p.offer(key, pt(m.fix.pos), m.fix.status, m.clone(), ctx.now);
    ctx.counts.unpaced += p.overflowed() - before;
    offer
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
            (Some(p), Some(k)) => match offer_counted(p, k, m, ctx) {
                Offer::Send(m) => (ctx.pushed)(self.sub.deliver(&m, ctx.direct, ctx.window, ctx.now)),
                Offer::Held { new_due } => {
                    ctx.counts.held += 1;
                    if let Some(d) = new_due.filter(|&d| self.scheduled.is_none_or(|s| d < s)) {
                        self.scheduled = Some(d);
                        ctx.schedule.push((d, self.sub.id()));
                    }
                }
                Offer::Skipped => ctx.counts.skipped += 1,
            },
            _ if ctx.replay => (ctx.pushed)(self.sub.push_msg(m)),
            _ => (ctx.pushed)(self.sub.deliver(m, ctx.direct, ctx.window, ctx.now)),
        }
    }

    /// The key stopped being shown: `leave`, and its pending paced message is dropped.
    /// Returns this view's position in `shown[key].views` (for [`Views::unshow_at`]).
    fn leave(&mut self, room: &str, key: &str, counts: &mut Counts) -> Option<u32> {
        counts.leaves += 1;
        if let Some(p) = &mut self.pacer {
            p.forget(key);
        }
        self.sub.push_ctrl(envelope::leave_frame(room, key));
        self.keys.remove(key)
    }

    /// `leave` if the key is shown; its position in `shown[key].views`.
    fn leave_if_shown(&mut self, room: &str, key: &str, counts: &mut Counts) -> Option<u32> {
        if self.keys.contains_key(key) {
            self.leave(room, key, counts)
        } else {
            None
        }
    }

    /// Starts showing `key`, unless the viewport is full (then tells the client once).
    /// The caller then files the view in `shown[key].views` and sets the position.
    fn show(&mut self, room: &str, key: &Rc<str>, counts: &mut Counts) -> bool {
        if self.keys.contains_key(key) {
            return true;
        }
        if self.keys.len() >= MAX_VIEW_KEYS {
            counts.refused += 1;
            if !self.warned {
                self.warned = true;
                let msg =
                    format!("the viewport on {room} shows its maximum of {MAX_VIEW_KEYS} keys; zoom in");
                self.sub.push_ctrl(envelope::error_frame(None, "too_many_keys", &msg));
            }
            return false;
        }
        self.keys.insert(key.clone(), u32::MAX);
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

    /// Takes one pan from `conn`'s budget ([`PAN_RATE`], [`PAN_BURST`]); false when spent.
    pub(super) fn take_pan(&mut self, conn: u64, now: Instant) -> bool {
        let Some(&v) = self.by_conn.get(&conn) else { return false };
        let Some(s) = self.slots[v as usize].as_mut() else { return false };
        let (tokens, at) = s.pans;
        let refill = at.map_or(0.0, |a| now.saturating_duration_since(a).as_secs_f64() * PAN_RATE);
        let tokens = (tokens + refill).min(PAN_BURST);
        if tokens < 1.0 {
            s.pans = (tokens, Some(now));
            return false;
        }
        s.pans = (tokens - 1.0, Some(now));
        true
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
            keys: FxHashMap::default(),
            mark: 0,
            warned: false,
            open_at: self.open.len() as u32,
            pans: (PAN_BURST, None),
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
            None => {
                // O(1): the last open view takes this one's place.
                let at = slot.open_at as usize;
                self.open.swap_remove(at);
                if let Some(&moved) = self.open.get(at) {
                    if let Some(m) = self.slots[moved as usize].as_mut() {
                        m.open_at = at as u32;
                    }
                }
            }
        }
        for (k, &at) in &slot.keys {
            self.unshow_at(k, at);
        }
        if self.by_conn.is_empty() {
            *self = Views::default(); // give every table back
        }
        true
    }

    /// Takes the view at position `at` out of `shown[key].views` in O(1): the last one
    /// moves into its place, and that view's recorded position follows.
    fn unshow_at(&mut self, key: &str, at: u32) {
        let Some(s) = self.shown.get_mut(key) else { return };
        let at = at as usize;
        if at >= s.views.len() {
            return;
        }
        s.views.swap_remove(at);
        if let Some(&moved) = s.views.get(at) {
            if let Some(p) = self.slots[moved as usize].as_mut().and_then(|m| m.keys.get_mut(key)) {
                *p = at as u32;
            }
        }
        if s.views.is_empty() {
            self.shown.remove(key);
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
                    s.leave(&m.room, key, &mut ctx.counts);
                }
            }
            let mut views = Vec::new();
            for &v in scratch.iter() {
                let Some(s) = slots[v as usize].as_mut() else { continue };
                if s.show(&m.room, &rc, &mut ctx.counts) {
                    views.push(v);
                    s.send(m, ctx);
                }
            }
            if !views.is_empty() {
                for (j, &v) in views.iter().enumerate() {
                    if let Some(p) = slots[v as usize].as_mut().and_then(|s| s.keys.get_mut(key)) {
                        *p = j as u32;
                    }
                }
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
        let was = s.keys.contains_key(key);
        // Outside, unless it has no position and was shown (it stays where it was).
        if !(inside || was && m.fix.pos.is_none()) {
            if let Some(at) = s.leave_if_shown(&m.room, key, &mut ctx.counts) {
                self.unshow_at(key, at);
            }
            return;
        }
        let rc = self.shown.get_key_value(key).map_or_else(|| Rc::from(key), |(k, _)| k.clone());
        if !s.show(&m.room, &rc, &mut ctx.counts) {
            return;
        }
        s.send(m, ctx);
        let entry = self.shown.entry(rc.clone()).or_insert(Shown { pos: None, views: Vec::new() });
        if m.fix.pos.is_some() {
            entry.pos = m.fix.pos;
        }
        if !was {
            let at = entry.views.len() as u32;
            entry.views.push(v);
            if let Some(p) = s.keys.get_mut(&rc) {
                *p = at;
            }
        }
    }

    /// `offline` notices of a replay, for the keys the view shows (all, for open views).
    pub(super) fn replay_offline(&self, conn: u64, room: &str, offline: &[Arc<Message>]) {
        let Some(s) = self.slot_of(conn) else { return };
        for m in offline {
            let key = m.key.as_deref().unwrap_or_default();
            if s.bbox.is_none() || s.keys.contains_key(key) {
                s.sub.push_ctrl(envelope::offline_frame(room, key, m.seq));
            }
        }
    }

    /// Calls `f` with every filtered follower (a room-wide notice such as `reset`).
    pub(super) fn each_sub(&self, mut f: impl FnMut(&Subscriber)) {
        for &v in self.by_conn.values() {
            if let Some(s) = &self.slots[v as usize] {
                f(&s.sub);
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
            .keys()
            .filter(|k| self.shown.get(&***k).and_then(|e| e.pos).is_none_or(|p| !bbox.contains(p)))
            .cloned()
            .collect();
        for k in gone {
            let at = self.slots[v as usize].as_mut().and_then(|s| s.leave(room, &k, &mut ctx.counts));
            if let Some(at) = at {
                self.unshow_at(&k, at);
            }
        }
        for m in entries {
            let shows = m
                .key
                .as_deref()
                .is_some_and(|k| self.slots[v as usize].as_ref().is_some_and(|s| s.keys.contains_key(k)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::message::DeliveryMode;
    use crate::outbox::Entry;
    use crate::track::Fix;
    use bytes::Bytes;
    use std::task::{Context, Poll, Waker};

    /// xorshift64*: a seeded, dependency-free PRNG for the property test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn f(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A live delivery context (queued, not written through) counting into `pushed`.
    fn live_ctx<'a>(pushed: &'a mut dyn FnMut(Pushed), schedule: &'a mut Vec<(Instant, u64)>) -> Ctx<'a> {
        let now = Instant::now();
        let counts = Counts::default();
        Ctx { direct: false, window: Duration::ZERO, now, replay: false, pushed, schedule, counts }
    }

    fn msg(seq: u64, key: Option<&str>, pos: Option<Pos>) -> Arc<Message> {
        let data = Bytes::from(format!("{{\"n\":{seq}}}"));
        let m = Message::new("r".into(), seq, data, key.map(Into::into), Policy::Drop, Instant::now());
        Arc::new(m.with_fix(Fix { pos, status: 0 }))
    }

    /// What a subscriber got since the last call: `m<seq>` for messages, `leave <key>`.
    fn got(sub: &Subscriber) -> Vec<String> {
        let mut out = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut entries = Vec::new();
        while let Poll::Ready(true) = sub.poll_take(&mut cx, &mut entries, 1024) {
            sub.batch_written();
        }
        for e in entries {
            out.push(match e {
                Entry::Msg(m) => format!("m{}", m.seq),
                Entry::Ctrl(b) => {
                    let text = String::from_utf8_lossy(&b[2..]).into_owned();
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    format!("{} {}", v["op"].as_str().unwrap(), v["key"].as_str().unwrap_or(""))
                }
            });
        }
        out
    }

    fn random_box(r: &mut Rng) -> BBox {
        match r.below(6) {
            0 => BBox::new(170.0, -20.0, -170.0, 20.0).unwrap(), // across the antimeridian
            1 => BBox::new(-180.0, -90.0, 180.0, 90.0).unwrap(), // the world
            _ => {
                let (w, s) = (r.f(-20.0, 18.0), r.f(-20.0, 18.0));
                BBox::new(w, s, w + r.f(0.1, 12.0), s + r.f(0.1, 12.0)).unwrap()
            }
        }
    }

    fn random_pos(r: &mut Rng) -> Option<Pos> {
        match r.below(10) {
            0 => None,
            1 => Pos::new(r.f(-15.0, 15.0), if r.below(2) == 0 { 179.5 } else { -179.5 }),
            _ => Pos::new(r.f(-22.0, 22.0), r.f(-22.0, 22.0)),
        }
    }

    impl Views {
        /// The two sides of the shown relation agree, positions included.
        fn check(&self) {
            for (k, e) in &self.shown {
                assert!(!e.views.is_empty(), "{k}: an empty entry is kept");
                for (j, &v) in e.views.iter().enumerate() {
                    let s = self.slots[v as usize].as_ref().expect("a live view");
                    assert_eq!(s.keys.get(&**k), Some(&(j as u32)), "{k}: view {v} at {j}");
                }
            }
            for (j, &v) in self.open.iter().enumerate() {
                assert_eq!(
                    self.slots[v as usize].as_ref().map(|s| s.open_at),
                    Some(j as u32),
                    "open view {v}"
                );
            }
            for (v, s) in self.slots.iter().enumerate().filter_map(|(v, s)| Some((v, s.as_ref()?))) {
                for (k, &j) in &s.keys {
                    assert_eq!(self.shown[&**k].views.get(j as usize), Some(&(v as u32)), "{k}: view {v}");
                }
            }
        }
    }

    #[test]
    fn a_full_pacer_passes_new_keys_unpaced_and_counts_them() {
        let mut views = Views::default();
        let sub = Rc::new(Subscriber::new(1, DeliveryMode::Envelope, 1 << 30));
        let pace = PaceRule::from_wire(Some(0.1), None, None).unwrap();
        views.insert(sub.clone(), ViewSpec { bbox: None, pace });
        let (mut n, mut sched) = (0usize, Vec::new());
        let mut count = |_: Pushed| n += 1;
        let mut ctx = live_ctx(&mut count, &mut sched);
        for round in 0..2u64 {
            for i in 0..MAX_VIEW_KEYS as u64 + 3 {
                views.deliver(&msg(round * 100_000 + i + 1, Some(&format!("k{i}")), None), &mut ctx);
            }
        }
        // Round 1: every key's first message goes at once (3 of them untracked); round 2:
        // the tracked keys are held by the rate, the 3 untracked pass again.
        assert_eq!(ctx.counts.unpaced, 6);
        assert_eq!(ctx.counts.held, MAX_VIEW_KEYS as u64);
        assert_eq!(got(&sub).len(), MAX_VIEW_KEYS + 6);
    }

    #[test]
    fn a_full_viewport_refuses_new_keys_and_says_so_once() {
        let mut views = Views::default();
        let sub = Rc::new(Subscriber::new(1, DeliveryMode::Envelope, 1 << 30));
        views.insert(
            sub.clone(),
            ViewSpec { bbox: Some(BBox::new(-10.0, -10.0, 10.0, 10.0).unwrap()), pace: None },
        );
        let (mut n, mut sched) = (0usize, Vec::new());
        let mut count = |_: Pushed| n += 1;
        let mut ctx = live_ctx(&mut count, &mut sched);
        let at = Pos::new(1.0, 1.0);
        for i in 0..MAX_VIEW_KEYS as u64 + 5 {
            views.deliver(&msg(i + 1, Some(&format!("k{i}")), at), &mut ctx);
        }
        // A key already shown still updates.
        views.deliver(&msg(99_999, Some("k0"), at), &mut ctx);
        assert_eq!(ctx.counts.refused, 5);
        let got = got(&sub);
        assert_eq!(got.iter().filter(|g| g.starts_with('m')).count(), MAX_VIEW_KEYS + 1);
        assert_eq!(got.iter().filter(|g| g.starts_with("error")).count(), 1, "told once");
        assert_eq!(views.shown.len(), MAX_VIEW_KEYS);
    }

    /// Random boxes, keys wandering in and out (some without a position, some keyless
    /// messages), random pans: every viewport gets exactly the messages inside its box, one
    /// `leave` per exit of a shown key, and a pan's leaves and new entries — checked against
    /// a model that tests each box directly (no grid).
    #[test]
    fn viewports_match_a_direct_model() {
        let mut r = Rng(0x5eed_1234_9876_abcd);
        let mut views = Views::default();
        let subs: Vec<Rc<Subscriber>> =
            (0..40).map(|i| Rc::new(Subscriber::new(i, DeliveryMode::Envelope, 1 << 24))).collect();
        let mut boxes: Vec<Option<BBox>> = Vec::new();
        let mut shown: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); subs.len()];
        for s in &subs {
            let b = (s.id() % 8 != 0).then(|| random_box(&mut r)); // every 8th: no box
            views.insert(s.clone(), ViewSpec { bbox: b, pace: None });
            boxes.push(b);
        }
        let mut latest: FxHashMap<String, Arc<Message>> = FxHashMap::default();
        let mut last_pos: FxHashMap<String, Pos> = FxHashMap::default();
        let (mut pushes, mut sched) = (0usize, Vec::new());
        for seq in 1..4_000u64 {
            let mut count = |_: Pushed| pushes += 1;
            let mut ctx = live_ctx(&mut count, &mut sched);
            if r.below(60) == 0 {
                // A viewport leaves and comes back (unsubscribe, subscribe): no leaves sent.
                let i = r.below(subs.len() as u64) as usize;
                assert!(views.remove(subs[i].id()));
                let nb = boxes[i].map(|_| random_box(&mut r));
                views.insert(subs[i].clone(), ViewSpec { bbox: nb, pace: None });
                boxes[i] = nb;
                shown[i].clear();
                views.check();
                continue;
            }
            if r.below(40) == 0 {
                // A pan of a viewport: entries = the latest message of every key inside.
                let i = r.below(subs.len() as u64) as usize;
                let Some(_) = boxes[i] else { continue };
                let nb = random_box(&mut r);
                let mut entries: Vec<Arc<Message>> =
                    latest.values().filter(|m| m.fix.pos.is_some_and(|p| nb.contains(p))).cloned().collect();
                entries.sort_by_key(|m| m.seq);
                assert!(views.pan(subs[i].id(), "r", nb, &entries, &mut ctx));
                boxes[i] = Some(nb);
                let mut want = Vec::new();
                let gone: Vec<String> = shown[i]
                    .iter()
                    .filter(|k| last_pos.get(*k).is_none_or(|p| !nb.contains(*p)))
                    .cloned()
                    .collect();
                for k in &gone {
                    shown[i].remove(k);
                    want.push(format!("leave {k}"));
                }
                for m in &entries {
                    let k = m.key.as_deref().unwrap();
                    if shown[i].insert(k.to_owned()) {
                        want.push(format!("m{}", m.seq));
                    }
                }
                // Leaves come first, in no particular order; then the entries in seq order.
                let mut have = got(&subs[i]);
                let n = have.iter().take_while(|x| x.starts_with("leave")).count();
                have[..n].sort();
                assert_eq!(have, want, "pan of view {i}");
                continue;
            }
            let key = (r.below(12) != 0).then(|| format!("k{}", r.below(25)));
            let pos = random_pos(&mut r);
            let m = msg(seq, key.as_deref(), pos);
            views.deliver(&m, &mut ctx);
            if let (Some(k), Some(p)) = (&key, pos) {
                latest.insert(k.clone(), m.clone());
                last_pos.insert(k.clone(), p);
            }
            for (i, s) in subs.iter().enumerate() {
                let want: Vec<String> = match (boxes[i], &key) {
                    (None, _) => vec![format!("m{seq}")],
                    (Some(b), None) => {
                        pos.filter(|p| b.contains(*p)).map(|_| format!("m{seq}")).into_iter().collect()
                    }
                    (Some(b), Some(k)) => {
                        let inside = match pos {
                            Some(p) => b.contains(p),
                            None => shown[i].contains(k),
                        };
                        if inside {
                            shown[i].insert(k.clone());
                            vec![format!("m{seq}")]
                        } else if shown[i].remove(k) {
                            vec![format!("leave {k}")]
                        } else {
                            vec![]
                        }
                    }
                };
                assert_eq!(got(s), want, "message {seq} ({key:?} at {pos:?}) to view {i} ({:?})", boxes[i]);
            }
            views.check();
        }
        assert!(pushes > 1000, "the test exercised delivery: {pushes}");
        // Leaving frees everything.
        for s in &subs {
            assert!(views.remove(s.id()));
        }
        assert!(views.is_empty() && views.shown.is_empty() && views.grid.is_empty());
    }
}
