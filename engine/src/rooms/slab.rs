//! Where a shard's rooms live: a slab of slots (stable `u32` indexes, a free list), with the
//! rooms that have no subscribers ("idle") threaded on intrusive doubly linked lists, one
//! per distinct room TTL ("class"), least recently used first.
//!
//! Why intrusive lists over a slab: the registry touches an idle room on every publish into
//! it, and must find the least recently used idle room (eviction) and the idle rooms whose
//! TTL has passed (expiry) without scanning. Moving a room to the tail of its list is O(1);
//! within a class every room has the same TTL, so the list is also ordered by deadline and
//! expired rooms are found at the heads. Classes are as many as distinct configured TTLs —
//! a handful set by the operator, not by clients.
//!
//! The slab is also the rooms' index by name: a hash table of slot numbers (4 bytes a
//! bucket) whose keys are the names the rooms already hold, instead of a map that keeps a
//! second reference to each name beside the slot (24 bytes a bucket). With a room per
//! vehicle, rooms are as many as connections, and this is ~45 bytes less per room.
//!
//! Invariants: a room is on its class list iff it is marked idle; lists are ordered by
//! `last_use` (non-decreasing from head to tail); vacant slots form the free list; `by_name`
//! holds exactly the occupied slots, each under the hash of its room's name.

