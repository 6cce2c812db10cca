//! One shard: the state a core owns and the operations connections call on it.
//!
//! A shard has two roles, each in its own module:
//! - **owner** (`owner.rs`) of the rooms that hash to it ([`owner_of`]): their registry and
//!   lifecycle ([`crate::rooms::Registry`]), sequencing, history, snapshot, and which shards
//!   want them;
//! - **host** (`local.rs`) of the connections it accepted: `room → local followers`, fan-out,
//!   and the replies owners send back.
//!
//! This module holds the state and the API connections call ([`Shard::publish`],
//! [`Shard::subscribe_with`] and friends); replies and messages arrive in the connection's
//! outbox. Everything is `Rc`/`RefCell`; other cores are reached only by typed messages
//! (see [`mesh`](crate::mesh)), whose per-peer order is what makes "replay, then live from
//! `last_seq + 1`" exact. `coalesce.rs` batches writes while the shard is busy.

use bytes::Bytes;
use glommio::channels::local_channel;
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::hash::BuildHasher;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Namespaces, RoomLimits};
use crate::epoch::{Epoch, EpochRng};
use crate::error::EngineError;
use crate::mesh::{Event, Receipt, Reply, Request, RoomInfo};
use crate::message::DeliveryMode;
use crate::outq::OutQueue;
use crate::room::Resume;
use crate::rooms::Registry;
use crate::stats::{ShardStats, Stats};
use crate::stop::LocalStop;
use crate::subscriber::{SubState, Subscriber};

mod coalesce;
mod filters;
mod local;
mod owner;
mod tracking;
mod views;

pub use filters::{ViewRefused, MAX_FILTERED};
pub use views::{ViewSpec, MAX_VIEW_KEYS, PAN_BURST, PAN_RATE};

pub use coalesce::Cork;
use local::Followers;

/// Whether a subscribe is acknowledged with an `ok` frame.
#[derive(Debug, Clone)]
pub enum Ack {
    /// No reply (room-per-URL connections join silently); a refusal closes the connection
    /// (1013 `too_many_rooms`), since it has no other room.
    Silent,
    /// Reply `{"op":"ok","id":..,"room":..,"seq":<last>,"epoch":..}`, or an `error` op.
    Ok(Option<Box<str>>),
}

/// How a subscription starts (the `sub` op's options).
#[derive(Debug, Clone, Default)]
pub struct SubOptions {
    /// Replay `seq > since` from history (a `gap` notice for what history lost).
    pub since: Option<u64>,
    /// The epoch `since` belongs to; another epoch than the room's earns a `reset`.
    pub epoch: Option<Box<str>>,
    /// Deliver the latest message per key first.
    pub snapshot: bool,
    /// Cluster mode: the epoch the cluster agreed on for this room, given to the room if
    /// this subscribe creates it here (`None`: a new epoch from the owner's generator).
    pub room_epoch: Option<Epoch>,
    /// A viewport and/or pacing for this subscription (`/ws` only).
    pub view: Option<Box<ViewSpec>>,
    /// Presence namespaces: who this connection is (its token's `sub`); default `c<shard>.<id>`.
    pub member: Option<Box<str>>,
}

impl SubOptions {
    fn resume(&self) -> Resume<'_> {
        Resume { since: self.since, epoch: self.epoch.as_deref(), snapshot: self.snapshot }
    }
}

struct PendingSub {
    sub: Weak<Subscriber>,
    room: Arc<str>,
    ack: Ack,
    /// The connection left the room (or subscribed again) before the owner answered: the
    /// answer only releases what the owner counted.
    cancelled: bool,
    /// Presence: the member the owner counts this subscription as.
    member: Option<Box<str>>,
    /// The subscription's filter.
    view: Option<Box<ViewSpec>>,
}

enum Waiting {
    Seq(local_channel::LocalSender<Result<Receipt, EngineError>>),
    Info(local_channel::LocalSender<RoomInfo>),
    Pan(Box<filters::PanWait>),
}

