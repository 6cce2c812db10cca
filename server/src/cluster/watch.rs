//! Receiving one room while this node has subscribers of it (interest-based routing).
//!
//! The watcher subscribes to `sc.out.<room>` and flushes (from then on the broker sends this
//! node every accepted message of the room), reads the room's epoch and its retained history
//! from the stream, hands that history to the room's owner shard and waits until the shard
//! holds it; only then are the subscriptions that asked answered (so a `sub`'s `ok` means
//! "every later publish reaches you"). After that it forwards each message in `seq` order:
//! duplicates (already in the history it loaded) are dropped, and a message past the next
//! `seq` (re-publishing can overtake, or the broker dropped some for a slow consumer) first
//! gets the missing ones fetched from the stream by subject.
//!
//! Aborting the task (the room's last local subscription ended) drops the subscription, so
//! the broker stops sending the room here.

use async_nats::header::{HeaderMap, NATS_SEQUENCE};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::stream::DirectGetErrorKind;
use futures_lite::StreamExt;
use shardcast_engine::Epoch;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

use super::link::{broker, Head, Link, Watch};
use super::names;
use super::{ClusterError, Inbound, Stored};

/// Watches `room` until aborted or the link stops.
pub(super) async fn run(link: Rc<Link>, room: Arc<str>, keyed: bool) {
    let owner = shardcast_engine::owner_of(&room, link.cfg.shards);
    let (mut sub, mut last) = match start(&link, &room, owner, keyed).await {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(room = &*room, "cannot receive the room from the broker: {e}");
            settle(&link, &room, Err(e));
            return;
        }
    };
    if !settle(&link, &room, Ok(last.epoch)) {
        return;
    }
    let mut connects = link.connects.clone();
    connects.mark_unchanged();
    // Count requests (GET /api/rooms on any node) get this node's subscribers of the room.
    let mut counts = match link.client.subscribe(names::count_subject(&room)).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(room = &*room, "subscriber counts will miss this node: {e}");
            None
        }
    };
    // Other nodes' members of the room, if it is a presence room (`presence.rs`).
    let mut pres = match link.client.subscribe(super::presence::subject(&room)).await {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(room = &*room, "presence will miss the other nodes: {e}");
            None
        }
    };
    loop {
        let m = tokio::select! {
            m = sub.next() => m,
            Some(state) = async { pres.as_mut()?.next().await } => {
                super::presence::forward(&link, &room, &link.presence_node, &state.payload).await;
                continue;
            }
            Some(req) = async { counts.as_mut()?.next().await } => {
                let n = link.rooms.borrow().get(&*room).map_or(0, |r| r.interest);
                if let Some(to) = req.reply {
                    let _ = link.client.publish(to, n.to_string().into()).await;
                }
                continue;
            }
            changed = connects.changed() => {
                if changed.is_err() {
                    return;
                }
                // Reconnected: what the room got meanwhile is in the stream, not in flight.
                if let Err(e) = catch_up(&link, &room, owner, &mut last).await {
                    tracing::warn!(room = &*room, "cannot catch up after reconnecting: {e}");
                }
                continue;
            }
        };
        let Some(m) = m else { return };
        link.stats.received.fetch_add(1, Relaxed);
        let stream_seq = header(m.headers.as_ref(), NATS_SEQUENCE.as_ref()).unwrap_or(0);
        let Ok(head) = m.headers.as_ref().map_or(Err(bad("no headers")), |h| parse(h, stream_seq)) else {
            tracing::warn!(room = &*room, "a message without its seq or epoch headers: skipped");
            continue;
        };
        if head.seq <= last.seq && head.epoch == last.epoch {
            continue;
        }
        if head.seq > last.seq + 1 && head.epoch == last.epoch {
            if let Err(e) = fill(&link, &room, owner, &mut last, head.seq).await {
                tracing::warn!(room = &*room, "cannot fill seqs {}..{}: {e}", last.seq + 1, head.seq - 1);
            }
        } else if head.epoch != last.epoch && head.seq > 1 {
            // A new epoch whose first messages went by unseen (the broker lost its store
            // while this node was away): those come first, from the stream.
            if let Err(e) = forward_retained(&link, &room, owner, &mut last, head.epoch, head.seq).await {
                tracing::warn!(room = &*room, "cannot fill seqs 1..{} of a new epoch: {e}", head.seq - 1);
            }
        }
        if !forward(&link, &room, owner, head, m.payload, Duration::ZERO).await {
            return;
        }
        last = head;
    }
}

