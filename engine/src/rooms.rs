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
//! Structure: rooms live in a slab (`Vec` of slots with a free list) indexed by name.
//! Rooms without subscribers ("idle") are also threaded on an intrusive doubly linked list
//! per distinct `room_ttl` ("class"), ordered by last use: touching a room moves it to the
//! tail in O(1); the TTL sweep pops expired rooms off the heads (each class's list is also
//! ordered by deadline, its TTL being uniform); eviction takes the least recently used of
//! the heads. Classes are as many as distinct configured TTLs — a handful, fixed by the
//! operator's config, not by clients.
//!
//! Invariants: every room is in `index` and in exactly one occupied slot; a room is on its
//! class list iff it has no subscribers; `retained` is the sum of the rooms' `retained()`;
//! `len() <= limits.max_rooms`; a room with no subscribers and no message does not exist
//! (it is forgotten when its last subscriber leaves), so subscribe/unsubscribe churn over
//! invented names leaves nothing behind.

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Namespaces, RoomLimits};
use crate::epoch::{Epoch, EpochRng};
use crate::mesh::RoomInfo;
use crate::message::Message;
use crate::room::{Replay, Resume, Room};
use crate::stats::ShardStats;

const NIL: u32 = u32::MAX;

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

    /// The shards in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..256).filter(move |&s| self.contains(s))
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
}

#[derive(Debug)]
struct Entry {
    room: Room,
    /// Neighbours on the class list (NIL at the ends, and while the room has subscribers).
    prev: u32,
    next: u32,
    /// Milliseconds since the registry's base instant of the last publish into the room or
    /// departure of its last subscriber.
    last_use: u64,
    class: u16,
    idle: bool,
}

#[derive(Debug)]
enum Slot {
    Vacant { next_free: u32 },
    Occupied(Entry),
}

/// The idle rooms sharing one `room_ttl`, least recently used first.
#[derive(Debug)]
struct Class {
    ttl: Option<Duration>,
    head: u32,
    tail: u32,
}

/// See the module documentation.
pub struct Registry {
    namespaces: Namespaces,
    limits: RoomLimits,
    shards: usize,
    index: FxHashMap<Arc<str>, u32>,
    slots: Vec<Slot>,
    free: u32,
    classes: Vec<Class>,
    retained: usize,
    base: Instant,
    rng: EpochRng,
    stats: Arc<ShardStats>,
}

impl Registry {
    /// An empty registry for a shard of an engine with `shards` shards.
    pub fn new(
        namespaces: Namespaces,
        limits: RoomLimits,
        shards: usize,
        rng: EpochRng,
        stats: Arc<ShardStats>,
    ) -> Self {
        Registry {
            namespaces,
            limits,
            shards,
            index: FxHashMap::default(),
            slots: Vec::new(),
            free: NIL,
            classes: Vec::new(),
            retained: 0,
            base: Instant::now(),
            rng,
            stats,
        }
    }

