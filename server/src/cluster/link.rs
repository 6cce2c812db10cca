//! The link thread: one tokio current-thread runtime holding the NATS client, the JetStream
//! handles and the per-room state of this node (interest and publish queues).
//!
//! Everything runs on one `LocalSet`, so state is `Rc<RefCell<..>>` and each room's work is
//! a local task: a watcher per room with local interest (`watch.rs`) and at most one
//! appender per room with publishes queued (`append.rs`).
//!
//! Invariants: `rooms` holds a room only while it has interest or queued publishes; a
//! room's watcher runs iff its interest is positive; every `Interest` command is answered
//! exactly once, and an answer its caller no longer waits for gives the interest back.

use async_nats::header::{HeaderMap, NATS_EXPECTED_LAST_SUBJECT_SEQUENCE};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, stream};
use shardcast_engine::epoch::EpochRng;
use shardcast_engine::{Epoch, Receipt};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::names::{self, EPOCHS, STREAM};
use super::{ClusterConfig, ClusterError, Cmd, Inbound, LinkStats, RoomFacts};

/// How long `GET /api/rooms/<room>` gathers the nodes' subscriber counts.
const COUNT_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// The JetStream objects every request needs, made once the broker is reachable.
pub(super) struct Handles {
    pub js: jetstream::Context,
    pub stream: stream::Stream,
    /// One message per room: its epoch (a key-value store made of a stream, because
    /// async-nats's KV API needs a newer server than the 2.9 these machines run).
    pub epochs: stream::Stream,
    /// The latest message of each key of each room (`sc.key.<room>.<key>`): snapshots.
    pub keys: stream::Stream,
}

/// A publish waiting for its room's appender.
pub(super) struct Pending {
    pub data: bytes::Bytes,
    pub key: Option<Box<str>>,
    pub reply: oneshot::Sender<Result<Receipt, ClusterError>>,
}

/// Where a room's interest stands.
pub(super) enum Watch {
    /// The watcher is loading the room; these wait for its epoch.
    Starting(Vec<oneshot::Sender<Result<Epoch, ClusterError>>>),
    /// Messages flow to the owner shard.
    Ready(Epoch),
}

/// This node's state for one room.
#[derive(Default)]
pub(super) struct RoomLink {
    /// Subscriptions on this node that took interest.
    pub interest: u32,
    pub watch: Option<(Watch, AbortHandle)>,
    pub queue: VecDeque<Pending>,
    pub appending: bool,
    /// The room's last known stream sequence, room seq and epoch (for the next append).
    pub head: Option<Head>,
}

/// The newest message of a room as this node last saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub stream_seq: u64,
    pub seq: u64,
    pub epoch: Epoch,
}

/// The link: shared by its local tasks.
pub(super) struct Link {
    pub cfg: ClusterConfig,
    pub client: async_nats::Client,
    /// The handles and the connection (count of connects) they were made on: after a
    /// reconnect they are made again, since the broker may have lost its store.
    handles: RefCell<Option<(u64, Rc<Handles>)>>,
    /// One creation at a time.
    making: tokio::sync::Mutex<()>,
    pub rooms: RefCell<HashMap<Arc<str>, RoomLink>>,
    pub to_shards: Vec<mpsc::Sender<Inbound>>,
    pub stats: Arc<LinkStats>,
    /// Bumped each time the client (re)connects: watchers then catch up from the stream on
    /// what the broker published while this node was cut off.
    pub connects: tokio::sync::watch::Receiver<u64>,
    rng: RefCell<EpochRng>,
    /// This process in presence states: `<node-id>#<incarnation>` (see `presence.rs`).
    pub presence_node: String,
}

/// Starts the link thread.
pub(super) fn spawn(
    cfg: ClusterConfig,
    cmds: mpsc::Receiver<Cmd>,
    ends: mpsc::UnboundedReceiver<Arc<str>>,
    presence: mpsc::UnboundedReceiver<super::presence::Change>,
    to_shards: Vec<mpsc::Sender<Inbound>>,
    stats: Arc<LinkStats>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("shardcast-broker".into()).spawn(move || {
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, run(cfg, cmds, ends, presence, to_shards, stats));
    })?;
    Ok(())
}

