//! Per-shard counters, summed across shards on demand (the stats map-reduce).
//!
//! Each shard writes only its own [`ShardStats`]; fields are atomics so any thread (the
//! metrics endpoint on another shard, a test) can read them without a message round trip.
//! Counters are bumped once per message or per batch, never per subscriber, so the relaxed
//! atomic adds stay off the per-delivery path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of one shard.
        #[derive(Debug, Default)]
        pub struct ShardStats { $($(#[$doc])* pub $name: AtomicU64,)* /// Bytes queued in outboxes now.
            pub queued_bytes: AtomicI64,
            /// The coalescing window in force, in µs, as of the last 100 ms sample.
            pub coalesce_window_us: AtomicU64 }

        /// A plain copy of the counters (of one shard, or summed over all).
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Stats { $($(#[$doc])* pub $name: u64,)* /// Bytes queued in outboxes now.
            pub queued_bytes: u64,
            /// The coalescing window in force, in µs; over several shards, the widest (a sum of
            /// windows would mean nothing).
            pub coalesce_window_us: u64 }

        impl ShardStats {
            /// Reads the counters.
            pub fn snapshot(&self) -> Stats {
                Stats {
                    $($name: self.$name.load(Relaxed),)*
                    queued_bytes: self.queued_bytes.load(Relaxed).max(0) as u64,
                    coalesce_window_us: self.coalesce_window_us.load(Relaxed),
                }
            }
        }

        impl std::ops::Add for Stats {
            type Output = Stats;
            fn add(self, o: Stats) -> Stats {
                Stats {
                    $($name: self.$name + o.$name,)*
                    queued_bytes: self.queued_bytes + o.queued_bytes,
                    coalesce_window_us: self.coalesce_window_us.max(o.coalesce_window_us),
                }
            }
        }
    };
}

counters! {
    /// Rooms owned by this shard now (gauge).
    rooms,
    /// Idle rooms evicted to keep retained bytes within the budget.
    rooms_evicted,
    /// Idle rooms forgotten after their `room_ttl`.
    rooms_expired,
    /// Publishes and subscribes refused because creating their room would exceed the room
    /// limit (`too_many_rooms`).
    rooms_refused,
    /// Bytes retained by this shard's rooms (history and snapshots) now (gauge, stored by
    /// the owner after each change).
    retained_bytes,
    /// Subscribers (connections) registered on this shard now.
    subscribers,
    /// Room subscriptions of this shard's connections now.
    subscriptions,
    /// Messages sequenced by this shard (as room owner).
    published,
    /// Frames queued to subscribers on this shard.
    delivered,
    /// Messages skipped under the `drop` policy (each announced by a gap notice).
    dropped,
    /// Queued messages removed as superseded under `conflate`.
    conflated,
    /// Connections closed as slow consumers.
    slow_disconnects,
    /// Cross-shard messages sent by this shard.
    cross_shard_sent,
    /// Times a sender had to wait because a peer's queue was full (backpressure).
    backpressure_waits,
    /// Tracking: messages a subscriber's pacing held for the end of its interval.
    paced_held,
    /// Tracking: messages a subscriber's dead-band (`min_move_m`) skipped.
    paced_skipped,
    /// Tracking: keys not delivered to a viewport that shows its maximum (`too_many_keys`).
    view_keys_refused,
    /// Tracking: messages passed unpaced because their subscriber's pacer tracks its
    /// maximum of keys.
    paced_overflow,
    /// Tracking: `leave` notices sent to viewports.
    view_leaves,
    /// Tracking: presence diffs and offline notices the owner emitted (one per room event).
    notices,
}

/// The counters of all shards, summed.
pub fn sum(shards: &[std::sync::Arc<ShardStats>]) -> Stats {
    shards.iter().map(|s| s.snapshot()).fold(Stats::default(), |a, b| a + b)
}

impl ShardStats {
    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    #[inline]
    pub(crate) fn sub(c: &AtomicU64, n: u64) {
        c.fetch_sub(n, Relaxed);
    }
}
