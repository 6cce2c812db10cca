//! One shard: the state a core owns and the operations connections call on it.
//!
//! A shard owns (a) the rooms that hash to it — sequencing, history, snapshot, which shards
//! want them — and (b) the connections it accepted, with `room → local subscribers`.
//! Everything is `Rc`/`RefCell`; other cores are reached only by typed messages (see
//! [`mesh`](crate::mesh)). Connections call [`Shard::publish`], [`Shard::subscribe`] and
//! friends; replies and messages arrive in the connection's outbox.

use bytes::Bytes;
use glommio::channels::local_channel;
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::hash::BuildHasher;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Namespaces;
use crate::envelope;
use crate::error::EngineError;
use crate::mesh::{Event, Reply, Request, RoomInfo};
use crate::message::{DeliveryMode, Message};
use crate::outbox::Pushed;
use crate::outq::OutQueue;
use crate::room::{Replay, Room};
use crate::stats::{ShardStats, Stats};
use crate::stop::LocalStop;
use crate::subscriber::{SubState, Subscriber};

/// Whether a subscribe is acknowledged with an `ok` frame.
#[derive(Debug, Clone)]
pub enum Ack {
    /// No reply (room-per-URL connections join silently).
    Silent,
    /// Reply `{"op":"ok","id":..,"room":..,"seq":<last>}`.
    Ok(Option<Box<str>>),
}

struct PendingSub {
    sub: Weak<Subscriber>,
    room: Arc<str>,
    ack: Ack,
}

enum Waiting {
    Seq(local_channel::LocalSender<u64>),
    Info(local_channel::LocalSender<RoomInfo>),
}

/// The coalescing window after a sample where the shard was `busy` (fraction of a core):
/// zero below 25%; at least `base` from 50%; while saturated (≥ 90%) it doubles up to
/// 4 × `base`, since a saturated shard is already late and bigger batches are how it
/// catches up. A grown window shrinks (halving towards `base`) only below 50%: shrinking as
/// soon as the bigger window has relieved the shard would saturate it again, and that
/// oscillation is what showed as stalls of hundreds of milliseconds.
pub(crate) fn next_window(current: Duration, base: Duration, busy: f64) -> Duration {
    if base.is_zero() || busy < 0.25 {
        Duration::ZERO
    } else if busy >= 0.9 {
        (current.max(base) * 2).min(base * 4)
    } else if busy >= 0.5 {
        current.max(base)
    } else if current > base {
        (current / 2).max(base)
    } else {
        current
    }
}

/// CPU time consumed by the calling thread (user + system).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer for a clock the kernel always provides.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Undoes one [`Shard::cork`] when dropped.
pub struct Cork(Rc<Shard>);