async fn run(
    cfg: ClusterConfig,
    mut cmds: mpsc::Receiver<Cmd>,
    mut ends: mpsc::UnboundedReceiver<Arc<str>>,
    presence: mpsc::UnboundedReceiver<super::presence::Change>,
    to_shards: Vec<mpsc::Sender<Inbound>>,
    stats: Arc<LinkStats>,
) {
    let events = stats.clone();
    let (connected_tx, connects) = tokio::sync::watch::channel(0u64);
    let connected_tx = Arc::new(connected_tx);
    let options = async_nats::ConnectOptions::new()
        .name(format!("shardcast {}", cfg.node_id))
        .retry_on_initial_connect()
        .max_reconnects(None)
        // A silent broker (a partition, not a closed socket) is noticed within seconds.
        .ping_interval(std::time::Duration::from_secs(2))
        .request_timeout(Some(cfg.timeout))
        .event_callback(move |e| {
            let (stats, connected) = (events.clone(), connected_tx.clone());
            async move {
                match e {
                    async_nats::Event::Connected => {
                        stats.connected.store(true, Relaxed);
                        connected.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => stats.connected.store(false, Relaxed),
                    other => tracing::info!("broker: {other}"),
                }
            }
        });
    let client = match options.connect(cfg.url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot use the broker at {}: {e}", cfg.url);
            return;
        }
    };
    let mut rng = EpochRng::for_shard(usize::MAX - std::process::id() as usize);
    let presence_node = format!("{}#{}", cfg.node_id, rng.epoch().as_str());
    let rng = RefCell::new(rng);
    let link = Rc::new(Link {
        cfg,
        client,
        handles: RefCell::default(),
        making: tokio::sync::Mutex::new(()),
        rooms: RefCell::default(),
        to_shards,
        stats,
        connects,
        rng,
        presence_node: presence_node.clone(),
    });
    tokio::task::spawn_local(super::presence::run(link.clone(), presence_node, presence));
    // Make the stream and bucket as soon as the broker answers, not at the first request.
    let eager = link.clone();
    tokio::task::spawn_local(async move {
        while eager.handles().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(cmd) => link.clone().command(cmd),
                None => break,
            },
            Some(room) = ends.recv() => link.release(&room),
        }
    }
}

