//! Multi-executor tests: real glommio shards on real threads, exchanging real messages.

mod common;

use bytes::Bytes;
use common::*;
use shardcast_engine::outbox::Entry;
use shardcast_engine::{
    Ack, DeliveryMode, Engine, EngineConfig, Namespaces, Policy, Reply, RoomSettings, Shard, StopFlag,
};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
            let epoch = shard.room_info(&room).await.unwrap().epoch.unwrap();
            assert_eq!(text(&out[0]), format!(r#"{{"op":"ok","room":"{room}","seq":25,"epoch":"{epoch}"}}"#));
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
                assert_eq!(seq.seq, i + 1);
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
            assert_eq!(last.seq, 501, "every publish arrived, none lost");
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

/// Issue 7, bug (c): the owner must queue every delivery of a message before it waits on
/// anything — here, on the publisher's shard, whose event queue is full because that shard
/// is stalled. Before the fix the owner awaited the acknowledgement's queue between
/// assigning the seq and fanning out, so even its own local subscriber missed the message
/// for as long as the publisher's shard stalled.
#[test]
fn a_stalled_publisher_shard_does_not_hold_back_the_fan_out_of_its_message() {
    let room = room_owned_by(1, 3, "stall");
    let mut cfg = config(3);
    cfg.channel_capacity = 4;
    let (queued, release, ok) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (ready, stalled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (room2, queued2, release2, ok2) = (room.clone(), queued.clone(), release.clone(), ok.clone());
    run_on(cfg, move |shard: Rc<Shard>| {
        let (room, queued, release, ok, ready, stalled) =
            (room2.clone(), queued2.clone(), release2.clone(), ok2.clone(), ready.clone(), stalled.clone());
        Some(async move {
            let s = shard.new_subscriber(DeliveryMode::Envelope);
            if shard.id() != 2 {
                shard.subscribe(&s, &room, None, false, Ack::Ok(None)).await;
                let mut out = vec![];
                collect(&s, &mut out, |o| !o.is_empty()).await;
            }
            rendezvous(&ready, 3).await;
            let block_until = |flag: &AtomicUsize| {
                let t0 = std::time::Instant::now();
                while flag.load(Ordering::SeqCst) == 0 && t0.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(1)); // the whole shard stalls
                }
            };
            match shard.id() {
                0 => {
                    // While the owner is stalled, one acknowledged publish reaches its channel;
                    // then this shard stalls, so its event queue (deliveries, the ack) fills.
                    while stalled.load(Ordering::SeqCst) == 0 {
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                    let reply = Reply::Conn { conn: s.id(), id: Some("1".into()) };
                    shard.publish(&room, Bytes::from_static(b"\"acked\""), None, reply).await;
                    queued.store(1, Ordering::SeqCst);
                    block_until(&release);
                }
                1 => {
                    stalled.store(1, Ordering::SeqCst);
                    block_until(&queued);
                    // Fill the event queue to shard 0 without yielding (each publish is fully
                    // queued in its first poll; its wait for room is dropped).
                    for i in 0..20 {
                        let data = Bytes::from(format!("{i}"));
                        let _ =
                            futures_lite::future::poll_once(shard.publish(&room, data, None, Reply::None))
                                .await;
                    }
                    // Now the request from shard 0 is handled, while its queue is over the limit.
                    let mut out = vec![];
                    let t0 = std::time::Instant::now();
                    loop {
                        glommio::timer::sleep(Duration::from_millis(5)).await;
                        let published = shard.stats_per_shard()[1].published as usize;
                        let _ = futures_lite::future::poll_once(futures_lite::future::poll_fn(|cx| {
                            s.poll_take(cx, &mut out, 1024)
                        }))
                        .await;
                        if published == 21 && out.len() == 21 {
                            ok.store(1, Ordering::SeqCst);
                            break;
                        }
                        if t0.elapsed() > Duration::from_secs(2) {
                            eprintln!("sequenced {published}, delivered locally {}", out.len());
                            break;
                        }
                    }
                    release.store(1, Ordering::SeqCst);
                }
                _ => {}
            }
        })
    });
    assert_eq!(ok.load(Ordering::SeqCst), 1, "every sequenced message reached the owner's own subscriber");
}

/// Issue 7, bug (d): leaving a room scanned all of its followers on the shard
/// (`Vec::retain`), so a crowd leaving one room cost O(n²). Now each departure is O(1) (an
/// id → position index beside the fan-out vector). No timing is asserted; measured in a
/// debug build, the old scan made this test take 8 s instead of 0.2 s (and quadratically
/// more for bigger crowds).
#[test]
fn a_crowd_leaves_a_room_without_scanning_it() {
    const N: usize = 20_000;
    let room = room_owned_by(0, 2, "crowd");
    let done = Arc::new(AtomicUsize::new(0));
    let (room2, done2) = (room.clone(), done.clone());
    run_on(config(2), move |shard: Rc<Shard>| {
        let (room, done) = (room2.clone(), done2.clone());
        (shard.id() == 0).then_some(async move {
            let subs: Vec<_> = (0..N).map(|_| shard.new_subscriber(DeliveryMode::Envelope)).collect();
            for s in &subs {
                shard.subscribe(s, &room, None, false, Ack::Silent).await;
            }
            shard.publish(&room, Bytes::from_static(b"1"), None, Reply::None).await;
            assert!(subs.iter().all(|s| s.queued_bytes() > 0), "everyone got the message");
            // Leave in an order that defeats any "last one is cheap" luck.
            for s in subs.iter().step_by(2).chain(subs.iter().skip(1).step_by(2).rev()) {
                assert!(shard.unsubscribe(s, &room).await);
            }
            assert_eq!(shard.stats().subscriptions, 0);
            assert_eq!(shard.room_info(&room).await.unwrap().subscribers, 0);
            shard.publish(&room, Bytes::from_static(b"2"), None, Reply::None).await;
            assert!(subs.iter().all(|s| s.queued_bytes() < 60), "nobody got the second one");
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert_eq!(done.load(Ordering::SeqCst), 1);
}
