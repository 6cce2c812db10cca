//! Cluster mode (`--nats`): several shardcast nodes serve one set of rooms through a NATS
//! JetStream broker. DESIGN §4 describes the whole; this module is the node's side of it.
//!
//! - JetStream is the sequencer and the log: a node appends a publish to the stream subject
//!   `sc.in.<room>` with `Nats-Expected-Last-Subject-Sequence` (optimistic concurrency: a
//!   concurrent writer makes the append fail and retry instead of forking the room's
//!   sequence) and the room `seq`/epoch in headers (`append.rs`).
//! - The stream re-publishes only accepted messages on `sc.out.<room>`; a node subscribes to
//!   that subject while it has local subscribers of the room (interest-based routing), loads
//!   the room's retained history once, then hands each message, in `seq` order and with holes
//!   filled from the stream, to the room's owner shard (`watch.rs`), which records and fans
//!   it out like a local publish ([`shardcast_engine::Shard::apply`]).
//! - Epochs come from a key-value bucket (create-if-absent), so every node agrees.
//!
//! Threads: the NATS client needs tokio; it runs on one dedicated thread with its own
//! current-thread runtime (`link.rs`). Shards talk to it over bounded tokio channels (runtime-
//! agnostic, so glommio tasks can await them; glommio supports wake-ups from other threads)
//! and never block on the broker: every call has a deadline (`--nats-timeout`), after which
//! the caller answers `unavailable`.
//!
//! Bounds: commands wait in a bounded channel (a full one is backpressure on the publisher);
//! each shard's inbound queue is bounded (the link waits, then holes are filled from the
//! stream); per-room state exists only for rooms with local interest or a publish in flight;
//! the loaded history is at most the stream's per-subject limit. Ends of subscriptions travel
//! on an unbounded channel whose length is bounded by the subscriptions that exist.

use bytes::Bytes;
use shardcast_engine::{Epoch, Receipt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod append;
mod inbound;
mod link;
pub mod names;
pub mod presence;
mod watch;

pub use inbound::run as run_inbound;

/// Capacity of the command channel from the shards to the link.
const COMMANDS: usize = 16_384;
/// Capacity of each shard's inbound queue from the link.
const INBOUND: usize = 4_096;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The broker, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// This node's name (the broker's connection name is `shardcast <node_id>`).
    pub node_id: String,
    /// Longest wait for the broker on behalf of a client request.
    pub timeout: Duration,
    /// Messages per room the stream keeps (the largest `history_size` of the namespaces).
    pub history: usize,
    /// Bytes the room stream may hold in all (`--retained-bytes`): past it, new publishes are
    /// refused (`unavailable`) rather than anything old dropped — dropping a room's last
    /// message would restart its seq silently.
    pub max_bytes: usize,
    /// Number of shards (one inbound queue each).
    pub shards: usize,
}

/// Why the cluster could not serve a request. Clients see the code `unavailable`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// No answer from the broker within the deadline.
    #[error("the message broker did not answer within {0:?}")]
    Timeout(Duration),
    /// The broker refused or the link failed.
    #[error("the message broker is unavailable: {0}")]
    Broker(String),
    /// This node could not hold the room (its room limit).
    #[error("too many rooms on this node")]
    TooManyRooms,
}

impl ClusterError {
    /// The `code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            ClusterError::TooManyRooms => "too_many_rooms",
            _ => "unavailable",
        }
    }
}

/// A message for one shard of this node, from the link.
pub enum Inbound {
    /// Message `seq` of `room` in `epoch`, in order, published `age` ago (zero when live).
    Msg { room: Arc<str>, epoch: Epoch, seq: u64, data: Bytes, age: Duration },
    /// The room as the stream holds it when this node's interest began: the latest message
    /// of each key older than the history (`snapshot`), then the retained history, both
    /// ascending; `done` answers once the shard holds it (or could not create
    /// the room).
    Sync {
        room: Arc<str>,
        epoch: Epoch,
        snapshot: Vec<Stored>,
        msgs: Vec<Stored>,
        done: oneshot::Sender<bool>,
    },
    /// Another node's members of a presence room (`presence.rs`).
    Presence { room: Arc<str>, node: Box<str>, members: Vec<(Box<str>, u32)> },
}

/// A message loaded from the stream: its room seq, data, key (snapshot entries) and age.
pub struct Stored {
    pub seq: u64,
    pub data: Bytes,
    pub key: Option<Box<str>>,
    pub age: Duration,
}

/// What the shards ask of the link.
pub(crate) enum Cmd {
    Publish {
        room: Arc<str>,
        data: Bytes,
        key: Option<Box<str>>,
        reply: oneshot::Sender<Result<Receipt, ClusterError>>,
    },
    Interest {
        room: Arc<str>,
        keyed: bool,
        reply: oneshot::Sender<Result<Epoch, ClusterError>>,
    },
    Info {
        room: Arc<str>,
        reply: oneshot::Sender<Result<RoomFacts, ClusterError>>,
    },
}

/// A room as the cluster knows it (`GET /api/rooms/<room>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoomFacts {
    /// The room's last seq and epoch; `None` if it has neither.
    pub last: Option<Receipt>,
    /// Subscribers on every node that answered within the count window.
    pub subscribers: u64,
}

