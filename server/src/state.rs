//! State the server keeps beside the engine: process-wide settings and counters
//! ([`Shared`], one `Arc` for all shards) and each shard's connection registry
//! ([`ShardCtx`], `Rc`, core-local).

use rustc_hash::FxHashMap;
use shardcast_engine::{RoomSettings, Shard, Stats};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::auth::{ApiKey, Auth};
use crate::config::{Config, Policy};
use crate::metrics::{Counters, MetricsSnapshot, RejectReason};
use crate::ratelimit::KeyedLimiter;
use crate::readiness::Readiness;

/// Size of the one read buffer a shard shares between all its connections: a socket is read
/// into it and the bytes handed to the frame decoder at once, so an idle connection holds no
/// read buffer of its own.
pub const SHARD_READ_BUF: usize = 64 << 10;

/// Most HTTP-publishing clients whose rate one shard tracks at once (see [`KeyedLimiter`]).
pub const HTTP_LIMITER_CLIENTS: usize = 16_384;

/// What a namespace allows clients to do, and its key field, looked up per op.
#[derive(Debug, Clone, Default)]
pub struct NsRules {
    pub client_publish: bool,
    pub client_subscribe: bool,
    pub key: Option<String>,
    /// Presence is on (`{"op":"presence"}` is served).
    pub presence: bool,
    /// The namespace has `geo` fields (`bbox`, `view` and `min_move_m` need them).
    pub geo: bool,
}

/// Per-shard counters the engine does not keep (connections, rejections).
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub connections_current: AtomicU64,
    pub http_connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub rejected: [AtomicU64; RejectReason::ALL.len()],
}

/// Settings and counters every shard reads.
pub struct Shared {
    pub config: Config,
    pub auth: Auth,
    pub api_key: Option<ApiKey>,
    /// Open connections across all shards, for `max_connections`.
    pub connections: AtomicUsize,
    /// Connections in the plain-HTTP phase across all shards, for `max_http_connections`.
    pub http_connections: AtomicUsize,
    pub counters: Vec<ServerCounters>,
    /// The cluster link (`--nats`); `None` on a single node.
    pub cluster: Option<crate::cluster::Cluster>,
    ns_rules: FxHashMap<String, NsRules>,
    default_rules: NsRules,
}

impl Shared {
    pub fn new(config: Config) -> Self {
        let auth = Auth::new(config.jwt_secret.as_deref());
        let api_key = config.api_key.as_deref().map(ApiKey::new);
        let rules = |ns: &str| {
            let s = config.namespace(ns);
            NsRules {
                client_publish: s.client_publish,
                client_subscribe: s.client_subscribe,
                key: s.key,
                presence: s.presence,
                geo: s.geo.is_some(),
            }
        };
        let ns_rules = config.namespaces.keys().map(|ns| (ns.clone(), rules(ns))).collect();
        let default_rules = rules("");
        let counters = (0..config.shards).map(|_| ServerCounters::default()).collect();
        Shared {
            auth,
            api_key,
            connections: AtomicUsize::new(0),
            http_connections: AtomicUsize::new(0),
            counters,
            cluster: None,
            ns_rules,
            default_rules,
            config,
        }
    }

    /// The namespace key of a message published into `room` (snapshot and conflation), if
    /// the namespace names a key field and `data` carries it.
    pub fn key_of(&self, room: &str, data: &[u8]) -> Option<Box<str>> {
        let field = self.rules(room).key.as_deref()?;
        crate::protocol::extract_key(data, field).map(String::into_boxed_str)
    }

    /// The most messages per room any namespace keeps (the cluster stream's per-room limit).
    pub fn max_history(&self) -> usize {
        let c = &self.config;
        c.namespaces.keys().map(|ns| c.namespace(ns).history_size).fold(c.history_size, usize::max)
    }

    /// Rules of the namespace `room` belongs to.
    pub fn rules(&self, room: &str) -> &NsRules {
        self.ns_rules.get(crate::protocol::namespace(room)).unwrap_or(&self.default_rules)
    }

    /// The engine's view of the namespaces.
    pub fn engine_namespaces(&self) -> shardcast_engine::Namespaces {
        let c = &self.config;
        let settings = |ns: &str| {
            let s = c.namespace(ns);
            RoomSettings {
                history_size: s.history_size,
                history_ttl: s.history_ttl,
                key: s.key,
                policy: engine_policy(s.policy),
                room_ttl: s.room_ttl,
                track: shardcast_engine::track::TrackFields {
                    geo: s.geo.map(|g| (g.lat, g.lon)),
                    status: s.status,
                },
                presence: s.presence,
                presence_members: s.presence_members,
                presence_window: s.presence_window,
                liveness_ttl: s.liveness_ttl,
                ..RoomSettings::default()
            }
        };
        let mut table = shardcast_engine::Namespaces::new(settings(""));
        for ns in c.namespaces.keys() {
            table.insert(ns.clone(), settings(ns));
        }
        table
    }