impl Drop for Cork {
    fn drop(&mut self) {
        self.0.cork.set(self.0.cork.get() - 1);
    }
}

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
    owned: RefCell<FxHashMap<Arc<str>, Room>>,
    local: RefCell<FxHashMap<Arc<str>, Vec<Rc<Subscriber>>>>,
    conns: RefCell<FxHashMap<u64, Weak<Subscriber>>>,
    pending: RefCell<FxHashMap<u64, PendingSub>>,
    waiting: RefCell<FxHashMap<u64, Waiting>>,
    next_id: Cell<u64>,
    req: Vec<Option<Rc<OutQueue<Request>>>>,
    ev: Vec<Option<Rc<OutQueue<Event>>>>,
    barriers: Cell<(usize, usize)>,
    /// While non-zero, fan-out queues instead of writing through, so a burst of messages
    /// leaves as one write per subscriber (see [`Shard::cork`]).
    cork: Cell<u32>,
    /// The coalescing window in force: `coalesce_max` while this shard is busy, else zero
    /// (see [`Shard::adapt_coalescing`]).
    coalesce: Cell<Duration>,
    coalesce_max: Duration,
    cpu_sample: Cell<Option<(Instant, Duration)>>,
    barrier_wake: RefCell<Vec<std::task::Waker>>,
    stats: Arc<ShardStats>,
    all_stats: Arc<[Arc<ShardStats>]>,
    pub(crate) stop: LocalStop,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        namespaces: Namespaces,
        outbox_bytes: usize,
        coalesce_max: Duration,
        req: Vec<Option<Rc<OutQueue<Request>>>>,
        ev: Vec<Option<Rc<OutQueue<Event>>>>,
        all_stats: Arc<[Arc<ShardStats>]>,
    ) -> Self {
        Shard {
            id,
            n: all_stats.len(),
            namespaces,
            outbox_bytes,
            owned: RefCell::default(),
            local: RefCell::default(),
            conns: RefCell::default(),
            pending: RefCell::default(),
            waiting: RefCell::default(),
            next_id: Cell::new(1),
            req,
            ev,
            barriers: Cell::new((0, 0)),
            cork: Cell::new(0),
            coalesce: Cell::new(Duration::ZERO),
            coalesce_max,
            cpu_sample: Cell::new(None),
            barrier_wake: RefCell::default(),
            stats: all_stats[id].clone(),
            all_stats,
            stop: LocalStop::default(),
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

    /// Forgets a connection: leaves all its rooms. Call once, when it ends.
    pub async fn remove_subscriber(&self, sub: &Rc<Subscriber>) {
        let rooms: Vec<Arc<str>> = sub.rooms.borrow().keys().cloned().collect();
        for room in rooms {
            self.unsubscribe(sub, &room).await;
        }
        self.conns.borrow_mut().remove(&sub.id());
        ShardStats::sub(&self.stats.subscribers, 1);
    }

    /// Follows `room`: the owner computes the replay (`since`, `snapshot`) and the live
    /// edge; the subscriber then receives the optional `ok`, a `gap` notice if history no
    /// longer covers `since`, the replay, and every later message, each exactly once.
    /// Subscribing again to a followed room starts over from the new `since`.
    pub async fn subscribe(
        &self,
        sub: &Rc<Subscriber>,
        room: &str,
        since: Option<u64>,
        snapshot: bool,
        ack: Ack,
    ) {
        if sub.follows(room) {
            self.unsubscribe(sub, room).await;
        }
        let token = self.next();
        let name: Arc<str> = Arc::from(room);
        sub.rooms.borrow_mut().insert(name.clone(), SubState::Pending(token));
        ShardStats::add(&self.stats.subscriptions, 1);
        self.pending.borrow_mut().insert(token, PendingSub { sub: Rc::downgrade(sub), room: name, ack });
        let owner = owner_of(room, self.n);
        if owner == self.id {
            let replay = self.owner_subscribe(room, self.id, since, snapshot);
            self.on_sub_ready(token, replay);
        } else {
            let req = Request::Subscribe { room: room.into(), origin: self.id, token, since, snapshot };
            self.send_req(owner, req).await;
        }
    }

    /// Stops following `room`. Returns whether it was followed.
    pub async fn unsubscribe(&self, sub: &Rc<Subscriber>, room: &str) -> bool {
        let Some((name, _)) = sub.rooms.borrow_mut().remove_entry(room) else { return false };
        ShardStats::sub(&self.stats.subscriptions, 1);
        {
            let mut local = self.local.borrow_mut();
            if let Some(subs) = local.get_mut(&name) {
                subs.retain(|s| !Rc::ptr_eq(s, sub));
                if subs.is_empty() {
                    local.remove(&name);
                }
            }
        }
        let owner = owner_of(room, self.n);
        if owner == self.id {
            self.owner_unsubscribe(room, self.id);
        } else {
            self.send_req(owner, Request::Unsubscribe { room: room.into(), origin: self.id }).await;
        }
        true
    }

    /// Publishes `data` (JSON, kept byte for byte) into `room`. The owner assigns the seq;
    /// `reply` says who hears about it. Waits only when the owner's queue is full — the
    /// backpressure that slows a publisher down instead of growing memory.
    pub async fn publish(&self, room: &str, data: Bytes, key: Option<Box<str>>, reply: Reply) {
        let owner = owner_of(room, self.n);
        if owner == self.id {
            self.owner_publish(room, data, key, self.id, reply).await;
        } else {
            let req = Request::Publish { room: room.into(), data, key, origin: self.id, reply };
            self.send_req(owner, req).await;
        }
    }

    /// Publishes and waits for the assigned seq (backend publishing over HTTP).
    pub async fn publish_wait(
        &self,
        room: &str,
        data: Bytes,
        key: Option<Box<str>>,
    ) -> Result<u64, EngineError> {
        let (tx, rx) = local_channel::new_bounded(1);
        let token = self.next();
        self.waiting.borrow_mut().insert(token, Waiting::Seq(tx));
        self.publish(room, data, key, Reply::Waiter(token)).await;
        rx.recv().await.ok_or(EngineError::ShardStopped(owner_of(room, self.n)))
    }

    /// Facts about a room (seq, subscribers, history length), from its owner.
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

    // ---- owner side -------------------------------------------------------------------

    fn with_room<T>(&self, room: &str, f: impl FnOnce(&mut Room) -> T) -> T {
        let mut owned = self.owned.borrow_mut();
        if let Some(r) = owned.get_mut(room) {
            return f(r);
        }
        let name: Arc<str> = Arc::from(room);
        let settings = self.namespaces.for_room(room).clone();
        ShardStats::add(&self.stats.rooms, 1);
        f(owned.entry(name.clone()).or_insert_with(|| Room::new(name, settings, self.n)))
    }

    async fn owner_publish(
        &self,
        room: &str,
        data: Bytes,
        key: Option<Box<str>>,
        origin: usize,
        reply: Reply,
    ) {
        let (msg, targets) = self.with_room(room, |r| {
            let msg = r.publish(data, key, Instant::now());
            let mut targets = [0u64; 4];
            for s in r.interested_shards() {
                targets[s / 64] |= 1 << (s % 64);
            }
            (msg, targets)
        });
        ShardStats::add(&self.stats.published, 1);
        match reply {
            Reply::None => {}
            reply if origin == self.id => self.on_pub_ack(reply, &msg.room, msg.seq),
            reply => {
                let ev = Event::PubAck { reply, room: msg.room.clone(), seq: msg.seq };
                self.send_ev(origin, ev).await;
            }
        }
        // Enqueue to every shard first (order fixed synchronously), then wait for room.
        let mut local = false;
        for s in (0..self.n).filter(|s| targets[s / 64] & (1 << (s % 64)) != 0) {
            if s == self.id {
                local = true;
            } else if let Some(q) = &self.ev[s] {
                q.push(Event::Deliver(msg.clone()), &self.stats);
            }
        }
        if local {
            self.deliver_local(&msg);
        }
        for s in (0..self.n).filter(|&s| s != self.id && targets[s / 64] & (1 << (s % 64)) != 0) {
            if let Some(q) = &self.ev[s] {
                q.room(&self.stats).await;
            }
        }
    }

    fn owner_subscribe(&self, room: &str, origin: usize, since: Option<u64>, snapshot: bool) -> Replay {
        self.with_room(room, |r| r.subscribe(origin, since, snapshot, Instant::now()))
    }

    /// One subscriber of `origin` left. A room that never had a message and has no
    /// subscribers left is forgotten, so subscribe/unsubscribe cycles over invented names
    /// cannot grow memory; a room with messages stays, to keep its `seq` and history.
    fn owner_unsubscribe(&self, room: &str, origin: usize) {
        let mut owned = self.owned.borrow_mut();
        let Some(r) = owned.get_mut(room) else { return };
        r.unsubscribe(origin);
        if r.last_seq() == 0 && r.subscribers() == 0 {
            owned.remove(room);
            ShardStats::sub(&self.stats.rooms, 1);
        }
    }

    fn owner_info(&self, room: &str) -> RoomInfo {
        self.owned.borrow().get(room).map_or(RoomInfo::default(), |r| RoomInfo {
            seq: r.last_seq(),
            subscribers: r.subscribers(),
            history_len: r.history_len(),
        })
    }

    pub(crate) async fn handle_request(&self, req: Request) {
        match req {
            Request::Publish { room, data, key, origin, reply } => {
                self.owner_publish(&room, data, key, origin, reply).await
            }
            Request::Subscribe { room, origin, token, since, snapshot } => {
                let replay = self.owner_subscribe(&room, origin, since, snapshot);
                self.send_ev(origin, Event::SubReady { token, replay }).await;
            }
            Request::Unsubscribe { room, origin } => self.owner_unsubscribe(&room, origin),
            Request::Info { room, origin, token } => {
                let info = self.owner_info(&room);
                self.send_ev(origin, Event::Info { token, info }).await;
            }
            Request::Barrier => self.note_barrier(true),
        }
    }

    // ---- subscriber side --------------------------------------------------------------

    pub(crate) fn handle_event(&self, ev: Event) {
        match ev {
            Event::Deliver(msg) => self.deliver_local(&msg),
            Event::SubReady { token, replay } => self.on_sub_ready(token, replay),
            Event::PubAck { reply, room, seq } => self.on_pub_ack(reply, &room, seq),
            Event::Info { token, info } => {
                if let Some(Waiting::Info(tx)) = self.waiting.borrow_mut().remove(&token) {
                    let _ = tx.try_send(info);
                }
            }
            Event::Barrier => self.note_barrier(false),
        }
    }

    /// Fan-out on this shard: per subscriber, a write-through to an idle socket, or one
    /// refcount increment and one queue push.
    pub(crate) fn deliver_local(&self, msg: &Arc<Message>) {
        let local = self.local.borrow();
        let Some(subs) = local.get(&*msg.room) else { return };
        let (direct, window) = (self.cork.get() == 0, self.coalesce.get());
        // One clock read per message, not per subscriber.
        let now = Instant::now();
        self.count_pushes(subs.iter().map(|s| s.deliver(msg, direct, window, now)));
    }

    /// The coalescing window writers should respect now (zero when the shard is not busy).
    pub fn coalesce_window(&self) -> Duration {
        self.coalesce.get()
    }

    /// Opens the coalescing window while this shard's thread is busy (≥ 50% of a core over
    /// the last sample) and closes it when it is quiet again (< 25%); see [`next_window`].
    /// A quiet shard writes every frame at once, for latency; a busy one spends its CPU on
    /// frames, not on per-call kernel overhead, which also keeps it from falling behind.
    pub(crate) fn adapt_coalescing(&self) {
        let now = Instant::now();
        let cpu = thread_cpu_time();
        if let Some((t0, c0)) = self.cpu_sample.replace(Some((now, cpu))) {
            let wall = now.saturating_duration_since(t0).as_secs_f64();
            if wall > 0.0 {
                let busy = cpu.saturating_sub(c0).as_secs_f64() / wall;
                self.coalesce.set(next_window(self.coalesce.get(), self.coalesce_max, busy));
            }
        }
    }

    /// Batches fan-out until the guard drops: messages are queued, not written through,
    /// and each writer later sends all of its queue in one call. Whoever holds a burst
    /// (several inbound messages or cross-shard events at hand) corks around it; the
    /// first message of a burst may go through uncorked.
    pub fn cork(self: &Rc<Self>) -> Cork {
        self.cork.set(self.cork.get() + 1);
        Cork(self.clone())
    }

    fn count_pushes(&self, pushes: impl Iterator<Item = Pushed>) {
        let (mut delivered, mut dropped, mut conflated, mut slow) = (0u64, 0u64, 0u64, 0u64);
        for p in pushes {
            match p {
                Pushed::Queued { .. } | Pushed::Written => delivered += 1,
                Pushed::Conflated { removed, .. } => {
                    delivered += 1;
                    conflated += removed as u64;
                }
                Pushed::Dropped => dropped += 1,
                Pushed::Disconnected => slow += 1,
                Pushed::Closed => {}
            }
        }
        let s = &self.stats;
        ShardStats::add(&s.delivered, delivered);
        if dropped + conflated + slow > 0 {
            ShardStats::add(&s.dropped, dropped);
            ShardStats::add(&s.conflated, conflated);
            ShardStats::add(&s.slow_disconnects, slow);
        }
    }

    fn on_sub_ready(&self, token: u64, replay: Replay) {
        let Some(p) = self.pending.borrow_mut().remove(&token) else { return };
        let Some(sub) = p.sub.upgrade() else { return };
        if sub.rooms.borrow().get(&p.room) != Some(&SubState::Pending(token)) {
            return; // superseded by a later subscribe, or unsubscribed meanwhile
        }
        if let Ack::Ok(id) = &p.ack {
            sub.push_ctrl(envelope::ok_frame(id.as_deref(), Some(&p.room), Some(replay.last_seq)));
        }
        if let Some((from, to)) = replay.gap {
            sub.push_ctrl(envelope::gap_frame(&p.room, from, to));
        }
        self.count_pushes(replay.messages.iter().map(|m| sub.push_msg(m)));
        sub.rooms.borrow_mut().insert(p.room.clone(), SubState::Live);
        self.local.borrow_mut().entry(p.room).or_default().push(sub);
    }

    fn on_pub_ack(&self, reply: Reply, room: &str, seq: u64) {
        match reply {
            Reply::None => {}
            Reply::Conn { conn, id } => {
                if let Some(sub) = self.conns.borrow().get(&conn).and_then(Weak::upgrade) {
                    sub.push_ctrl(envelope::ok_frame(id.as_deref(), Some(room), Some(seq)));
                }
            }
            Reply::Waiter(token) => {
                if let Some(Waiting::Seq(tx)) = self.waiting.borrow_mut().remove(&token) {
                    let _ = tx.try_send(seq);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_window;
    use std::time::Duration;

    #[test]
    fn the_window_follows_load_without_flapping() {
        let base = Duration::from_millis(5);
        let z = Duration::ZERO;
        assert_eq!(next_window(z, base, 0.1), z);
        assert_eq!(next_window(z, base, 0.4), z, "between thresholds: stays closed");
        assert_eq!(next_window(z, base, 0.6), base);
        assert_eq!(next_window(base, base, 0.4), base, "between thresholds: stays open");
        let mut w = base;
        for _ in 0..5 {
            w = next_window(w, base, 0.95);
        }
        assert_eq!(w, base * 4, "saturated: grows, capped");
        assert_eq!(next_window(w, base, 0.8), w);
        assert_eq!(next_window(w, base, 0.6), w, "relieved but busy: keeps the grown window");
        assert_eq!(next_window(w, base, 0.4), base * 2, "quiet: shrinks towards base");
        assert_eq!(next_window(w, base, 0.2), z);
        assert_eq!(next_window(w, z, 0.99), z, "disabled");
    }
}