/// Counters of the link, for `/metrics`.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// The client is connected to the broker.
    pub connected: AtomicBool,
    /// Messages received from the broker on `sc.out.*` (all rooms this node watches).
    pub received: AtomicU64,
    /// Messages handed to the shards (after dropping duplicates).
    pub delivered: AtomicU64,
    /// Messages fetched from the stream to fill a hole in a room's sequence.
    pub filled: AtomicU64,
    /// Appends accepted by the stream.
    pub published: AtomicU64,
    /// Appends retried because another node appended to the room first.
    pub conflicts: AtomicU64,
    /// Requests answered `unavailable`.
    pub failed: AtomicU64,
    /// Rooms this node currently receives (has local interest in).
    pub watched: AtomicU64,
}

/// The shards' handle on the link (cheap to share; `Send + Sync`).
pub struct Cluster {
    cmds: mpsc::Sender<Cmd>,
    ends: mpsc::UnboundedSender<Arc<str>>,
    presence: mpsc::UnboundedSender<presence::Change>,
    inbound: Mutex<Vec<Option<mpsc::Receiver<Inbound>>>>,
    timeout: Duration,
    node_id: String,
    stats: Arc<LinkStats>,
}

impl Cluster {
    /// Starts the link thread. It connects in the background (and keeps reconnecting), so
    /// a node starts even while the broker is down; requests then answer `unavailable`.
    pub fn start(cfg: ClusterConfig) -> anyhow::Result<Cluster> {
        let (cmds, cmd_rx) = mpsc::channel(COMMANDS);
        let (ends, end_rx) = mpsc::unbounded_channel();
        let (presence, presence_rx) = mpsc::unbounded_channel();
        let (to_shards, inbound): (Vec<_>, Vec<_>) =
            (0..cfg.shards).map(|_| mpsc::channel(INBOUND)).map(|(t, r)| (t, Some(r))).unzip();
        let stats = Arc::new(LinkStats::default());
        let (timeout, node_id) = (cfg.timeout, cfg.node_id.clone());
        link::spawn(cfg, cmd_rx, end_rx, presence_rx, to_shards, stats.clone())?;
        Ok(Cluster { cmds, ends, presence, inbound: Mutex::new(inbound), timeout, node_id, stats })
    }

    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The link's counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Whether the broker link is up (for `/health`).
    pub fn connected(&self) -> bool {
        self.stats.connected.load(Relaxed)
    }

    /// Waits (blocking the calling thread: start-up only) until the link is connected,
    /// at most `timeout`. Returns whether it is.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.connected() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.connected()
    }

    /// Shard `shard`'s inbound queue (taken once, by that shard's inbound task).
    pub fn take_inbound(&self, shard: usize) -> Option<mpsc::Receiver<Inbound>> {
        self.inbound.lock().ok()?.get_mut(shard)?.take()
    }

    /// Appends `data` to `room` in the cluster: the room `seq` and epoch it got. `key` (the
    /// namespace's key of `data`, if any) also makes it its key's snapshot entry.
    pub async fn publish(
        &self,
        room: &str,
        data: Bytes,
        key: Option<Box<str>>,
    ) -> Result<Receipt, ClusterError> {
        self.ask(|reply| Cmd::Publish { room: room.into(), data, key, reply }).await
    }

    /// Takes this node's interest in `room` (one per subscription): when it returns,
    /// every message appended later reaches the room's owner shard here, after the room's
    /// retained history. Returns the room's epoch. Give it back with [`Cluster::ended`].
    /// `keyed`: the room's namespace names a key (its snapshot is loaded too).
    pub async fn interest(&self, room: &str, keyed: bool) -> Result<Epoch, ClusterError> {
        self.ask(|reply| Cmd::Interest { room: room.into(), keyed, reply }).await
    }

    /// A subscription of this node joined (`joined`) or left a presence room as `member`:
    /// the other nodes learn it with this node's next state (never waits).
    pub fn presence_local(&self, room: &str, member: &str, joined: bool) {
        let _ = self.presence.send((room.into(), member.into(), joined));
    }

    /// Gives back one interest taken by [`Cluster::interest`] (never waits).
    pub fn ended(&self, room: &str) {
        let _ = self.ends.send(room.into());
    }

    /// The room's cluster-wide last seq, epoch and subscriber count.
    pub async fn info(&self, room: &str) -> Result<RoomFacts, ClusterError> {
        self.ask(|reply| Cmd::Info { room: room.into(), reply }).await
    }

    /// Sends a command and waits for its answer, at most the timeout in all (glommio's
    /// timer: this runs on a shard, outside any tokio runtime).
    async fn ask<T>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<T, ClusterError>>) -> Cmd,
    ) -> Result<T, ClusterError> {
        let (tx, rx) = oneshot::channel();
        let call = async {
            self.cmds.send(cmd(tx)).await.map_err(|_| ClusterError::Broker("link stopped".into()))?;
            rx.await.map_err(|_| ClusterError::Broker("link stopped".into()))?
        };
        let timeout = self.timeout;
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(ClusterError::Timeout(timeout))
        };
        let result = futures_lite::future::or(call, deadline).await;
        if result.is_err() {
            self.stats.failed.fetch_add(1, Relaxed);
        }
        result
    }
}
