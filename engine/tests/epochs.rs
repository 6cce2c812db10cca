//! Room lifecycle across shards: epochs, `reset` notices, the room limit, eviction and
//! expiry, with the subscriber on one shard and the room's owner on another.

mod common;

use bytes::Bytes;
use common::*;
use shardcast_engine::outbox::Entry;
use shardcast_engine::{
    Ack, DeliveryMode, EngineConfig, EngineError, Namespaces, Reply, RoomSettings, Shard, SubOptions,
};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs `body` on shard 0 of a two-shard engine (shard 1 owns the rooms the tests pick) and
/// asserts it ran to the end.
fn on_shard0<F, Fut>(cfg: EngineConfig, body: F)
where
    F: Fn(Rc<Shard>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let done = Arc::new(AtomicUsize::new(0));
    let done2 = done.clone();
    let body = Arc::new(body);
    run_on(cfg, move |shard: Rc<Shard>| {
        let (done, body) = (done2.clone(), body.clone());
        (shard.id() == 0).then_some(async move {
            body(shard).await;
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    assert_eq!(done.load(Ordering::SeqCst), 1, "the test body did not finish");
}

fn texts(out: &[Entry]) -> Vec<String> {
    out.iter().map(text).collect()
}

fn data(i: u64) -> Bytes {
    Bytes::from(format!("{{\"i\":{i}}}"))
}

async fn sub_with(shard: &Shard, s: &Rc<shardcast_engine::Subscriber>, room: &str, opts: SubOptions) {
    shard.subscribe_with(s, room, opts, Ack::Ok(Some("7".into()))).await;
}

#[test]
fn the_epoch_exists_with_the_room_and_the_first_publish_keeps_it() {
    let room = room_owned_by(1, 2, "epoch");
    on_shard0(config(2), move |shard| {
        let room = room.clone();
        async move {
            assert_eq!(shard.room_info(&room).await.unwrap().epoch, None, "asking creates nothing");
            let s = shard.new_subscriber(DeliveryMode::Envelope);
            sub_with(&shard, &s, &room, SubOptions::default()).await;
            let mut out = vec![];
            collect(&s, &mut out, |o| !o.is_empty()).await;
            let epoch = shard.room_info(&room).await.unwrap().epoch.expect("the room exists");
            assert_eq!(epoch.as_str().len(), 10);
            assert_eq!(
                text(&out[0]),
                format!(r#"{{"op":"ok","id":7,"room":"{room}","seq":0,"epoch":"{epoch}"}}"#)
            );
            let r = shard.publish_wait(&room, data(1), None).await.unwrap();
            assert_eq!((r.seq, r.epoch), (1, epoch));
        }
    });
}

#[test]
fn a_wrong_epoch_or_a_since_beyond_seq_gets_reset_then_the_whole_history() {
    let room = room_owned_by(1, 2, "resume");
    on_shard0(config(2), move |shard| {
        let room = room.clone();
        async move {
            for i in 1..=3 {
                shard.publish_wait(&room, data(i), None).await.unwrap();
            }
            let epoch = shard.room_info(&room).await.unwrap().epoch.unwrap();
            let cases = [
                SubOptions {
                    since: Some(1),
                    epoch: Some("wrongwrong".into()),
                    snapshot: false,
                    room_epoch: None,
                    ..Default::default()
                },
                SubOptions {
                    since: None,
                    epoch: Some("wrongwrong".into()),
                    snapshot: false,
                    room_epoch: None,
                    ..Default::default()
                },
                SubOptions {
                    since: Some(40),
                    epoch: None,
                    snapshot: false,
                    room_epoch: None,
                    ..Default::default()
                },
                SubOptions {
                    since: Some(40),
                    epoch: Some(epoch.as_str().into()),
                    snapshot: false,
                    room_epoch: None,
                    ..Default::default()
                },
            ];
            for opts in cases {
                let s = shard.new_subscriber(DeliveryMode::Envelope);
                sub_with(&shard, &s, &room, opts.clone()).await;
                let mut out = vec![];
                collect(&s, &mut out, |o| o.len() >= 5).await;
                let t = texts(&out);
                assert_eq!(
                    t[0],
                    format!(r#"{{"op":"ok","id":7,"room":"{room}","seq":3,"epoch":"{epoch}"}}"#)
                );
                assert_eq!(
                    t[1],
                    format!(r#"{{"op":"reset","room":"{room}","epoch":"{epoch}"}}"#),
                    "{opts:?}"
                );
                let seqs: Vec<u64> = msgs(&out).iter().map(|m| m.seq).collect();
                assert_eq!(seqs, vec![1, 2, 3], "{opts:?}");
                shard.remove_subscriber(&s).await;
            }
            // The right epoch resumes normally: no reset, only what is new.
            let s = shard.new_subscriber(DeliveryMode::Envelope);
            sub_with(
                &shard,
                &s,
                &room,
                SubOptions {
                    since: Some(2),
                    epoch: Some(epoch.as_str().into()),
                    snapshot: false,
                    room_epoch: None,
                    ..Default::default()
                },
            )
            .await;
            let mut out = vec![];
            collect(&s, &mut out, |o| o.len() >= 2).await;
            assert!(!texts(&out).iter().any(|t| t.starts_with(r#"{"op":"reset""#)));
            assert_eq!(msgs(&out).iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3]);
            // Live continues after the replay.
            shard.publish(&room, data(4), None, Reply::None).await;
            collect(&s, &mut out, |o| o.len() >= 3).await;
            assert_eq!(msgs(&out).last().unwrap().seq, 4);
        }
    });
}

#[test]
fn an_evicted_room_comes_back_under_a_new_epoch() {
    let room = room_owned_by(1, 2, "evict");
    let others: Vec<String> = (0..40).map(|i| room_owned_by(1, 2, &format!("filler{i}x"))).collect();
    let mut cfg = config(2);
    // About eight 1 KiB messages per shard.
    cfg.retained_bytes = 2 * 8 * 1400;
    on_shard0(cfg, move |shard| {
        let (room, others) = (room.clone(), others.clone());
        async move {
            let kib = || Bytes::from(format!("\"{}\"", "x".repeat(1022)));
            let first = shard.publish_wait(&room, kib(), None).await.unwrap();
            shard.publish_wait(&room, kib(), None).await.unwrap();
            for o in &others {
                shard.publish_wait(o, kib(), None).await.unwrap();
            }
            assert_eq!(shard.room_info(&room).await.unwrap().epoch, None, "evicted");
            let stats = shard.stats_per_shard();
            assert!(stats[1].rooms_evicted > 0);
            assert!(stats[1].retained_bytes <= 8 * 1400, "{}", stats[1].retained_bytes);
            // A client resuming with the old position learns the room restarted.
            let s = shard.new_subscriber(DeliveryMode::Envelope);
            let opts = SubOptions {
                since: Some(2),
                epoch: Some(first.epoch.as_str().into()),
                snapshot: false,
                room_epoch: None,
                ..Default::default()
            };
            sub_with(&shard, &s, &room, opts).await;
            let mut out = vec![];
            collect(&s, &mut out, |o| o.len() >= 2).await;
            let epoch = shard.room_info(&room).await.unwrap().epoch.unwrap();
            assert_ne!(epoch, first.epoch);
            assert_eq!(texts(&out)[1], format!(r#"{{"op":"reset","room":"{room}","epoch":"{epoch}"}}"#));
            let again = shard.publish_wait(&room, kib(), None).await.unwrap();
            assert_eq!((again.seq, again.epoch), (1, epoch));
        }
    });
}

#[test]
fn idle_rooms_expire_by_the_housekeeping_sweep() {
    let room = room_owned_by(1, 2, "ttl");
    let mut cfg = config(2);
    cfg.namespaces =
        Namespaces::new(RoomSettings { room_ttl: Some(Duration::from_millis(50)), ..Default::default() });
    on_shard0(cfg, move |shard| {
        let room = room.clone();
        async move {
            let first = shard.publish_wait(&room, data(1), None).await.unwrap();
            // The sweep runs every 20 ms; no assumption on when exactly.
            while shard.stats_per_shard()[1].rooms_expired == 0 {
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(shard.room_info(&room).await.unwrap().epoch, None);
            assert_eq!(shard.stats_per_shard()[1].rooms, 0);
            let again = shard.publish_wait(&room, data(1), None).await.unwrap();
            assert_eq!(again.seq, 1);
            assert_ne!(again.epoch, first.epoch);
        }
    });
}

#[test]
fn the_room_limit_refuses_clearly_and_refusals_release_nothing() {
    let rooms: Vec<String> = (0..3).map(|i| room_owned_by(1, 2, &format!("full{i}x"))).collect();
    let mut cfg = config(2);
    cfg.max_rooms = 2; // one per shard
    on_shard0(cfg, move |shard| {
        let rooms = rooms.clone();
        async move {
            let (x, y) = (&rooms[0], &rooms[1]);
            let b = shard.new_subscriber(DeliveryMode::Envelope);
            sub_with(&shard, &b, x, SubOptions::default()).await;
            // Refused: a subscribe (error op with the request's id), a publish (typed error).
            let a = shard.new_subscriber(DeliveryMode::Envelope);
            sub_with(&shard, &a, y, SubOptions::default()).await;
            let mut out = vec![];
            collect(&a, &mut out, |o| !o.is_empty()).await;
            assert!(
                text(&out[0]).starts_with(r#"{"op":"error","id":7,"code":"too_many_rooms","message":""#),
                "{}",
                text(&out[0])
            );
            assert!(!a.follows(y));
            let err = shard.publish_wait(&rooms[2], data(1), None).await.unwrap_err();
            assert!(matches!(err, EngineError::TooManyRooms(e) if e.limit == 1), "{err}");
            let p = shard.new_subscriber(DeliveryMode::Envelope);
            let reply = Reply::Conn { conn: p.id(), id: Some("9".into()) };
            shard.publish(&rooms[2], data(1), None, reply).await;
            let mut out = vec![];
            collect(&p, &mut out, |o| !o.is_empty()).await;
            assert!(text(&out[0]).starts_with(r#"{"op":"error","id":9,"code":"too_many_rooms""#));
            // A room-per-URL connection that cannot join is closed: it has no other room.
            let u = shard.new_subscriber(DeliveryMode::Raw);
            shard.subscribe(&u, y, None, false, Ack::Silent).await;
            let mut out = vec![];
            collect(&u, &mut out, |o| !o.is_empty()).await;
            assert_eq!(&out[0].bytes(DeliveryMode::Raw)[2..4], &1013u16.to_be_bytes());
            assert!(shard.stats_per_shard()[1].rooms_refused >= 4);
            // A subscribe left while pending, whatever its answer, releases nothing it
            // was not given: x keeps exactly its one subscriber.
            for _ in 0..20 {
                let c = shard.new_subscriber(DeliveryMode::Envelope);
                sub_with(&shard, &c, y, SubOptions::default()).await; // refused
                assert!(shard.unsubscribe(&c, y).await, "pending counts as followed");
                sub_with(&shard, &c, x, SubOptions::default()).await; // admitted
                shard.unsubscribe(&c, x).await;
                shard.remove_subscriber(&c).await;
            }
            // Releases travel behind the answers; wait for them, never seeing fewer than B.
            for attempt in 0.. {
                let info = shard.room_info(x).await.unwrap();
                assert!(info.subscribers >= 1, "a release took B's subscription");
                if info.subscribers == 1 {
                    break;
                }
                assert!(attempt < 500, "releases never arrived: {info:?}");
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
            // Leaving the subscribe-only room forgets it, which frees its place.
            shard.remove_subscriber(&b).await;
            let r = shard.publish_wait(y, data(1), None).await.unwrap();
            assert_eq!(r.seq, 1);
            assert!(!shard.room_info(&rooms[2]).await.unwrap().admits);
            assert!(shard.room_info(y).await.unwrap().admits);
        }
    });
}

#[test]
fn subscribe_then_leave_before_the_answer_leaves_no_room_behind() {
    on_shard0(config(2), move |shard| async move {
        let s = shard.new_subscriber(DeliveryMode::Envelope);
        for i in 0..200 {
            let room = room_owned_by(1, 2, &format!("churn{i}x"));
            sub_with(&shard, &s, &room, SubOptions::default()).await;
            shard.unsubscribe(&s, &room).await;
        }
        // Requests to one owner are handled in order: this answer comes after them all.
        shard.room_info(&room_owned_by(1, 2, "probe")).await.unwrap();
        let drained = || async {
            for _ in 0..500 {
                if shard.stats_per_shard()[1].rooms == 0 {
                    return true;
                }
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
            false
        };
        assert!(drained().await, "rooms left: {}", shard.stats_per_shard()[1].rooms);
        assert_eq!(shard.stats().subscriptions, 0);
    });
}
