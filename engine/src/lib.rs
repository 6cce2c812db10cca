//! # shardcast-engine
//!
//! A thread-per-core broadcast engine for live tracking. One glommio executor per core
//! ([`Engine`]), each owning a [`Shard`]. Rooms are sharded by hash ([`owner_of`]): the
//! owner sequences a room's messages, keeps its history and snapshot ([`room::Room`]),
//! and knows which shards have subscribers. A message is encoded **once** into a complete
//! WebSocket frame ([`Message`], [`frame`], [`envelope`]) and that same buffer reaches every
//! subscriber on every shard by reference count, queued in each subscriber's bounded
//! [`Outbox`](outbox::Outbox) under its namespace's slow-consumer [`Policy`].
//!
//! Layout:
//! - [`frame`], [`envelope`]: bytes on the wire (no I/O); [`json`]: top-level member scans.
//! - [`track`]: position and status read from tracking payloads, once per message.
//! - [`message`], [`room`], [`snapshot`], [`outbox`]: pure state machines, unit-tested with
//!   byte literals.
//! - [`rooms`]: the rooms one shard owns and their lifecycle — room limit, retained-bytes
//!   budget with LRU eviction, idle TTL — and each room's [`epoch`].
//! - [`subscriber`] (its rooms in a `roomset`), [`shard`]: per-core state, `Rc`/`RefCell`, no
//!   locks.
//! - [`pace`]: per-subscriber pacing of a room's keyed messages (rate limit, dead-band,
//!   status changes at once); pure, no clock.
//! - [`presence`]: who is in a room (count, member names) with coalesced diffs; pure.
//! - [`mesh`] + `outq`: typed, bounded cross-core messages; `runtime`: executors.
//! - [`geo`]: viewport subscriptions — positions, boxes and the grid index of boxes (pure,
//!   no I/O).
//! - [`stats`]: per-shard counters, summed on demand; [`stop`]: shutdown signal; `wakeup`:
//!   a thread that wakes a shard whose housekeeping stopped ticking (glommio can sleep past
//!   its own timers); [`ticks`]: the one grid periodic tasks sleep to, so they wake a shard
//!   together.

pub mod affinity;
pub mod config;
pub mod envelope;
pub mod epoch;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod json;
pub mod memlock;
pub mod mesh;
pub mod message;
pub mod outbox;
mod outq;
pub mod pace;
pub mod presence;
pub mod room;
pub mod rooms;
mod roomset;
mod runtime;
pub mod shard;
pub mod snapshot;
pub mod stats;
pub mod stop;
pub mod subscriber;
pub mod ticks;
pub mod track;
mod wakeup;

pub use config::{namespace, EngineConfig, Namespaces, Policy, RoomLimits, RoomSettings};
pub use epoch::Epoch;
pub use error::EngineError;
pub use mesh::{Receipt, Reply, RoomInfo};
pub use message::{DeliveryMode, Message};
pub use rooms::TooManyRooms;
pub use runtime::Engine;
pub use shard::{owner_of, Ack, Shard, SubOptions};
pub use stats::Stats;
pub use stop::StopFlag;
pub use subscriber::Subscriber;
