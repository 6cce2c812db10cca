//! Owner-side state of one room: sequence numbers, the history ring, the latest-per-key
//! snapshot, and which shards have local subscribers. Pure logic, no I/O: the owner shard
//! calls it and ships the resulting [`Message`]s.

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::config::RoomSettings;
use crate::message::Message;

/// What a subscriber gets before going live.
#[derive(Debug, Default)]
pub struct Replay {
    /// The room's last sequence number at the moment of subscribing (0 if none). Live
    /// delivery continues with `last_seq + 1`.
    pub last_seq: u64,
    /// Messages the client asked for (`since`) that history no longer holds, inclusive.
    /// Sent as a `gap` notice before `messages`.
    pub gap: Option<(u64, u64)>,
    /// Snapshot entries and/or history to deliver first, in ascending `seq`.
    pub messages: Vec<Arc<Message>>,
}

/// One room, owned by exactly one shard.
#[derive(Debug)]
pub struct Room {
    name: Arc<str>,
    settings: Arc<RoomSettings>,
    seq: u64,
    history: VecDeque<Arc<Message>>,
    snapshot: FxHashMap<Box<str>, Arc<Message>>,
    /// Subscribers per shard; a shard with a non-zero count receives every message.
    interest: Vec<u32>,
}

impl Room {
    /// An empty room whose first message will get `seq` 1.
    pub fn new(name: Arc<str>, settings: Arc<RoomSettings>, shards: usize) -> Self {
        Room {
            name,
            settings,
            seq: 0,
            history: VecDeque::new(),
            snapshot: FxHashMap::default(),
            interest: vec![0; shards],
        }
    }

    /// The room's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Last assigned sequence number (0 before the first message).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Messages currently held in history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Subscribers across all shards.
    pub fn subscribers(&self) -> u64 {
        self.interest.iter().map(|&n| n as u64).sum()
    }

    /// Sequences `data`, encodes it once, records it in history and snapshot.
    pub fn publish(&mut self, data: Bytes, key: Option<Box<str>>, now: Instant) -> Arc<Message> {
        self.seq += 1;
        let s = &self.settings;
        let key = if s.key.is_some() { key } else { None };
        let msg = Arc::new(Message::new(self.name.clone(), self.seq, data, key, s.policy, now));
        if s.history_size > 0 {
            if self.history.len() == s.history_size {
                self.history.pop_front();
            }
            self.history.push_back(msg.clone());
        }
        if let Some(k) = &msg.key {
            if !self.snapshot.contains_key(k) && self.snapshot.len() >= s.max_snapshot_keys {
                // Evict the stalest key so a runaway key space cannot grow the room forever.
                if let Some(oldest) = self.snapshot.iter().min_by_key(|(_, m)| m.seq).map(|(k, _)| k.clone())
                {
                    self.snapshot.remove(&oldest);
                }
            }
            self.snapshot.insert(k.clone(), msg.clone());
        }
        self.expire(now);
        msg
    }

    /// Drops history and snapshot entries older than the TTL.
    pub fn expire(&mut self, now: Instant) {
        let Some(ttl) = self.settings.history_ttl else { return };
        while self.history.front().is_some_and(|m| now.duration_since(m.at) > ttl) {
            self.history.pop_front();
        }
        self.snapshot.retain(|_, m| now.duration_since(m.at) <= ttl);
    }

    /// Registers one subscriber on `shard` and computes what it must be sent before live
    /// messages: history after `since`, or a gap notice plus what is left, and/or the
    /// snapshot. Never returns a message twice, and everything returned has `seq <=
    /// last_seq`, so together with live delivery from `last_seq + 1` there is neither gap
    /// nor duplicate.
    pub fn subscribe(&mut self, shard: usize, since: Option<u64>, snapshot: bool, now: Instant) -> Replay {
        self.interest[shard] += 1;
        self.expire(now);
        let mut replay = Replay { last_seq: self.seq, ..Default::default() };
        let first_held = self.history.front().map_or(self.seq + 1, |m| m.seq);
        match since {
            Some(s) if s >= self.seq => {}
            Some(s) if s + 1 >= first_held => {
                replay.messages.extend(self.history.iter().filter(|m| m.seq > s).cloned());
            }
            Some(s) => {
                replay.gap = Some((s + 1, first_held - 1));
                if snapshot {
                    // Entries the gap swallowed but the snapshot still knows, older than
                    // anything in history, so the order stays ascending; never one the
                    // client already has (`seq <= since`).
                    replay
                        .messages
                        .extend(self.snapshot_before(first_held).into_iter().filter(|m| m.seq > s));
                }
                replay.messages.extend(self.history.iter().cloned());
            }
            None if snapshot => replay.messages.extend(self.snapshot_before(u64::MAX)),
            None => {}
        }
        replay
    }

    fn snapshot_before(&self, seq: u64) -> Vec<Arc<Message>> {
        let mut v: Vec<_> = self.snapshot.values().filter(|m| m.seq < seq).cloned().collect();
        v.sort_unstable_by_key(|m| m.seq);
        v
    }

    /// Removes one subscriber of `shard`.
    pub fn unsubscribe(&mut self, shard: usize) {
        let n = &mut self.interest[shard];
        *n = n.saturating_sub(1);
    }

    /// Shards with at least one subscriber.
    pub fn interested_shards(&self) -> impl Iterator<Item = usize> + '_ {
        self.interest.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn room(settings: RoomSettings) -> Room {
        Room::new("fleet:x".into(), Arc::new(settings), 2)
    }

