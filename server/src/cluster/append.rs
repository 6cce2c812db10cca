//! Appending a room's publishes to the stream, one at a time per room per node.
//!
//! Each append names the room's last stream sequence this node knows
//! (`Nats-Expected-Last-Subject-Sequence`) and carries the next room `seq` and the epoch in
//! headers. If another node appended first, the stream refuses it (wrong last sequence): the
//! node re-reads the room's newest message and tries again. So a room's `seq` is contiguous
//! and identical everywhere however many nodes publish into it, and a refused append never
//! reaches a subscriber (the stream re-publishes only what it accepted).
//!
//! Invariant: at most one appender task per room (`RoomLink::appending`); publishes of one
//! room from one node are appended in the order they were asked for.

use async_nats::header::{HeaderMap, NATS_EXPECTED_LAST_SUBJECT_SEQUENCE};
use async_nats::jetstream::context::PublishErrorKind;
use bytes::Bytes;
use shardcast_engine::Receipt;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::link::{broker, Head, Link};
use super::names;
use super::ClusterError;

/// Most attempts for one publish while other nodes keep appending to the same room.
const ATTEMPTS: usize = 64;

/// Appends the room's queued publishes until its queue is empty.
pub(super) async fn run(link: Rc<Link>, room: Arc<str>) {
    loop {
        let next = {
            let mut rooms = link.rooms.borrow_mut();
            let Some(r) = rooms.get_mut(&room) else { return };
            match r.queue.pop_front() {
                Some(p) => p,
                None => {
                    r.appending = false;
                    if r.interest == 0 {
                        rooms.remove(&room);
                    }
                    return;
                }
            }
        };
        if next.reply.is_closed() {
            continue; // its caller gave up (deadline): do not append what it was told failed
        }
        let result = append(&link, &room, next.data, next.key, &next.reply).await;
        let _ = next.reply.send(result);
    }
}

async fn append(
    link: &Link,
    room: &str,
    data: Bytes,
    key: Option<Box<str>>,
    caller: &tokio::sync::oneshot::Sender<Result<Receipt, ClusterError>>,
) -> Result<Receipt, ClusterError> {
    let handles = link.handles().await?;
    let js = &handles.js;
    let subject = names::in_subject(room);
    for _ in 0..ATTEMPTS {
        if caller.is_closed() {
            // Told `unavailable` already (its deadline passed): another attempt could land
            // a message its publisher believes refused.
            return Err(ClusterError::Broker("the caller gave up".into()));
        }
        let cached = link.rooms.borrow().get(room).and_then(|r| r.head);
        let head = match cached {
            Some(h) => h,
            None => link.head(room, true).await?.ok_or_else(|| ClusterError::Broker("no head".into()))?,
        };
        let seq = head.seq + 1;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, head.stream_seq.to_string().as_str());
        headers.insert(names::SEQ, seq.to_string().as_str());
        headers.insert(names::EPOCH, head.epoch.as_str());
        let sent = js.publish_with_headers(subject.clone(), headers, data.clone()).await.map_err(broker)?;
        let (next, result) = match sent.await {
            Ok(ack) => {
                link.stats.published.fetch_add(1, Relaxed);
                let h = Head { stream_seq: ack.sequence, seq, epoch: head.epoch };
                if let Some(subject) = key.as_deref().and_then(|k| names::key_subject(room, k)) {
                    record_key(js, subject, seq, head.epoch, data.clone()).await;
                }
                (Some(h), Some(Ok(Receipt { seq, epoch: head.epoch })))
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                link.stats.conflicts.fetch_add(1, Relaxed);
                (None, None)
            }
            Err(e) => (None, Some(Err(broker(e)))),
        };
        if let Some(r) = link.rooms.borrow_mut().get_mut(room) {
            r.head = next;
        }
        if let Some(result) = result {
            return result;
        }
    }
    Err(ClusterError::Broker(format!("{room}: {ATTEMPTS} appends in a row lost to other nodes")))
}

/// Makes an appended message its key's latest (the keys stream keeps one per subject). Not
/// waited for: the message is already durable in the room's stream; a lost key record only
/// leaves an older entry for that key in snapshots loaded later, until its next update (and
/// a node that loads the room also takes every key found in the loaded history, newer).
async fn record_key(
    js: &async_nats::jetstream::Context,
    subject: String,
    seq: u64,
    epoch: shardcast_engine::Epoch,
    data: Bytes,
) {
    let mut headers = HeaderMap::new();
    headers.insert(names::SEQ, seq.to_string().as_str());
    headers.insert(names::EPOCH, epoch.as_str());
    match js.publish_with_headers(subject, headers, data).await {
        Ok(ack) => {
            tokio::task::spawn_local(async move {
                if let Err(e) = ack.await {
                    tracing::debug!("a key record was not stored: {e}");
                }
            });
        }
        Err(e) => tracing::debug!("a key record was not sent: {e}"),
    }
}