    /// Rooms held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No rooms held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
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
        self.index.get(name).map(|&i| &self.entry(i).room)
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
        let i = self.find_or_create(name, now)?;
        let e = self.entry_mut(i);
        let before = e.room.retained();
        let msg = e.room.publish(data, key, now);
        let (after, epoch, idle) = (e.room.retained(), e.room.epoch(), e.idle);
        let mut targets = ShardSet::default();
        e.room.interested_shards().for_each(|s| targets.insert(s));
        self.account(before, after);
        if idle {
            self.unlink(i);
            self.link_tail(i, now);
        }
        self.enforce_budget(i);
        Ok(Published { msg, epoch, targets })
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
        let i = self.find_or_create(name, now)?;
        if self.entry(i).idle {
            self.unlink(i);
        }
        let e = self.entry_mut(i);
        let before = e.room.retained();
        let replay = e.room.subscribe(origin, from, now);
        let after = e.room.retained();
        self.account(before, after);
        Ok(replay)
    }

    /// One subscriber of `origin` left `name`. A room left without subscribers becomes
    /// idle (LRU and TTL apply from now) — or, if it never had a message, is forgotten.
    pub fn unsubscribe(&mut self, name: &str, origin: usize, now: Instant) {
        let Some(&i) = self.index.get(name) else { return };
        let e = self.entry_mut(i);
        if e.idle {
            return; // not subscribed (a stale unsubscribe); nothing to undo
        }
        e.room.unsubscribe(origin);
        if e.room.subscribers() > 0 {
            return;
        }
        if e.room.last_seq() == 0 {
            self.remove(i);
        } else {
            self.link_tail(i, now);
        }
    }

    /// Facts about `name` for `GET /api/rooms/<room>`; creates nothing. A room past its
    /// TTL shows as absent even before the sweep reaches it (its next use re-creates it).
    pub fn info(&self, name: &str, now: Instant) -> RoomInfo {
        let live = self.index.get(name).filter(|&&i| !self.expired(i, now));
        match live.map(|&i| &self.entry(i).room) {
            Some(r) => RoomInfo {
                seq: r.last_seq(),
                subscribers: r.subscribers(),
                history_len: r.history_len(),
                epoch: Some(r.epoch()),
                admits: true,
            },
            // An expired room still holds its place until re-created in it.
            None => RoomInfo {
                admits: self.index.contains_key(name) || self.len() < self.limits.max_rooms,
                ..RoomInfo::default()
            },
        }
    }

    /// Forgets up to `max` idle rooms whose TTL has passed at `now`; returns how many.
    /// Bounded work per call, so a timer can sweep a large backlog in small steps.
    pub fn sweep(&mut self, now: Instant, max: usize) -> usize {
        let now_ms = self.ms(now);
        let mut n = 0;
        for c in 0..self.classes.len() {
            let Some(ttl) = self.classes[c].ttl else { continue };
            let ttl = ttl.as_millis() as u64;
            while n < max {
                let h = self.classes[c].head;
                if h == NIL || self.entry(h).last_use.saturating_add(ttl) > now_ms {
                    break;
                }
                self.remove(h);
                ShardStats::add(&self.stats.rooms_expired, 1);
                n += 1;
            }
        }
        n
    }

    // ---- internals ----------------------------------------------------------------------

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    fn entry(&self, i: u32) -> &Entry {
        match &self.slots[i as usize] {
            Slot::Occupied(e) => e,
            Slot::Vacant { .. } => unreachable!("index points at a vacant slot"),
        }
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry {
        match &mut self.slots[i as usize] {
            Slot::Occupied(e) => e,
            Slot::Vacant { .. } => unreachable!("index points at a vacant slot"),
        }
    }

    fn expired(&self, i: u32, now: Instant) -> bool {
        let e = self.entry(i);
        e.idle
            && self.classes[e.class as usize]
                .ttl
                .is_some_and(|ttl| e.last_use.saturating_add(ttl.as_millis() as u64) <= self.ms(now))
    }

    /// The room's slot; a missing room is created (if the limit allows) with a new epoch,
    /// idle until someone subscribes. An idle room past its TTL counts as gone even
    /// before the sweep reaches it, so expiry does not depend on the sweep's pace.
    fn find_or_create(&mut self, name: &str, now: Instant) -> Result<u32, TooManyRooms> {
        if let Some(&i) = self.index.get(name) {
            if !self.expired(i, now) {
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
        let class = self.class_of(settings.room_ttl);
        let name: Arc<str> = Arc::from(name);
        let room = Room::new(name.clone(), settings, self.rng.epoch());
        let entry = Entry { room, prev: NIL, next: NIL, last_use: 0, class, idle: false };
        let i = if self.free != NIL {
            let i = self.free;
            if let Slot::Vacant { next_free } = self.slots[i as usize] {
                self.free = next_free;
            }
            self.slots[i as usize] = Slot::Occupied(entry);
            i
        } else {
            if self.slots.len() == self.slots.capacity() {
                // Grow by a quarter, not double: slots are most of an empty room's cost,
                // and the slack of doubling would add up to 100% to it (still amortized O(1)).
                self.slots.reserve_exact(self.slots.len() / 4 + 16);
            }
            self.slots.push(Slot::Occupied(entry));
            (self.slots.len() - 1) as u32
        };
        self.index.insert(name, i);
        ShardStats::add(&self.stats.rooms, 1);
        self.link_tail(i, now);
        Ok(i)
    }

    fn class_of(&mut self, ttl: Option<Duration>) -> u16 {
        if let Some(c) = self.classes.iter().position(|c| c.ttl == ttl) {
            return c as u16;
        }
        self.classes.push(Class { ttl, head: NIL, tail: NIL });
        (self.classes.len() - 1) as u16
    }

    /// Drops the room in slot `i` (its messages are freed with it).
    fn remove(&mut self, i: u32) {
        if self.entry(i).idle {
            self.unlink(i);
        }
        let slot = std::mem::replace(&mut self.slots[i as usize], Slot::Vacant { next_free: self.free });
        self.free = i;
        if let Slot::Occupied(e) = slot {
            self.index.remove(&**e.room.name());
            self.account(e.room.retained(), 0);
        }
        ShardStats::sub(&self.stats.rooms, 1);
    }

    fn account(&mut self, before: usize, after: usize) {
        self.retained = self.retained + after - before;
        self.stats.retained_bytes.store(self.retained as u64, Relaxed);
    }

    /// Puts an idle room at the most recently used end of its class list.
    fn link_tail(&mut self, i: u32, now: Instant) {
        let now = self.ms(now);
        let e = self.entry_mut(i);
        debug_assert!(!e.idle);
        let c = e.class as usize;
        e.idle = true;
        e.last_use = now;
        e.next = NIL;
        let tail = self.classes[c].tail;
        self.entry_mut(i).prev = tail;
        if tail == NIL {
            self.classes[c].head = i;
        } else {
            self.entry_mut(tail).next = i;
        }
        self.classes[c].tail = i;
    }

    fn unlink(&mut self, i: u32) {
        let e = self.entry_mut(i);
        debug_assert!(e.idle);
        let (prev, next, c) = (e.prev, e.next, e.class as usize);
        e.idle = false;
        e.prev = NIL;
        e.next = NIL;
        if prev == NIL {
            self.classes[c].head = next;
        } else {
            self.entry_mut(prev).next = next;
        }
        if next == NIL {
            self.classes[c].tail = prev;
        } else {
            self.entry_mut(next).prev = prev;
        }
    }

    /// The least recently used idle room other than `except`: O(classes).
    fn lru_victim(&self, except: u32) -> Option<u32> {
        self.classes
            .iter()
            .filter_map(|c| {
                let h = if c.head == except && c.head != NIL { self.entry(c.head).next } else { c.head };
                (h != NIL).then_some(h)
            })
            .min_by_key(|&h| self.entry(h).last_use)
    }

    /// Brings retained bytes back under the budget after a publish into slot `current`:
    /// first by evicting idle rooms, least recently used first; when none is left, by
    /// shedding `current`'s own oldest messages. Each step frees at least one message or
    /// room, so this ends; the work is proportional to what is freed.
    fn enforce_budget(&mut self, current: u32) {
        while self.retained > self.limits.retained_bytes {
            let Some(v) = self.lru_victim(current) else { break };
            self.remove(v);
            ShardStats::add(&self.stats.rooms_evicted, 1);
        }
        while self.retained > self.limits.retained_bytes {
            let e = self.entry_mut(current);
            let before = e.room.retained();
            if !e.room.shed_oldest() {
                break;
            }
            let after = e.room.retained();
            self.account(before, after);
        }
    }

    /// Shards this registry's engine has.
    pub fn shards(&self) -> usize {
        self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoomSettings;
    use crate::room::cost;

    fn registry(limits: RoomLimits, settings: RoomSettings) -> Registry {
        let mut ns = Namespaces::new(settings);
        ns.insert("short", RoomSettings { room_ttl: Some(Duration::from_secs(1)), ..Default::default() });
        ns.insert("forever", RoomSettings { room_ttl: None, ..Default::default() });
        Registry::new(ns, limits, 2, EpochRng::with_seed(1), Arc::default())
    }

    fn kib() -> Bytes {
        Bytes::from(format!("\"{}\"", "x".repeat(1022)))
    }

    /// Recomputes the invariants from scratch.
    fn check(r: &Registry) {
        let sum: usize = r.index.keys().map(|k| r.get(k).unwrap().retained()).sum();
        assert_eq!(sum, r.retained, "retained is the sum over rooms");
        let mut on_lists = 0;
        for c in &r.classes {
            let (mut i, mut prev, mut last) = (c.head, NIL, 0);
            while i != NIL {
                let e = r.entry(i);
                assert!(e.idle && e.room.subscribers() == 0 && e.prev == prev);
                assert!(e.last_use >= last, "ordered by last use");
                (prev, last, i) = (i, e.last_use, e.next);
                on_lists += 1;
            }
            assert_eq!(c.tail, prev);
        }
        let idle = r.index.values().filter(|&&i| r.entry(i).idle).count();
        assert_eq!(on_lists, idle);
        assert_eq!(r.stats.rooms.load(Relaxed) as usize, r.len());
        assert_eq!(r.stats.retained_bytes.load(Relaxed) as usize, r.retained);
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
