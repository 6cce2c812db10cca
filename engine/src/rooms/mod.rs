//! The rooms one shard owns, and their lifecycle: creation under a room limit, an epoch per
//! incarnation, a retained-bytes budget enforced by evicting the least recently used idle
//! rooms, and a TTL for idle rooms. Pure logic, no I/O: the owner side of the shard
//! ([`crate::shard`]) calls it, and its sweep runs from a timer.
//!
//! Why: rooms are created by whoever names them — any publisher, any subscriber. Without a
//! lifecycle, 200 000 invented names cost half a gigabyte that was never freed. Here:
//! - the number of rooms is capped ([`RoomLimits::max_rooms`]); creating one more is
//!   refused ([`TooManyRooms`]), never silently dropped;
//! - retained messages are capped ([`RoomLimits::retained_bytes`]): over it, the least
//!   recently used rooms without subscribers are evicted, and when none is left the
//!   publishing room gives up its own oldest messages (never its newest);
//! - a room without subscribers that nobody touched for its namespace's `room_ttl` is
//!   forgotten;
//! - a room re-created after any of these gets a new [`Epoch`], so clients notice the
//!   restarted `seq`.
//!
//! Structure: rooms live in a [`slab`](slab) indexed by name; rooms without subscribers
//! ("idle") are also on intrusive LRU lists there, one per distinct `room_ttl`, so touching,
//! expiring and evicting a room is O(1) (eviction O(distinct TTLs)).
//!
//! Invariants: every room is in exactly one occupied slot, found by its name; a room is idle in
//! the slab iff it has no subscribers; `retained` is the sum of the rooms' `retained()`;
//! `len() <= limits.max_rooms`; a room with no subscribers and no message does not exist
//! (it is forgotten when its last subscriber leaves), so subscribe/unsubscribe churn over
//! invented names leaves nothing behind.

use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Namespaces, RoomLimits};
use crate::epoch::{Epoch, EpochRng};
use crate::mesh::RoomInfo;
use crate::message::Message;
use crate::room::{Replay, Resume, Room};
use crate::stats::ShardStats;

mod mirror;
mod slab;
mod tracking;

pub use tracking::{Notice, RoomTrack, REMOTE_PRESENCE_TTL};

use slab::Slab;

/// A create refused: the owner already holds its share of the room limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many rooms: the shard owning this room holds its maximum of {limit}")]
pub struct TooManyRooms {
    /// The owner's room limit (its share of the node's).
    pub limit: usize,
}

/// A set of shard indexes (at most 256 shards), cheap to copy out of a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet([u64; 4]);

impl ShardSet {
    /// Adds shard `s`.
    pub fn insert(&mut self, s: usize) {
        self.0[s / 64] |= 1 << (s % 64);
    }

    /// Whether shard `s` is in the set.
    pub fn contains(&self, s: usize) -> bool {
        self.0[s / 64] & (1 << (s % 64)) != 0
    }

    /// The shards in the set, ascending: one step per member, not per possible shard
    /// (this runs for every published message).
    pub fn iter(self) -> impl Iterator<Item = usize> {
        self.0.into_iter().enumerate().flat_map(|(w, mut bits)| {
            std::iter::from_fn(move || {
                let b = (bits != 0).then(|| bits.trailing_zeros() as usize)?;
                bits &= bits - 1;
                Some(w * 64 + b)
            })
        })
    }
}

/// A sequenced message and where it must go.
#[derive(Debug)]
pub struct Published {
    /// The message, encoded once.
    pub msg: Arc<Message>,
    /// The room's epoch (for the publisher's reply).
    pub epoch: Epoch,
    /// Shards with subscribers of the room.
    pub targets: ShardSet,
    /// Cluster mode: the room's epoch changed under its subscribers with this message; they
    /// must get a `reset` notice before it (see [`Registry::apply`]).
    pub reset: bool,
}

/// See the module documentation.
pub struct Registry {
    namespaces: Namespaces,
    limits: RoomLimits,
    slab: Slab,
    retained: usize,
    base: Instant,
    rng: EpochRng,
    stats: Arc<ShardStats>,
    /// Presence and liveness timers (see `tracking`).
    due: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, Arc<str>)>>,
}

