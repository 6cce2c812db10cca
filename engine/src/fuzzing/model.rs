//! `engine_model`: rooms and outboxes driven by a random op sequence, checked against a
//! model simple enough to be obviously right.
//!
//! No executor: the harness plays the owner shard (publish, subscribe, unsubscribe on
//! [`Room`], in the order `shard.rs` does them) and the subscribers' side (pushing into
//! [`Outbox`], the writer taking batches), with a virtual clock for history TTLs. Checked:
//!
//! * **Room**: `seq` is contiguous from 1; history holds exactly the newest `history_size`
//!   messages younger than the TTL; a replay after `since` is exactly the held messages
//!   with `seq > since`, ascending, with a `gap` exactly covering what history lost; the
//!   snapshot is the latest message of each of the most recent keys (at most
//!   `max_snapshot_keys`), never one at or below `since`; interest counts per shard.
//! * **Outbox**: beyond its byte budget it holds at most one message, the gap notices it
//!   announced (at most two per room), the control frames pushed into it and a close
//!   frame; pushes report what they did; a full `take` leaves nothing pending.
//! * **Delivery** (see [`super::client`]): per room in order, no duplicates, no silent
//!   skips under `drop`/`disconnect`, each skipped `seq` announced by a gap before the
//!   next message of that room.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{Client, SubInfo};
use super::Input;
use crate::config::{Policy, RoomSettings};
use crate::epoch::Epoch;
use crate::message::{DeliveryMode, Message};
use crate::outbox::{Outbox, Pushed};
use crate::room::{Replay, Resume, Room};
use crate::{envelope, frame};

const SHARDS: usize = 2;
/// Bounds one input's work, so a long input cannot time the fuzzer out.
const MAX_OPS: usize = 2048;

#[derive(Debug)]
struct Published {
    seq: u64,
    at: Duration,
    key: Option<Box<str>>,
}

struct RoomModel {
    room: Room,
    settings: Arc<RoomSettings>,
    /// Every message ever published, index `seq - 1`.
    published: Vec<Published>,
    interest: [u32; SHARDS],
}

impl RoomModel {
    fn new(i: usize, u: &mut Input) -> Self {
        let ttl = [None, Some(5), Some(20), Some(100)][u.below(4)].map(Duration::from_millis);
        let settings = Arc::new(RoomSettings {
            history_size: u.below(9),
            history_ttl: ttl,
            key: u.bool().then(|| "id".to_owned()),
            policy: [Policy::Drop, Policy::Conflate, Policy::Disconnect][u.below(3)],
            max_snapshot_keys: u.below(5),
            ..RoomSettings::default()
        });
        let name: Arc<str> = format!("room{i}").into();
        RoomModel {
            room: Room::new(name, settings.clone(), Epoch::from_u64(i as u64)),
            settings,
            published: Vec::new(),
            interest: [0; SHARDS],
        }
    }

    fn last_seq(&self) -> u64 {
        self.published.len() as u64
    }

    fn fresh(&self, at: Duration, now: Duration) -> bool {
        self.settings.history_ttl.is_none_or(|ttl| now - at <= ttl)
    }

    /// Seqs history must hold at `now`, ascending.
    fn held(&self, now: Duration) -> Vec<u64> {
        let from = self.published.len().saturating_sub(self.settings.history_size);
        self.published[from..].iter().filter(|p| self.fresh(p.at, now)).map(|p| p.seq).collect()
    }

    /// Seqs the snapshot must hold at `now`, ascending: the latest message of each of the
    /// `max_snapshot_keys` keys published most recently, unless expired.
    fn snapshot(&self, now: Duration) -> Vec<u64> {
        let mut latest: Vec<&Published> = Vec::new();
        for p in self.published.iter().rev().filter(|p| p.key.is_some()) {
            if !latest.iter().any(|q| q.key == p.key) {
                latest.push(p);
            }
        }
        // `max_snapshot_keys` 0 keeps no snapshot at all.
        latest.truncate(self.settings.max_snapshot_keys);
        let mut v: Vec<u64> = latest.iter().filter(|p| self.fresh(p.at, now)).map(|p| p.seq).collect();
        v.sort_unstable();
        v
    }

