//! Starting and stopping the shards: one pinned glommio executor per shard, the channel
//! matrix between them, and the per-shard loops that drain it.

use futures_lite::future;
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::affinity::allowed_cpus;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::mesh::{matrix, Event, Request};
use crate::outq::OutQueue;
use crate::shard::Shard;
use crate::stats::{ShardStats, Stats};
use crate::stop::StopFlag;

/// How often a shard checks the process-wide stop flag and refreshes gauges.
const HOUSEKEEPING: Duration = Duration::from_millis(20);

/// A running engine: N shards on N threads.
pub struct Engine {
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    stop: StopFlag,
    stats: Arc<[Arc<ShardStats>]>,
}

impl Engine {
    /// Starts `config.shards` executors. On each, once the shards are connected, runs
    /// `main(shard)`; the shard's thread ends when that future completes. `main` is where a
    /// server binds its per-shard listener.
    pub fn start<F, Fut>(config: EngineConfig, stop: StopFlag, main: F) -> Result<Engine, EngineError>
    where
        F: Fn(Rc<Shard>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        config.validate()?;
        crate::memlock::check(crate::memlock::memlock_limit(), config.io_memory)?;
        let n = config.shards;
        let cpus = allowed_cpus();
        let stats: Arc<[Arc<ShardStats>]> = (0..n).map(|_| Arc::new(ShardStats::default())).collect();
        let main = Arc::new(main);
        let mut threads = Vec::with_capacity(n);
        let slots: Vec<Arc<crate::wakeup::Slot>> = (0..n).map(|_| Default::default()).collect();
        let req_ends = matrix::<Request>(n, config.channel_capacity);
        let ev_ends = matrix::<Event>(n, config.channel_capacity);
        for (id, (req, ev)) in req_ends.into_iter().zip(ev_ends).enumerate() {
            let placement =
                if config.pin { Placement::Fixed(cpus[id % cpus.len()]) } else { Placement::Unbound };
            let mut builder = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{id}"))
                .io_memory(config.io_memory)
                .ring_depth(config.ring_depth);
            if let Some(spin) = config.spin_before_park {
                builder = builder.spin_before_park(spin);
            }
            let (config, stats, main, stop) = (config.clone(), stats.clone(), main.clone(), stop.clone());
            let slot = slots[id].clone();
            let handle = builder
                .spawn(move || async move {
                    // Connect every channel end concurrently: a sequential connect could wait
                    // on a peer that is itself waiting on us.
                    let req_tx = connect_senders(req.tx);
                    let ev_tx = connect_senders(ev.tx);
                    let req_rx = connect_receivers(req.rx);
                    let ev_rx = connect_receivers(ev.rx);
                    let (req_tx, ev_tx) = (join_all(req_tx).await, join_all(ev_tx).await);
                    let (req_rx, ev_rx) = (join_all(req_rx).await, join_all(ev_rx).await);
                    let limit = config.channel_capacity;
                    let req_q = req_tx.into_iter().map(|t| t.map(|t| OutQueue::new(t, limit))).collect();
                    let ev_q = ev_tx.into_iter().map(|t| t.map(|t| OutQueue::new(t, limit))).collect();
                    let shard = Rc::new(Shard::new(
                        id,
                        config.room_limits(),
                        config.namespaces,
                        config.outbox_bytes,
                        config.coalesce,
                        config.preempt,
                        req_q,
                        ev_q,
                        stats,
                    ));
                    let tq = shard.input_queue();
                    for rx in req_rx.into_iter().flatten() {
                        glommio::spawn_local_into(request_loop(shard.clone(), rx), tq).unwrap().detach();
                    }
                    for rx in ev_rx.into_iter().flatten() {
                        glommio::spawn_local_into(event_loop(shard.clone(), rx), tq).unwrap().detach();
                    }
                    glommio::spawn_local_into(shard.clone().flush_loop(), tq).unwrap().detach();
                    glommio::spawn_local(housekeeping(shard.clone(), stop, slot.clone())).detach();
                    glommio::spawn_local(crate::wakeup::park(slot)).detach();
                    main(shard).await;
                })
                .map_err(|e| EngineError::Start { shard: id, reason: e.to_string() })?;
            threads.push(handle);
        }
        crate::wakeup::start(&slots)
            .map_err(|e| EngineError::Start { shard: 0, reason: format!("wake-up thread: {e}") })?;
        drop(slots); // the shards hold them; the thread ends with them
        Ok(Engine { threads, stop, stats })
    }

