//! `run(config, stop)`: binds the listeners, starts the engine, and on every shard accepts
//! connections until told to stop; then shuts down in order (DESIGN §6.5): stop accepting →
//! drain the engine (every message already accepted reaches the outboxes) → close every
//! client with 1001 after its queued frames → wait for the connections (bounded) → exit.

use anyhow::Context as _;
use bytes::Bytes;
use futures_lite::future::or;
use shardcast_engine::{Engine, EngineConfig, Reply, Shard, StopFlag};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::demo::DemoFleet;
use crate::state::{ShardCtx, Shared};

/// How long shutdown waits for clients to take their last frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long start-up waits for every shard to be accepting before it reports anyway.
const READY_WAIT: Duration = Duration::from_secs(60);

/// Runs the server until `stop` is set. `on_bound` is called once with the bound address,
/// once every shard is accepting: "listening on" then means ready. (Connections the kernel
/// queued for a shard still starting would otherwise wait, unanswered, until it is.)
pub fn run(config: Config, stop: StopFlag, on_bound: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let (listeners, addr) =
        crate::listener::bind_reuseport(config.listen, config.shards).with_context(|| {
            format!("cannot listen on {} (is another server already using it?)", config.listen)
        })?;
    let shared = Arc::new(Shared::new(config));
    let cfg = &shared.config;
    let engine_cfg = EngineConfig {
        shards: cfg.shards,
        outbox_bytes: cfg.outbox_bytes,
        coalesce: cfg.coalesce,
        namespaces: shared.engine_namespaces(),
        max_rooms: cfg.max_rooms,
        retained_bytes: cfg.retained_bytes,
        ..EngineConfig::default()
    };
    tracing::info!(%addr, shards = cfg.shards, demo = !cfg.no_demo, auth = cfg.jwt_secret.is_some(), "starting");
    let listeners = Mutex::new(listeners.into_iter().map(Some).collect::<Vec<_>>());
    let shared2 = shared.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<usize>();
    let started = Instant::now();
    let engine = Engine::start(engine_cfg, stop, move |shard: Rc<Shard>| {
        let l = listeners.lock().expect("listener list").get_mut(shard.id()).and_then(Option::take);
        let id = shard.id();
        let ctx = ShardCtx::new(shared2.clone(), shard);
        let ready = ready_tx.clone();
        async move {
            match (l, ctx) {
                (Some(l), Ok(ctx)) => shard_main(ctx, l, ready).await,
                (_, Err(e)) => tracing::error!(shard = id, "cannot create the shard's epoll instance: {e}"),
                (None, Ok(_)) => {}
            }
        }
    })?;
    for _ in 0..cfg.shards {
        match ready_rx.recv_timeout(READY_WAIT) {
            Ok(shard) => tracing::debug!(shard, elapsed = ?started.elapsed(), "shard accepting"),
            Err(_) => {
                tracing::warn!("not every shard started within {READY_WAIT:?}");
                break;
            }
        }
    }
    on_bound(addr);
    engine.join()?;
    tracing::info!("stopped");
    Ok(())
}

async fn shard_main(
    ctx: Rc<ShardCtx>,
    listener: std::net::TcpListener,
    ready: std::sync::mpsc::Sender<usize>,
) {
    // SAFETY: the fd comes from a listening std socket we own and hand over here.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let shard = ctx.shard.clone();
    if shard.id() == 0 && !ctx.shared.config.no_demo {
        glommio::spawn_local(demo(ctx.clone())).detach();
    }
    glommio::spawn_local(crate::keepalive::run(ctx.clone())).detach();
    // In the input queue, like the sessions it wakes.
    if let Ok(t) = glommio::spawn_local_into(ctx.readiness.clone().run(), shard.input_queue()) {
        t.detach();
    }
    let _ = ready.send(shard.id());
    drop(ready);
    loop {
        let accepted = or(async { Some(listener.accept().await) }, async {
            shard.stopping().await;
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => {
                let serve = crate::conn::serve(ctx.clone(), stream);
                if ctx.gate.spawn_into(serve, shard.input_queue()).map(|t| t.detach()).is_err() {
                    break;
                }
                // A connection storm must not starve the sessions already served.
                glommio::yield_if_needed().await;
            }
            Some(Err(e)) => {
                // EMFILE and friends: say so and back off instead of spinning.
                tracing::warn!(shard = shard.id(), "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            None => break,
        }
    }
    drop(listener);
    shard.drain().await;
    let live: Vec<_> = ctx.live.borrow().values().filter_map(std::rc::Weak::upgrade).collect();
    for l in &live {
        l.sub.close(1001, "server shutting down", false);
    }
    drop(live);
    let closed = or(async { ctx.gate.close().await.is_ok() }, async {
        glommio::timer::sleep(SHUTDOWN_GRACE).await;
        false
    })
    .await;
    if !closed {
        tracing::warn!(shard = shard.id(), "some connections did not finish within {:?}", SHUTDOWN_GRACE);
    }
}

/// The built-in demo fleet on shard 0: a few dozen vehicles publishing GPS into
/// `fleet:demo` and `vehicle:<id>` once a second, so a newcomer sees data at once.
async fn demo(ctx: Rc<ShardCtx>) {
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut fleet = DemoFleet::new(crate::demo::DEFAULT_VEHICLES, 42).with_epoch_ms(epoch);
    let start = Instant::now();
    let shard = &ctx.shard;
    while !shard.is_stopping() {
        for (room, json) in fleet.tick(start.elapsed()) {
            let key = ctx.shared.key_of(&room, &json);
            shard.publish(&room, Bytes::from(json), key, Reply::None).await;
        }
        or(glommio::timer::sleep(Duration::from_secs(1)), shard.stopping()).await;
    }
}