impl Link {
    /// The JetStream handles, creating the streams on first use after each (re)connect
    /// (idempotent: a broker that kept its store keeps them; one that lost it gets them
    /// again, and rooms continue under new epochs, announced by `reset`).
    /// Fails at once while the link is down: a request sent now would wait in the
    /// client's reconnect buffer and might be appended long after its caller was told it
    /// failed.
    pub async fn handles(&self) -> Result<Rc<Handles>, ClusterError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(ClusterError::Broker("not connected".into()));
        }
        let current = *self.connects.borrow();
        let made = |cell: &RefCell<Option<(u64, Rc<Handles>)>>| {
            cell.borrow().as_ref().filter(|(n, _)| *n == current).map(|(_, h)| h.clone())
        };
        if let Some(h) = made(&self.handles) {
            return Ok(h);
        }
        let _one = self.making.lock().await;
        if let Some(h) = made(&self.handles) {
            return Ok(h);
        }
        let h = Rc::new(self.make_handles().await?);
        *self.handles.borrow_mut() = Some((current, h.clone()));
        Ok(h)
    }

    async fn make_handles(&self) -> Result<Handles, ClusterError> {
        let mut js = jetstream::new(self.client.clone());
        js.set_timeout(self.cfg.timeout);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec![format!("{}>", names::IN_PREFIX)],
                storage: stream::StorageType::File,
                republish: Some(stream::Republish {
                    source: format!("{}>", names::IN_PREFIX),
                    destination: format!("{}>", names::OUT_PREFIX),
                    headers_only: false,
                }),
                max_messages_per_subject: self.cfg.history.max(1) as i64,
                // Bounded: a room's own history still drops its oldest messages (per-subject
                // limit), but a full stream refuses new appends instead of dropping whole rooms.
                max_bytes: i64::try_from(self.cfg.max_bytes).unwrap_or(i64::MAX),
                discard: stream::DiscardPolicy::New,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(broker)?;
        // One message per subject: the latest is all that matters.
        // Also bounded (one record per room, or per room and key, made by clients' choices):
        // full, a new epoch cannot be stored (the `sub` or publish that needs it answers
        // `unavailable`) and a new key record is not kept (snapshots loaded later miss it).
        let latest_only = |name: &str, prefix: &str| stream::Config {
            name: name.into(),
            subjects: vec![format!("{prefix}>")],
            storage: stream::StorageType::File,
            max_messages_per_subject: 1,
            max_bytes: i64::try_from(self.cfg.max_bytes).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::New,
            allow_direct: true,
            ..Default::default()
        };
        let epochs =
            js.get_or_create_stream(latest_only(EPOCHS, names::EPOCH_PREFIX)).await.map_err(broker)?;
        let keys =
            js.get_or_create_stream(latest_only(names::KEYS, names::KEY_PREFIX)).await.map_err(broker)?;
        tracing::info!(stream = STREAM, epochs = EPOCHS, keys = names::KEYS, "joined the cluster");
        Ok(Handles { js, stream, epochs, keys })
    }

    /// The room's epoch: the one stored for it, or a new one this node stores first
    /// (create-if-absent: an append that expects the room's epoch subject to be empty, so
    /// of two nodes racing, one wins and both then read the winner's).
    pub async fn epoch_of(&self, room: &str) -> Result<Epoch, ClusterError> {
        let h = self.handles().await?;
        let subject = names::epoch_subject(room);
        for _ in 0..3 {
            if let Some(e) = self.stored_epoch(room).await? {
                return Ok(e);
            }
            let e = Epoch::from_u64(self.rng.borrow_mut().next_u64());
            let mut headers = HeaderMap::new();
            headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
            let sent = h.js.publish_with_headers(subject.clone(), headers, e.as_str().to_owned().into());
            match sent.await.map_err(broker)?.await {
                Ok(_) => return Ok(e),
                Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => continue,
                Err(err) => return Err(broker(err)),
            }
        }
        Err(ClusterError::Broker(format!("no epoch for {room}")))
    }

    /// The epoch stored for `room`, if any.
    pub(super) async fn stored_epoch(&self, room: &str) -> Result<Option<Epoch>, ClusterError> {
        let h = self.handles().await?;
        match h.epochs.direct_get_last_for_subject(names::epoch_subject(room)).await {
            Ok(m) => {
                let text = std::str::from_utf8(&m.payload).unwrap_or_default();
                Epoch::parse(text)
                    .map(Some)
                    .ok_or_else(|| ClusterError::Broker(format!("bad epoch {text:?}")))
            }
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(broker(e)),
        }
    }

    fn command(self: Rc<Self>, cmd: Cmd) {
        match cmd {
            Cmd::Publish { room, data, key, reply } => {
                let start = {
                    let mut rooms = self.rooms.borrow_mut();
                    let r = rooms.entry(room.clone()).or_default();
                    r.queue.push_back(Pending { data, key, reply });
                    !std::mem::replace(&mut r.appending, true)
                };
                if start {
                    tokio::task::spawn_local(super::append::run(self, room));
                }
            }
            Cmd::Interest { room, keyed, reply } => {
                let mut rooms = self.rooms.borrow_mut();
                let r = rooms.entry(room.clone()).or_default();
                r.interest += 1;
                match &mut r.watch {
                    Some((Watch::Starting(waiters), _)) => waiters.push(reply),
                    Some((Watch::Ready(epoch), _)) => {
                        if reply.send(Ok(*epoch)).is_err() {
                            r.interest -= 1; // the caller gave up: nobody will give it back
                        }
                    }
                    None => {
                        let task = tokio::task::spawn_local(super::watch::run(self.clone(), room, keyed));
                        r.watch = Some((Watch::Starting(vec![reply]), task.abort_handle()));
                        self.stats.watched.fetch_add(1, Relaxed);
                    }
                }
            }
            Cmd::Info { room, reply } => {
                tokio::task::spawn_local(async move {
                    let _ = reply.send(self.facts(&room).await);
                });
            }
        }
    }

    /// The room's last seq and epoch from the stream, and its subscribers summed over the
    /// nodes that receive it (each answers a request on `sc.count.<room>` with its count;
    /// replies are gathered for [`COUNT_WINDOW`]).
    async fn facts(&self, room: &str) -> Result<RoomFacts, ClusterError> {
        let head = self.head(room, false).await?;
        let last = head.filter(|h| h.seq > 0).map(|h| Receipt { seq: h.seq, epoch: h.epoch });
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await.map_err(broker)?;
        let subject = names::count_subject(room);
        self.client.publish_with_reply(subject, inbox, bytes::Bytes::new()).await.map_err(broker)?;
        let mut subscribers = 0;
        let window = tokio::time::sleep(COUNT_WINDOW);
        tokio::pin!(window);
        loop {
            tokio::select! {
                m = futures_lite::StreamExt::next(&mut replies) => match m {
                    Some(m) => {
                        let n = std::str::from_utf8(&m.payload).ok().and_then(|t| t.parse::<u64>().ok());
                        subscribers += n.unwrap_or(0);
                    }
                    None => break,
                },
                _ = &mut window => break,
            }
        }
        Ok(RoomFacts { last, subscribers })
    }

    /// One subscription on this node ended: below one, the node stops receiving the room.
    pub fn release(&self, room: &str) {
        let mut rooms = self.rooms.borrow_mut();
        let Some(r) = rooms.get_mut(room) else { return };
        r.interest = r.interest.saturating_sub(1);
        if r.interest == 0 {
            if let Some((_, task)) = r.watch.take() {
                task.abort();
                self.stats.watched.fetch_sub(1, Relaxed);
            }
        }
        if r.interest == 0 && !r.appending {
            rooms.remove(room);
        }
    }

    /// The room's newest message as the stream holds it; for a room without messages, seq 0
    /// and its stored epoch — made now if `create`, else `None` when it has none.
    pub async fn head(&self, room: &str, create: bool) -> Result<Option<Head>, ClusterError> {
        let h = self.handles().await?;
        match h.stream.direct_get_last_for_subject(names::in_subject(room)).await {
            Ok(m) => Ok(Some(super::watch::parse(&m.headers, m.sequence)?)),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {
                if !create && self.stored_epoch(room).await?.is_none() {
                    return Ok(None);
                }
                Ok(Some(Head { stream_seq: 0, seq: 0, epoch: self.epoch_of(room).await? }))
            }
            Err(e) => Err(broker(e)),
        }
    }
}

/// A broker failure as clients see it.
pub(super) fn broker(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Broker(e.to_string())
}
