//! Engine configuration: shard count, queue sizes, and per-namespace room settings.
//!
//! Validated once by [`EngineConfig::validate`] at start-up, like tungstenite's
//! `WebSocketConfig`; nothing on the hot path re-checks it.

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::EngineError;
use crate::track::TrackFields;

/// What happens when a subscriber's outbox exceeds its byte budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Close the connection with 1008 "slow consumer". Right when a client must see every
    /// message or none.
    Disconnect,
    /// Skip messages that do not fit, then tell the client with a `gap` notice so it can
    /// recover from history. Never silent.
    Drop,
    /// Keep only the newest queued message per room and key (GPS positions, sensor
    /// readings: an old position is worthless once a newer one is queued). Messages without
    /// a key fall back to `Drop`.
    Conflate,
}

impl Policy {
    /// Stable lower-case name used in config files and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Disconnect => "disconnect",
            Policy::Drop => "drop",
            Policy::Conflate => "conflate",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disconnect" => Ok(Policy::Disconnect),
            "drop" => Ok(Policy::Drop),
            "conflate" => Ok(Policy::Conflate),
            other => Err(format!("unknown policy {other:?} (expected disconnect, drop or conflate)")),
        }
    }
}

/// Settings shared by every room of one namespace (the part of the room name before `:`).
#[derive(Clone, Debug, PartialEq)]
pub struct RoomSettings {
    /// Frames kept per room for `since` recovery. Default 100; 0 disables history.
    pub history_size: usize,
    /// Frames older than this are dropped from history and snapshot. Default: none.
    pub history_ttl: Option<Duration>,
    /// Top-level JSON field naming the entity (e.g. `"id"`): enables snapshots and
    /// conflation. Default: none.
    pub key: Option<String>,
    /// Slow-consumer policy. Default [`Policy::Drop`].
    pub policy: Policy,
    /// Most keys a room's snapshot holds; the oldest entry is evicted past it. Default 100k,
    /// which bounds a snapshot's memory even if publishers invent keys without end, and
    /// bounds the work of one `snapshot: true` subscribe (the replay is one message per key).
    pub max_snapshot_keys: usize,
    /// Forget a room once it has had no subscriber and no message for this long (its `seq`
    /// then restarts under a new epoch). Default 1 h; `None` keeps idle rooms while the
    /// retained-bytes budget and the room limit allow.
    pub room_ttl: Option<Duration>,
    /// Position and status fields read from each payload (issue 11): `geo` enables viewport
    /// subscriptions and `min_move_m`; a change of a status field is always delivered.
    /// Default: no geo, status fields `status`, `stopped`, `state` (read only with a `key`).
    pub track: TrackFields,
    /// Presence: subscriber count, members and coalesced join/leave diffs. Default off.
    pub presence: bool,
    /// Distinct members above which presence reports only the count. Default 1,000.
    pub presence_members: usize,
    /// At most one `presence_diff` per room per this window. Default 1 s.
    pub presence_window: Duration,
    /// A key with no update for this long is announced `offline` once. Default: off.
    pub liveness_ttl: Option<Duration>,
}

impl RoomSettings {
    /// Whether publishes read position/status ([`TrackFields::read`]).
    pub fn reads_fix(&self) -> bool {
        self.track.geo.is_some() || (self.key.is_some() && !self.track.status.is_empty())
    }
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            history_size: 100,
            history_ttl: None,
            key: None,
            policy: Policy::Drop,
            max_snapshot_keys: 100_000,
            room_ttl: Some(Duration::from_secs(3600)),
            track: TrackFields { geo: None, status: crate::track::default_status_fields() },
            presence: false,
            presence_members: 1_000,
            presence_window: Duration::from_secs(1),
            liveness_ttl: None,
        }
    }
}

/// Namespace name → settings, with a default for namespaces not listed.
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    default: Arc<RoomSettings>,
    by_name: FxHashMap<String, Arc<RoomSettings>>,
}

impl Namespaces {
    /// A table where every namespace uses `default`.
    pub fn new(default: RoomSettings) -> Self {
        Namespaces { default: Arc::new(default), by_name: FxHashMap::default() }
    }

    /// Adds or replaces one namespace's settings.
    pub fn insert(&mut self, namespace: impl Into<String>, settings: RoomSettings) {
        self.by_name.insert(namespace.into(), Arc::new(settings));
    }

    /// Settings of the namespace `room` belongs to.
    pub fn for_room(&self, room: &str) -> &Arc<RoomSettings> {
        self.by_name.get(namespace(room)).unwrap_or(&self.default)
    }
}

/// The namespace of a room: the part before the first `:`, or the whole name.
pub fn namespace(room: &str) -> &str {
    room.split_once(':').map_or(room, |(ns, _)| ns)
}

/// One shard's share of the node-wide room limits (see [`EngineConfig::room_limits`]).
/// Rooms are spread over shards by hash, so with many rooms each shard's share fills at
/// about the same time; with few, one shard may refuse while others have room left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    /// Rooms this shard owns at most.
    pub max_rooms: usize,
    /// Retained bytes (see [`crate::room::cost`]) this shard's rooms hold before it evicts.
    pub retained_bytes: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits { max_rooms: usize::MAX, retained_bytes: usize::MAX }
    }
}

