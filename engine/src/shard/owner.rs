//! The owner side of a shard: the rooms that hash to it ([`Registry`]) and the requests
//! other shards send about them (publish, subscribe, unsubscribe, info).
//!
//! Invariant (issue 7, bug c): between assigning a message its `seq` and queueing every
//! delivery of it — the publisher's acknowledgement, each interested peer's `Deliver`,
//! the local fan-out — nothing waits. Everything is queued synchronously, in that order,
//! and only then does the owner wait for the peers' queues to have room (backpressure).
//! An await in between would let the shard run other tasks holding a sequenced but
//! undelivered message, and would make a publish's latency depend on an unrelated queue.

use bytes::Bytes;
use std::time::Instant;

use super::Shard;
use crate::mesh::{Event, Receipt, Reply, Request, RoomInfo};
use crate::room::Resume;
use crate::rooms::{Registry, ShardSet, TooManyRooms};
use crate::stats::ShardStats;

/// Most idle rooms one sweep forgets: a sweep runs every housekeeping tick (20 ms), so a
/// large backlog of expired rooms is freed over many short steps instead of one long
/// stall of the shard.
const SWEEP_BATCH: usize = 128;

impl Shard {
    pub(super) fn registry(&self) -> std::cell::RefMut<'_, Registry> {
        self.rooms.borrow_mut()
    }

    /// Sequences a message of a room this shard owns and queues everything it causes,
    /// without waiting (see the module invariant). Returns the peers whose event queues
    /// got something, for [`Shard::wait_for_room`].
    pub(super) fn owner_publish(
        &self,
        room: &str,
        data: Bytes,
        key: Option<Box<str>>,
        origin: usize,
        reply: Reply,
    ) -> ShardSet {
        let mut pushed = ShardSet::default();
        let published = self.registry().publish(room, data, key, Instant::now());
        let p = match published {
            Ok(p) => p,
            Err(e) => {
                self.acknowledge(origin, reply, room.into(), Err(e), &mut pushed);
                return pushed;
            }
        };
        ShardStats::add(&self.stats.published, 1);
        let receipt = Receipt { seq: p.msg.seq, epoch: p.epoch };
        self.acknowledge(origin, reply, p.msg.room.clone(), Ok(receipt), &mut pushed);
        self.fan_out(&p, &mut pushed);
        pushed
    }

    /// Queues `p`'s message for every interested peer (noting in `pushed` whose queue got
    /// it) and delivers it to this shard's followers, without waiting.
    fn fan_out(&self, p: &crate::rooms::Published, pushed: &mut ShardSet) {
        for s in p.targets.iter().filter(|&s| s != self.id) {
            if let Some(q) = &self.ev[s] {
                if q.push(Event::Deliver(p.msg.clone()), &self.stats) {
                    pushed.insert(s);
                }
            }
        }
        if p.targets.contains(self.id) {
            self.deliver_local(&p.msg);
        }
    }

    fn acknowledge(
        &self,
        origin: usize,
        reply: Reply,
        room: std::sync::Arc<str>,
        result: Result<Receipt, TooManyRooms>,
        pushed: &mut ShardSet,
    ) {
        match reply {
            Reply::None => {
                if result.is_err() {
                    tracing::debug!(room = &*room, "publish refused: too many rooms");
                }
            }
            reply if origin == self.id => self.on_pub_ack(reply, &room, result),
            reply => {
                if let Some(q) = &self.ev[origin] {
                    if q.push(Event::PubAck { reply, room, result }, &self.stats) {
                        pushed.insert(origin);
                    }
                }
            }
        }
    }

    /// Cluster mode: records message `seq` of `room` (epoch `epoch`), sequenced by the
    /// cluster and published `age` ago (the history TTL counts from then), and delivers it to every follower on every shard of this node, like a
    /// local publish but with the cluster's numbering. Returns `Ok(false)` for a duplicate.
    /// Call it on the room's owner shard ([`owner_of`](super::owner_of)); it waits only
    /// for full peer queues, like a publish.
    pub async fn apply(
        &self,
        room: &str,
        epoch: crate::Epoch,
        seq: u64,
        data: Bytes,
        key: Option<Box<str>>,
        age: std::time::Duration,
    ) -> Result<bool, TooManyRooms> {
        debug_assert_eq!(super::owner_of(room, self.n), self.id, "apply runs on the room's owner");
        let now = Instant::now();
        let at = now.checked_sub(age).unwrap_or(now);
        let Some(p) = self.registry().apply(room, epoch, seq, data, key, at, now)? else {
            return Ok(false);
        };
        ShardStats::add(&self.stats.published, 1);
        let mut pushed = ShardSet::default();
        if p.reset {
            for s in p.targets.iter().filter(|&s| s != self.id) {
                if let Some(q) = &self.ev[s] {
                    q.push(Event::Reset { room: p.msg.room.clone(), epoch: p.epoch }, &self.stats);
                }
            }
            if p.targets.contains(self.id) {
                self.reset_local(&p.msg.room, p.epoch);
            }
        }
        self.fan_out(&p, &mut pushed);
        self.wait_for_room(pushed).await;
        Ok(true)
    }

    /// Cluster mode: records a snapshot entry of `room` (published `age` ago) older than what
    /// this node holds
    /// (see [`crate::room::Room::seed`]); delivers nothing. Call it on the room's owner
    /// shard, before the history it precedes.
    pub fn seed(
        &self,
        room: &str,
        epoch: crate::Epoch,
        seq: u64,
        data: Bytes,
        key: Box<str>,
        age: std::time::Duration,
    ) -> Result<bool, TooManyRooms> {
        debug_assert_eq!(super::owner_of(room, self.n), self.id, "seed runs on the room's owner");
        let now = Instant::now();
        self.registry().seed(room, epoch, seq, data, key, now.checked_sub(age).unwrap_or(now), now)
    }

    /// Waits until every peer in `peers` has room in its event queue again: the
    /// backpressure a fast publisher feels, applied after its message is fully queued.
    pub(super) async fn wait_for_room(&self, peers: ShardSet) {
        for s in peers.iter() {
            if let Some(q) = &self.ev[s] {
                q.room(&self.stats).await;
            }
        }
    }

    /// Facts about a room this shard owns.
    pub(super) fn owner_info(&self, room: &str) -> RoomInfo {
        self.rooms.borrow().info(room, Instant::now())
    }

    /// Forgets idle rooms whose TTL has passed, a bounded batch per call (see
    /// [`SWEEP_BATCH`]); called from the shard's housekeeping timer.
    pub(crate) fn sweep_rooms(&self) {
        self.registry().sweep(Instant::now(), SWEEP_BATCH);
    }

    pub(crate) async fn handle_request(&self, req: Request) {
        match req {
            Request::Publish { room, data, key, origin, reply } => {
                let peers = self.owner_publish(&room, data, key, origin, reply);
                self.wait_for_room(peers).await;
            }
            Request::Subscribe { room, origin, token, since, epoch, snapshot, room_epoch, member } => {
                let from = Resume { since, epoch: epoch.as_deref(), snapshot };
                let now = Instant::now();
                let result = self.registry().subscribe_as(&room, origin, from, room_epoch, now);
                if result.is_ok() {
                    self.owner_joined(&room, member.as_deref());
                }
                self.send_ev(origin, Event::SubReady { token, result }).await;
            }
            Request::Unsubscribe { room, origin, member } => {
                self.owner_left(&room, member.as_deref());
                self.registry().unsubscribe(&room, origin, Instant::now())
            }
            Request::View { room, origin, token, bbox } => self.owner_view(&room, origin, token, &bbox),
            Request::Presence { room, origin, conn, id } => {
                self.owner_presence(&room, origin, conn, id.as_deref())
            }
            Request::Info { room, origin, token } => {
                let info = self.owner_info(&room);
                self.send_ev(origin, Event::Info { token, info }).await;
            }
            Request::Barrier => self.note_barrier(true),
        }
    }
}
