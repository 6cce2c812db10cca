//! A subscriber's bounded queue of outbound frames, with the slow-consumer policies.
//!
//! Why bounded: a subscriber that stops reading must not grow the server's memory or delay
//! anyone else. Each outbox has a byte budget; a push that would exceed it applies the
//! message's namespace [`Policy`]: close the connection, drop and later send a `gap` notice,
//! or conflate (keep the newest message per room and key). Memory per connection is
//! therefore at most the budget plus the one batch its writer has in hand.
//!
//! The writer drains with [`Outbox::take`], which moves every queued frame at once so the
//! connection can send them in one `writev`-style call.
//!
//! Conflation costs O(1) per message: at a connection's first overflow one pass over its
//! queue builds an index of the newest queued message per room+key (superseding older ones);
//! from then until the queue has drained, each keyed message replaces its predecessor
//! through that index, leaving a hole that the writer skips. Holes are compacted once they
//! are half the queue, so they never outgrow what is queued.

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::config::Policy;
use crate::envelope;
use crate::frame;
use crate::message::{DeliveryMode, Message};

/// One queued outbound frame.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A room message, shared with every other subscriber.
    Msg(Arc<Message>),
    /// A frame for this connection alone (ok, error, gap, pong, close).
    Ctrl(Bytes),
}

impl Entry {
    /// The bytes to write for a subscriber in `mode`.
    #[inline]
    pub fn bytes(&self, mode: DeliveryMode) -> &Bytes {
        match self {
            Entry::Msg(m) => m.frame_for(mode),
            Entry::Ctrl(b) => b,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; `woke` says whether the queue was empty (the writer needs a wake-up).
    Queued { was_empty: bool },
    /// Over budget under `drop`: skipped, a `gap` notice will follow.
    Dropped,
    /// Over budget under `conflate`: `n` older queued messages were superseded and removed.
    Conflated { removed: usize, was_empty: bool },
    /// Over budget under `disconnect`: the outbox now holds only a close frame.
    Disconnected,
    /// The outbox is closed; nothing more is queued.
    Closed,
    /// Written straight to the socket (the subscriber was idle); nothing queued.
    Written,
}

impl Pushed {
    /// The push put the first frame into an empty queue: nobody is on the way to send it
    /// yet (the writer must be woken, or the caller must write it).
    pub fn made_nonempty(self) -> bool {
        matches!(self, Pushed::Queued { was_empty: true } | Pushed::Conflated { was_empty: true, .. })
    }
}

/// Per room, the inclusive range of dropped seqs not yet announced (room, first, last).
/// Boxed, and `None` while empty: every connection has an outbox and few ever drop a message
/// (8 bytes instead of an empty vector's 24).
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // the box is the point: one pointer inline, not three words
struct Gaps(Option<Box<Vec<Gap>>>);

/// A room's dropped range: (room, first seq, last seq).
type Gap = (Arc<str>, u64, u64);

impl Gaps {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|g| g.is_empty())
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    /// Frames in order; `None` is a hole left by a superseded (conflated) message.
    queue: VecDeque<Option<Entry>>,
    /// Absolute position of `queue[0]` (positions never repeat while the outbox lives).
    front: u64,
    /// While overflowing under `conflate`: hash of (room, key) → position of the newest
    /// queued message with it. `None` otherwise (built at the overflow, dropped once drained).
    /// Boxed: every connection has an outbox, few ever overflow (8 bytes instead of 32).
    newest: Option<Box<FxHashMap<u64, u64>>>,
    bytes: usize,
    /// Holes in `queue`; 32 bits, like `budget`: the two share one word, and with them the
    /// subscriber's allocation stays in its size class when it also keeps its client's
    /// receive time. A queue never holds 2³² slots (it is bounded by `budget`).
    holes: u32,
    /// At most 1 GiB (the engine's and the server's configuration refuse more; `new`
    /// saturates).
    budget: u32,
    mode: DeliveryMode,
    /// Per room, the inclusive range of dropped seqs not yet announced.
    gaps: Gaps,
    closed: bool,
}

/// Slots an empty queue's storage starts with. The queue is freed when it drains (so an idle
/// subscriber holds none), and a burst then grew it 0 → 4 → 8 → 16 slots: three
/// allocations and two copies per subscriber per burst, ~5% of a shard at hot-100
/// (`results/2026-11-29-issue8-epoll-park/`). Sixteen slots (~0.5 KB) hold a typical
/// coalesced batch with one allocation.
const FIRST_SLOTS: usize = 16;

impl Outbox {
    /// Appends a slot, giving an unallocated queue [`FIRST_SLOTS`] at once.
    fn enqueue(&mut self, slot: Option<Entry>) {
        if self.queue.capacity() == 0 {
            self.queue.reserve_exact(FIRST_SLOTS);
        }
        self.queue.push_back(slot);
    }

    /// An empty outbox with a byte budget.
    pub fn new(budget: usize, mode: DeliveryMode) -> Self {
        Outbox {
            queue: VecDeque::new(),
            front: 0,
            newest: None,
            bytes: 0,
            holes: 0,
            budget: u32::try_from(budget).unwrap_or(u32::MAX),
            mode,
            gaps: Gaps::default(),
            closed: false,
        }
    }