    /// Counters summed over all shards (readable from any thread).
    pub fn stats(&self) -> Stats {
        crate::stats::sum(&self.stats)
    }

    /// Asks every shard to stop; each shard's `main` sees [`Shard::stopping`] complete.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Waits for every shard thread to finish.
    pub fn join(self) -> Result<(), EngineError> {
        let mut result = Ok(());
        for (i, t) in self.threads.into_iter().enumerate() {
            if t.join().is_err() && result.is_ok() {
                result = Err(EngineError::Panicked(i));
            }
        }
        result
    }
}

type Task<T> = glommio::Task<T>;

fn connect_senders<T: Send + 'static>(
    ends: Vec<Option<glommio::channels::shared_channel::SharedSender<T>>>,
) -> Vec<Option<Task<glommio::channels::shared_channel::ConnectedSender<T>>>> {
    ends.into_iter().map(|e| e.map(|s| glommio::spawn_local(s.connect()))).collect()
}

fn connect_receivers<T: Send + 'static>(
    ends: Vec<Option<glommio::channels::shared_channel::SharedReceiver<T>>>,
) -> Vec<Option<Task<ConnectedReceiver<T>>>> {
    ends.into_iter().map(|e| e.map(|r| glommio::spawn_local(r.connect()))).collect()
}

async fn join_all<T>(tasks: Vec<Option<Task<T>>>) -> Vec<Option<T>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(match t {
            Some(t) => Some(t.await),
            None => None,
        });
    }
    out
}

/// Most events one turn of [`event_loop`] handles before it lets other tasks run.
const EVENTS_PER_TURN: usize = 256;

/// Requests from one peer, handled one at a time so their order (and the order of the
/// events they cause) is the order the peer sent them in. Yields whenever the scheduler
/// asks, so a peer's burst cannot hold this core.
async fn request_loop(shard: Rc<Shard>, rx: ConnectedReceiver<Request>) {
    while let Some(req) = rx.recv().await {
        shard.handle_request(req).await;
        glommio::yield_if_needed().await;
    }
}

/// Events from one peer; handling never waits, so this loop always drains — in turns of
/// at most [`EVENTS_PER_TURN`] events, so a flood from a peer shares the core with this
/// shard's own connections.
async fn event_loop(shard: Rc<Shard>, rx: ConnectedReceiver<Event>) {
    while let Some(ev) = rx.recv().await {
        shard.handle_event(ev);
        {
            // Drain what else is already there, corked: a burst of deliveries leaves as
            // one write per subscriber.
            let _cork = shard.cork();
            let mut n = 1;
            while n < EVENTS_PER_TURN {
                let Some(Some(ev)) = future::poll_once(rx.recv()).await else { break };
                shard.handle_event(ev);
                n += 1;
            }
        }
        glommio::yield_if_needed().await;
    }
}

/// Runs every [`HOUSEKEEPING`] on the process's tick grid ([`crate::ticks`]), so the
/// server's own periodic tasks on that grid wake the shard at the same instants.
async fn housekeeping(shard: Rc<Shard>, stop: StopFlag, slot: Arc<crate::wakeup::Slot>) {
    let mut ticks = 0u32;
    loop {
        crate::ticks::sleep_to_next(HOUSEKEEPING).await;
        slot.beat();
        if stop.is_set() && !shard.stop.fired() {
            shard.stop.fire();
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(5) {
            shard.adapt_coalescing();
        }
        if ticks.is_multiple_of(25) {
            shard.refresh_queued_bytes();
        }
        shard.sweep_rooms();
        shard.tracking_tick();
        shard.pace_tick();
    }
}
