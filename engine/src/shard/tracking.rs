//! The shard's glue for presence and liveness (issue 11): who each connection is for
//! presence, the owner's timer tick that turns presence changes and silent keys into
//! [`Notice`]s, their fan-out to followers, and `{"op":"presence"}` requests.
//!
//! Invariants: a connection's presence member is fixed for its life (its token's `sub`, or
//! a connection id), so the member an unsubscribe reports is the one its subscribe
//! reported; every subscription the owner admitted with a member is released with the same
//! member exactly once (the shard's subscribe/unsubscribe invariant, see `local`).
//! Notices never wait: they are queued like deliveries, bounded by the owner's tick
//! (`rooms::tracking`'s batch sizes).

use bytes::Bytes;
use std::rc::Weak;
use std::sync::Arc;
use std::time::Instant;

use super::Shard;
use crate::mesh::{Event, Request};
use crate::message::DeliveryMode;
use crate::rooms::Notice;
use crate::subscriber::Subscriber;

/// What [`Shard::on_presence`] registers: `(room, member, joined)`.
pub(super) type PresenceHook = Box<dyn Fn(&str, &str, bool)>;

impl Shard {
    /// Registers `f`, called on a room's owner shard with `(room, member, joined)` whenever
    /// a subscription of *this node* joins or leaves a presence room (cluster mode tells the
    /// other nodes; their changes come back through [`Shard::presence_apply`], which does
    /// not call it).
    pub fn on_presence(&self, f: impl Fn(&str, &str, bool) + 'static) {
        *self.on_presence.borrow_mut() = Some(Box::new(f));
    }

    /// Cluster mode, on `room`'s owner shard: node `node`'s members of `room` are now
    /// `members` (its full state, sent every second; see `rooms::tracking`). A node not
    /// heard from for [`REMOTE_PRESENCE_TTL`](crate::rooms::REMOTE_PRESENCE_TTL) is
    /// dropped, so a dead node's members leave by themselves.
    pub fn presence_apply(&self, room: &str, node: &str, members: Vec<(Box<str>, u32)>) {
        self.registry().presence_remote(room, node, members, Instant::now());
    }

    /// The member `conn` counts as in `room`, if `room` is in a presence namespace: the
    /// name the subscribe gave (`SubOptions::member`, e.g. the token's `sub`), else the
    /// name it gave before, else `c<shard>.<connection id>`. Remembered only for connections that
    /// use presence, so others pay nothing for it.
    pub(super) fn member_for(&self, conn: u64, room: &str, given: Option<&str>) -> Option<Box<str>> {
        if !self.namespaces.for_room(room).presence {
            return None;
        }
        let mut members = self.members.borrow_mut();
        if let Some(g) = given {
            members.insert(conn, g.into());
        }
        Some(members.entry(conn).or_insert_with(|| format!("c{}.{conn}", self.id).into()).clone())
    }

    /// Forgets the connection's member name (when it ends).
    pub(super) fn forget_member(&self, conn: u64) {
        self.members.borrow_mut().remove(&conn);
    }

    /// Owner side: a subscription of `member` was admitted into `room`.
    pub(super) fn owner_joined(&self, room: &str, member: Option<&str>) {
        if let Some(m) = member {
            self.registry().presence_join(room, m, Instant::now());
            if let Some(f) = &*self.on_presence.borrow() {
                f(room, m, true);
            }
        }
    }

    /// Owner side: a subscription of `member` left `room`.
    pub(super) fn owner_left(&self, room: &str, member: Option<&str>) {
        if let Some(m) = member {
            self.registry().presence_leave(room, m, Instant::now());
            if let Some(f) = &*self.on_presence.borrow() {
                f(room, m, false);
            }
        }
    }

    /// Asks `room`'s owner for its presence state on behalf of connection `sub`; the reply
    /// `{"op":"presence",..}` is queued to it.
    pub async fn presence(&self, sub: &Subscriber, room: &str, id: Option<Box<str>>) {
        let owner = super::owner_of(room, self.n);
        if owner == self.id {
            let frame = self.rooms.borrow().presence_state(room, id.as_deref());
            sub.push_ctrl(frame);
        } else {
            let req = Request::Presence { room: room.into(), origin: self.id, conn: sub.id(), id };
            self.send_req(owner, req).await;
        }
    }

    /// Owner side of [`Shard::presence`] for a connection on `origin`.
    pub(super) fn owner_presence(&self, room: &str, origin: usize, conn: u64, id: Option<&str>) {
        let frame = self.rooms.borrow().presence_state(room, id);
        if let Some(q) = &self.ev[origin] {
            q.push(Event::Ctrl { conn, frame }, &self.stats);
        }
    }

    /// A frame for one connection of this shard (a reply computed elsewhere).
    pub(super) fn ctrl_to(&self, conn: u64, frame: Bytes) {
        if let Some(sub) = self.conns.borrow().get(&conn).and_then(Weak::upgrade) {
            sub.push_ctrl(frame);
        }
    }

    /// Owner side, from the housekeeping timer: due presence diffs and offline notices go
    /// to every shard following their rooms. Never waits.
    pub(crate) fn tracking_tick(&self) {
        let mut out = Vec::new();
        self.registry().tick(Instant::now(), &mut out);
        if !out.is_empty() {
            crate::stats::ShardStats::add(&self.stats.notices, out.len() as u64);
        }
        for n in out {
            let n = Arc::new(n);
            for s in n.targets.iter().filter(|&s| s != self.id) {
                if let Some(q) = &self.ev[s] {
                    q.push(Event::Notice(n.clone()), &self.stats);
                }
            }
            if n.targets.contains(self.id) {
                self.notice_local(&n);
            }
        }
    }

    /// A notice to this shard's followers of its room: `/ws` subscribers only (room-per-URL
    /// clients get the exact published bytes and nothing else); a viewport subscriber gets
    /// a key's notice only while its viewport shows the key.
    pub(super) fn notice_local(&self, n: &Notice) {
        let local = self.local.borrow();
        let Some(followers) = local.get(&*n.room) else { return };
        for s in followers.iter().filter(|s| s.mode() == DeliveryMode::Envelope) {
            s.push_ctrl(n.frame.clone());
        }
        if let Some(views) = &followers.views {
            views.borrow().notice(n);
        }
    }
}
