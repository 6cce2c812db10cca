//! `run(config, stop)`: binds the listeners, starts the engine, and on every shard accepts
//! connections until told to stop; then shuts down in order (DESIGN §6.5): stop accepting →
//! drain the engine (every message already accepted reaches the outboxes) → close every
//! client with 1001 after its queued frames → wait for the connections (bounded) → exit.

use anyhow::Context as _;
use bytes::Bytes;
use futures_lite::future::or;
use shardcast_engine::{Engine, EngineConfig, Shard, StopFlag};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
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
    let mut shared = Shared::new(config);
    if let Some(url) = shared.config.nats.clone() {
        let node_id = shared.config.node_id.clone().unwrap_or_else(default_node_id);
        tracing::info!(%url, node = %node_id, "joining the cluster");
        let cfg = crate::cluster::ClusterConfig {
            url,
            node_id,
            timeout: shared.config.nats_timeout,
            history: shared.max_history(),
            max_bytes: shared.config.retained_bytes,
            shards: shared.config.shards,
        };
        let cluster = crate::cluster::Cluster::start(cfg).context("cannot start the cluster link")?;
        // Serve once the broker answers (so the first requests are not refused), but start
        // anyway when it does not: the link keeps trying, and requests say `unavailable`.
        if !cluster.wait_connected(shared.config.nats_timeout) {
            tracing::warn!(
                "the broker did not answer within {:?}; starting anyway",
                shared.config.nats_timeout
            );
        }
        shared.cluster = Some(cluster);
    }
    let shared = Arc::new(shared);
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
                (_, Err(e)) => tracing::error!(shard = id, "cannot set up the shard's epoll instance: {e}"),
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
    if shard.id() == 0 && !ctx.shared.config.no_demo && !ctx.shared.config.demo.is_empty() {
        glommio::spawn_local(demo(ctx.clone())).detach();
    }
    glommio::spawn_local(crate::keepalive::run(ctx.clone())).detach();
    if let Some(cluster) = &ctx.shared.cluster {
        if let Some(inbound) = cluster.take_inbound(shard.id()) {
            let task = crate::cluster::run_inbound(ctx.clone(), inbound);
            glommio::spawn_local_into(task, shard.input_queue()).map(|t| t.detach()).ok();
        }
        // Each subscription on this shard took the node's interest in its room; give it
        // back when the subscription ends, however it ends.
        let shared = ctx.shared.clone();
        shard.on_subscription_end(move |room| {
            if let Some(c) = &shared.cluster {
                c.ended(room);
            }
        });
        // This node's presence changes go to the other nodes.
        let shared = ctx.shared.clone();
        shard.on_presence(move |room, member, joined| {
            if let Some(c) = &shared.cluster {
                c.presence_local(room, member, joined);
            }
        });
    }
    if let Ok(t) = glommio::spawn_local_into(ctx.deferrals.clone().run(), shard.input_queue()) {
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
                // The gate's pass goes into the connection's own future: `Gate::spawn_into`
                // would wrap that future in one that keeps it twice (once as the wrapper's
                // capture, once as what it awaits), in every connection's task.
                let Ok(pass) = ctx.gate.enter() else { break };
                let serve = crate::conn::serve(ctx.clone(), stream, pass);
                if glommio::spawn_local_into(serve, shard.input_queue()).map(|t| t.detach()).is_err() {
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
    for sub in ctx.shard.subscribers().iter().filter_map(std::rc::Weak::upgrade) {
        sub.close(1001, "server shutting down", false);
    }
    let closed = or(async { ctx.gate.close().await.is_ok() }, async {
        glommio::timer::sleep(SHUTDOWN_GRACE).await;
        false
    })
    .await;
    if !closed {
        tracing::warn!(shard = shard.id(), "some connections did not finish within {:?}", SHUTDOWN_GRACE);
    }
}

/// `<hostname>-<pid>`: unique enough among the nodes of one cluster.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// The built-in demo publishers on shard 0 (`--demo`): each app's simulator ticks once a
/// second and its updates are published like any client's (through the cluster in cluster
/// mode), so a newcomer sees data at once.
async fn demo(ctx: Rc<ShardCtx>) {
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut sims: Vec<_> = ctx.shared.config.demo.iter().map(|k| k.sim(42, epoch)).collect();
    let start = Instant::now();
    let shard = &ctx.shard;
    while !shard.is_stopping() {
        let t = start.elapsed();
        for (room, json) in sims.iter_mut().flat_map(|s| s.tick(t)) {
            if let Err(e) = ctx.publish_unacked(&room, Bytes::from(json)).await {
                tracing::debug!(room, "demo publish failed: {e}");
            }
        }
        or(glommio::timer::sleep(Duration::from_secs(1)), shard.stopping()).await;
    }
}
