//! The subscriber side of a shard: which of this shard's connections follow which room
//! ([`Followers`]), fan-out of delivered messages to them, and the replies an owner sends
//! back (subscription ready, publish acknowledged, room info).
//!
//! Invariants: a connection is at most once in a room's followers, and is there iff its
//! subscription is `Live`; handling an event never waits (the event mesh must always
//! drain, see [`crate::mesh`]); a subscription the owner admitted is released at the owner
//! exactly once — by `unsubscribe` if it went live, else when its `SubReady` arrives for a
//! subscription cancelled meanwhile. A refused subscription was never counted by the owner,
//! so it is never released (a blind release could decrement another connection's count).

use rustc_hash::FxHashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use super::views::{ViewSpec, Views};
use super::{Ack, Shard, Waiting};
use crate::envelope;
use crate::error::EngineError;
use crate::mesh::{Event, Receipt, Reply, Request};
use crate::message::{DeliveryMode, Message};
use crate::outbox::Pushed;
use crate::room::Replay;
use crate::rooms::TooManyRooms;
use crate::stats::ShardStats;
use crate::subscriber::{SubState, Subscriber};
use std::cell::RefCell;

/// Followers above which a room keeps an id → position index, making removal O(1). Below
/// it a scan of at most this many entries is cheaper than the index's memory (most rooms
/// have a handful of followers per shard).
const INDEX_FROM: usize = 16;

/// One room's followers on this shard: a dense vector for fan-out, plus (for big rooms) an
/// index so that a connection leaving costs O(1) instead of a scan of everyone (the old
/// `Vec::retain` made each unsubscribe O(followers), which a crowd of clients controls).
///
/// Sized for the many-small-rooms case (a room per vehicle: as many rooms as connections):
/// the index is boxed (8 bytes, not 32, in every room's map bucket), and the first follower
/// gets a vector of one, not of four.
#[derive(Default)]
pub(super) struct Followers {
    subs: Vec<Rc<Subscriber>>,
    pos: Option<Box<FxHashMap<u64, u32>>>,
    /// Followers with a filter (viewport and/or pacing), made at the first one.
    pub(super) views: Option<Box<RefCell<Views>>>,
}

impl Followers {
    pub(super) fn push(&mut self, s: Rc<Subscriber>) {
        if let Some(pos) = &mut self.pos {
            pos.insert(s.id(), self.subs.len() as u32);
        }
        if self.subs.capacity() == 0 {
            self.subs.reserve_exact(1);
        }
        self.subs.push(s);
        if self.pos.is_none() && self.subs.len() > INDEX_FROM {
            self.pos =
                Some(Box::new(self.subs.iter().enumerate().map(|(i, s)| (s.id(), i as u32)).collect()));
        }
    }

    /// Adds a filtered follower.
    pub(super) fn push_view(&mut self, s: Rc<Subscriber>, spec: ViewSpec) {
        self.views.get_or_insert_with(Box::default).get_mut().insert(s, spec);
    }

    /// Removes the connection `id`; O(1) (swap with the last), O(keys shown) for a viewport.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        if let Some(views) = &mut self.views {
            if views.get_mut().remove(id) {
                if views.get_mut().is_empty() {
                    self.views = None;
                }
                return true;
            }
        }
        let i = match &mut self.pos {
            Some(pos) => pos.remove(&id).map(|i| i as usize),
            None => self.subs.iter().position(|s| s.id() == id),
        };
        let Some(i) = i else { return false };
        self.subs.swap_remove(i);
        if let (Some(pos), Some(moved)) = (&mut self.pos, self.subs.get(i)) {
            pos.insert(moved.id(), i as u32);
        }
        if self.subs.len() < INDEX_FROM / 2 {
            self.pos = None;
        }
        true
    }

    pub(super) fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.views.is_none()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Rc<Subscriber>> {
        self.subs.iter()
    }
}

/// What a fan-out's pushes did, counted locally and added to the shard's counters once.
#[derive(Default)]
pub(super) struct Tally {
    delivered: u64,
    dropped: u64,
    conflated: u64,
    slow: u64,
}

impl Tally {
    pub(super) fn add(&mut self, p: Pushed) {
        match p {
            Pushed::Queued { .. } | Pushed::Written => self.delivered += 1,
            Pushed::Conflated { removed, .. } => {
                self.delivered += 1;
                self.conflated += removed as u64;
            }
            Pushed::Dropped => self.dropped += 1,
            Pushed::Disconnected => self.slow += 1,
            Pushed::Closed => {}
        }
    }