impl Registry {
    /// An empty registry for one shard: its share of the limits, its epoch generator, and
    /// the stats it keeps current (rooms, retained bytes, evictions, expiries, refusals).
    pub fn new(namespaces: Namespaces, limits: RoomLimits, rng: EpochRng, stats: Arc<ShardStats>) -> Self {
        Registry {
            namespaces,
            limits,
            slab: Slab::new(),
            retained: 0,
            base: Instant::now(),
            rng,
            stats,
            due: Default::default(),
        }
    }

    /// Rooms held.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// No rooms held.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Bytes retained by all rooms (see [`crate::room::cost`]).
    pub fn retained(&self) -> usize {
        self.retained
    }

    /// This shard's limits.
    pub fn limits(&self) -> RoomLimits {
        self.limits
    }

    /// The room, if it exists (an expired one that was not swept yet still shows).
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.slab.find(name).map(|i| self.slab.room(i))
    }

    /// Sequences `data` into `name`, creating the room if needed, then enforces the
    /// budget. Never waits and never fails except for a refused creation.
    pub fn publish(
        &mut self,
        name: &str,
        data: Bytes,
        key: Option<Box<str>>,
        now: Instant,
    ) -> Result<Published, TooManyRooms> {
        let i = self.find_or_create(name, None, None, now)?;
        let room = self.slab.room_mut(i);
        let before = room.retained();
        let msg = room.publish(data, key, now);
        Ok(self.published(i, before, msg, now))
    }

    /// The bookkeeping after a message entered slot `i` (whose room retained `before`
    /// bytes until then): where it goes, the budget, the LRU.
    fn published(&mut self, i: u32, before: usize, msg: Arc<Message>, now: Instant) -> Published {
        if msg.key.is_some() {
            self.note_liveness(i, msg.at);
        }
        let room = self.slab.room_mut(i);
        let (after, epoch) = (room.retained(), room.epoch());
        let mut targets = ShardSet::default();
        room.interested_shards().for_each(|s| targets.insert(s));
        self.account(before, after);
        if self.slab.is_idle(i) {
            self.slab.touch(i, self.ms(now));
        }
        self.enforce_budget(i);
        Published { msg, epoch, targets, reset: false }
    }

    /// Adds a subscriber on `origin` to `name`, creating the room if needed, and computes
    /// its replay (see [`Room::subscribe`]).
    pub fn subscribe(
        &mut self,
        name: &str,
        origin: usize,
        from: Resume<'_>,
        now: Instant,
    ) -> Result<Replay, TooManyRooms> {
        self.subscribe_as(&Arc::from(name), origin, from, None, now)
    }

    /// [`Registry::subscribe`], giving the room `epoch` if this creates it (cluster mode:
    /// the epoch every node agreed on; `None`: a new one from this shard's generator). A
    /// room this creates keeps `name` itself (a reference, not a copy: the subscribing
    /// shard files its followers under the same allocation).
    pub fn subscribe_as(
        &mut self,
        name: &Arc<str>,
        origin: usize,
        from: Resume<'_>,
        epoch: Option<Epoch>,
        now: Instant,
    ) -> Result<Replay, TooManyRooms> {
        let i = self.find_or_create(name, Some(name), epoch, now)?;
        self.slab.busy(i);
        let room = self.slab.room_mut(i);
        let before = room.retained();
        let replay = room.subscribe(origin, from, now);
        let after = room.retained();
        self.account(before, after);
        Ok(replay)
    }

    /// One subscriber of `origin` left `name`. A room left without subscribers becomes
    /// idle (LRU and TTL apply from now) — or, if it never had a message, is forgotten.
    pub fn unsubscribe(&mut self, name: &str, origin: usize, now: Instant) {
        let Some(i) = self.slab.find(name) else { return };
        if self.slab.is_idle(i) {
            return; // not subscribed (a stale unsubscribe); nothing to undo
        }
        let room = self.slab.room_mut(i);
        room.unsubscribe(origin);
        if room.subscribers() > 0 {
            return;
        }
        if room.last_seq() == 0 {
            self.remove(i);
        } else {
            self.slab.touch(i, self.ms(now));
        }
    }

    /// Facts about `name` for `GET /api/rooms/<room>`; creates nothing. A room past its
    /// TTL shows as absent even before the sweep reaches it (its next use re-creates it).
    pub fn info(&self, name: &str, now: Instant) -> RoomInfo {
        let live = self.slab.find(name).filter(|&i| !self.slab.expired(i, self.ms(now)));
        match live.map(|i| self.slab.room(i)) {
            Some(r) => RoomInfo {
                seq: r.last_seq(),
                subscribers: r.subscribers(),
                history_len: r.history_len(),
                epoch: Some(r.epoch()),
                admits: true,
            },
            // An expired room still holds its place until re-created in it.
            None => RoomInfo {
                admits: self.slab.find(name).is_some() || self.len() < self.limits.max_rooms,
                ..RoomInfo::default()
            },
        }
    }

    /// Forgets up to `max` idle rooms whose TTL has passed at `now`; returns how many.
    /// Bounded work per call, so a timer can sweep a large backlog in small steps.
    pub fn sweep(&mut self, now: Instant, max: usize) -> usize {
        let now_ms = self.ms(now);
        let mut n = 0;
        while n < max {
            let Some(i) = self.slab.next_expired(now_ms) else { break };
            self.remove(i);
            ShardStats::add(&self.stats.rooms_expired, 1);
            n += 1;
        }
        n
    }

    // ---- internals ----------------------------------------------------------------------

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    /// The room's slot; a missing room is created (if the limit allows) with `epoch` or
    /// else a new one, idle until someone subscribes. An idle room past its TTL counts as
    /// gone even before the sweep reaches it, so expiry does not depend on the sweep's pace.
    fn find_or_create(
        &mut self,
        name: &str,
        shared: Option<&Arc<str>>,
        epoch: Option<Epoch>,
        now: Instant,
    ) -> Result<u32, TooManyRooms> {
        if let Some(i) = self.slab.find(name) {
            if !self.slab.expired(i, self.ms(now)) {
                return Ok(i);
            }
            self.remove(i);
            ShardStats::add(&self.stats.rooms_expired, 1);
        }
        if self.len() >= self.limits.max_rooms {
            ShardStats::add(&self.stats.rooms_refused, 1);
            return Err(TooManyRooms { limit: self.limits.max_rooms });
        }
        let settings = self.namespaces.for_room(name).clone();
        let name: Arc<str> = shared.cloned().unwrap_or_else(|| Arc::from(name));
        let epoch = epoch.unwrap_or_else(|| self.rng.epoch());
        let i = self.slab.insert(Room::new(name, settings, epoch));
        ShardStats::add(&self.stats.rooms, 1);
        self.slab.touch(i, self.ms(now));
        Ok(i)
    }

    /// Drops the room in slot `i` (its messages are freed with it).
    fn remove(&mut self, i: u32) {
        let room = self.slab.remove(i);
        self.account(room.retained(), 0);
        ShardStats::sub(&self.stats.rooms, 1);
    }

    fn account(&mut self, before: usize, after: usize) {
        self.retained = self.retained + after - before;
        self.stats.retained_bytes.store(self.retained as u64, Relaxed);
    }

    /// Brings retained bytes back under the budget after a publish into slot `current`:
    /// first by evicting idle rooms, least recently used first; when none is left, by
    /// shedding `current`'s own oldest messages. Each step frees at least one message or
    /// room, so this ends; the work is proportional to what is freed.
    fn enforce_budget(&mut self, current: u32) {
        while self.retained > self.limits.retained_bytes {
            let Some(v) = self.slab.lru_victim(current) else { break };
            self.remove(v);
            ShardStats::add(&self.stats.rooms_evicted, 1);
        }
        while self.retained > self.limits.retained_bytes {
            let room = self.slab.room_mut(current);
            let before = room.retained();
            if !room.shed_oldest() {
                break;
            }
            let after = room.retained();
            self.account(before, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoomSettings;
    use crate::room::cost;
    use std::time::Duration;

    fn registry(limits: RoomLimits, settings: RoomSettings) -> Registry {
        let mut ns = Namespaces::new(settings);
        ns.insert("short", RoomSettings { room_ttl: Some(Duration::from_secs(1)), ..Default::default() });
        ns.insert("forever", RoomSettings { room_ttl: None, ..Default::default() });
        Registry::new(ns, limits, EpochRng::with_seed(1), Arc::default())
    }

    fn kib() -> Bytes {
        Bytes::from(format!("\"{}\"", "x".repeat(1022)))
    }

    /// Recomputes the invariants from scratch.
    fn check(r: &Registry) {
        let sum: usize = r.slab.names().iter().map(|k| r.get(k).unwrap().retained()).sum();
        assert_eq!(sum, r.retained, "retained is the sum over rooms");
        let on_lists = r.slab.check();
        let idle = r.slab.names().iter().filter(|k| r.get(k).unwrap().subscribers() == 0).count();
        assert_eq!(on_lists, idle, "idle iff no subscribers");
        assert_eq!(r.stats.rooms.load(Relaxed) as usize, r.len());
        assert_eq!(r.stats.retained_bytes.load(Relaxed) as usize, r.retained);
    }

    #[test]
    fn shard_sets_iterate_their_members_in_order() {
        let mut s = ShardSet::default();
        for i in [255, 0, 63, 64, 130] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 130, 255]);
        assert!(s.contains(130) && !s.contains(1));
        assert_eq!(ShardSet::default().iter().count(), 0);
    }

    #[test]
    fn room_limit_refuses_creation_but_not_existing_rooms() {
        let mut r = registry(RoomLimits { max_rooms: 2, ..Default::default() }, RoomSettings::default());
        let now = Instant::now();
        r.publish("a", kib(), None, now).unwrap();
        r.subscribe("b", 0, Resume::default(), now).unwrap();
        assert_eq!(r.publish("c", kib(), None, now).unwrap_err(), TooManyRooms { limit: 2 });
        assert!(r.subscribe("c", 0, Resume::default(), now).is_err());
        assert!(!r.info("c", now).admits && r.info("a", now).admits);
        assert_eq!(r.publish("a", kib(), None, now).unwrap().msg.seq, 2);
        assert_eq!(r.stats.rooms_refused.load(Relaxed), 2);
        // A subscribe-only room is forgotten when left, which frees its place.
        r.unsubscribe("b", 0, now);
        assert!(r.get("b").is_none());
        r.publish("c", kib(), None, now).unwrap();
        check(&r);
    }

    #[test]
    fn epochs_are_per_incarnation() {
        let mut r = registry(RoomLimits::default(), RoomSettings::default());
        let now = Instant::now();
        let rep = r.subscribe("a", 0, Resume::default(), now).unwrap();
        let p = r.publish("a", kib(), None, now).unwrap();
        assert_eq!(p.epoch, rep.epoch, "the first publish keeps the epoch of a subscribed room");
        assert_eq!(r.info("a", now).epoch, Some(p.epoch));
        assert_eq!(r.info("nope", now).epoch, None);
        r.unsubscribe("a", 0, now);
        let p2 = r.publish("a", kib(), None, now).unwrap();
        assert_eq!((p2.epoch, p2.msg.seq), (p.epoch, 2), "an idle room keeps its seq and epoch");
        assert!(p.targets.iter().eq([0]) && p2.targets.iter().next().is_none());
    }

    #[test]
    fn budget_evicts_least_recently_used_idle_rooms() {
        let one = cost(&r_msg());
        let mut r = registry(
            RoomLimits { retained_bytes: 3 * one + one / 2, ..Default::default() },
            RoomSettings::default(),
        );
        let now = Instant::now();
        let t = |ms| now + Duration::from_millis(ms);
        r.publish("a", kib(), None, t(1)).unwrap();
        let b_epoch = r.publish("b", kib(), None, t(2)).unwrap().epoch;
        r.publish("c", kib(), None, t(3)).unwrap();
        r.publish("a", kib(), None, t(4)).unwrap(); // a is now the most recent: b goes next
        check(&r);
        assert!(r.get("b").is_none(), "least recently used evicted");
        assert_eq!(r.stats.rooms_evicted.load(Relaxed), 1);
        r.subscribe("c", 1, Resume::default(), t(5)).unwrap();
        r.publish("d", kib(), None, t(6)).unwrap(); // a (idle, 2 messages) goes; c has a subscriber
        assert!(r.get("a").is_none() && r.get("c").is_some());
        check(&r);
        assert!(r.retained() <= r.limits.retained_bytes);
        // A re-created room starts over under a new epoch.
        let again = r.publish("b", kib(), None, t(7)).unwrap();
        assert_eq!(again.msg.seq, 1);
        assert_ne!(again.epoch, b_epoch);
    }

    #[test]
    fn a_subscribed_room_over_budget_sheds_its_own_oldest() {
        let one = cost(&r_msg());
        // Room for two messages (seqs of two digits cost two bytes more than seq 1).
        let budget = 2 * one + 8;
        let mut r =
            registry(RoomLimits { retained_bytes: budget, ..Default::default() }, RoomSettings::default());
        let now = Instant::now();
        r.subscribe("a", 0, Resume::default(), now).unwrap();
        for _ in 0..10 {
            r.publish("a", kib(), None, now).unwrap();
            assert!(r.retained() <= budget);
        }
        let a = r.get("a").unwrap();
        assert_eq!((a.last_seq(), a.history_len()), (10, 2));
        check(&r);
    }

    #[test]
    fn idle_rooms_expire_by_their_namespace_ttl_in_bounded_steps() {
        let mut r = registry(
            RoomLimits::default(),
            RoomSettings { room_ttl: Some(Duration::from_secs(60)), ..Default::default() },
        );
        let now = Instant::now();
        for i in 0..10 {
            r.publish(&format!("short:{i}"), kib(), None, now).unwrap();
        }
        r.publish("forever:x", kib(), None, now).unwrap();
        r.publish("other:x", kib(), None, now).unwrap();
        r.subscribe("short:sub", 0, Resume::default(), now).unwrap();
        r.publish("short:sub", kib(), None, now).unwrap();
        let later = now + Duration::from_secs(2);
        assert_eq!(r.sweep(later, 4), 4, "bounded");
        assert_eq!(r.sweep(later, 100), 6);
        assert_eq!(r.sweep(later, 100), 0);
        assert!(r.get("short:sub").is_some(), "subscribed rooms never expire");
        assert!(r.get("forever:x").is_some() && r.get("other:x").is_some());
        assert_eq!(r.sweep(now + Duration::from_secs(61), 100), 1, "other: 60 s");
        assert!(r.get("forever:x").is_some());
        assert_eq!(r.stats.rooms_expired.load(Relaxed), 11);
        check(&r);
        // The TTL counts from the last subscriber's departure.
        r.unsubscribe("short:sub", 0, later);
        assert_eq!(r.sweep(later + Duration::from_millis(500), 100), 0);
        assert_eq!(r.sweep(later + Duration::from_secs(1), 100), 1);
        check(&r);
    }

    #[test]
    fn an_expired_room_is_new_on_access_before_the_sweep() {
        let mut r = registry(RoomLimits::default(), RoomSettings::default());
        let now = Instant::now();
        let p = r.publish("short:a", kib(), None, now).unwrap();
        let later = now + Duration::from_secs(5);
        assert_eq!(r.info("short:a", later).epoch, None, "expired, though not swept yet");
        let rep = r.subscribe("short:a", 0, Resume::default(), later).unwrap();
        assert_eq!(rep.last_seq, 0);
        assert_ne!(rep.epoch, p.epoch);
        check(&r);
    }

    #[test]
    fn churn_over_invented_names_stays_bounded() {
        let mut r = registry(
            RoomLimits { max_rooms: 100, retained_bytes: 20 * cost(&r_msg()) },
            RoomSettings::default(),
        );
        let now = Instant::now();
        let mut refused = 0;
        for i in 0..5000 {
            let name = format!("spam:{i}");
            if r.publish(&name, kib(), None, now).is_err() {
                refused += 1;
            }
            r.subscribe(&format!("sub:{i}"), 0, Resume::default(), now).ok();
            r.unsubscribe(&format!("sub:{i}"), 0, now);
            assert!(r.len() <= 100 && r.retained() <= r.limits.retained_bytes);
        }
        assert_eq!(refused, 0, "idle rooms were evicted by the budget before the limit was hit");
        check(&r);
    }

    fn r_msg() -> Message {
        Message::new("a".into(), 1, kib(), None, crate::config::Policy::Drop, Instant::now())
    }
}
