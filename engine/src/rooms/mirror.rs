//! Cluster mode: rooms whose sequence is kept elsewhere (the broker's log), mirrored here.
//!
//! In a cluster every node holds, for each room it has subscribers for, a local copy of the
//! room: its epoch, its last `seq`, a bounded history and snapshot. Nothing here assigns a
//! `seq`; messages arrive already sequenced ([`Registry::apply`]) and the local copy only
//! moves forward. Replays, gaps, resets and the budget then work exactly as on one node.
//!
//! Invariants (on top of the registry's): a mirrored room's `seq` never decreases; its
//! history stays contiguous (a jump past the next `seq` restarts history at the new
//! message, so a resume from before it gets an explicit `gap`, never a silent hole); a
//! room created here by a mirrored message or a cluster subscribe carries the cluster's
//! epoch, never one drawn locally.

use bytes::Bytes;
use std::time::Instant;

use super::{Published, Registry, TooManyRooms};
use crate::epoch::Epoch;
use crate::room::Room;

impl Registry {
    /// Records message `seq` of `name` in epoch `epoch`, sequenced by the cluster and
    /// published at `at` (the history TTL counts from then), creating
    /// the room if needed. Returns where it goes, or `None` for a duplicate (a `seq` this
    /// node already holds). A room that holds another epoch is replaced by the cluster's
    /// incarnation when nobody here follows it; when somebody does, the local copy adopts
    /// the new epoch from this message on (its history restarts) and the result says
    /// `reset`: its followers must hear of it before this message.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        name: &str,
        epoch: Epoch,
        seq: u64,
        data: Bytes,
        key: Option<Box<str>>,
        at: Instant,
        now: Instant,
    ) -> Result<Option<Published>, TooManyRooms> {
        let followed = self.get(name).is_some_and(|r| r.epoch() != epoch && r.subscribers() > 0);
        let i = self.mirror_slot(name, epoch, now)?;
        let room = self.slab.room_mut(i);
        let before = room.retained();
        let Some(msg) = room.publish_at(seq, data, key, at, now) else { return Ok(None) };
        Ok(Some(Published { reset: followed, ..self.published(i, before, msg, now) }))
    }

    /// Records a snapshot entry of `name` (epoch `epoch`) older than what this node holds
    /// (see [`Room::seed`]), creating the room if needed. Returns whether it was taken.
    #[allow(clippy::too_many_arguments)]
    pub fn seed(
        &mut self,
        name: &str,
        epoch: Epoch,
        seq: u64,
        data: Bytes,
        key: Box<str>,
        at: Instant,
        now: Instant,
    ) -> Result<bool, TooManyRooms> {
        let i = self.mirror_slot(name, epoch, now)?;
        let room = self.slab.room_mut(i);
        let before = room.retained();
        let taken = room.seed(seq, data, key, at, now);
        let after = room.retained();
        self.account(before, after);
        if self.slab.is_idle(i) {
            self.slab.touch(i, self.ms(now));
        }
        self.enforce_budget(i);
        Ok(taken)
    }

    /// The slot of `name` in the cluster's `epoch`, created if needed (see [`Registry::apply`]
    /// for a room that holds another epoch).
    fn mirror_slot(&mut self, name: &str, epoch: Epoch, now: Instant) -> Result<u32, TooManyRooms> {
        let mut i = self.find_or_create(name, None, Some(epoch), now)?;
        if self.slab.room(i).epoch() != epoch {
            if self.slab.room(i).subscribers() == 0 {
                self.remove(i);
                i = self.find_or_create(name, None, Some(epoch), now)?;
            } else {
                tracing::warn!(room = name, "the cluster changed the epoch of a followed room");
                let before = self.slab.room(i).retained();
                let old = self.slab.room_mut(i);
                let fresh = Room::new(old.name().clone(), old.settings().clone(), epoch);
                let old = std::mem::replace(old, fresh);
                self.slab.room_mut(i).adopt_interest(old);
                self.account(before, 0);
            }
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Namespaces, RoomLimits, RoomSettings};
    use crate::epoch::EpochRng;
    use crate::room::Resume;
    use std::sync::Arc;

    fn registry() -> Registry {
        let ns = Namespaces::new(RoomSettings { history_size: 4, ..Default::default() });
        let limits = RoomLimits { max_rooms: 10, ..RoomLimits::default() };
        Registry::new(ns, limits, EpochRng::with_seed(7), Arc::default())
    }

    fn data(n: u64) -> Bytes {
        Bytes::from(n.to_string())
    }

    #[test]
    fn applied_messages_keep_the_cluster_seq_and_epoch_and_drop_duplicates() {
        let mut r = registry();
        let e = Epoch::from_u64(99);
        let now = Instant::now();
        let p = r.apply("a", e, 1, data(1), None, now, now).unwrap().unwrap();
        assert_eq!((p.msg.seq, p.epoch), (1, e));
        assert!(r.apply("a", e, 1, data(1), None, now, now).unwrap().is_none(), "duplicate");
        let p = r.apply("a", e, 2, data(2), None, now, now).unwrap().unwrap();
        assert_eq!(p.msg.seq, 2);
        assert_eq!(r.get("a").unwrap().epoch(), e);
    }

    #[test]
    fn a_jump_restarts_history_so_an_older_resume_gets_a_gap() {
        let mut r = registry();
        let e = Epoch::from_u64(5);
        let now = Instant::now();
        for s in 1..=3 {
            r.apply("a", e, s, data(s), None, now, now).unwrap();
        }
        r.apply("a", e, 10, data(10), None, now, now).unwrap();
        let room = r.get("a").unwrap();
        assert_eq!((room.last_seq(), room.history_len()), (10, 1));
        let from = Resume { since: Some(2), epoch: Some(e.as_str()), snapshot: false };
        let replay = r.subscribe("a", 0, from, now).unwrap();
        assert_eq!(replay.gap, Some((3, 9)));
        assert_eq!(replay.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn a_message_older_than_the_history_ttl_advances_the_seq_but_is_not_kept() {
        let ttl = std::time::Duration::from_secs(60);
        let ns = Namespaces::new(RoomSettings { history_ttl: Some(ttl), ..Default::default() });
        let mut r = Registry::new(ns, RoomLimits::default(), EpochRng::with_seed(7), Arc::default());
        let (e, now) = (Epoch::from_u64(8), Instant::now());
        let old = now.checked_sub(2 * ttl).unwrap();
        r.apply("t", e, 4, data(4), None, old, now).unwrap();
        r.apply("t", e, 5, data(5), None, now, now).unwrap();
        let room = r.get("t").unwrap();
        assert_eq!((room.last_seq(), room.history_len()), (5, 1));
        assert_eq!(r.retained(), room.retained());
    }

    #[test]
    fn a_subscribe_that_creates_the_room_uses_the_cluster_epoch() {
        let mut r = registry();
        let e = Epoch::from_u64(1234);
        let from = Resume { since: None, epoch: None, snapshot: false };
        let replay = r.subscribe_as(&"b".into(), 0, from, Some(e), Instant::now()).unwrap();
        assert_eq!((replay.epoch, replay.last_seq), (e, 0));
    }

    #[test]
    fn seeded_keys_older_than_history_make_the_snapshot() {
        let ns =
            Namespaces::new(RoomSettings { history_size: 2, key: Some("id".into()), ..Default::default() });
        let mut r = Registry::new(ns, RoomLimits::default(), EpochRng::with_seed(7), Arc::default());
        let (e, now) = (Epoch::from_u64(8), Instant::now());
        assert!(r.seed("f", e, 3, data(3), "a".into(), now, now).unwrap());
        assert!(r.seed("f", e, 5, data(5), "b".into(), now, now).unwrap());
        assert!(!r.seed("f", e, 4, data(4), "c".into(), now, now).unwrap(), "not ascending: skipped");
        r.apply("f", e, 9, data(9), Some("b".into()), now, now).unwrap();
        r.apply("f", e, 10, data(10), Some("d".into()), now, now).unwrap();
        let from = Resume { since: None, epoch: None, snapshot: true };
        let replay = r.subscribe("f", 0, from, now).unwrap();
        let seqs: Vec<u64> = replay.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![3, 9, 10], "a from the seed, b and d from history");
        assert_eq!(replay.last_seq, 10);
        assert_eq!(r.retained(), r.get("f").unwrap().retained());
    }

    #[test]
    fn another_epoch_replaces_an_unfollowed_room_and_is_adopted_by_a_followed_one() {
        let mut r = registry();
        let (e1, e2) = (Epoch::from_u64(1), Epoch::from_u64(2));
        let now = Instant::now();
        r.apply("a", e1, 7, data(7), None, now, now).unwrap();
        let p = r.apply("a", e2, 1, data(1), None, now, now).unwrap().unwrap();
        assert_eq!((p.msg.seq, p.epoch, p.reset), (1, e2, false), "nobody followed it");
        let from = Resume { since: None, epoch: None, snapshot: false };
        r.subscribe("a", 3, from, now).unwrap();
        let e3 = Epoch::from_u64(3);
        let p = r.apply("a", e3, 1, data(1), None, now, now).unwrap().unwrap();
        assert_eq!((p.epoch, p.reset), (e3, true));
        assert!(p.targets.contains(3), "the followers stay");
        assert_eq!(r.retained(), r.get("a").unwrap().retained());
    }
}