use std::hash::BuildHasher;
use std::time::Duration;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::room::Room;

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Entry {
    room: Room,
    /// Neighbours on the class list (NIL at the ends, and while the room is not idle).
    prev: u32,
    next: u32,
    /// Milliseconds (on the registry's clock) of the last publish into the room or the
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
    ttl_ms: Option<u64>,
    head: u32,
    tail: u32,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Slab {
    slots: Vec<Slot>,
    free: u32,
    classes: Vec<Class>,
    by_name: HashTable<u32>,
}

fn hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

fn occupied(slots: &[Slot], i: u32) -> &Entry {
    match &slots[i as usize] {
        Slot::Occupied(e) => e,
        Slot::Vacant { .. } => unreachable!("index points at a vacant slot"),
    }
}

impl Slab {
    pub(super) fn new() -> Self {
        Slab { slots: Vec::new(), free: NIL, classes: Vec::new(), by_name: HashTable::new() }
    }

    /// Rooms held.
    pub(super) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The slot of the room called `name`, if there is one.
    pub(super) fn find(&self, name: &str) -> Option<u32> {
        self.by_name.find(hash(name), |&i| &**occupied(&self.slots, i).room.name() == name).copied()
    }

    /// The names of the rooms held, in no order (tests).
    #[cfg(test)]
    pub(super) fn names(&self) -> Vec<std::sync::Arc<str>> {
        self.by_name.iter().map(|&i| self.room(i).name().clone()).collect()
    }

    fn entry(&self, i: u32) -> &Entry {
        occupied(&self.slots, i)
    }

    fn entry_mut(&mut self, i: u32) -> &mut Entry {
        match &mut self.slots[i as usize] {
            Slot::Occupied(e) => e,
            Slot::Vacant { .. } => unreachable!("index points at a vacant slot"),
        }
    }

    /// The room in slot `i` (which must be occupied).
    pub(super) fn room(&self, i: u32) -> &Room {
        &self.entry(i).room
    }

    /// The room in slot `i`, to change (its idle state is the slab's business).
    pub(super) fn room_mut(&mut self, i: u32) -> &mut Room {
        &mut self.entry_mut(i).room
    }

    /// Stores a room (not idle) and returns its slot. No room of that name may be held.
    pub(super) fn insert(&mut self, room: Room) -> u32 {
        debug_assert!(self.find(room.name()).is_none(), "one room per name");
        let h = hash(room.name());
        let i = self.place(room);
        let slots = &self.slots;
        self.by_name.insert_unique(h, i, |&j| hash(occupied(slots, j).room.name()));
        i
    }

    fn place(&mut self, room: Room) -> u32 {
        let class = self.class_of(room.settings().room_ttl);
        let entry = Entry { room, prev: NIL, next: NIL, last_use: 0, class, idle: false };
        if self.free != NIL {
            let i = self.free;
            if let Slot::Vacant { next_free } = self.slots[i as usize] {
                self.free = next_free;
            }
            self.slots[i as usize] = Slot::Occupied(entry);
            return i;
        }
        if self.slots.len() == self.slots.capacity() {
            // Grow by a quarter, not double: slots are most of an empty room's cost, and the
            // slack of doubling would add up to 100% to it (still amortized O(1)).
            self.slots.reserve_exact(self.slots.len() / 4 + 16);
        }
        self.slots.push(Slot::Occupied(entry));
        (self.slots.len() - 1) as u32
    }

    /// Takes the room out of slot `i` (off its list if idle, out of the index) and frees
    /// the slot.
    pub(super) fn remove(&mut self, i: u32) -> Room {
        self.busy(i);
        match self.by_name.find_entry(hash(self.room(i).name()), |&j| j == i) {
            Ok(e) => drop(e.remove()),
            Err(_) => unreachable!("an occupied slot is indexed"),
        }
        let slot = std::mem::replace(&mut self.slots[i as usize], Slot::Vacant { next_free: self.free });
        self.free = i;
        match slot {
            Slot::Occupied(e) => e.room,
            Slot::Vacant { .. } => unreachable!("removed a vacant slot"),
        }
    }

    fn class_of(&mut self, ttl: Option<Duration>) -> u16 {
        let ttl_ms = ttl.map(|t| t.as_millis() as u64);
        if let Some(c) = self.classes.iter().position(|c| c.ttl_ms == ttl_ms) {
            return c as u16;
        }
        self.classes.push(Class { ttl_ms, head: NIL, tail: NIL });
        (self.classes.len() - 1) as u16
    }

    /// Whether the room in slot `i` is idle (on its class list).
    pub(super) fn is_idle(&self, i: u32) -> bool {
        self.entry(i).idle
    }

    /// Marks the room idle and most recently used at `now_ms` (moves it to its list's tail).
    pub(super) fn touch(&mut self, i: u32, now_ms: u64) {
        self.busy(i);
        let e = self.entry_mut(i);
        let c = e.class as usize;
        e.idle = true;
        e.last_use = now_ms;
        let tail = self.classes[c].tail;
        self.entry_mut(i).prev = tail;
        if tail == NIL {
            self.classes[c].head = i;
        } else {
            self.entry_mut(tail).next = i;
        }
        self.classes[c].tail = i;
    }

    /// Takes the room off its list (it has a subscriber now); no-op if it was not idle.
    pub(super) fn busy(&mut self, i: u32) {
        let e = self.entry_mut(i);
        if !e.idle {
            return;
        }
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

    /// Whether slot `i` holds an idle room whose TTL has passed at `now_ms`.
    pub(super) fn expired(&self, i: u32, now_ms: u64) -> bool {
        let e = self.entry(i);
        let ttl = self.classes[e.class as usize].ttl_ms;
        e.idle && ttl.is_some_and(|ttl| e.last_use.saturating_add(ttl) <= now_ms)
    }

    /// An idle room whose TTL has passed at `now_ms`, if any: O(classes).
    pub(super) fn next_expired(&self, now_ms: u64) -> Option<u32> {
        self.classes.iter().map(|c| c.head).find(|&h| h != NIL && self.expired(h, now_ms))
    }

    /// The least recently used idle room other than `except`: O(classes).
    pub(super) fn lru_victim(&self, except: u32) -> Option<u32> {
        self.classes
            .iter()
            .filter_map(|c| {
                let h = if c.head == except && c.head != NIL { self.entry(c.head).next } else { c.head };
                (h != NIL).then_some(h)
            })
            .min_by_key(|&h| self.entry(h).last_use)
    }

    /// Checks the list invariants; returns how many rooms are on lists (tests).
    #[cfg(test)]
    pub(super) fn check(&self) -> usize {
        let mut on_lists = 0;
        for c in &self.classes {
            let (mut i, mut prev, mut last) = (c.head, NIL, 0);
            while i != NIL {
                let e = self.entry(i);
                assert!(e.idle && e.room.subscribers() == 0 && e.prev == prev);
                assert!(e.last_use >= last, "ordered by last use");
                (prev, last, i) = (i, e.last_use, e.next);
                on_lists += 1;
            }
            assert_eq!(c.tail, prev);
        }
        let idle = self.slots.iter().filter(|s| matches!(s, Slot::Occupied(e) if e.idle)).count();
        assert_eq!(on_lists, idle, "a room is on its list iff idle");
        let occupied = self.slots.iter().filter(|s| matches!(s, Slot::Occupied(_))).count();
        assert_eq!(self.by_name.len(), occupied, "the index holds the occupied slots");
        for &i in self.by_name.iter() {
            assert_eq!(self.find(self.room(i).name()), Some(i), "each room is found by its name");
        }
        on_lists
    }
}