/// What [`Shard::on_subscription_end`] registers.
type SubscriptionEnd = Box<dyn Fn(&str)>;

/// Which shard owns `room`: a stable hash, the same on every shard.
pub fn owner_of(room: &str, shards: usize) -> usize {
    // FxHasher with a fixed seed: identical on every core and every run.
    (rustc_hash::FxBuildHasher.hash_one(room) % shards as u64) as usize
}

/// See the module documentation.
pub struct Shard {
    id: usize,
    n: usize,
    namespaces: Namespaces,
    outbox_bytes: usize,
    /// Owner side: the rooms that hash to this shard.
    rooms: RefCell<Registry>,
    /// Host side: followers per room, for fan-out.
    local: RefCell<FxHashMap<Arc<str>, Followers>>,
    conns: RefCell<FxHashMap<u64, Weak<Subscriber>>>,
    /// Paced deliveries to visit: (due, room, connection); see `filters`.
    paced: RefCell<filters::PaceHeap>,
    /// Presence names of connections that were given one ([`Shard::set_member`]).
    members: RefCell<FxHashMap<u64, Box<str>>>,
    pending: RefCell<FxHashMap<u64, PendingSub>>,
    waiting: RefCell<FxHashMap<u64, Waiting>>,
    next_id: Cell<u64>,
    req: Vec<Option<Rc<OutQueue<Request>>>>,
    ev: Vec<Option<Rc<OutQueue<Event>>>>,
    barriers: Cell<(usize, usize)>,
    /// While non-zero, fan-out queues instead of writing through, so a burst of messages
    /// leaves as one write per subscriber (see [`Shard::cork`]).
    cork: Cell<u32>,
    /// Plain followers whose queue a corked fan-out made non-empty, without waking their
    /// writers: the shard's flusher writes them (see [`Shard::cork`]). Only a push onto an
    /// empty queue lists a follower, so each is listed at most once per drain of its queue.
    corked: RefCell<Vec<Rc<Subscriber>>>,
    /// The flusher's waker while it is parked, and whether it runs at all (a shard driven
    /// without the runtime, as in unit tests, wakes the writers instead).
    flusher: RefCell<Option<std::task::Waker>>,
    flusher_alive: Cell<bool>,
    /// The coalescing window in force: `coalesce_max` while this shard is busy, else zero
    /// (see [`Shard::adapt_coalescing`]).
    coalesce: Cell<Duration>,
    /// Samples in a row that found the shard quiet while the window was open.
    coalesce_quiet: Cell<u8>,
    coalesce_max: Duration,
    /// The task queue for everything that handles client input (see
    /// [`EngineConfig::preempt`](crate::EngineConfig::preempt)).
    input_queue: glommio::TaskQueueHandle,
    cpu_sample: Cell<Option<(Instant, Duration)>>,
    barrier_wake: RefCell<Vec<std::task::Waker>>,
    /// Called with a room whenever a subscription made on this shard ends (see
    /// [`Shard::on_subscription_end`]).
    on_end: RefCell<Option<SubscriptionEnd>>,
    /// Called by the owner with (room, member, joined) for this node's presence changes
    /// (see [`Shard::on_presence`]).
    on_presence: RefCell<Option<tracking::PresenceHook>>,
    stats: Arc<ShardStats>,
    all_stats: Arc<[Arc<ShardStats>]>,
    pub(crate) stop: LocalStop,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        limits: RoomLimits,
        namespaces: Namespaces,
        outbox_bytes: usize,
        coalesce_max: Duration,
        preempt: Duration,
        req: Vec<Option<Rc<OutQueue<Request>>>>,
        ev: Vec<Option<Rc<OutQueue<Event>>>>,
        all_stats: Arc<[Arc<ShardStats>]>,
    ) -> Self {
        let n = all_stats.len();
        let stats = all_stats[id].clone();
        let rooms = Registry::new(namespaces.clone(), limits, EpochRng::for_shard(id), stats.clone());
        Shard {
            id,
            n,
            namespaces,
            outbox_bytes,
            rooms: RefCell::new(rooms),
            local: RefCell::default(),
            conns: RefCell::default(),
            members: RefCell::default(),
            paced: RefCell::default(),
            pending: RefCell::default(),
            waiting: RefCell::default(),
            next_id: Cell::new(1),
            req,
            ev,
            barriers: Cell::new((0, 0)),
            cork: Cell::new(0),
            corked: RefCell::default(),
            flusher: RefCell::default(),
            flusher_alive: Cell::new(false),
            coalesce: Cell::new(Duration::ZERO),
            coalesce_quiet: Cell::new(0),
            coalesce_max,
            input_queue: glommio::executor().create_task_queue(
                glommio::Shares::default(),
                glommio::Latency::Matters(preempt),
                "input",
            ),
            cpu_sample: Cell::new(None),
            barrier_wake: RefCell::default(),
            on_end: RefCell::default(),
            on_presence: RefCell::default(),
            stats,
            all_stats,
            stop: LocalStop::default(),
        }
    }

    /// The task queue for tasks that handle client input: while any of them is runnable the
    /// shard polls for I/O at least every `preempt`, and their loops yield when it asks
    /// (`glommio::yield_if_needed`). Spawn connection tasks into it.
    pub fn input_queue(&self) -> glommio::TaskQueueHandle {
        self.input_queue
    }

    /// Registers `f`, called with the room each time a subscription made on this shard
    /// ends: unsubscribed, its connection gone, or refused by the room's owner. Every
    /// [`Shard::subscribe_with`] call ends exactly once this way, so a caller that counts
    /// something per subscription (cluster mode: this node's interest in a room) can give
    /// it back. `f` must not call into the shard.
    pub fn on_subscription_end(&self, f: impl Fn(&str) + 'static) {
        *self.on_end.borrow_mut() = Some(Box::new(f));
    }

    fn subscription_ended(&self, room: &str) {
        if let Some(f) = &*self.on_end.borrow() {
            f(room);
        }
    }

    /// This shard's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.n
    }

    /// Room settings by namespace.
    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// Counters summed over all shards.
    pub fn stats(&self) -> Stats {
        crate::stats::sum(&self.all_stats)
    }

    /// Counters of each shard, by index.
    pub fn stats_per_shard(&self) -> Vec<Stats> {
        self.all_stats.iter().map(|s| s.snapshot()).collect()
    }

    /// Completes when the engine is asked to stop.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.stop.wait()
    }

    /// Whether the engine is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stop.fired()
    }

    fn next(&self) -> u64 {
        let v = self.next_id.get();
        self.next_id.set(v + 1);
        v
    }

    /// Registers a new connection on this shard.
    pub fn new_subscriber(&self, mode: DeliveryMode) -> Rc<Subscriber> {
        let sub = Rc::new(Subscriber::new(self.next(), mode, self.outbox_bytes));
        self.conns.borrow_mut().insert(sub.id(), Rc::downgrade(&sub));
        ShardStats::add(&self.stats.subscribers, 1);
        sub
    }

    /// The connection `id`, while it lives.
    pub fn subscriber(&self, id: u64) -> Option<Rc<Subscriber>> {
        self.conns.borrow().get(&id).and_then(Weak::upgrade)
    }

    /// Every connection on this shard, weakly: one that ends while the caller works through
    /// the list frees its subscriber (and what it had queued) at once, not when the caller
    /// is done. The server's keep-alive sweep and its shutdown walk this; the shard keeps no
    /// other list of connections.
    pub fn subscribers(&self) -> Vec<Weak<Subscriber>> {
        self.conns.borrow().values().cloned().collect()
    }

    /// Forgets a connection: leaves all its rooms. Call once, when it ends.
    pub async fn remove_subscriber(&self, sub: &Rc<Subscriber>) {
        let rooms: Vec<Arc<str>> = sub.rooms.borrow().names();
        for room in rooms {
            self.unsubscribe(sub, &room).await;
        }
        self.conns.borrow_mut().remove(&sub.id());
        self.forget_member(sub.id());
        ShardStats::sub(&self.stats.subscribers, 1);
    }

    /// Follows `room` from `since` (no epoch); see [`Shard::subscribe_with`].
    pub async fn subscribe(
        &self,
        sub: &Rc<Subscriber>,
        room: &str,
        since: Option<u64>,
        snapshot: bool,
        ack: Ack,
    ) {
        self.subscribe_with(sub, room, SubOptions { since, snapshot, ..SubOptions::default() }, ack).await
    }

    /// Follows `room`: the owner admits the subscription (creating the room if the room
    /// limit allows) and computes the replay and the live edge; the subscriber then
    /// receives the optional `ok`, a `reset` notice if its `since`/`epoch` belong to another
    /// incarnation of the room, a `gap` notice if history no longer covers `since`, the
    /// replay, and every later message, each exactly once. Subscribing again to a followed
    /// room starts over with the new options.
    pub async fn subscribe_with(&self, sub: &Rc<Subscriber>, room: &str, opts: SubOptions, ack: Ack) {
        if sub.follows(room) {
            self.unsubscribe(sub, room).await;
        }
        let token = self.next();
        // The name the room's local followers are filed under, if it has any: every
        // subscriber keeps its rooms' names for its whole life, and a shared room's name
        // shared costs nothing per subscriber (a copy costs the name plus ~20 bytes).
        let name: Arc<str> =
            self.local.borrow().get_key_value(room).map_or_else(|| Arc::from(room), |(k, _)| k.clone());
        sub.rooms.borrow_mut().insert(name.clone(), SubState::Pending(token));
        ShardStats::add(&self.stats.subscriptions, 1);
        let member = self.member_for(sub.id(), room, opts.member.as_deref());
        let pending = PendingSub {
            sub: Rc::downgrade(sub),
            room: name.clone(),
            ack,
            cancelled: false,
            member: member.clone(),
            view: opts.view.clone(),
        };
        self.pending.borrow_mut().insert(token, pending);
        let owner = owner_of(room, self.n);
        if owner == self.id {
            let now = Instant::now();
            let result = self.registry().subscribe_as(&name, self.id, opts.resume(), opts.room_epoch, now);
            if result.is_ok() {
                self.owner_joined(room, member.as_deref());
            }
            self.on_sub_ready(token, result);
        } else {
            let SubOptions { since, epoch, snapshot, room_epoch, .. } = opts;
            let (room, origin) = (name, self.id);
            let req = Request::Subscribe { room, origin, token, since, epoch, snapshot, room_epoch, member };
            self.send_req(owner, req).await;
        }
    }

    /// Stops following `room`. Returns whether it was followed (live or pending). O(1) in
    /// the room's followers.
    pub async fn unsubscribe(&self, sub: &Rc<Subscriber>, room: &str) -> bool {
        let Some((name, state)) = sub.rooms.borrow_mut().remove(room) else { return false };
        ShardStats::sub(&self.stats.subscriptions, 1);
        self.subscription_ended(room);
        if let SubState::Pending(token) = state {
            // The owner has not answered yet; its answer releases the subscription if it
            // was admitted (see `local`).
            if let Some(p) = self.pending.borrow_mut().get_mut(&token) {
                p.cancelled = true;
            }
            return true;
        }
        {
            let mut local = self.local.borrow_mut();
            if let Some(followers) = local.get_mut(&name) {
                followers.remove(sub.id());
                if followers.is_empty() {
                    local.remove(&name);
                }
            }
        }
        let owner = owner_of(room, self.n);
        let member = self.member_for(sub.id(), room, None);
        if owner == self.id {
            self.owner_left(room, member.as_deref());
            self.registry().unsubscribe(room, self.id, Instant::now());
        } else {
            let req = Request::Unsubscribe { room: room.into(), origin: self.id, member };
            self.send_req(owner, req).await;
        }
        true
    }

    /// Publishes `data` (JSON, kept byte for byte) into `room`. The owner assigns the seq
    /// (creating the room if the room limit allows); `reply` says who hears about it — the
    /// seq and epoch, or `too_many_rooms`. Waits only when a peer's queue is full — the
    /// backpressure that slows a publisher down instead of growing memory.
    pub async fn publish(&self, room: &str, data: Bytes, key: Option<Box<str>>, reply: Reply) {
        let owner = owner_of(room, self.n);
        if owner == self.id {
            let peers = self.owner_publish(room, data, key, self.id, reply);
            self.wait_for_room(peers).await;
        } else {
            let req = Request::Publish { room: room.into(), data, key, origin: self.id, reply };
            self.send_req(owner, req).await;
        }
    }

    /// Publishes and waits for the assigned seq and the room's epoch (backend publishing
    /// over HTTP). Fails with [`EngineError::TooManyRooms`] when the room did not exist and
    /// its owner is full.
    pub async fn publish_wait(
        &self,
        room: &str,
        data: Bytes,
        key: Option<Box<str>>,
    ) -> Result<Receipt, EngineError> {
        let (tx, rx) = local_channel::new_bounded(1);
        let token = self.next();
        self.waiting.borrow_mut().insert(token, Waiting::Seq(tx));
        self.publish(room, data, key, Reply::Waiter(token)).await;
        rx.recv().await.ok_or(EngineError::ShardStopped(owner_of(room, self.n)))?
    }

    /// Facts about a room (seq, subscribers, history length, epoch), from its owner.
    /// Creates nothing.
    pub async fn room_info(&self, room: &str) -> Result<RoomInfo, EngineError> {
        let owner = owner_of(room, self.n);
        if owner == self.id {
            return Ok(self.owner_info(room));
        }
        let (tx, rx) = local_channel::new_bounded(1);
        let token = self.next();
        self.waiting.borrow_mut().insert(token, Waiting::Info(tx));
        self.send_req(owner, Request::Info { room: room.into(), origin: self.id, token }).await;
        rx.recv().await.ok_or(EngineError::ShardStopped(owner))
    }

    /// Waits until every message already handed to the engine, on any shard, has reached
    /// the outboxes. Every shard must call it (during shutdown, after it stopped taking
    /// new input); it returns when all have.
    pub async fn drain(&self) {
        for p in 0..self.n {
            if p != self.id {
                self.send_req(p, Request::Barrier).await;
            }
        }
        self.wait_barriers(|(r, _)| r).await;
        for p in 0..self.n {
            if p != self.id {
                self.send_ev(p, Event::Barrier).await;
            }
        }
        self.wait_barriers(|(_, e)| e).await;
    }

    async fn wait_barriers(&self, which: fn((usize, usize)) -> usize) {
        futures_lite::future::poll_fn(|cx| {
            if which(self.barriers.get()) >= self.n - 1 {
                std::task::Poll::Ready(())
            } else {
                self.barrier_wake.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    fn note_barrier(&self, request: bool) {
        let (r, e) = self.barriers.get();
        self.barriers.set(if request { (r + 1, e) } else { (r, e + 1) });
        for w in self.barrier_wake.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Sums this shard's outbox bytes into its stats (called periodically, so the hot
    /// path never touches a shared counter per frame).
    pub(crate) fn refresh_queued_bytes(&self) {
        let total: usize =
            self.conns.borrow().values().filter_map(Weak::upgrade).map(|s| s.queued_bytes()).sum();
        self.stats.queued_bytes.store(total as i64, std::sync::atomic::Ordering::Relaxed);
    }

    async fn send_req(&self, to: usize, req: Request) {
        if let Some(q) = &self.req[to] {
            if q.push(req, &self.stats) {
                q.room(&self.stats).await;
            }
        }
    }

    async fn send_ev(&self, to: usize, ev: Event) {
        if let Some(q) = &self.ev[to] {
            if q.push(ev, &self.stats) {
                q.room(&self.stats).await;
            }
        }
    }
}
