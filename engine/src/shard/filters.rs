//! The shard's glue for filtered subscriptions ([`views`](super::views)): the delivery
//! context, the pacing timers, and the `view` op (a map pan), which asks the room's owner
//! for the snapshot entries inside the new box.
//!
//! Invariants: the pacing heap holds at most one entry per (room, connection, due
//! instant) that a view scheduled, and a visit whose instant no longer matches the view's
//! `scheduled` is skipped — so the heap is bounded by the filtered subscriptions' pending
//! schedules. A pan's reply travels the owner's event FIFO behind every message sequenced
//! before the owner read its snapshot, so applying the new box when the reply arrives
//! neither loses nor repeats a message: live messages before it were filtered by the old
//! box, the entries are the state at that point, and later messages use the new box.

use std::cmp::Reverse;
use std::rc::Weak;
use std::sync::Arc;
use std::time::Instant;

use super::local::Tally;
use super::views::{Counts, Ctx};
use super::{Shard, Waiting};
use crate::envelope;
use crate::geo::BBox;
use crate::mesh::{Event, Request};
use crate::message::Message;
use crate::outbox::Pushed;
use crate::stats::ShardStats;
use crate::subscriber::{SubState, Subscriber};

/// Most filtered subscriptions (`bbox` and/or pacing) one connection may hold: with
/// [`MAX_VIEW_KEYS`](super::MAX_VIEW_KEYS) keys each, this bounds what one connection's
/// filters can make the shard hold (~6 MB at the very worst).
pub const MAX_FILTERED: usize = 8;

/// Paced deliveries to visit, earliest first: (due, room, connection).
pub(super) type PaceHeap = std::collections::BinaryHeap<Reverse<(Instant, Arc<str>, u64)>>;

/// A pan waiting for its owner's reply.
pub(super) struct PanWait {
    conn: u64,
    room: Arc<str>,
    bbox: BBox,
    id: Option<Box<str>>,
}

/// Why a `view` op was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewRefused {
    /// The connection does not follow the room (or its `sub` is still pending).
    NotSubscribed,
    /// It follows the room without a `bbox`.
    NoViewport,
    /// Over its pan budget (`PAN_RATE`, `PAN_BURST`).
    RateLimited,
}

