//! A room's snapshot: the latest message per key (e.g. per vehicle), ordered by `seq`.
//!
//! Why two indexes: publishing replaces a key's entry (lookup by key), while evicting the
//! stalest key when the snapshot is full, expiring by age, and replaying "entries newer than
//! `since`" all want `seq` order. A hash set keyed by the message's own key plus a
//! `BTreeMap<seq, message>` make each of these O(1) or O(log n) — the old "scan every key
//! for the minimum" made each publish into a full snapshot O(keys), a cost any publisher
//! inventing keys controlled.
//!
//! Invariants: both indexes hold exactly the same messages; every message has a key, and no
//! two share one; entry count ≤ the room's `max_snapshot_keys` (enforced by the room).
//! Keys are not copied: the set looks entries up through the message's own key.

use rustc_hash::FxHashSet;
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Message;

/// A keyed message, hashed and compared by its key (so the set can be queried by `&str`).
#[derive(Debug)]
struct ByKey(Arc<Message>);

impl ByKey {
    fn key(&self) -> &str {
        self.0.key.as_deref().unwrap_or_default()
    }
}

impl Hash for ByKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key().hash(h)
    }
}

impl PartialEq for ByKey {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}

impl Eq for ByKey {}

impl Borrow<str> for ByKey {
    fn borrow(&self) -> &str {
        self.key()
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Snapshot {
    by_key: FxHashSet<ByKey>,
    by_seq: BTreeMap<u64, Arc<Message>>,
}

impl Snapshot {
    /// Entries (keys) held.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Makes `msg` its key's entry; returns the entry it replaced. `msg` must have a key and
    /// a `seq` above every entry's (messages are inserted in publish order).
    pub fn insert(&mut self, msg: Arc<Message>) -> Option<Arc<Message>> {
        debug_assert!(msg.key.is_some());
        let old = self.by_key.replace(ByKey(msg.clone())).map(|b| b.0);
        if let Some(o) = &old {
            self.by_seq.remove(&o.seq);
        }
        self.by_seq.insert(msg.seq, msg);
        old
    }

    /// Whether `key` has an entry.
    pub fn contains_key(&self, key: &str) -> bool {
        self.by_key.contains(key)
    }

    /// Whether `msg` itself (not just its key) is an entry.
    pub fn holds(&self, msg: &Message) -> bool {
        msg.key.as_deref().and_then(|k| self.by_key.get(k)).is_some_and(|b| std::ptr::eq(&*b.0, msg))
    }

    /// The highest `seq` held.
    pub fn newest_seq(&self) -> Option<u64> {
        self.by_seq.keys().next_back().copied()
    }

    /// The entry with the lowest `seq`.
    pub fn oldest(&self) -> Option<&Arc<Message>> {
        self.by_seq.values().next()
    }

    /// Removes and returns the entry with the lowest `seq` (the stalest key).
    pub fn pop_oldest(&mut self) -> Option<Arc<Message>> {
        let (_, m) = self.by_seq.pop_first()?;
        self.by_key.remove(m.key.as_deref().unwrap_or_default());
        Some(m)
    }

    /// Removes entries older than `ttl` at `now`, oldest first, handing each to `gone`.
    /// Sequencing order is publishing order, so these are a prefix of the `seq` order.
    pub fn expire(&mut self, now: Instant, ttl: Duration, mut gone: impl FnMut(Arc<Message>)) {
        while self.oldest().is_some_and(|m| now.saturating_duration_since(m.at) > ttl) {
            if let Some(m) = self.pop_oldest() {
                gone(m);
            }
        }
    }

    /// Entries with `after < seq < before`, in ascending `seq`. O(log n + returned).
    pub fn between(&self, after: u64, before: u64) -> impl Iterator<Item = &Arc<Message>> + '_ {
        let range = if after < before {
            (Bound::Excluded(after), Bound::Excluded(before))
        } else {
            (Bound::Included(0), Bound::Excluded(0)) // empty (and not a panicking range)
        };
        self.by_seq.range(range).map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use bytes::Bytes;

    fn msg(seq: u64, key: &str) -> Arc<Message> {
        let data = Bytes::from(format!("{{\"id\":\"{key}\"}}"));
        Arc::new(Message::new("r".into(), seq, data, Some(key.into()), Policy::Drop, Instant::now()))
    }

    fn seqs<'a>(it: impl Iterator<Item = &'a Arc<Message>>) -> Vec<u64> {
        it.map(|m| m.seq).collect()
    }

    #[test]
    fn latest_per_key_in_seq_order() {
        let mut s = Snapshot::default();
        assert!(s.insert(msg(1, "a")).is_none());
        assert!(s.insert(msg(2, "b")).is_none());
        assert_eq!(s.insert(msg(3, "a")).map(|m| m.seq), Some(1));
        assert_eq!(s.len(), 2);
        assert_eq!(seqs(s.between(0, u64::MAX)), vec![2, 3]);
        assert_eq!(seqs(s.between(2, u64::MAX)), vec![3]);
        assert_eq!(seqs(s.between(0, 3)), vec![2]);
        assert_eq!(seqs(s.between(5, 1)), Vec::<u64>::new());
        assert!(s.contains_key("a") && !s.contains_key("c"));
    }

    #[test]
    fn pop_oldest_and_holds() {
        let mut s = Snapshot::default();
        let (a, b) = (msg(1, "a"), msg(2, "b"));
        s.insert(a.clone());
        s.insert(b.clone());
        assert!(s.holds(&a));
        assert!(!s.holds(&msg(1, "a")), "same key, other message");
        assert_eq!(s.pop_oldest().map(|m| m.seq), Some(1));
        assert!(!s.holds(&a) && s.holds(&b));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn expire_drops_a_prefix() {
        let mut s = Snapshot::default();
        s.insert(msg(1, "a"));
        s.insert(msg(2, "b"));
        let mut gone = vec![];
        s.expire(Instant::now() + Duration::from_secs(10), Duration::from_secs(5), |m| gone.push(m.seq));
        assert_eq!(gone, vec![1, 2]);
        assert!(s.is_empty());
    }
}