/// Subscribes, loads the history, and waits until the owner shard holds it.
async fn start(
    link: &Link,
    room: &Arc<str>,
    owner: usize,
    keyed: bool,
) -> Result<(async_nats::Subscriber, Head), ClusterError> {
    // Fails at once while the link is down, before anything is subscribed.
    link.handles().await?;
    let sub = link.client.subscribe(names::out_subject(room)).await.map_err(broker)?;
    link.client.flush().await.map_err(broker)?;
    let epoch = link.epoch_of(room).await?;
    let mut msgs = Vec::new();
    let mut last = Head { stream_seq: 0, seq: 0, epoch };
    for (head, m) in retained(link, room, epoch).await? {
        msgs.push(Stored { seq: head.seq, data: m.payload, key: None, age: m.age });
        last = head;
    }
    let oldest = msgs.first().map_or(last.seq + 1, |m| m.seq);
    let snapshot = if keyed { load_keys(link, room, epoch, oldest).await? } else { Vec::new() };
    let (done, held) = oneshot::channel();
    let sync = Inbound::Sync { room: room.clone(), epoch, snapshot, msgs, done };
    link.to_shards[owner].send(sync).await.map_err(|_| broker("shard stopped"))?;
    match held.await {
        Ok(true) => Ok((sub, last)),
        Ok(false) => Err(ClusterError::TooManyRooms),
        Err(_) => Err(broker("shard stopped")),
    }
}

/// The latest message of each key of `room` older than seq `before` (newer ones are in the
/// loaded history), ascending, at most the engine's `max_snapshot_keys` (the newest).
async fn load_keys(link: &Link, room: &str, epoch: Epoch, before: u64) -> Result<Vec<Stored>, ClusterError> {
    let h = link.handles().await?;
    let cap = shardcast_engine::RoomSettings::default().max_snapshot_keys;
    let mut entries = Vec::new();
    for m in consume(&h.keys, names::keys_of(room), DeliverPolicy::LastPerSubject, cap).await? {
        let Ok(head) = parse(&m.headers, 0) else { continue };
        let key = m.subject.rsplit('.').next().and_then(names::key_of_token);
        if let Some(key) = key.filter(|_| head.epoch == epoch && head.seq < before) {
            entries.push(Stored { seq: head.seq, data: m.payload, key: Some(key), age: m.age });
        }
    }
    entries.sort_unstable_by_key(|e| e.seq);
    Ok(entries)
}

/// A message read by [`consume`].
struct Loaded {
    subject: String,
    stream_seq: u64,
    headers: HeaderMap,
    payload: bytes::Bytes,
    age: Duration,
}

/// Everything `stream` holds under `filter` as `policy` delivers it, through one ephemeral
/// ordered consumer, in stream order; at most the newest `cap` messages are kept while
/// reading (memory stays bounded whatever the stream holds).
async fn consume(
    stream: &async_nats::jetstream::stream::Stream,
    filter: String,
    policy: DeliverPolicy,
    cap: usize,
) -> Result<Vec<Loaded>, ClusterError> {
    let config = OrderedConfig { filter_subject: filter, deliver_policy: policy, ..Default::default() };
    let mut consumer = stream.create_consumer(config).await.map_err(broker)?;
    let mut pending = consumer.info().await.map_err(broker)?.num_pending;
    let mut out = std::collections::VecDeque::new();
    if pending == 0 {
        return Ok(Vec::new());
    }
    let mut messages = consumer.messages().await.map_err(broker)?;
    while pending > 0 {
        let Some(m) = messages.next().await else { break };
        let m = m.map_err(broker)?;
        let info = m.info().map_err(broker)?;
        let (stream_seq, published) = (info.stream_sequence, info.published);
        pending = info.pending;
        let headers = m.headers.clone().unwrap_or_default();
        out.push_back(Loaded {
            subject: m.subject.to_string(),
            stream_seq,
            headers,
            payload: m.payload.clone(),
            age: age_of(published),
        });
        if out.len() > cap {
            out.pop_front();
        }
    }
    Ok(out.into())
}

/// Answers the subscriptions waiting for the room. Returns whether to keep watching.
fn settle(link: &Link, room: &str, result: Result<Epoch, ClusterError>) -> bool {
    let mut rooms = link.rooms.borrow_mut();
    let Some(r) = rooms.get_mut(room) else { return false };
    let Some((Watch::Starting(waiters), _)) = r.watch.as_mut() else { return false };
    for tx in std::mem::take(waiters) {
        if tx.send(result.clone()).is_err() || result.is_err() {
            r.interest -= 1; // a refused or abandoned interest is nobody's to give back
        }
    }
    let keep = result.is_ok() && r.interest > 0;
    if keep {
        if let Ok(epoch) = result {
            r.watch.as_mut().expect("checked above").0 = Watch::Ready(epoch);
        }
    } else {
        r.watch = None;
        link.stats.watched.fetch_sub(1, Relaxed);
        if r.interest == 0 && !r.appending {
            rooms.remove(room);
        }
    }
    keep
}