impl Shard {
    /// Runs `f` with a delivery context for `room`'s views; counts its pushes and files
    /// its pacing schedules.
    pub(super) fn with_ctx<R>(
        &self,
        room: &Arc<str>,
        direct: bool,
        replay: bool,
        now: Instant,
        f: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> R {
        // Counted as they happen: no allocation per fan-out.
        let mut tally = Tally::default();
        let mut schedule = Vec::new();
        let window = self.coalesce.get();
        let (r, c) = {
            let mut push = |p: Pushed| tally.add(p);
            let counts = Counts::default();
            let mut ctx =
                Ctx { direct, window, now, replay, pushed: &mut push, schedule: &mut schedule, counts };
            let r = f(&mut ctx);
            (r, ctx.counts)
        };
        tally.flush(&self.stats);
        let st = &self.stats;
        for (counter, n) in [
            (&st.paced_held, c.held),
            (&st.paced_skipped, c.skipped),
            (&st.view_keys_refused, c.refused),
            (&st.paced_overflow, c.unpaced),
            (&st.view_leaves, c.leaves),
        ] {
            if n > 0 {
                ShardStats::add(counter, n);
            }
        }
        if !schedule.is_empty() {
            let mut heap = self.paced.borrow_mut();
            for (at, conn) in schedule {
                heap.push(Reverse((at, room.clone(), conn)));
            }
        }
        r
    }

    /// Filtered subscriptions `sub` holds on this shard, live or pending (see
    /// [`MAX_FILTERED`]).
    pub fn filtered_of(&self, sub: &Subscriber) -> usize {
        // O(rooms of this connection): its room set says which are live and which pending.
        let (local, pending) = (self.local.borrow(), self.pending.borrow());
        let rooms = sub.rooms.borrow();
        rooms
            .names()
            .iter()
            .filter(|r| match rooms.get(r) {
                Some(SubState::Live) => local
                    .get(&***r)
                    .and_then(|f| f.views.as_ref())
                    .is_some_and(|v| v.borrow().contains(sub.id())),
                Some(SubState::Pending(token)) => pending.get(token).is_some_and(|p| p.view.is_some()),
                None => false,
            })
            .count()
    }

    /// From the housekeeping timer: paced messages whose interval ended.
    pub(crate) fn pace_tick(&self) {
        let now = Instant::now();
        loop {
            let next = {
                let mut heap = self.paced.borrow_mut();
                match heap.peek() {
                    Some(Reverse((at, _, _))) if *at <= now => heap.pop(),
                    _ => None,
                }
            };
            let Some(Reverse((at, room, conn))) = next else { break };
            let local = self.local.borrow();
            let Some(views) = local.get(&room).and_then(|f| f.views.as_ref()) else { continue };
            // Queued, not written through: a subscriber's keys due in the same tick leave in
            // one write by its writer instead of one `send` each.
            self.with_ctx(&room, false, false, now, |ctx| views.borrow_mut().pace_due(conn, at, ctx));
        }
    }

    /// `{"op":"view","room":..,"bbox":..}` of `sub`: moves its viewport; it gets `ok`, then
    /// a `leave` per shown key now outside, then the room's entries newly inside.
    pub async fn view(
        &self,
        sub: &Subscriber,
        room: &str,
        bbox: BBox,
        id: Option<Box<str>>,
    ) -> Result<(), ViewRefused> {
        let name = {
            let local = self.local.borrow();
            let Some((name, f)) = local.get_key_value(room) else { return Err(ViewRefused::NotSubscribed) };
            let (has_box, filtered) = f
                .views
                .as_ref()
                .map_or((false, false), |v| (v.borrow().has_box(sub.id()), v.borrow().contains(sub.id())));
            if has_box {
                let views = f.views.as_ref().expect("has a box");
                if !views.borrow_mut().take_pan(sub.id(), Instant::now()) {
                    return Err(ViewRefused::RateLimited);
                }
                name.clone()
            } else if filtered || sub.follows(room) {
                return Err(ViewRefused::NoViewport);
            } else {
                return Err(ViewRefused::NotSubscribed);
            }
        };
        let token = self.next();
        let wait = PanWait { conn: sub.id(), room: name, bbox, id };
        self.waiting.borrow_mut().insert(token, Waiting::Pan(Box::new(wait)));
        let owner = super::owner_of(room, self.n);
        if owner == self.id {
            let entries = self.rooms.borrow().inside(room, &bbox);
            self.on_pan_ready(token, entries);
        } else {
            self.send_req(owner, Request::View { room: room.into(), origin: self.id, token, bbox }).await;
        }
        Ok(())
    }

    /// Owner side of a pan: the snapshot entries inside `bbox`, back to `origin`.
    pub(super) fn owner_view(&self, room: &str, origin: usize, token: u64, bbox: &BBox) {
        let entries = self.rooms.borrow().inside(room, bbox);
        if let Some(q) = &self.ev[origin] {
            q.push(Event::PanReady { token, entries }, &self.stats);
        }
    }

    /// The owner answered a pan.
    pub(super) fn on_pan_ready(&self, token: u64, entries: Vec<Arc<Message>>) {
        let Some(Waiting::Pan(w)) = self.waiting.borrow_mut().remove(&token) else { return };
        let Some(sub) = self.conns.borrow().get(&w.conn).and_then(Weak::upgrade) else { return };
        let local = self.local.borrow();
        let Some(views) = local.get(&w.room).and_then(|f| f.views.as_ref()) else { return };
        if !views.borrow().has_box(w.conn) {
            return; // unsubscribed meanwhile
        }
        sub.push_ctrl(envelope::ok_frame(w.id.as_deref(), Some(&w.room), None));
        self.with_ctx(&w.room, false, true, Instant::now(), |ctx| {
            views.borrow_mut().pan(w.conn, &w.room, w.bbox, &entries, ctx);
        });
    }
}