    fn check_interest(&self) {
        let want: Vec<usize> = (0..SHARDS).filter(|&s| self.interest[s] > 0).collect();
        let mut got: Vec<usize> = self.room.interested_shards().collect();
        got.sort_unstable(); // the room keeps them in no particular order
        assert_eq!(got, want);
        assert_eq!(self.room.subscribers(), self.interest.iter().map(|&n| n as u64).sum::<u64>());
    }

    fn check_replay(&self, since: Option<u64>, snapshot: bool, now: Duration, rep: &Replay) {
        let last = self.last_seq();
        assert_eq!(rep.last_seq, last, "replay edge");
        let got: Vec<u64> = rep.messages.iter().map(|m| m.seq).collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "replay not strictly ascending: {got:?}");
        for m in &rep.messages {
            assert!(m.seq >= 1 && m.seq <= last && *m.room == **self.room.name());
            assert_eq!(m.key, self.published[m.seq as usize - 1].key, "replayed #{} has another key", m.seq);
        }
        let held = self.held(now);
        let first_held = held.first().copied().unwrap_or(last + 1);
        // A `since` ahead of the room belongs to another incarnation: `reset`, then what
        // `since: 0` gives.
        let reset = since.is_some_and(|s| s > last);
        assert_eq!(rep.reset, reset, "since {since:?}, last {last}: reset");
        let since = if reset { Some(0) } else { since };
        match since {
            // Up to date: nothing to resend.
            Some(s) if s >= last => {
                assert!(rep.gap.is_none() && got.is_empty(), "since {s} >= {last}: {got:?}")
            }
            Some(s) => {
                assert!(got.iter().all(|&q| q > s), "since {s}: replay resends {got:?}");
                let want_gap = (s + 1 < first_held).then(|| (s + 1, first_held - 1));
                assert_eq!(rep.gap, want_gap, "since {s}, history {held:?}");
                let hist: Vec<u64> = held.iter().copied().filter(|&q| q > s).collect();
                let (pre, tail) = got.split_at(got.len().saturating_sub(hist.len()));
                assert_eq!(tail, &hist[..], "since {s}: replayed history");
                let snap: Vec<u64> = match want_gap {
                    Some(_) if snapshot => {
                        self.snapshot(now).into_iter().filter(|&q| q > s && q < first_held).collect()
                    }
                    _ => Vec::new(),
                };
                assert_eq!(pre, &snap[..], "since {s}: snapshot entries inside the gap");
            }
            None => {
                assert!(rep.gap.is_none());
                let want = if snapshot { self.snapshot(now) } else { Vec::new() };
                assert_eq!(got, want, "snapshot");
            }
        }
    }
}

struct SubModel {
    outbox: Outbox,
    mode: DeliveryMode,
    budget: usize,
    shard: usize,
    follows: Vec<bool>,
    client: Client,
    /// Bytes of control frames pushed since the queue was last empty: exempt from the budget.
    ctrl_since_empty: usize,
    closed: bool,
}

impl SubModel {
    fn push_ctrl(&mut self, f: Bytes) {
        self.ctrl_since_empty += f.len();
        let p = self.outbox.push_ctrl(f);
        assert!(matches!(p, Pushed::Queued { .. }) || (self.closed && p == Pushed::Closed), "{p:?}");
    }

    /// Fan-out (or replay) of one message, as `Subscriber::push_msg` does it.
    fn push_msg(&mut self, m: &Arc<Message>) {
        let len_before = self.outbox.len();
        match self.outbox.push_msg(m) {
            Pushed::Queued { was_empty } => assert_eq!(was_empty, len_before == 0),
            Pushed::Conflated { removed, .. } => {
                assert!(m.policy == Policy::Conflate && m.key.is_some() && removed > 0)
            }
            Pushed::Dropped => {
                assert!(len_before > 0 && m.policy != Policy::Disconnect, "dropped into an empty queue")
            }
            Pushed::Disconnected => {
                assert!(m.policy == Policy::Disconnect && self.outbox.is_closed() && len_before > 0);
                self.closed = true;
            }
            Pushed::Closed => assert!(self.closed, "push refused by an open outbox"),
            Pushed::Written => panic!("push_msg never writes"),
        }
    }

