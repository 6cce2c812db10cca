//! Multi-executor tests: real glommio shards on real threads, exchanging real messages.

use bytes::Bytes;
use shardcast_engine::outbox::Entry;
use shardcast_engine::{
    owner_of, Ack, DeliveryMode, Engine, EngineConfig, Namespaces, Policy, Reply, RoomSettings, Shard,
    StopFlag, Subscriber,
};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config(shards: usize) -> EngineConfig {
    EngineConfig { shards, pin: false, ..EngineConfig::default() }
}

/// Waits (async, without blocking the executor) until `n` shards have arrived.
async fn rendezvous(counter: &AtomicUsize, n: usize) {
    counter.fetch_add(1, Ordering::SeqCst);
    while counter.load(Ordering::SeqCst) < n {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs `body` on the shards `which` selects, then keeps every shard alive (its executor
/// serving cross-shard requests) until all bodies are done.
fn run_on<F, Fut>(cfg: EngineConfig, body: F)
where
    F: Fn(Rc<Shard>) -> Option<Fut> + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let shards = cfg.shards;
    let finished = Arc::new(AtomicUsize::new(0));
    let engine = Engine::start(cfg, StopFlag::new(), move |shard: Rc<Shard>| {
        let fut = body(shard.clone());
        let finished = finished.clone();
        async move {
            if let Some(f) = fut {
                f.await;
            }
            rendezvous(&finished, shards).await;
        }
    })
    .unwrap();
    engine.join().unwrap();
}

/// Takes frames from a subscriber's outbox until `done` says it has enough.
async fn collect(sub: &Rc<Subscriber>, out: &mut Vec<Entry>, done: impl Fn(&[Entry]) -> bool) {
    while !done(out) {
        let more = futures_lite::future::poll_fn(|cx| sub.poll_take(cx, out, 1024)).await;
        assert!(more, "outbox closed unexpectedly");
    }
}

fn text(e: &Entry) -> String {
    let b = e.bytes(DeliveryMode::Envelope);
    let h = match b[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    String::from_utf8(b[h..].to_vec()).unwrap()
}

fn msgs(out: &[Entry]) -> Vec<&Arc<shardcast_engine::Message>> {
    out.iter().filter_map(|e| if let Entry::Msg(m) = e { Some(m) } else { None }).collect()
}

/// A room name owned by shard `owner`.
fn room_owned_by(owner: usize, shards: usize, tag: &str) -> String {
    (0..).map(|i| format!("t:{tag}{i}")).find(|r| owner_of(r, shards) == owner).unwrap()
}

#[test]
fn every_subscriber_on_every_shard_gets_every_message_once_in_order() {
    ordering_with_capacity(4096);
}

/// Tiny cross-shard queues: the flusher and new sends interleave constantly, which is where
/// a later message could overtake an earlier one held by the flusher.
#[test]
fn order_holds_when_cross_shard_queues_are_full() {
    ordering_with_capacity(2);
}

fn ordering_with_capacity(capacity: usize) {
    const SHARDS: usize = 3;
    const PER_PUBLISHER: u64 = 300;
    const SUBS_PER_SHARD: usize = 4;
    let rooms: Arc<Vec<String>> = Arc::new((0..SHARDS).map(|o| room_owned_by(o, SHARDS, "order")).collect());
    let ready = Arc::new(AtomicUsize::new(0));
    let frames: Arc<Mutex<HashMap<(String, u64), usize>>> = Arc::default();
    let checked = Arc::new(AtomicUsize::new(0));
    let (rooms2, frames2, checked2) = (rooms.clone(), frames.clone(), checked.clone());
    let cfg = EngineConfig { channel_capacity: capacity, ..config(SHARDS) };
    let engine = Engine::start(cfg, StopFlag::new(), move |shard: Rc<Shard>| {
        let (rooms, ready, frames, checked) =
            (rooms2.clone(), ready.clone(), frames2.clone(), checked2.clone());
        async move {
            let mut subs = vec![];
            for _ in 0..SUBS_PER_SHARD {
                let sub = shard.new_subscriber(DeliveryMode::Envelope);
                for r in rooms.iter() {
                    shard.subscribe(&sub, r, None, false, Ack::Ok(Some("1".into()))).await;
                }
                subs.push(sub);
            }
            // Wait for every ok (subscriptions live) before anyone publishes.
            let mut outs: Vec<Vec<Entry>> = vec![vec![]; subs.len()];
            for (sub, out) in subs.iter().zip(outs.iter_mut()) {
                collect(sub, out, |o| o.len() >= rooms.len()).await;
                assert!(out.iter().all(|e| text(e).starts_with(r#"{"op":"ok","id":1,"room":"t:order"#)));
                out.clear();
            }
            rendezvous(&ready, SHARDS).await;
            // Publish into every room, most of them owned by other shards.
            for i in 0..PER_PUBLISHER {
                for r in rooms.iter() {
                    let data = Bytes::from(format!("{{\"p\":{},\"i\":{}}}", shard.id(), i));
                    shard.publish(r, data, None, Reply::None).await;
                }
            }
            let expected = PER_PUBLISHER as usize * SHARDS * rooms.len();
            for (sub, out) in subs.iter().zip(outs.iter_mut()) {
                collect(sub, out, |o| o.len() >= expected).await;
                assert_eq!(out.len(), expected);
                for r in rooms.iter() {
                    let seqs: Vec<u64> = msgs(out).iter().filter(|m| *m.room == **r).map(|m| m.seq).collect();
                    assert_eq!(seqs, (1..=PER_PUBLISHER * SHARDS as u64).collect::<Vec<_>>(), "room {r}");
                }
                let mut f = frames.lock().unwrap();
                for m in msgs(out) {
                    let p = m.frame.as_ptr() as usize;
                    let prev = *f.entry((m.room.to_string(), m.seq)).or_insert(p);
                    assert_eq!(prev, p, "one shared buffer per message, on every shard");
                }
                checked.fetch_add(1, Ordering::SeqCst);
            }
            assert_eq!(shard.stats().published, PER_PUBLISHER * (SHARDS * rooms.len()) as u64);
            shard.drain().await;
        }
    })
    .unwrap();
    engine.join().unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), SHARDS * SUBS_PER_SHARD);
    assert_eq!(frames.lock().unwrap().len(), PER_PUBLISHER as usize * SHARDS * rooms.len());
}

#[test]
fn since_replays_across_shards_without_gap_or_duplicate() {
    let room = room_owned_by(1, 2, "hist");
    let done = Arc::new(AtomicUsize::new(0));
    let phase = Arc::new(AtomicUsize::new(0));
    let (room2, done2) = (room.clone(), done.clone());
    let mut cfg = config(2);
    cfg.namespaces = Namespaces::new(RoomSettings { history_size: 10, ..Default::default() });
    run_on(cfg, move |shard: Rc<Shard>| {
        let (room, done, phase) = (room2.clone(), done2.clone(), phase.clone());
        Some(async move {
            if shard.id() == 1 {
                for i in 0..25 {
                    shard.publish(&room, Bytes::from(format!("{i}")), None, Reply::None).await;
                }
                phase.store(1, Ordering::SeqCst);
                return;
            }
            while phase.load(Ordering::SeqCst) == 0 {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            // Covered: since 20 → 21..=25.
            let a = shard.new_subscriber(DeliveryMode::Envelope);
            shard.subscribe(&a, &room, Some(20), false, Ack::Ok(None)).await;
            let mut out = vec![];
            collect(&a, &mut out, |o| o.len() >= 6).await;
            assert_eq!(text(&out[0]), format!(r#"{{"op":"ok","room":"{room}","seq":25}}"#));
            assert_eq!(msgs(&out).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![21, 22, 23, 24, 25]);
            // Not covered: since 3, history holds 16..=25 → gap 4..=15 then 16..=25.
            let b = shard.new_subscriber(DeliveryMode::Envelope);
            shard.subscribe(&b, &room, Some(3), false, Ack::Silent).await;
            let mut out = vec![];
            collect(&b, &mut out, |o| o.len() >= 11).await;
            assert_eq!(text(&out[0]), format!(r#"{{"op":"gap","room":"{room}","from":4,"to":15}}"#));
            assert_eq!(msgs(&out).iter().map(|m| m.seq).collect::<Vec<_>>(), (16..=25).collect::<Vec<_>>());
            // Live edge: the next message arrives once, after the replay.
            shard.publish(&room, Bytes::from_static(b"26"), None, Reply::None).await;
            let mut out = vec![];
            collect(&a, &mut out, |o| !o.is_empty()).await;
            assert_eq!(msgs(&out).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![26]);
            let info = shard.room_info(&room).await.unwrap();
            assert_eq!((info.seq, info.subscribers, info.history_len), (26, 2, 10));
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn snapshot_and_http_style_publish_report_seq() {
    let room = room_owned_by(0, 2, "snap");
    let done = Arc::new(AtomicUsize::new(0));
    let (room2, done2) = (room.clone(), done.clone());
    let mut cfg = config(2);
    cfg.namespaces
        .insert("t", RoomSettings { key: Some("id".into()), policy: Policy::Conflate, ..Default::default() });
    run_on(cfg, move |shard: Rc<Shard>| {
        let (room, done) = (room2.clone(), done2.clone());
        Some(async move {
            if shard.id() != 1 {
                return;
            }
            for i in 0..9u64 {
                let key = format!("v{}", i % 3);
                let seq = shard
                    .publish_wait(&room, Bytes::from(format!("{{\"id\":\"{key}\"}}")), Some(key.into()))
                    .await
                    .unwrap();
                assert_eq!(seq, i + 1);
            }
            let s = shard.new_subscriber(DeliveryMode::Raw);
            shard.subscribe(&s, &room, None, true, Ack::Silent).await;
            let mut out = vec![];
            collect(&s, &mut out, |o| o.len() >= 3).await;
            assert_eq!(msgs(&out).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![7, 8, 9]);
            assert_eq!(&out[0].bytes(DeliveryMode::Raw)[2..], br#"{"id":"v0"}"#);
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn a_never_draining_subscriber_stays_bounded_and_others_get_everything() {
    let room = room_owned_by(1, 2, "slow");
    let done = Arc::new(AtomicUsize::new(0));
    let (room2, done2) = (room.clone(), done.clone());
    let mut cfg = config(2);
    cfg.outbox_bytes = 8 << 10;
    run_on(cfg, move |shard: Rc<Shard>| {
        let (room, done) = (room2.clone(), done2.clone());
        Some(async move {
            if shard.id() != 0 {
                return;
            }
            let stalled = shard.new_subscriber(DeliveryMode::Envelope);
            let healthy = shard.new_subscriber(DeliveryMode::Envelope);
            shard.subscribe(&stalled, &room, None, false, Ack::Silent).await;
            shard.subscribe(&healthy, &room, None, false, Ack::Ok(None)).await;
            let mut out = vec![];
            collect(&healthy, &mut out, |o| !o.is_empty()).await; // live
            out.clear();
            let payload = format!("\"{}\"", "x".repeat(200));
            let mut got = 0;
            for i in 0..2000 {
                shard.publish(&room, Bytes::from(payload.clone()), None, Reply::None).await;
                if i % 10 == 9 {
                    collect(&healthy, &mut out, |o| o.len() >= (i + 1) as usize).await;
                }
                assert!(stalled.queued_bytes() <= 8 << 10);
                got = out.len();
            }
            collect(&healthy, &mut out, |o| o.len() >= 2000).await;
            assert!(got <= 2000);
            assert_eq!(msgs(&out).len(), 2000, "the healthy neighbour lost nothing");
            assert!(shard.stats().dropped > 1900);
            // The stalled one, once it drains, learns exactly what it missed.
            let mut slow = vec![];
            collect(&stalled, &mut slow, |o| o.iter().any(|e| matches!(e, Entry::Ctrl(_)))).await;
            let kept = msgs(&slow).len() as u64;
            assert_eq!(
                text(slow.last().unwrap()),
                format!(r#"{{"op":"gap","room":"{room}","from":{},"to":2000}}"#, kept + 1)
            );
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn a_full_cross_shard_queue_pushes_back_on_the_publisher() {
    let room = room_owned_by(1, 2, "bp");
    let mut cfg = config(2);
    cfg.channel_capacity = 4;
    let waits = Arc::new(AtomicUsize::new(0));
    let (room2, waits2) = (room.clone(), waits.clone());
    let start = Arc::new(AtomicUsize::new(0));
    run_on(cfg, move |shard: Rc<Shard>| {
        let (room, waits, start) = (room2.clone(), waits2.clone(), start.clone());
        Some(async move {
            if shard.id() == 1 {
                // The owner is busy (blocks its core) while shard 0 publishes.
                while start.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
            start.store(1, Ordering::SeqCst);
            for i in 0..500 {
                shard.publish(&room, Bytes::from(format!("{i}")), None, Reply::None).await;
            }
            let last = shard.publish_wait(&room, Bytes::from_static(b"0"), None).await.unwrap();
            assert_eq!(last, 501, "every publish arrived, none lost");
            waits.store(shard.stats_per_shard()[0].backpressure_waits as usize, Ordering::SeqCst);
        })
    });
    assert!(waits.load(Ordering::SeqCst) > 0, "publisher waited on the full queue");
}

#[test]
fn rooms_that_never_had_a_message_are_forgotten_when_left() {
    let done = Arc::new(AtomicUsize::new(0));
    let done2 = done.clone();
    run_on(config(2), move |shard: Rc<Shard>| {
        let done = done2.clone();
        Some(async move {
            if shard.id() != 0 {
                return;
            }
            let sub = shard.new_subscriber(DeliveryMode::Envelope);
            for i in 0..200 {
                let room = format!("spam:{i}");
                shard.subscribe(&sub, &room, None, false, Ack::Silent).await;
                assert!(shard.unsubscribe(&sub, &room).await);
            }
            // A room with a message keeps its seq after everyone left.
            shard.subscribe(&sub, "kept:1", None, false, Ack::Silent).await;
            shard.publish_wait("kept:1", Bytes::from_static(b"1"), None).await.unwrap();
            shard.unsubscribe(&sub, "kept:1").await;
            // Requests are handled in order, so the info answer comes after every unsubscribe.
            for s in 0..2 {
                let probe = room_owned_by(s, 2, "probe");
                shard.room_info(&probe).await.unwrap();
            }
            assert_eq!(shard.stats().rooms, 1);
            assert_eq!(shard.room_info("kept:1").await.unwrap().seq, 1);
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert_eq!(done.load(Ordering::SeqCst), 1);
}