/// Fetches the room's messages after `last` up to (not including) `seq` from the stream
/// (`u64::MAX`: all it holds).
async fn fill(
    link: &Link,
    room: &Arc<str>,
    owner: usize,
    last: &mut Head,
    seq: u64,
) -> Result<(), ClusterError> {
    let h = link.handles().await?;
    let subject = names::in_subject(room);
    while last.seq + 1 < seq {
        let m = match h.stream.direct_get_next_for_subject(subject.as_str(), Some(last.stream_seq + 1)).await
        {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(broker(e)),
        };
        let head = parse(&m.headers, m.sequence)?;
        if head.seq >= seq || head.epoch != last.epoch {
            return Ok(());
        }
        link.stats.filled.fetch_add(1, Relaxed);
        if head.seq > last.seq && !forward(link, room, owner, head, m.payload, age_of(m.time)).await {
            return Err(broker("shard stopped"));
        }
        *last = Head { stream_seq: m.sequence, ..head };
    }
    Ok(())
}

/// After a reconnect, forwards what the room got meanwhile from the stream. If the broker
/// lost its store meanwhile, the room lives on under a new epoch in a stream that started
/// over, whose sequences no longer follow `last`: then the room's retained messages of the
/// new epoch are forwarded from the first, and that first one makes the owner shard reset
/// the room's subscribers, as a live message of a new epoch does. Without this, a node
/// that reconnected after another had already published into the new store never
/// delivered those messages nor the reset.
async fn catch_up(link: &Link, room: &Arc<str>, owner: usize, last: &mut Head) -> Result<(), ClusterError> {
    // The client subscribed again when it reconnected: once the broker has that, whatever
    // the stream does not hold yet arrives live.
    link.client.flush().await.map_err(broker)?;
    match link.stored_epoch(room).await? {
        Some(epoch) if epoch != last.epoch => {
            forward_retained(link, room, owner, last, epoch, u64::MAX).await
        }
        _ => fill(link, room, owner, last, u64::MAX).await,
    }
}

/// Forwards the room's retained messages of `epoch` below seq `until` that `last` does not
/// cover yet (all of them while `last` is of another epoch), in order.
async fn forward_retained(
    link: &Link,
    room: &Arc<str>,
    owner: usize,
    last: &mut Head,
    epoch: Epoch,
    until: u64,
) -> Result<(), ClusterError> {
    for (head, m) in retained(link, room, epoch).await? {
        if head.seq >= until || (head.epoch == last.epoch && head.seq <= last.seq) {
            continue;
        }
        link.stats.filled.fetch_add(1, Relaxed);
        if !forward(link, room, owner, head, m.payload, m.age).await {
            return Err(broker("shard stopped"));
        }
        *last = head;
    }
    Ok(())
}

/// The room's retained messages of `epoch`, oldest first, in one ordered consumer (one
/// request, then the messages stream in): a node taking interest in hundreds of rooms at
/// once must not pay a round trip per retained message.
async fn retained(link: &Link, room: &str, epoch: Epoch) -> Result<Vec<(Head, Loaded)>, ClusterError> {
    let h = link.handles().await?;
    let all = consume(&h.stream, names::in_subject(room), DeliverPolicy::All, link.cfg.history).await?;
    let heads = all.into_iter().filter_map(|m| Some((parse(&m.headers, m.stream_seq).ok()?, m)));
    Ok(heads.filter(|(head, _)| head.epoch == epoch).collect())
}

/// Hands one message to the owner shard (waiting while its queue is full).
async fn forward(
    link: &Link,
    room: &Arc<str>,
    owner: usize,
    head: Head,
    data: bytes::Bytes,
    age: Duration,
) -> bool {
    let msg = Inbound::Msg { room: room.clone(), epoch: head.epoch, seq: head.seq, data, age };
    let sent = link.to_shards[owner].send(msg).await.is_ok();
    if sent {
        link.stats.delivered.fetch_add(1, Relaxed);
    }
    sent
}

/// The room seq and epoch a stored or re-published message carries.
pub(super) fn parse(headers: &HeaderMap, stream_seq: u64) -> Result<Head, ClusterError> {
    let seq = header(Some(headers), names::SEQ).ok_or_else(|| bad("no Sc-Seq header"))?;
    let epoch = headers.get(names::EPOCH).and_then(|v| Epoch::parse(v.as_str()));
    Ok(Head { stream_seq, seq, epoch: epoch.ok_or_else(|| bad("no Sc-Epoch header"))? })
}

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers?.get(name)?.as_str().parse().ok()
}

fn bad(what: &str) -> ClusterError {
    ClusterError::Broker(what.into())
}

/// How long ago the stream stored a message (its timestamp against this host's clock; zero
/// if the clocks disagree the other way), so the history TTL counts from publication.
fn age_of(stored: async_nats::datetime::DateTime) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i128;
    let ns = (now - stored.unix_timestamp_nanos()).max(0);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}