    /// Counts a refused request or connection on `shard`.
    pub fn reject(&self, shard: usize, reason: RejectReason) {
        self.counters[shard].rejected[reason as usize].fetch_add(1, Relaxed);
    }

    /// Engine and server counters, per shard and summed.
    pub fn metrics(&self, engine: &[Stats]) -> MetricsSnapshot {
        let shards = engine
            .iter()
            .zip(&self.counters)
            .map(|(e, s)| {
                let mut c = Counters {
                    connections_current: s.connections_current.load(Relaxed),
                    http_connections: s.http_connections.load(Relaxed),
                    connections_total: s.connections_total.load(Relaxed),
                    rooms: e.rooms,
                    subscriptions: e.subscriptions,
                    published_total: e.published,
                    delivered_total: e.delivered,
                    dropped_drop_total: e.dropped,
                    dropped_conflate_total: e.conflated,
                    slow_disconnects_total: e.slow_disconnects,
                    queued_bytes: e.queued_bytes,
                    rooms_evicted_total: e.rooms_evicted,
                    rooms_expired_total: e.rooms_expired,
                    rooms_refused_total: e.rooms_refused,
                    retained_bytes: e.retained_bytes,
                    paced_held_total: e.paced_held,
                    paced_skipped_total: e.paced_skipped,
                    view_keys_refused_total: e.view_keys_refused,
                    paced_overflow_total: e.paced_overflow,
                    view_leaves_total: e.view_leaves,
                    notices_total: e.notices,
                    coalesce_window_us: e.coalesce_window_us,
                    ..Counters::default()
                };
                for (i, r) in s.rejected.iter().enumerate() {
                    c.rejected_total[i] = r.load(Relaxed);
                }
                c
            })
            .collect();
        MetricsSnapshot::from_shards(shards)
    }
}

/// The config's policy as the engine's.
pub fn engine_policy(p: Policy) -> shardcast_engine::Policy {
    match p {
        Policy::Disconnect => shardcast_engine::Policy::Disconnect,
        Policy::Drop => shardcast_engine::Policy::Drop,
        Policy::Conflate => shardcast_engine::Policy::Conflate,
    }
}

/// One shard's server-side state.
pub struct ShardCtx {
    pub shared: Arc<Shared>,
    pub shard: Rc<Shard>,
    /// Every connection task enters this gate; shutdown waits for it to empty.
    pub gate: glommio::sync::Gate,
    /// Sessions opened with a token, by (`exp`, connection id): the sweep closes each as its
    /// token expires, in O(log n) per session.
    pub expiries: RefCell<BTreeSet<(u64, u64)>>,
    /// HTTP publish rate per client (API key, token or IP address), bounded in size.
    pub http_limits: RefCell<KeyedLimiter>,
    pub read_buf: RefCell<Box<[u8]>>,
    /// The buffers the shard's writers borrow for one write each.
    pub write_scratch: crate::writer::Scratch,
    /// The shard's writers' coalescing waits, on one timer (its driver runs in the input
    /// queue, like the sessions).
    pub deferrals: Rc<crate::deferral::Deferrals>,
    /// Readiness of the shard's WebSocket sockets (one epoll instance, which the shard's
    /// executor sleeps in).
    pub readiness: Rc<Readiness>,
}

impl ShardCtx {
    /// Fails only if the shard's epoll instance cannot be created, or the shard's executor
    /// cannot park in it. Call on the shard's thread.
    pub fn new(shared: Arc<Shared>, shard: Rc<Shard>) -> std::io::Result<Rc<Self>> {
        let readiness = Readiness::new()?;
        readiness.park_executor()?;
        let c = &shared.config;
        let http_limits = KeyedLimiter::new(c.http_publish_rate, c.http_publish_burst, HTTP_LIMITER_CLIENTS);
        Ok(Rc::new(ShardCtx {
            shared,
            shard,
            gate: glommio::sync::Gate::new(),
            expiries: RefCell::default(),
            http_limits: RefCell::new(http_limits),
            read_buf: RefCell::new(vec![0u8; SHARD_READ_BUF].into_boxed_slice()),
            write_scratch: crate::writer::Scratch::default(),
            deferrals: crate::deferral::Deferrals::new(),
            readiness,
        }))
    }

    pub fn counters(&self) -> &ServerCounters {
        &self.shared.counters[self.shard.id()]
    }

    pub fn reject(&self, reason: RejectReason) {
        self.shared.reject(self.shard.id(), reason);
    }

    /// Publishes `data` into `room` where nobody waits for its seq (room-per-URL frames,
    /// the demo): through the cluster when there is one — whose refusal is the caller's to
    /// report — else straight to the engine.
    pub async fn publish_unacked(
        &self,
        room: &str,
        data: bytes::Bytes,
    ) -> Result<(), crate::cluster::ClusterError> {
        let key = self.shared.key_of(room, &data);
        match &self.shared.cluster {
            Some(cluster) => cluster.publish(room, data, key).await.map(drop),
            None => {
                self.shard.publish(room, data, key, shardcast_engine::Reply::None).await;
                Ok(())
            }
        }
    }
}
