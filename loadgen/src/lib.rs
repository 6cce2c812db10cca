//! shardcast-loadgen: an open-loop load generator and latency meter for WebSocket broadcast
//! servers — shardcast's multiplexed `/ws` protocol or any room-per-URL server — plus, for
//! shardcast, an abuse meter (one hostile client against healthy neighbours) and a soak.
//!
//! Layout (one noun per module):
//! - [`ws`]: RFC 6455 client pieces — handshake, masked frame encoding, server frame parser.
//! - [`payload`]: finds the `t`/`p`/`s` measurement fields (and `/ws` envelopes) by scanning.
//! - [`sim`]: publisher models (vehicles, flights, sensors, orders) producing JSON payloads.
//! - [`scenario`]: TOML scenarios, built-in presets, and their expansion into a [`scenario::Plan`].
//! - [`sys`]: Linux calls (epoll, timerfd, sockets, affinity, CPU time, /proc).
//! - [`worker`]: one pinned thread running an epoll loop over many connections (split into
//!   shared state, connections, delivery, publisher).
//! - [`nodes`]: several targets (a cluster's nodes) in one run — which node each connection goes to.
//! - [`runner`]: one measurement (setup → warm-up → window → drain) → [`stats::Summary`].
//! - [`stats`]: per-thread histograms and counters, merged into the summary.
//! - [`report`]: human summary, JSON, recorded run folders with an SVG plot.
//! - [`series`]: runs in a row on one server process (`run --repeat`), last/first trends.
//! - [`compare`]: `run --compare A B` — interleaved rounds, per-side server CPU and RSS,
//!   medians and B/A ratios.
//! - [`http`]: HTTP/1.1 client pieces for backend publishing (request encoding, response splitting).
//! - [`ledger`]: per-subscription delivery accounting (seq / stamp contiguity, resume checks).
//! - [`sampler`]: the server's RSS, sampled on a thread every interval (peaks included).
//! - [`crowd`]: one thread of well-behaved publishers and subscribers with exact loss accounting,
//!   churn and resumes (`abuse`'s neighbours, `soak`'s fleet).
//! - [`attack`]: hostile clients (floods, room churn, zero window, garbage), each bounded.
//! - [`abuse`]: the `abuse` command — one attacker at a time against healthy neighbours.
//! - [`misbehave`]: a soak's slow reader, never-reader and garbage sender.
//! - [`soak`]: the `soak` command — minutes of a fleet with churn and misbehaving clients.
//! - [`tracking`]: the `tracking` command (issue 11) — viewports, pacing and presence against
//!   their unfiltered / uncoalesced equivalents.
//!
//! Measuring follows DESIGN §5: publishers and subscribers share one process and one
//! monotonic clock; each publisher sends on its own schedule and never waits, and latency is
//! measured from the *intended* send time, so a stalled server (or loadgen) shows up as
//! latency instead of silently lowering the offered load.

pub mod abuse;
pub mod attack;
pub mod compare;
pub mod crowd;
pub mod http;
pub mod ledger;
pub mod misbehave;
pub mod nodes;
pub mod payload;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod scenario;
pub mod series;
pub mod sim;
pub mod soak;
pub mod stats;
pub mod sys;
pub mod tracking;
pub mod worker;
pub mod ws;