    pub(super) fn flush(&self, s: &ShardStats) {
        ShardStats::add(&s.delivered, self.delivered);
        if self.dropped + self.conflated + self.slow > 0 {
            ShardStats::add(&s.dropped, self.dropped);
            ShardStats::add(&s.conflated, self.conflated);
            ShardStats::add(&s.slow_disconnects, self.slow);
        }
    }
}

impl Shard {
    pub(crate) fn handle_event(&self, ev: Event) {
        match ev {
            Event::Deliver(msg) => self.deliver_local(&msg),
            Event::Reset { room, epoch } => self.reset_local(&room, epoch),
            Event::SubReady { token, result } => self.on_sub_ready(token, result),
            Event::PubAck { reply, room, result } => self.on_pub_ack(reply, &room, result),
            Event::Info { token, info } => {
                if let Some(Waiting::Info(tx)) = self.waiting.borrow_mut().remove(&token) {
                    let _ = tx.try_send(info);
                }
            }
            Event::Notice(n) => self.notice_local(&n),
            Event::PanReady { token, entries } => self.on_pan_ready(token, entries),
            Event::Ctrl { conn, frame } => self.ctrl_to(conn, frame),
            Event::Barrier => self.note_barrier(false),
        }
    }

    /// Fan-out on this shard: per subscriber, a write-through to an idle socket, or one
    /// refcount increment and one queue push.
    pub(crate) fn deliver_local(&self, msg: &Arc<Message>) {
        let local = self.local.borrow();
        let Some(followers) = local.get(&*msg.room) else { return };
        let (direct, window) = (self.cork.get() == 0, self.coalesce.get());
        // One clock read per message, not per subscriber.
        let now = Instant::now();
        if direct {
            self.count_pushes(followers.iter().map(|s| s.deliver(msg, direct, window, now)));
        } else {
            // Corked: queue only, and list who got a first frame for the flusher.
            let mut corked = self.corked.borrow_mut();
            self.count_pushes(followers.iter().map(|s| {
                let p = s.queue_only(msg);
                if p.made_nonempty() {
                    corked.push(s.clone());
                }
                p
            }));
        }
        if let Some(views) = &followers.views {
            self.with_ctx(&msg.room, direct, false, now, |ctx| views.borrow_mut().deliver(msg, ctx));
        }
    }

    /// Cluster mode: tells this shard's followers of `room` that its epoch is now `epoch`
    /// (`{"op":"reset",..}`, as a `sub` from another epoch gets); room-per-URL followers
    /// have no epoch and get nothing.
    pub(crate) fn reset_local(&self, room: &str, epoch: crate::Epoch) {
        let local = self.local.borrow();
        let Some(followers) = local.get(room) else { return };
        let frame = envelope::reset_frame(room, epoch);
        for s in followers.iter().filter(|s| s.mode() == DeliveryMode::Envelope) {
            s.push_ctrl(frame.clone());
        }
        // Filtered followers are `/ws` subscribers too.
        if let Some(views) = &followers.views {
            views.borrow().each_sub(|s| s.push_ctrl(frame.clone()));
        }
    }

    pub(super) fn count_pushes(&self, pushes: impl Iterator<Item = Pushed>) {
        let mut tally = Tally::default();
        pushes.for_each(|p| tally.add(p));
        tally.flush(&self.stats);
    }

