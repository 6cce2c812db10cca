//! Owner-side tracking of rooms (issue 11): **presence** (who follows a room, with join/leave
//! diffs coalesced per window) and **liveness** (a key silent for `liveness_ttl` is announced
//! `offline` once), and the one timer heap that flushes both.
//!
//! Why on the owner: it already counts a room's subscriptions and holds its latest message
//! per key, so presence is a counter beside that count and liveness is a cursor over the
//! snapshot's `seq` order — no extra per-key structure. The owner turns each into one frame
//! per room event ([`Notice`]), which reaches every follower like a message: one `Bytes`
//! shared by refcount.
//!
//! Invariants:
//! - Liveness: snapshot entries with `seq <= offline_upto` are exactly the keys announced
//!   offline and not updated since (an update gives the key a higher `seq`, so it is online
//!   again without bookkeeping). Entries are announced in `seq` order, which is publish
//!   order, so the sweep walks a prefix and stops at the first entry still fresh.
//! - Presence: at most one diff per room per `presence_window`; a diff is due only while
//!   something changed since the last one.
//! - Timers: a room is in the heap at most once per distinct due instant, and `scheduled`
//!   is the earliest; entries that no longer match a room's `scheduled` are skipped, so the
//!   heap holds O(rooms with tracking) entries.

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Registry, ShardSet};
use crate::envelope;
use crate::geo::BBox;
use crate::presence::Presence;

/// Most offline notices one sweep of one room emits; the rest follow on the next tick, so a
/// fleet going silent at once cannot stall the shard.
const OFFLINE_BATCH: usize = 256;
/// Most rooms one tick visits.
const TICK_ROOMS: usize = 256;
/// Cluster presence: a node whose state of a room was not refreshed for this long is
/// dropped (nodes send theirs every second).
pub const REMOTE_PRESENCE_TTL: Duration = Duration::from_millis(3_500);

/// Another node's members of a room (cluster presence).
#[derive(Debug)]
struct RemoteNode {
    members: FxHashMap<Box<str>, u32>,
    seen: Instant,
}

/// A room's tracking state, boxed in the room and made only in namespaces that use it.
#[derive(Debug, Default)]
pub struct RoomTrack {
    presence: Option<Presence>,
    /// When the last `presence_diff` went out.
    presence_last: Option<Instant>,
    /// Snapshot entries with `seq` at or below this are offline.
    pub(crate) offline_upto: u64,
    /// The earliest instant this room is in the timer heap for.
    scheduled: Option<Instant>,
    /// Cluster presence: other nodes' members, by node.
    remote: FxHashMap<Box<str>, RemoteNode>,
}

impl RoomTrack {
    /// The room's presence (made by `Registry::presence_change` before any change).
    fn presence(&mut self) -> &mut Presence {
        self.presence.get_or_insert_with(|| Presence::new(0))
    }
}

/// A frame an owner sends to every follower of a room, outside the room's `seq`.
#[derive(Debug)]
pub struct Notice {
    /// The room.
    pub room: Arc<str>,
    /// The key it is about (`offline`): viewport subscribers get it only if they show the key.
    pub key: Option<Box<str>>,
    /// The frame, built once.
    pub frame: Bytes,
    /// Shards with followers of the room.
    pub targets: ShardSet,
}

impl Registry {
    /// A subscription by `member` started in `name` (presence namespaces only; call after
    /// the room accepted the subscription).
    pub fn presence_join(&mut self, name: &str, member: &str, now: Instant) {
        self.presence_change(name, now, |t| t.presence().join(member));
    }

    /// A subscription by `member` in `name` ended.
    pub fn presence_leave(&mut self, name: &str, member: &str, now: Instant) {
        self.presence_change(name, now, |t| t.presence().leave(member));
    }

    /// Cluster presence: node `node`'s members of `name` are now `members`; the difference
    /// from its previous state joins or leaves. Nothing for a room absent here (its next
    /// refresh, a second later, finds it).
    pub fn presence_remote(&mut self, name: &str, node: &str, members: Vec<(Box<str>, u32)>, now: Instant) {
        self.presence_change(name, now, |t| {
            let new: FxHashMap<Box<str>, u32> = members.into_iter().filter(|(_, n)| *n > 0).collect();
            let old = t.remote.remove(node).map(|r| r.members).unwrap_or_default();
            apply_diff(t.presence(), &old, &new);
            if !new.is_empty() {
                t.remote.insert(node.into(), RemoteNode { members: new, seen: now });
            }
        });
    }

    /// Applies `change` to `name`'s presence (made on first use, with the namespace's
    /// member limit) and schedules the room's next diff — and, with other nodes' states
    /// held, its next check for silent nodes.
    fn presence_change(&mut self, name: &str, now: Instant, change: impl FnOnce(&mut RoomTrack)) {
        let Some(i) = self.slab.find(name) else { return };
        let room = self.slab.room_mut(i);
        let settings = room.settings().clone();
        if !settings.presence {
            return;
        }
        let t = room.track_mut();
        t.presence.get_or_insert_with(|| Presence::new(settings.presence_members));
        change(t);
        let mut due = t.presence_last.map_or(now, |last| (last + settings.presence_window).max(now));
        if let Some(oldest) = t.remote.values().map(|r| r.seen).min() {
            due = due.min(oldest + REMOTE_PRESENCE_TTL);
        }
        self.schedule(i, due);
    }

