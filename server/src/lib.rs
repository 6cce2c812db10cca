//! # shardcast-server
//!
//! The `shardcast` binary's library: everything between the socket and the engine. The wire
//! contract lives in DESIGN.md §3; this crate turns bytes from clients into typed requests and
//! typed results back into bytes, and leaves rooms, sequencing and fan-out to `shardcast-engine`.
//!
//! ## Layout
//!
//! Pure modules — no sockets, no executor, so they are unit-tested with byte literals and can
//! be fuzzed directly:
//!
//! * [`config`] — [`config::Config`], merged from flags, `SHARDCAST_*` env and a TOML file, and
//!   validated once at start-up; per-namespace [`config::NamespaceSettings`].
//! * [`http`] — HTTP/1.1 request heads ([`http::parse_request`]), the WebSocket upgrade check
//!   ([`http::websocket_upgrade`]) and response builders.
//! * [`protocol`] — client ops of the multiplexed `/ws` endpoint ([`protocol::ClientOp`]), room
//!   name rules, and the raw-span scanner that keeps published data byte-exact.
//! * [`auth`] — HS256 JWT [`auth::Verifier`], room-glob [`auth::Rights`], the HTTP [`auth::ApiKey`].
//! * [`ratelimit`] — the per-connection publish [`ratelimit::TokenBucket`].
//! * [`metrics`] — per-shard [`metrics::Counters`] and the Prometheus text [`metrics::render`].
//! * [`demo`] — simulated publishers for the five tracking apps (vehicles, flights, traffic,
//!   orders, IoT) that feed their rooms out of the box.
//! * [`pages`] — the web pages: an index at `/`, one app per demo, the canvas map at `/map`.
//!
//! The I/O layer wires these into one glommio executor per shard:
//!
//! * [`server`] — `run(config, stop)`: listeners, engine start, accept loops, ordered shutdown.
//! * [`listener`] — one `SO_REUSEPORT` socket per shard. [`conn`] — HTTP head, upgrade checks.
//! * [`ws`] — a WebSocket session ([`wsframe`] decodes inbound frames, the engine's frames go
//!   out); [`wsconfig`] — tungstenite set up as the session's decoder was, the fuzz reference.
//! * [`keepalive`] — token expiry, pings spread over the interval, idle timeouts, per shard.
//! * [`writer`] — coalesced vectored writes of every queued frame. [`api`] — the HTTP endpoints.
//! * [`readiness`] — one epoll instance per shard for the sessions' sockets (no glommio poll
//!   armed per idle connection).
//! * [`state`] — process-wide settings/counters and per-shard registries. [`shutdown`] — signals.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod deferral;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod json;
pub mod keepalive;
pub mod listener;
pub mod logfilter;
pub mod metrics;
pub mod pages;
pub mod protocol;
pub mod ratelimit;
pub mod readiness;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod writer;
pub mod ws;
pub mod wsconfig;
pub mod wsframe;
