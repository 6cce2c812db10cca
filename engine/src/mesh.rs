//! The typed messages shards exchange, and the channel matrix that carries them.
//!
//! Two independent meshes: **requests** (to a room's owner: publish, subscribe, ...) and
//! **events** (from an owner: deliveries, replies). Handling an event never waits on
//! anything, so the event mesh always drains; handling a request may wait for event-queue
//! space. With one mesh for both, two owners fanning out to each other could each wait on
//! the other's full queue forever.

use bytes::Bytes;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use std::sync::Arc;

use crate::epoch::Epoch;
use crate::geo::BBox;
use crate::message::Message;
use crate::room::Replay;
use crate::rooms::{Notice, TooManyRooms};

/// Who gets told the `seq` a publish was given.
#[derive(Debug)]
pub enum Reply {
    /// Nobody (room-per-URL publishers get no acknowledgement).
    None,
    /// A connection on the publishing shard: it gets an `ok` frame with this `id`.
    Conn { conn: u64, id: Option<Box<str>> },
    /// A task awaiting the seq (HTTP publish).
    Waiter(u64),
}

/// What a publisher learns about its message: its `seq` and the epoch that seq belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The message's sequence number in its room.
    pub seq: u64,
    /// The room's epoch.
    pub epoch: Epoch,
}

/// Public facts about a room, for `GET /api/rooms/<room>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomInfo {
    /// Last sequence number (0 if none).
    pub seq: u64,
    /// Subscribers on all shards.
    pub subscribers: u64,
    /// Messages held in history.
    pub history_len: usize,
    /// The room's epoch; `None` when the room does not exist (asking creates nothing).
    pub epoch: Option<Epoch>,
    /// Whether a subscribe or publish would be admitted now: the room exists, or its owner
    /// has room for one more (the answer may change before the next request).
    pub admits: bool,
}

/// To a room's owner.
#[derive(Debug)]
pub(crate) enum Request {
    Publish {
        room: Box<str>,
        data: Bytes,
        key: Option<Box<str>>,
        origin: usize,
        reply: Reply,
    },
    Subscribe {
        /// The name the subscribing shard files the room under, shared with the owner.
        room: Arc<str>,
        origin: usize,
        token: u64,
        since: Option<u64>,
        epoch: Option<Box<str>>,
        snapshot: bool,
        /// The cluster's epoch for the room, if this creates it (see `SubOptions`).
        room_epoch: Option<Epoch>,
        /// Presence namespaces: who subscribes.
        member: Option<Box<str>>,
    },
    Unsubscribe {
        room: Box<str>,
        origin: usize,
        /// Presence namespaces: who leaves (the member of the subscribe).
        member: Option<Box<str>>,
    },
    /// A viewport pan: the snapshot entries inside `bbox`, answered with `Event::PanReady`.
    View {
        room: Box<str>,
        origin: usize,
        token: u64,
        bbox: BBox,
    },
    /// `{"op":"presence"}` of connection `conn` on `origin`: answered with an `Event::Ctrl`.
    Presence {
        room: Box<str>,
        origin: usize,
        conn: u64,
        id: Option<Box<str>>,
    },
    Info {
        room: Box<str>,
        origin: usize,
        token: u64,
    },
    Barrier,
}

/// From a room's owner.
#[derive(Debug)]
pub(crate) enum Event {
    Deliver(Arc<Message>),
    /// Cluster mode: the room's epoch changed under its followers (sent before the first
    /// message of the new epoch).
    Reset {
        room: Arc<str>,
        epoch: Epoch,
    },
    SubReady {
        token: u64,
        result: Result<Replay, TooManyRooms>,
    },
    PubAck {
        reply: Reply,
        room: Arc<str>,
        result: Result<Receipt, TooManyRooms>,
    },
    Info {
        token: u64,
        info: RoomInfo,
    },
    /// A notice for every follower of a room (presence diff, offline).
    Notice(Arc<Notice>),
    /// The snapshot entries inside a pan's box.
    PanReady {
        token: u64,
        entries: Vec<Arc<Message>>,
    },
    /// A frame for one connection (a presence reply).
    Ctrl {
        conn: u64,
        frame: Bytes,
    },
    Barrier,
}

/// One shard's ends of the matrix: `tx[j]` sends to shard `j`, `rx[j]` receives from it
/// (`None` on the diagonal).
pub(crate) struct Ends<T: Send> {
    pub tx: Vec<Option<SharedSender<T>>>,
    pub rx: Vec<Option<SharedReceiver<T>>>,
}

/// Creates `n × n` bounded single-producer channels and hands each shard its ends.
pub(crate) fn matrix<T: Send + 'static>(n: usize, capacity: usize) -> Vec<Ends<T>> {
    let mut ends: Vec<Ends<T>> = (0..n)
        .map(|_| Ends { tx: (0..n).map(|_| None).collect(), rx: (0..n).map(|_| None).collect() })
        .collect();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let (s, r) = shared_channel::new_bounded(capacity);
                ends[i].tx[j] = Some(s);
                ends[j].rx[i] = Some(r);
            }
        }
    }
    ends
}