    /// `{"op":"presence",..}` for `name`: count 0 and no members when the room does not exist.
    pub fn presence_state(&self, name: &str, id: Option<&str>) -> Bytes {
        let room = self.get(name);
        let p = room.and_then(|r| r.track().and_then(|t| t.presence.as_ref()));
        match p {
            Some(p) => p.state_frame(name, id),
            None => Presence::new(0).state_frame(name, id),
        }
    }

    /// A pan's entries: the snapshot messages of `name` whose position is inside `bbox`, in
    /// `seq` order. O(keys of the room).
    pub fn inside(&self, name: &str, bbox: &BBox) -> Vec<Arc<crate::message::Message>> {
        let Some(room) = self.get(name) else { return Vec::new() };
        room.snapshot_entries().filter(|m| m.fix.pos.is_some_and(|p| bbox.contains(p))).cloned().collect()
    }

    /// After a keyed message entered slot `i` of a liveness namespace: make sure the room
    /// is checked when its oldest fresh key would go stale.
    pub(super) fn note_liveness(&mut self, i: u32, at: Instant) {
        let room = self.slab.room(i);
        let Some(ttl) = room.settings().liveness_ttl else { return };
        if room.track().is_none_or(|t| t.scheduled.is_none()) {
            self.schedule(i, at + ttl);
        }
    }

    fn schedule(&mut self, i: u32, at: Instant) {
        let room = self.slab.room_mut(i);
        let name = room.name().clone();
        let t = room.track_mut();
        if t.scheduled.is_some_and(|s| s <= at) {
            return;
        }
        t.scheduled = Some(at);
        self.due.push(Reverse((at, name)));
    }

    /// Runs the timers due at `now`: offline notices and presence diffs, appended to `out`.
    /// Bounded work per call (see the constants); the rest waits for the next tick.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Notice>) {
        for _ in 0..TICK_ROOMS {
            let Some(Reverse((at, _))) = self.due.peek() else { return };
            if *at > now {
                return;
            }
            let Some(Reverse((at, name))) = self.due.pop() else { return };
            let Some(i) = self.slab.find(&name) else { continue };
            let room = self.slab.room_mut(i);
            if room.track().is_none_or(|t| t.scheduled != Some(at)) {
                continue; // superseded by an earlier entry, or the room was re-created
            }
            room.track_mut().scheduled = None;
            let next = room_tick(room, now, out);
            if let Some(next) = next {
                self.schedule(i, next);
            }
        }
    }
}

/// Joins and leaves that turn `old` into `new` (member → subscriptions).
fn apply_diff(p: &mut Presence, old: &FxHashMap<Box<str>, u32>, new: &FxHashMap<Box<str>, u32>) {
    for (m, &n) in new {
        let before = old.get(m).copied().unwrap_or(0);
        (before..n).for_each(|_| p.join(m));
        (n..before).for_each(|_| p.leave(m));
    }
    for (m, &n) in old.iter().filter(|(m, _)| !new.contains_key(*m)) {
        (0..n).for_each(|_| p.leave(m));
    }
}

/// One room's due work at `now`; returns when it next needs a visit.
fn room_tick(room: &mut crate::room::Room, now: Instant, out: &mut Vec<Notice>) -> Option<Instant> {
    let settings = room.settings().clone();
    let name = room.name().clone();
    let mut targets = ShardSet::default();
    room.interested_shards().for_each(|s| targets.insert(s));
    let mut next: Option<Instant> = None;
    let mut earliest = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
    // Cluster presence: nodes gone silent leave.
    let (track, _) = room.track_and_snapshot();
    if !track.remote.is_empty() {
        let stale: Vec<Box<str>> = track
            .remote
            .iter()
            .filter(|(_, r)| now >= r.seen + REMOTE_PRESENCE_TTL)
            .map(|(n, _)| n.clone())
            .collect();
        for node in stale {
            if let (Some(r), Some(p)) = (track.remote.remove(&node), track.presence.as_mut()) {
                apply_diff(p, &r.members, &FxHashMap::default());
            }
        }
        if let Some(oldest) = track.remote.values().map(|r| r.seen).min() {
            earliest(oldest + REMOTE_PRESENCE_TTL);
        }
    }
    // Presence: one diff per window.
    if let Some(p) = track.presence.as_mut() {
        let ready = track.presence_last.is_none_or(|l| now >= l + settings.presence_window);
        if ready {
            if let Some(frame) = p.take_diff(&name) {
                track.presence_last = Some(now);
                out.push(Notice { room: name.clone(), key: None, frame, targets });
            }
        } else if p.is_dirty() {
            earliest(track.presence_last.unwrap_or(now) + settings.presence_window);
        }
    }
    // Liveness: announce the stale prefix of the snapshot.
    if let Some(ttl) = settings.liveness_ttl {
        let (track, snap) = room.track_and_snapshot();
        if let Some(snap) = snap {
            for (sent, m) in snap.between(track.offline_upto, u64::MAX).enumerate() {
                if now.saturating_duration_since(m.at) < ttl {
                    earliest(m.at + ttl);
                    break;
                }
                if sent == OFFLINE_BATCH {
                    earliest(now);
                    break;
                }
                let key = m.key.as_deref().unwrap_or_default();
                let frame = envelope::offline_frame(&name, key, m.seq);
                out.push(Notice { room: name.clone(), key: Some(key.into()), frame, targets });
                track.offline_upto = m.seq;
            }
        }
    }
    next
}