    fn publish_n(r: &mut Room, n: usize, now: Instant) {
        for i in 0..n {
            let key = format!("v{}", i % 3);
            let data = Bytes::from(format!("{{\"id\":\"{key}\",\"i\":{i}}}"));
            r.publish(data, Some(key.into()), now);
        }
    }

    fn seqs(r: &Replay) -> Vec<u64> {
        r.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn seq_starts_at_one_and_history_is_bounded() {
        let mut r = room(RoomSettings { history_size: 5, ..Default::default() });
        let now = Instant::now();
        assert_eq!(r.publish(Bytes::from_static(b"1"), None, now).seq, 1);
        publish_n(&mut r, 9, now);
        assert_eq!(r.last_seq(), 10);
        assert_eq!(r.history_len(), 5);
    }

    #[test]
    fn since_within_history_replays_exactly_the_rest() {
        let mut r = room(RoomSettings { history_size: 5, ..Default::default() });
        let now = Instant::now();
        publish_n(&mut r, 10, now);
        let rep = r.subscribe(0, Some(7), false, now);
        assert_eq!(rep.last_seq, 10);
        assert_eq!(rep.gap, None);
        assert_eq!(seqs(&rep), vec![8, 9, 10]);
        // The edge: since = first held - 1 is still covered.
        let rep = r.subscribe(0, Some(5), false, now);
        assert_eq!((rep.gap, seqs(&rep)), (None, vec![6, 7, 8, 9, 10]));
        // Up to date: nothing.
        assert!(r.subscribe(1, Some(10), false, now).messages.is_empty());
    }

    #[test]
    fn since_beyond_history_gets_gap_then_all_history() {
        let mut r = room(RoomSettings { history_size: 5, ..Default::default() });
        let now = Instant::now();
        publish_n(&mut r, 10, now);
        let rep = r.subscribe(0, Some(2), false, now);
        assert_eq!(rep.gap, Some((3, 5)));
        assert_eq!(seqs(&rep), vec![6, 7, 8, 9, 10]);
        let rep = r.subscribe(0, Some(0), false, now);
        assert_eq!(rep.gap, Some((1, 5)));
    }

    #[test]
    fn snapshot_gives_latest_per_key_in_seq_order() {
        let mut r = room(RoomSettings { key: Some("id".into()), ..Default::default() });
        let now = Instant::now();
        publish_n(&mut r, 7, now); // keys v0,v1,v2,v0,v1,v2,v0 → latest seqs 5,6,7
        let rep = r.subscribe(0, None, true, now);
        assert_eq!(seqs(&rep), vec![5, 6, 7]);
        assert_eq!(rep.last_seq, 7);
        assert!(r.subscribe(0, None, false, now).messages.is_empty());
    }

    #[test]
    fn snapshot_fills_a_gap_without_duplicates() {
        let mut r = room(RoomSettings { key: Some("id".into()), history_size: 2, ..Default::default() });
        let now = Instant::now();
        publish_n(&mut r, 7, now); // history 6,7; snapshot 5,6,7
        let rep = r.subscribe(0, Some(1), true, now);
        assert_eq!(rep.gap, Some((2, 5)));
        assert_eq!(seqs(&rep), vec![5, 6, 7]);
    }

    /// Found by the `engine_model` fuzz target: the snapshot entries that fill a gap must
    /// still be newer than `since` (the client already has everything up to it).
    #[test]
    fn snapshot_in_a_gap_never_resends_seq_at_or_below_since() {
        let mut r = room(RoomSettings { key: Some("id".into()), history_size: 2, ..Default::default() });
        let now = Instant::now();
        publish_n(&mut r, 6, now); // history 5,6; snapshot v0→4, v1→5, v2→6 (and 1..3 superseded)
        r.publish(Bytes::from_static(b"{}"), Some("old".into()), now); // seq 7, key "old"
        publish_n(&mut r, 2, now); // seqs 8, 9: history 8,9; snapshot v2→6, old→7, v0→8, v1→9
        let rep = r.subscribe(0, Some(6), true, now);
        assert_eq!(rep.gap, Some((7, 7)));
        assert_eq!(seqs(&rep), vec![7, 8, 9], "#6 is the client's own since");
    }

    #[test]
    fn ttl_expires_history_and_snapshot() {
        let ttl = Duration::from_secs(10);
        let mut r =
            room(RoomSettings { key: Some("id".into()), history_ttl: Some(ttl), ..Default::default() });
        let t0 = Instant::now();
        publish_n(&mut r, 3, t0);
        let later = t0 + Duration::from_secs(11);
        let rep = r.subscribe(0, Some(0), true, later);
        assert_eq!(rep.gap, Some((1, 3)));
        assert!(rep.messages.is_empty());
    }

    #[test]
    fn snapshot_keys_are_bounded() {
        let mut r = room(RoomSettings { key: Some("id".into()), max_snapshot_keys: 2, ..Default::default() });
        let now = Instant::now();
        for i in 0..10 {
            r.publish(Bytes::from_static(b"{}"), Some(format!("k{i}").into()), now);
        }
        assert_eq!(seqs(&r.subscribe(0, None, true, now)), vec![9, 10]);
    }

    #[test]
    fn interest_counts_per_shard() {
        let mut r = room(RoomSettings::default());
        let now = Instant::now();
        r.subscribe(1, None, false, now);
        r.subscribe(1, None, false, now);
        assert_eq!(r.interested_shards().collect::<Vec<_>>(), vec![1]);
        r.unsubscribe(1);
        assert_eq!(r.subscribers(), 1);
        r.unsubscribe(1);
        assert_eq!(r.interested_shards().count(), 0);
    }
}