    fn take(&mut self, max: usize) {
        let mut out = Vec::new();
        let n = self.outbox.take(&mut out, max);
        assert!(out.len() <= max);
        assert_eq!(n, out.iter().map(|e| e.bytes(self.mode).len()).sum::<usize>(), "take's byte count");
        out.iter().for_each(|e| self.client.receive(e));
        // Not `is_empty`: that also counts gap notices not yet queued.
        #[allow(clippy::len_zero)]
        if self.outbox.len() == 0 {
            assert_eq!(self.outbox.queued_bytes(), 0, "empty queue still counts bytes");
            self.ctrl_since_empty = 0;
        }
        if max == usize::MAX {
            assert!(self.outbox.is_empty(), "a full take left gap notices behind");
        }
    }
}

/// The whole harness state: rooms, subscribers, the virtual clock.
struct World {
    base: Instant,
    now: Duration,
    rooms: Vec<RoomModel>,
    subs: Vec<SubModel>,
    /// Largest message frame seen, per delivery mode (the "one message" of the bound).
    longest_msg: [usize; 2],
    gap_max: usize,
    close_max: usize,
}

impl World {
    fn new(u: &mut Input) -> Self {
        let rooms: Vec<RoomModel> = (0..1 + u.below(3)).map(|i| RoomModel::new(i, u)).collect();
        let names: Vec<(Arc<str>, bool)> =
            rooms.iter().map(|r| (r.room.name().clone(), r.settings.policy != Policy::Conflate)).collect();
        let subs = (0..1 + u.below(3))
            .map(|i| {
                let mode = if u.bool() { DeliveryMode::Raw } else { DeliveryMode::Envelope };
                let budget = 32 + 4 * u.byte() as usize;
                SubModel {
                    outbox: Outbox::new(budget, mode),
                    budget,
                    mode,
                    shard: i % SHARDS,
                    follows: vec![false; names.len()],
                    client: Client::new(names.clone(), mode),
                    ctrl_since_empty: 0,
                    closed: false,
                }
            })
            .collect();
        let longest_name = names.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        World {
            base: Instant::now(),
            now: Duration::ZERO,
            rooms,
            subs,
            longest_msg: [0; 2],
            gap_max: envelope::gap_frame(&"r".repeat(longest_name), u64::MAX, u64::MAX).len(),
            close_max: frame::close_frame(1008, "slow consumer").len(),
        }
    }

    fn push_msg(&mut self, s: usize, m: &Arc<Message>) {
        let sub = &mut self.subs[s];
        let i = (sub.mode == DeliveryMode::Raw) as usize;
        self.longest_msg[i] = self.longest_msg[i].max(m.frame_for(sub.mode).len());
        sub.push_msg(m);
    }

    fn publish(&mut self, r: usize, u: &mut Input) {
        let (now, at) = (self.now, self.base + self.now);
        let rm = &mut self.rooms[r];
        let key = [None, Some("k0"), Some("k1"), Some("k2"), Some("k3")][u.below(5)];
        let data = Bytes::from(vec![b'7'; 1 + u.below(128)]);
        let m = rm.room.publish(data, key.map(Into::into), at);
        let next = rm.last_seq() + 1;
        assert_eq!((m.seq, rm.room.last_seq()), (next, next), "seq not contiguous");
        assert_eq!(m.key.as_deref(), key.filter(|_| rm.settings.key.is_some()));
        assert!(m.at == at && *m.room == **rm.room.name());
        rm.published.push(Published { seq: m.seq, at: now, key: m.key.clone() });
        assert_eq!(rm.room.history_len(), rm.held(now).len(), "history after publish");
        for s in 0..self.subs.len() {
            if self.subs[s].follows[r] && !self.subs[s].closed {
                self.push_msg(s, &m);
            }
        }
    }

