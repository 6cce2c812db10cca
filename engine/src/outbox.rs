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

use bytes::Bytes;
use rustc_hash::FxHashSet;
use std::collections::VecDeque;
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

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Entry>,
    bytes: usize,
    budget: usize,
    mode: DeliveryMode,
    /// Per room, the inclusive range of dropped seqs not yet announced.
    gaps: Vec<(Arc<str>, u64, u64)>,
    closed: bool,
}

impl Outbox {
    /// An empty outbox with a byte budget.
    pub fn new(budget: usize, mode: DeliveryMode) -> Self {
        Outbox { queue: VecDeque::new(), bytes: 0, budget, mode, gaps: Vec::new(), closed: false }
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued and no gap notice pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.gaps.is_empty()
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
        if self.bytes + len > self.budget && !self.queue.is_empty() {
            match msg.policy {
                Policy::Disconnect => {
                    self.close(1008, "slow consumer", true);
                    return Pushed::Disconnected;
                }
                Policy::Conflate if msg.key.is_some() => {
                    removed = self.conflate(msg);
                    if self.bytes + len > self.budget {
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
        let was_empty = self.queue.is_empty();
        if !self.gaps.is_empty() {
            self.flush_gap_of(&msg.room, msg.seq);
        }
        self.bytes += len;
        self.queue.push_back(Entry::Msg(msg.clone()));
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
        let was_empty = self.queue.is_empty();
        self.bytes += frame.len();
        self.queue.push_back(Entry::Ctrl(frame));
        Pushed::Queued { was_empty }
    }

    /// Ends the stream with a close frame. With `discard`, queued frames are thrown away
    /// first (a slow consumer); without, they are sent before it (graceful shutdown).
    pub fn close(&mut self, code: u16, reason: &str, discard: bool) {
        if self.closed {
            return;
        }
        if discard {
            self.queue.clear();
            self.gaps.clear();
            self.bytes = 0;
        } else {
            self.flush_all_gaps();
        }
        let f = frame::close_frame(code, reason);
        self.bytes += f.len();
        self.queue.push_back(Entry::Ctrl(f));
        self.closed = true;
    }

    /// Moves up to `max` queued frames into `out` (followed by any pending gap notices once
    /// the queue is empty) and returns how many bytes they hold.
    pub fn take(&mut self, out: &mut Vec<Entry>, max: usize) -> usize {
        if self.queue.len() <= max {
            self.flush_all_gaps();
        }
        let n = self.queue.len().min(max);
        let mut taken = 0;
        for e in self.queue.drain(..n) {
            taken += e.bytes(self.mode).len();
            out.push(e);
        }
        self.bytes -= taken;
        taken
    }

    /// Pushes of one subscription go up in `seq`, so a `seq` at or below a room's pending
    /// range means the client subscribed again with a `since` below it: its replay pushes
    /// those seqs anew, and the old range is stale.
    fn record_gap(&mut self, msg: &Message) {
        match self.gaps.iter_mut().find(|(r, _, _)| Arc::ptr_eq(r, &msg.room) || **r == *msg.room) {
            Some(g) if msg.seq <= g.2 => (g.1, g.2) = (msg.seq, msg.seq),
            Some(g) => g.2 = msg.seq,
            None => self.gaps.push((msg.room.clone(), msg.seq, msg.seq)),
        }
    }

    /// Announces `room`'s pending gap before its message `seq` is queued, unless the gap is
    /// stale (see [`Outbox::record_gap`]): then `seq` and what follows it are being resent.
    fn flush_gap_of(&mut self, room: &Arc<str>, seq: u64) {
        if let Some(i) = self.gaps.iter().position(|(r, _, _)| **r == **room) {
            let (r, from, to) = self.gaps.swap_remove(i);
            if seq <= to {
                return;
            }
            let f = envelope::gap_frame(&r, from, to);
            self.bytes += f.len();
            self.queue.push_back(Entry::Ctrl(f));
        }
    }

    fn flush_all_gaps(&mut self) {
        for (r, from, to) in std::mem::take(&mut self.gaps) {
            let f = envelope::gap_frame(&r, from, to);
            self.bytes += f.len();
            self.queue.push_back(Entry::Ctrl(f));
        }
    }

    /// Removes every queued `conflate` message superseded by a newer one of the same room
    /// and key, `incoming` included. Messages of other policies stay, keyed or not (a key
    /// also serves snapshots): dropping them is announced by a gap, never silent. Order of
    /// what stays is unchanged, so per-room `seq` order holds.
    fn conflate(&mut self, incoming: &Message) -> usize {
        let mut keep = vec![true; self.queue.len()];
        {
            let mut seen: FxHashSet<(&str, &str)> = FxHashSet::default();
            if let Some(k) = &incoming.key {
                seen.insert((&incoming.room, k));
            }
            for (i, e) in self.queue.iter().enumerate().rev() {
                if let Entry::Msg(m) = e {
                    if let (Some(k), Policy::Conflate) = (&m.key, m.policy) {
                        if !seen.insert((&m.room, k)) {
                            keep[i] = false;
                        }
                    }
                }
            }
        }
        let mode = self.mode;
        let (mut i, mut freed, mut removed) = (0, 0, 0);
        self.queue.retain(|e| {
            let k = keep[i];
            i += 1;
            if !k {
                freed += e.bytes(mode).len();
                removed += 1;
            }
            k
        });
        self.bytes -= freed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn msg(room: &Arc<str>, seq: u64, key: Option<&str>, policy: Policy) -> Arc<Message> {
        let data =
            Bytes::from(format!("{{\"k\":\"{}\",\"pad\":\"{}\"}}", key.unwrap_or("-"), "x".repeat(60)));
        Arc::new(Message::new(room.clone(), seq, data, key.map(Into::into), policy, Instant::now()))
    }

    fn texts(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Msg(m) => format!("{}#{}", m.room, m.seq),
                Entry::Ctrl(b) => String::from_utf8_lossy(&b[2..]).into_owned(),
            })
            .collect()
    }

    #[test]
    fn take_moves_everything_and_accounts_bytes() {
        let r: Arc<str> = "a".into();
        let mut o = Outbox::new(1 << 20, DeliveryMode::Envelope);
        assert_eq!(o.push_msg(&msg(&r, 1, None, Policy::Drop)), Pushed::Queued { was_empty: true });
        assert_eq!(o.push_msg(&msg(&r, 2, None, Policy::Drop)), Pushed::Queued { was_empty: false });
        o.push_ctrl(envelope::pong_op_frame(None));
        let total = o.queued_bytes();
        let mut out = vec![];
        assert_eq!(o.take(&mut out, 1024), total);
        assert_eq!(o.queued_bytes(), 0);
        assert_eq!(texts(&out), vec!["a#1", "a#2", r#"{"op":"pong"}"#]);
    }

    #[test]
    fn drop_policy_skips_then_announces_gap_before_next_message() {
        let r: Arc<str> = "a".into();
        let one = msg(&r, 1, None, Policy::Drop).frame.len();
        let mut o = Outbox::new(one * 2, DeliveryMode::Envelope);
        for s in 1..=5 {
            o.push_msg(&msg(&r, s, None, Policy::Drop));
        }
        assert!(o.queued_bytes() <= one * 2);
        let mut out = vec![];
        o.take(&mut out, 1024);
        assert_eq!(texts(&out), vec!["a#1", "a#2", r#"{"op":"gap","room":"a","from":3,"to":5}"#]);
        // Next message after a drop: gap first, then the message.
        let mut o = Outbox::new(one * 2, DeliveryMode::Envelope);
        for s in 1..=4 {
            o.push_msg(&msg(&r, s, None, Policy::Drop));
        }
        let mut out = vec![];
        o.take(&mut out, 1); // writer took one, room for one more
        o.push_msg(&msg(&r, 5, None, Policy::Drop));
        o.take(&mut out, 1024);
        assert_eq!(texts(&out), vec!["a#1", "a#2", r#"{"op":"gap","room":"a","from":3,"to":4}"#, "a#5"]);
    }

    /// Found by the `engine_model` fuzz target. A pending gap belongs to the subscription that
    /// dropped those messages; when the client subscribes again with a `since` below it, the
    /// replay pushes those seqs again (pushes of one subscription only ever go up).
    #[test]
    fn drops_of_a_replay_below_a_pending_gap_are_announced() {
        let r: Arc<str> = "a".into();
        let one = msg(&r, 1, None, Policy::Drop).frame.len();
        let mut o = Outbox::new(one * 3, DeliveryMode::Envelope);
        for s in 1..=5 {
            o.push_msg(&msg(&r, s, None, Policy::Drop)); // 1..=3 queued, 4..=5 pending
        }
        let mut out = vec![];
        o.take(&mut out, 1);
        // Resubscribed with since = 1: after its `ok`, the replay of 2..=5 does not fit.
        o.push_ctrl(envelope::ok_frame(None, Some("a"), Some(5)));
        for s in 2..=5 {
            assert_eq!(o.push_msg(&msg(&r, s, None, Policy::Drop)), Pushed::Dropped);
        }
        o.take(&mut out, 1024);
        let ok = r#"{"op":"ok","room":"a","seq":5}"#;
        assert_eq!(texts(&out), vec!["a#1", "a#2", "a#3", ok, r#"{"op":"gap","room":"a","from":2,"to":5}"#]);
    }

    #[test]
    fn a_pending_gap_is_not_announced_before_a_replay_of_its_seqs() {
        let r: Arc<str> = "a".into();
        let one = msg(&r, 1, None, Policy::Drop).frame.len();
        let mut o = Outbox::new(one * 3, DeliveryMode::Envelope);
        for s in 1..=5 {
            o.push_msg(&msg(&r, s, None, Policy::Drop)); // 1..=3 queued, 4..=5 pending
        }
        let mut out = vec![];
        o.take(&mut out, 2);
        // Resubscribed with since = 3: after its `ok`, the replay delivers 4 and drops 5.
        o.push_ctrl(envelope::ok_frame(None, Some("a"), Some(5)));
        for s in 4..=5 {
            o.push_msg(&msg(&r, s, None, Policy::Drop));
        }
        o.take(&mut out, 1024);
        let (ok, gap) = (r#"{"op":"ok","room":"a","seq":5}"#, r#"{"op":"gap","room":"a","from":5,"to":5}"#);
        assert_eq!(texts(&out), vec!["a#1", "a#2", "a#3", ok, "a#4", gap]);
    }

    #[test]
    fn conflate_keeps_newest_per_room_and_key_in_order() {
        let r: Arc<str> = "fleet:x".into();
        let one = msg(&r, 1, Some("v1"), Policy::Conflate).frame.len();
        let mut o = Outbox::new(one * 3, DeliveryMode::Envelope);
        o.push_msg(&msg(&r, 1, Some("v1"), Policy::Conflate));
        o.push_msg(&msg(&r, 2, Some("v2"), Policy::Conflate));
        o.push_msg(&msg(&r, 3, Some("v3"), Policy::Conflate));
        let p = o.push_msg(&msg(&r, 4, Some("v1"), Policy::Conflate));
        assert_eq!(p, Pushed::Conflated { removed: 1, was_empty: false });
        let mut out = vec![];
        o.take(&mut out, 1024);
        assert_eq!(texts(&out), vec!["fleet:x#2", "fleet:x#3", "fleet:x#4"]);
    }

    /// Found by the `engine_model` fuzz target: a key also serves snapshots under `drop`, and
    /// conflating for one room must not silently remove another room's `drop` messages.
    #[test]
    fn conflation_removes_only_conflate_messages() {
        let (pos, log): (Arc<str>, Arc<str>) = ("fleet:x".into(), "log:x".into());
        let one = msg(&log, 1, Some("v1"), Policy::Drop).frame.len();
        let mut o = Outbox::new(one * 2, DeliveryMode::Envelope);
        o.push_msg(&msg(&log, 1, Some("v1"), Policy::Drop));
        o.push_msg(&msg(&log, 2, Some("v1"), Policy::Drop));
        assert_eq!(o.push_msg(&msg(&pos, 1, Some("v1"), Policy::Conflate)), Pushed::Dropped);
        let mut out = vec![];
        o.take(&mut out, 1024);
        let gap = r#"{"op":"gap","room":"fleet:x","from":1,"to":1}"#;
        assert_eq!(texts(&out), vec!["log:x#1", "log:x#2", gap]);
    }

    #[test]
    fn conflate_without_a_superseded_key_falls_back_to_gap() {
        let r: Arc<str> = "fleet:x".into();
        let one = msg(&r, 1, Some("v1"), Policy::Conflate).frame.len();
        let mut o = Outbox::new(one, DeliveryMode::Envelope);
        o.push_msg(&msg(&r, 1, Some("v1"), Policy::Conflate));
        assert_eq!(o.push_msg(&msg(&r, 2, Some("v2"), Policy::Conflate)), Pushed::Dropped);
    }

    #[test]
    fn disconnect_policy_discards_queue_and_closes_1008() {
        let r: Arc<str> = "a".into();
        let one = msg(&r, 1, None, Policy::Disconnect).frame.len();
        let mut o = Outbox::new(one, DeliveryMode::Envelope);
        o.push_msg(&msg(&r, 1, None, Policy::Disconnect));
        assert_eq!(o.push_msg(&msg(&r, 2, None, Policy::Disconnect)), Pushed::Disconnected);
        assert!(o.is_closed());
        assert_eq!(o.push_msg(&msg(&r, 3, None, Policy::Disconnect)), Pushed::Closed);
        let mut out = vec![];
        o.take(&mut out, 1024);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].bytes(DeliveryMode::Envelope)[..4], &[0x88, 15, 0x03, 0xF0]);
    }

    #[test]
    fn memory_stays_bounded_when_never_drained() {
        let r: Arc<str> = "a".into();
        let mut o = Outbox::new(64 << 10, DeliveryMode::Envelope);
        let mut dropped = 0;
        for s in 1..=100_000 {
            if o.push_msg(&msg(&r, s, None, Policy::Drop)) == Pushed::Dropped {
                dropped += 1;
            }
        }
        assert!(o.queued_bytes() <= 64 << 10);
        assert!(dropped > 99_000);
        assert!(o.len() < 1000);
    }

    #[test]
    fn raw_mode_accounts_raw_frames() {
        let r: Arc<str> = "a".into();
        let m = msg(&r, 1, None, Policy::Drop);
        let mut o = Outbox::new(1 << 20, DeliveryMode::Raw);
        o.push_msg(&m);
        assert_eq!(o.queued_bytes(), m.raw_frame().len());
    }
}