    /// The owner answered a subscribe: the subscriber gets `ok` (with the epoch), then a
    /// `reset` notice if its position was void, then a `gap` notice, then the replay, and
    /// goes live — or, refused, an `error` (`too_many_rooms`) or, for a silent
    /// (room-per-URL) subscription, a close 1013, since that connection has no other room.
    pub(super) fn on_sub_ready(&self, token: u64, result: Result<Replay, TooManyRooms>) {
        let Some(p) = self.pending.borrow_mut().remove(&token) else { return };
        let sub = p.sub.upgrade().filter(|_| !p.cancelled);
        let Some(sub) = sub else {
            // Left (or gone) while pending: release what the owner counted, if anything.
            if result.is_ok() {
                self.release(&p.room, p.member);
            }
            return;
        };
        debug_assert_eq!(sub.rooms.borrow().get(&p.room), Some(&SubState::Pending(token)));
        let replay = match result {
            Ok(r) => r,
            Err(e) => {
                sub.rooms.borrow_mut().remove(&p.room);
                ShardStats::sub(&self.stats.subscriptions, 1);
                self.subscription_ended(&p.room);
                match &p.ack {
                    Ack::Ok(id) => {
                        sub.push_ctrl(envelope::error_frame(id.as_deref(), "too_many_rooms", &e.to_string()))
                    }
                    Ack::Silent => sub.close(1013, "too_many_rooms", false),
                }
                return;
            }
        };
        if let Ack::Ok(id) = &p.ack {
            sub.push_ctrl(envelope::ok_epoch_frame(id.as_deref(), &p.room, replay.last_seq, replay.epoch));
        }
        if replay.reset {
            sub.push_ctrl(envelope::reset_frame(&p.room, replay.epoch));
        }
        if let Some((from, to)) = replay.gap {
            sub.push_ctrl(envelope::gap_frame(&p.room, from, to));
        }
        sub.rooms.borrow_mut().insert(p.room.clone(), SubState::Live);
        let mut local = self.local.borrow_mut();
        let followers = local.entry(p.room.clone()).or_default();
        if let Some(spec) = p.view {
            // Filtered: the replay passes the same viewport as live messages do.
            followers.push_view(sub.clone(), *spec);
            let views = followers.views.as_ref().expect("just made");
            let mut views = views.borrow_mut();
            self.with_ctx(&p.room, false, true, Instant::now(), |ctx| {
                views.replay(sub.id(), &replay.messages, ctx)
            });
            views.replay_offline(sub.id(), &p.room, &replay.offline);
            return;
        }
        self.count_pushes(replay.messages.iter().map(|m| sub.push_msg(m)));
        if sub.mode() == DeliveryMode::Envelope {
            for m in &replay.offline {
                sub.push_ctrl(envelope::offline_frame(&p.room, m.key.as_deref().unwrap_or_default(), m.seq));
            }
        }
        followers.push(sub);
    }

    /// Releases one admitted subscription of this shard at `room`'s owner, without
    /// waiting (called while handling events): the request is queued in order, and its
    /// queue is bounded by the subscriptions that can be pending at once.
    pub(super) fn release(&self, room: &str, member: Option<Box<str>>) {
        let owner = super::owner_of(room, self.n);
        if owner == self.id {
            self.owner_left(room, member.as_deref());
            self.registry().unsubscribe(room, self.id, Instant::now());
        } else if let Some(q) = &self.req[owner] {
            q.push(Request::Unsubscribe { room: room.into(), origin: self.id, member }, &self.stats);
        }
    }

    pub(super) fn on_pub_ack(&self, reply: Reply, room: &str, result: Result<Receipt, TooManyRooms>) {
        match reply {
            Reply::None => {}
            Reply::Conn { conn, id } => {
                if let Some(sub) = self.conns.borrow().get(&conn).and_then(Weak::upgrade) {
                    let id = id.as_deref();
                    sub.push_ctrl(match result {
                        Ok(r) => envelope::ok_epoch_frame(id, room, r.seq, r.epoch),
                        Err(e) => envelope::error_frame(id, "too_many_rooms", &e.to_string()),
                    });
                }
            }
            Reply::Waiter(token) => {
                if let Some(Waiting::Seq(tx)) = self.waiting.borrow_mut().remove(&token) {
                    let _ = tx.try_send(result.map_err(EngineError::from));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::DeliveryMode;

    fn sub(id: u64) -> Rc<Subscriber> {
        Rc::new(Subscriber::new(id, DeliveryMode::Envelope, 1 << 10))
    }

    fn ids(f: &Followers) -> Vec<u64> {
        let mut v: Vec<u64> = f.iter().map(|s| s.id()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn followers_add_and_remove_in_any_order_with_and_without_the_index() {
        for n in [3u64, 40] {
            let mut f = Followers::default();
            for i in 0..n {
                f.push(sub(i));
            }
            assert_eq!(f.pos.is_some(), n as usize > INDEX_FROM);
            assert!(!f.remove(999));
            // Remove every other one, then the rest from the back.
            for i in (0..n).step_by(2) {
                assert!(f.remove(i));
                assert!(!f.remove(i), "only once");
            }
            assert_eq!(ids(&f), (0..n).filter(|i| i % 2 == 1).collect::<Vec<_>>());
            if let Some(pos) = &f.pos {
                for (i, s) in f.subs.iter().enumerate() {
                    assert_eq!(pos[&s.id()] as usize, i, "index follows every swap");
                }
            }
            for i in (0..n).rev().filter(|i| i % 2 == 1) {
                assert!(f.remove(i));
            }
            assert!(f.is_empty() && f.pos.is_none());
        }
    }
}
