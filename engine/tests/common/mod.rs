//! Helpers shared by the multi-executor tests: start real shards, collect what a
//! subscriber's outbox receives, and pick room names by owner.
#![allow(dead_code)]

use shardcast_engine::outbox::Entry;
use shardcast_engine::{owner_of, DeliveryMode, Engine, EngineConfig, Shard, StopFlag, Subscriber};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn config(shards: usize) -> EngineConfig {
    EngineConfig { shards, pin: false, ..EngineConfig::default() }
}

/// Waits (async, without blocking the executor) until `n` shards have arrived.
pub async fn rendezvous(counter: &AtomicUsize, n: usize) {
    counter.fetch_add(1, Ordering::SeqCst);
    while counter.load(Ordering::SeqCst) < n {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs `body` on the shards `which` selects, then keeps every shard alive (its executor
/// serving cross-shard requests) until all bodies are done.
pub fn run_on<F, Fut>(cfg: EngineConfig, body: F)
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
pub async fn collect(sub: &Rc<Subscriber>, out: &mut Vec<Entry>, done: impl Fn(&[Entry]) -> bool) {
    while !done(out) {
        let more = futures_lite::future::poll_fn(|cx| sub.poll_take(cx, out, 1024)).await;
        assert!(more, "outbox closed unexpectedly");
    }
}

pub fn text(e: &Entry) -> String {
    let b = e.bytes(DeliveryMode::Envelope);
    let h = match b[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    String::from_utf8(b[h..].to_vec()).unwrap()
}

pub fn msgs(out: &[Entry]) -> Vec<&Arc<shardcast_engine::Message>> {
    out.iter().filter_map(|e| if let Entry::Msg(m) = e { Some(m) } else { None }).collect()
}

/// A room name owned by shard `owner`.
pub fn room_owned_by(owner: usize, shards: usize, tag: &str) -> String {
    (0..).map(|i| format!("t:{tag}{i}")).find(|r| owner_of(r, shards) == owner).unwrap()
}