    /// What `Shard::subscribe` and `on_sub_ready` do, with an `ok` acknowledgement.
    fn subscribe(&mut self, r: usize, s: usize, u: &mut Input) {
        let last = self.rooms[r].last_seq();
        let since = match u.below(5) {
            0 | 1 => None,
            2 | 3 => Some(u.byte() as u64 % (last + 3)),
            _ => Some(u64::MAX - u.below(2) as u64),
        };
        let snapshot = u.bool();
        let (rm, sub) = (&mut self.rooms[r], &mut self.subs[s]);
        if sub.follows[r] {
            // Subscribing again to a followed room starts over.
            rm.room.unsubscribe(sub.shard);
            rm.interest[sub.shard] -= 1;
        }
        let resume = Resume { since, epoch: None, snapshot };
        let rep = rm.room.subscribe(sub.shard, resume, self.base + self.now);
        rm.interest[sub.shard] += 1;
        sub.follows[r] = true;
        rm.check_replay(since, snapshot, self.now, &rep);
        let name = rm.room.name().clone();
        sub.push_ctrl(envelope::ok_frame(None, Some(&name), Some(rep.last_seq)));
        if let Some((from, to)) = rep.gap {
            sub.push_ctrl(envelope::gap_frame(&name, from, to));
        }
        // After a reset the client starts over from 0 (the harness leaves the reset notice
        // itself out: the client model checks what follows it).
        let since = if rep.reset { Some(0) } else { since };
        sub.client.expect_sub(r, SubInfo { since, last_seq: rep.last_seq, replay_gap: rep.gap });
        for m in &rep.messages {
            self.push_msg(s, m);
        }
    }

    /// `Shard::unsubscribe` plus the `ok` the session sends for it.
    fn unsubscribe(&mut self, r: usize, s: usize) {
        let (rm, sub) = (&mut self.rooms[r], &mut self.subs[s]);
        rm.room.unsubscribe(sub.shard);
        rm.interest[sub.shard] -= 1;
        sub.follows[r] = false;
        sub.push_ctrl(envelope::ok_frame(None, Some(rm.room.name()), None));
    }

    /// After every op: closed sessions leave their rooms; budgets and interest hold.
    fn settle(&mut self) {
        for sub in self.subs.iter_mut() {
            if sub.closed {
                // The session ends: `remove_subscriber` leaves every room.
                for (r, f) in sub.follows.iter_mut().enumerate().filter(|(_, f)| **f) {
                    self.rooms[r].room.unsubscribe(sub.shard);
                    self.rooms[r].interest[sub.shard] -= 1;
                    *f = false;
                }
            }
            let one_msg = self.longest_msg[(sub.mode == DeliveryMode::Raw) as usize];
            let extra = 2 * self.rooms.len() * self.gap_max + self.close_max + sub.ctrl_since_empty;
            let bound = sub.budget.max(one_msg) + extra;
            assert!(
                sub.outbox.queued_bytes() <= bound,
                "outbox holds {} > {bound}",
                sub.outbox.queued_bytes()
            );
        }
        self.rooms.iter().for_each(RoomModel::check_interest);
    }
}

/// Runs one op sequence; panics on the first broken invariant.
pub fn engine_model(data: &[u8]) {
    let mut u = Input::new(data);
    let mut w = World::new(&mut u);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let (r, s) = (u.below(w.rooms.len()), u.below(w.subs.len()));
        let open = !w.subs[s].closed;
        match u.below(8) {
            0 | 1 => w.publish(r, &mut u),
            2 if open => w.subscribe(r, s, &mut u),
            3 if open && w.subs[s].follows[r] => w.unsubscribe(r, s),
            4 | 5 => w.subs[s].take([0, 1, 2, 4, 16, usize::MAX][u.below(6)]),
            6 => w.now += Duration::from_millis(u.byte() as u64 * if u.bool() { 10 } else { 1 }),
            7 if u.bool() => {
                let (rm, now) = (&mut w.rooms[r], w.now);
                rm.room.expire(w.base + now);
                assert_eq!(rm.room.history_len(), rm.held(now).len(), "history after expire");
            }
            7 if open => {
                w.subs[s].outbox.close(1000, "", u.bool());
                w.subs[s].closed = true;
            }
            _ => {}
        }
        w.settle();
    }
    for sub in w.subs.iter_mut() {
        sub.take(usize::MAX);
        for (r, rm) in w.rooms.iter().enumerate() {
            sub.client.finish(r, rm.last_seq());
        }
    }
}