    /// The byte budget the policies enforce.
    pub fn budget(&self) -> usize {
        self.budget as usize
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.queue.len() - self.holes as usize
    }

    /// No frame queued (holes do not count).
    fn nothing_queued(&self) -> bool {
        self.queue.len() == self.holes as usize
    }

    /// Nothing queued and no gap notice pending.
    pub fn is_empty(&self) -> bool {
        self.nothing_queued() && self.gaps.is_empty()
    }

    /// Closed: after the queued frames and the close frame, the connection ends.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Queues a room message, applying the policy if it does not fit.
    pub fn push_msg(&mut self, msg: &Arc<Message>) -> Pushed {
        if self.closed {
            return Pushed::Closed;
        }
        let len = msg.frame_for(self.mode).len();
        let mut removed = 0;
        if self.newest.is_some() && msg.policy == Policy::Conflate {
            removed = self.supersede(msg);
        }
        if self.bytes + len > self.budget() && !self.nothing_queued() {
            match msg.policy {
                Policy::Disconnect => {
                    self.close(1008, "slow consumer", true);
                    return Pushed::Disconnected;
                }
                Policy::Conflate if msg.key.is_some() => {
                    if self.newest.is_none() {
                        self.index_newest();
                        removed = self.supersede(msg);
                    }
                    if self.bytes + len > self.budget() {
                        self.record_gap(msg);
                        return Pushed::Dropped;
                    }
                }
                Policy::Drop | Policy::Conflate => {
                    self.record_gap(msg);
                    return Pushed::Dropped;
                }
            }
        }
        let was_empty = self.nothing_queued();
        if !self.gaps.is_empty() {
            self.flush_gap_of(&msg.room, msg.seq);
        }
        self.bytes += len;
        if let (Some(newest), Some(k), Policy::Conflate) = (&mut self.newest, &msg.key, msg.policy) {
            newest.insert(key_hash(&msg.room, k), self.front + self.queue.len() as u64);
        }
        self.enqueue(Some(Entry::Msg(msg.clone())));
        if removed > 0 {
            Pushed::Conflated { removed, was_empty }
        } else {
            Pushed::Queued { was_empty }
        }
    }

    /// Queues a frame for this connection alone. Control replies are small and are never
    /// dropped: they answer the client's own requests, whose rate is limited elsewhere.
    pub fn push_ctrl(&mut self, frame: Bytes) -> Pushed {
        if self.closed {
            return Pushed::Closed;
        }
        let was_empty = self.nothing_queued();
        self.bytes += frame.len();
        self.enqueue(Some(Entry::Ctrl(frame)));
        Pushed::Queued { was_empty }
    }

    /// Ends the stream with a close frame. With `discard`, queued frames are thrown away
    /// first (a slow consumer); without, they are sent before it (graceful shutdown).
    pub fn close(&mut self, code: u16, reason: &str, discard: bool) {
        if self.closed {
            return;
        }
        if discard {
            self.front += self.queue.len() as u64;
            self.queue.clear();
            self.newest = None;
            self.holes = 0;
            self.gaps.0 = None;
            self.bytes = 0;
        } else {
            self.flush_all_gaps();
        }
        let f = frame::close_frame(code, reason);
        self.bytes += f.len();
        self.enqueue(Some(Entry::Ctrl(f)));
        self.closed = true;
    }

    /// Moves up to `max` queued frames into `out` (followed by any pending gap notices once
    /// the queue is empty) and returns how many bytes they hold.
    pub fn take(&mut self, out: &mut Vec<Entry>, max: usize) -> usize {
        if self.len() <= max {
            self.flush_all_gaps();
        }
        let (mut taken, mut n) = (0, 0);
        while n < max {
            let Some(slot) = self.queue.pop_front() else { break };
            self.front += 1;
            match slot {
                Some(e) => {
                    taken += e.bytes(self.mode).len();
                    out.push(e);
                    n += 1;
                }
                None => self.holes -= 1,
            }
        }
        if self.queue.is_empty() {
            // Drained: the overflow is over, and with it the conflation index; the queue's
            // storage goes too, so an idle subscriber holds no queue memory.
            self.newest = None;
            self.queue = VecDeque::new();
        }
        self.bytes -= taken;
        taken
    }

    /// The frames at the front, in order, for a write made now without taking them (at most
    /// `out.len()`; holes skipped): see [`Outbox::consume`]. Fills nothing while a gap notice
    /// is pending or the outbox is closed — those go through [`Outbox::take`].
    pub fn gather<'a>(&'a self, out: &mut [std::io::IoSlice<'a>]) -> usize {
        if self.closed || !self.gaps.is_empty() {
            return 0;
        }
        let frames = self.queue.iter().flatten().map(|e| std::io::IoSlice::new(e.bytes(self.mode)));
        let mut n = 0;
        for (slot, f) in out.iter_mut().zip(frames) {
            *slot = f;
            n += 1;
        }
        n
    }