/// Configuration of an [`Engine`](crate::Engine).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Number of shards (executors). Default: the CPUs this process may run on.
    pub shards: usize,
    /// Pin shard `i` to the `i`-th CPU of the process's affinity mask (so `taskset` is
    /// honoured). Default true; tests turn it off to share cores.
    pub pin: bool,
    /// Capacity of each cross-shard queue, in messages. A full queue makes the sender wait:
    /// that is the backpressure that reaches a fast publisher. Default 4096.
    pub channel_capacity: usize,
    /// Per-subscriber outbox budget in bytes, 1 KiB..=1 GiB. Default 1 MiB.
    pub outbox_bytes: usize,
    /// io_uring buffer memory per executor. Small by default (256 KiB) because the locked
    /// memory limit on many machines is 8 MiB for the whole process.
    pub io_memory: usize,
    /// How long an idle executor spins before sleeping; spinning trades CPU for wake-up
    /// latency of cross-shard messages. Default 0 (sleep at once).
    pub spin_before_park: Option<Duration>,
    /// Submission queue depth of each io_uring ring (glommio's default is 128). Deep rings
    /// are about cancellation, not queueing: every turn of glommio's reactor cancels and
    /// re-arms a timeout on its main ring, and the kernel looks a cancelled request up in a
    /// hash table of `cq_entries / 32` buckets (at most 256) that also holds every armed
    /// poll, one per waiting connection. At 128 that is 8 buckets: with 2,500 connections
    /// each cancel walked ~300 entries, 17% of a light-loaded shard's CPU
    /// (`io_poll_find`). 4096 gives the full 256 buckets. The rings' memory (~1 MiB per
    /// shard) is charged to the cgroup, not to the locked-memory limit. Default 4096.
    pub ring_depth: usize,
    /// Longest coalescing window: while a shard is busy, writes to one connection are at
    /// least this far apart so bursts leave in one call. Default 5 ms; zero disables.
    pub coalesce: Duration,
    /// How long a shard runs the tasks that handle client input (connections, cross-shard
    /// queues) before it polls for I/O again; their loops yield when it has passed, so one
    /// busy connection delays the others by about this much at most. It is the latency of
    /// their glommio task queue (`Latency::Matters`), not the executor-wide preempt timer:
    /// a 2 ms executor timer made shards miss connections for seconds while starting under
    /// CPU contention. Default 2 ms (glommio's default is 100 ms).
    pub preempt: Duration,
    /// Per-namespace room settings.
    pub namespaces: Namespaces,
    /// Most rooms the node keeps, split evenly over the shards (each owner admits
    /// `max(1, max_rooms / shards)`, so the node never holds more than `max_rooms` unless
    /// there are more shards than rooms allowed). A publish or subscribe that would create
    /// one more on a full owner is refused with `too_many_rooms`. Default 100 000.
    pub max_rooms: usize,
    /// Node-wide budget for retained messages (history and snapshots), split evenly over
    /// the shards. Over it, an owner evicts its least recently used rooms that have no
    /// subscribers. Default 1 GiB.
    pub retained_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: crate::affinity::allowed_cpus().len().max(1),
            pin: true,
            channel_capacity: 4096,
            outbox_bytes: 1 << 20,
            io_memory: 256 << 10,
            spin_before_park: None,
            ring_depth: 4096,
            coalesce: Duration::from_millis(5),
            preempt: Duration::from_millis(2),
            namespaces: Namespaces::default(),
            max_rooms: 100_000,
            retained_bytes: 1 << 30,
        }
    }
}

impl EngineConfig {
    /// What each shard's room registry may hold: the node-wide limits split evenly.
    pub fn room_limits(&self) -> RoomLimits {
        let n = self.shards.max(1);
        RoomLimits { max_rooms: (self.max_rooms / n).max(1), retained_bytes: self.retained_bytes / n }
    }

    /// Checks the values once, at start-up.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.shards == 0 || self.shards > 256 {
            return Err(EngineError::Config(format!("shards must be 1..=256, got {}", self.shards)));
        }
        if self.channel_capacity < 2 {
            return Err(EngineError::Config("channel_capacity must be at least 2".into()));
        }
        if !(1024..=1 << 30).contains(&self.outbox_bytes) {
            return Err(EngineError::Config("outbox_bytes must be within 1 KiB..=1 GiB".into()));
        }
        if !(1..=32768).contains(&self.ring_depth) {
            return Err(EngineError::Config(format!(
                "ring_depth must be 1..=32768, got {}",
                self.ring_depth
            )));
        }
        if self.max_rooms == 0 {
            return Err(EngineError::Config("max_rooms must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_prefix_before_colon() {
        assert_eq!(namespace("fleet:berlin"), "fleet");
        assert_eq!(namespace("fleet:a:b"), "fleet");
        assert_eq!(namespace("tracker/42"), "tracker/42");
    }

    #[test]
    fn lookup_falls_back_to_default() {
        let mut ns = Namespaces::new(RoomSettings::default());
        ns.insert("fleet", RoomSettings { key: Some("id".into()), ..Default::default() });
        assert_eq!(ns.for_room("fleet:x").key.as_deref(), Some("id"));
        assert_eq!(ns.for_room("other:x").key, None);
        assert_eq!("conflate".parse::<Policy>(), Ok(Policy::Conflate));
        assert!("lossy".parse::<Policy>().is_err());
    }
}