    /// Removes `n` bytes written from the front (what [`Outbox::gather`] offered): whole
    /// frames leave; a frame written in part stays first as the slice not yet written (a
    /// control entry, so conflation can never remove it).
    pub fn consume(&mut self, mut n: usize) {
        while let Some(slot) = self.queue.front_mut() {
            let Some(e) = slot else {
                self.queue.pop_front();
                self.front += 1;
                self.holes -= 1;
                continue;
            };
            if n == 0 {
                break;
            }
            let b = e.bytes(self.mode);
            if n < b.len() {
                *e = Entry::Ctrl(b.slice(n..));
                self.bytes -= n;
                break;
            }
            n -= b.len();
            self.bytes -= b.len();
            self.queue.pop_front();
            self.front += 1;
        }
        if self.queue.is_empty() {
            self.newest = None;
            self.queue = VecDeque::new();
        }
    }

    /// Pushes of one subscription go up in `seq`, so a `seq` at or below a room's pending
    /// range means the client subscribed again with a `since` below it: its replay pushes
    /// those seqs anew, and the old range is stale.
    fn record_gap(&mut self, msg: &Message) {
        let gaps = self.gaps.0.get_or_insert_with(Box::default);
        match gaps.iter_mut().find(|(r, _, _)| Arc::ptr_eq(r, &msg.room) || **r == *msg.room) {
            Some(g) if msg.seq <= g.2 => (g.1, g.2) = (msg.seq, msg.seq),
            Some(g) => g.2 = msg.seq,
            None => gaps.push((msg.room.clone(), msg.seq, msg.seq)),
        }
    }

    /// Announces `room`'s pending gap before its message `seq` is queued, unless the gap is
    /// stale (see [`Outbox::record_gap`]): then `seq` and what follows it are being resent.
    fn flush_gap_of(&mut self, room: &Arc<str>, seq: u64) {
        let Some(gaps) = self.gaps.0.as_mut() else { return };
        if let Some(i) = gaps.iter().position(|(r, _, _)| **r == **room) {
            let (r, from, to) = gaps.swap_remove(i);
            if gaps.is_empty() {
                self.gaps.0 = None;
            }
            if seq <= to {
                return;
            }
            let f = envelope::gap_frame(&r, from, to);
            self.bytes += f.len();
            self.enqueue(Some(Entry::Ctrl(f)));
        }
    }

    fn flush_all_gaps(&mut self) {
        for (r, from, to) in self.gaps.0.take().map_or_else(Vec::new, |g| *g) {
            let f = envelope::gap_frame(&r, from, to);
            self.bytes += f.len();
            self.enqueue(Some(Entry::Ctrl(f)));
        }
    }

    /// Builds the conflation index from the queue, oldest to newest, superseding every
    /// message that a newer one of the same room and key follows. O(queue), once per
    /// overflow; order of what stays is unchanged, so per-room `seq` order holds.
    fn index_newest(&mut self) -> usize {
        let mut newest: FxHashMap<u64, u64> = FxHashMap::default();
        let mut removed = 0;
        for i in 0..self.queue.len() {
            let Some(Some(Entry::Msg(m))) = self.queue.get(i) else { continue };
            // Only `conflate` messages are superseded: a key also serves snapshots under
            // other policies, whose messages must never vanish without a gap.
            let (Some(k), Policy::Conflate) = (&m.key, m.policy) else { continue };
            let (m, pos) = (m.clone(), self.front + i as u64);
            if let Some(old) = newest.insert(key_hash(&m.room, k), pos) {
                removed += self.hole_at(old, &m);
            }
        }
        self.newest = Some(Box::new(newest));
        removed
    }

    /// Removes the queued message that `incoming` supersedes (same room and key), if any.
    fn supersede(&mut self, incoming: &Message) -> usize {
        let (Some(newest), Some(k)) = (&mut self.newest, &incoming.key) else { return 0 };
        let Some(pos) = newest.remove(&key_hash(&incoming.room, k)) else { return 0 };
        let removed = self.hole_at(pos, incoming);
        if self.holes > 64 && self.holes as usize * 2 > self.queue.len() {
            self.compact();
        }
        removed
    }

    /// Turns the message at absolute `pos` into a hole if it has `like`'s room and key (a
    /// hash collision must not remove another entity's message).
    fn hole_at(&mut self, pos: u64, like: &Message) -> usize {
        let Some(i) = pos.checked_sub(self.front) else { return 0 };
        let Some(slot) = self.queue.get_mut(i as usize) else { return 0 };
        let len = match slot {
            Some(Entry::Msg(m))
                if m.room == like.room && m.key == like.key && m.policy == Policy::Conflate =>
            {
                m.frame_for(self.mode).len()
            }
            _ => return 0,
        };
        self.bytes -= len;
        *slot = None;
        self.holes += 1;
        1
    }

    /// Removes the holes; positions change, so the index is rebuilt.
    fn compact(&mut self) {
        self.queue.retain(Option::is_some);
        self.holes = 0;
        self.index_newest();
    }
}

/// Hash of (room, key) for the conflation index (collisions are checked, see `hole_at`).
fn key_hash(room: &str, key: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one((room, key))
}

#[cfg(test)]
mod tests;
