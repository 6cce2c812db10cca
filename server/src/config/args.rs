//! The command-line flags (each also a `SHARDCAST_*` variable and a TOML key).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::values::{parse_duration, parse_listen, parse_size, parse_ttl};
use super::{Policy, Ttl};

/// Command-line flags of `shardcast`. Each flag may also be set through the environment
/// variable `SHARDCAST_<NAME>` or in the `--config` TOML file under its snake_case name;
/// precedence is flag > environment > file > default.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "shardcast",
    version,
    about = "Real-time WebSocket broadcast server: publish JSON into rooms, every subscriber gets it in order.",
    after_help = "Durations take a unit (500ms, 5s, 2m, 1h); sizes take bytes or KiB/MiB/GiB (65536, 64KiB).\n\
                  Open http://127.0.0.1:8080/ for the live demo map."
)]
pub struct Args {
    /// TOML file with any of the settings below (snake_case keys) plus [namespaces.<name>]
    /// tables. Flags and environment variables override it.
    #[arg(long, short = 'c', env = "SHARDCAST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on for WebSocket and HTTP: IP:PORT or HOST:PORT (localhost:8080).
    /// Default: 127.0.0.1:8080. Binding a
    /// non-loopback address needs --jwt-secret or --allow-anonymous.
    #[arg(long, env = "SHARDCAST_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Number of shards: one pinned thread per core, each owning its connections and rooms.
    /// Default: the number of CPUs available (1..=256).
    #[arg(long, env = "SHARDCAST_SHARDS", value_name = "N")]
    pub shards: Option<usize>,
    /// Which built-in demo publishers run: a comma-separated list of vehicles, flights,
    /// traffic, orders, iot (DESIGN: server/src/demo). Default: all of them.
    #[arg(long, env = "SHARDCAST_DEMO", value_name = "APP,..", value_delimiter = ',', value_parser = crate::demo::DemoKind::parse)]
    pub demo: Option<Vec<crate::demo::DemoKind>>,
    /// Do not run the built-in demo publishers (production). Default: demo on.
    #[arg(long, env = "SHARDCAST_NO_DEMO", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_demo: Option<bool>,
    /// Run without authentication on a non-loopback address: anyone may subscribe and publish
    /// anywhere. Default: off.
    #[arg(long, env = "SHARDCAST_ALLOW_ANONYMOUS", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_anonymous: Option<bool>,
    /// HS256 secret (at least 16 bytes) for client JWTs, taken from `?token=` or
    /// `Authorization: Bearer`. Default: none (open server). Prefer the environment variable:
    /// flags are visible to other users in `ps`.
    #[arg(long, env = "SHARDCAST_JWT_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Key (at least 16 bytes) required on POST /api/publish, as `Authorization: Bearer` or
    /// `X-Api-Key`. Default: none — then HTTP publish needs a JWT with the publish right when
    /// a JWT secret is set, and is open otherwise.
    #[arg(long, env = "SHARDCAST_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Allowed browser origins for WebSocket handshakes, comma-separated
    /// (https://app.example.com,http://localhost:3000). Default: any origin.
    #[arg(long, env = "SHARDCAST_ORIGINS", value_name = "ORIGIN,..", value_delimiter = ',')]
    pub origins: Option<Vec<String>>,
    /// Log filter in tracing's EnvFilter syntax (info, debug, shardcast_server=trace).
    /// Default: info.
    #[arg(long, env = "SHARDCAST_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Largest accepted WebSocket message. Default: 64KiB (128 B ..= 16 MiB).
    #[arg(long, env = "SHARDCAST_MAX_FRAME", value_name = "SIZE", value_parser = parse_size)]
    pub max_frame: Option<usize>,
    /// Most rooms one connection may subscribe to. Default: 1024.
    #[arg(long, env = "SHARDCAST_MAX_ROOMS_PER_CONN", value_name = "N")]
    pub max_rooms_per_conn: Option<usize>,
    /// Most simultaneous connections for the whole server; further handshakes get 503.
    /// Default: 100000.
    #[arg(long, env = "SHARDCAST_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Sustained publishes per second allowed per connection (token bucket). Default: 2000.
    #[arg(long, env = "SHARDCAST_PUBLISH_RATE", value_name = "N")]
    pub publish_rate: Option<u32>,
    /// Publishes a connection may send at once above the rate (bucket size). Default: 2000.
    #[arg(long, env = "SHARDCAST_PUBLISH_BURST", value_name = "N")]
    pub publish_burst: Option<u32>,
    /// Time allowed from TCP accept to a complete WebSocket handshake. Default: 5s.
    #[arg(long, env = "SHARDCAST_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Interval of server pings on quiet connections. Default: 20s.
    #[arg(long, env = "SHARDCAST_PING_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Close a connection that sent nothing (not even a pong) for this long; must exceed the
    /// ping interval. Default: 60s.
    #[arg(long, env = "SHARDCAST_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Bytes queued for one connection before its slow-consumer policy applies; bounds memory
    /// per stalled client. Default: 1MiB (at least --max-frame).
    #[arg(long, env = "SHARDCAST_OUTBOX_BYTES", value_name = "SIZE", value_parser = parse_size)]
    pub outbox_bytes: Option<usize>,
    /// Messages kept per room for `since` recovery; 0 disables history. Default: 100.
    #[arg(long, env = "SHARDCAST_HISTORY_SIZE", value_name = "N")]
    pub history_size: Option<usize>,
    /// Also drop history older than this ("off" = keep by count only). Default: off.
    #[arg(long, env = "SHARDCAST_HISTORY_TTL", value_name = "DURATION", value_parser = parse_ttl)]
    pub history_ttl: Option<Ttl>,
    /// Default slow-consumer policy of namespaces without their own. Default: drop.
    #[arg(long, env = "SHARDCAST_POLICY", value_enum)]
    pub policy: Option<Policy>,
    /// Coalescing window used while a shard is busy (opened at ≥50% of its core, closed
    /// after a second under 25%): writes to one connection that receives messages faster
    /// than this are then at least this far apart, so it gets them in one write (the kernel
    /// charges ~6 µs per write, far less per frame). A quiet shard writes every frame at
    /// once. Trades up to this much latency on busy servers for CPU; "0ms" turns it off.
    /// Default: 5ms.
    #[arg(long, env = "SHARDCAST_COALESCE", value_name = "DURATION", value_parser = parse_duration)]
    pub coalesce: Option<Duration>,
    /// Close a connection whose socket accepted no byte for this long while frames were
    /// waiting (a client that stopped reading, or a half-open socket), whatever the
    /// slow-consumer policy, and free its memory. After the policy or shutdown closed the
    /// connection, its close frame gets at most 5 s. Default: 10s.
    #[arg(long, env = "SHARDCAST_WRITE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub write_timeout: Option<Duration>,
    /// Time allowed for one whole plain-HTTP request (head and body) once it has started;
    /// slower requests are closed. Default: 10s.
    #[arg(long, env = "SHARDCAST_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Most connections in the plain-HTTP phase (API calls and handshakes not yet upgraded)
    /// for the whole server; further ones get 503 and are closed. WebSocket sessions count
    /// against --max-connections instead. Default: 1024.
    #[arg(long, env = "SHARDCAST_MAX_HTTP_CONNECTIONS", value_name = "N")]
    pub max_http_connections: Option<usize>,
    /// Sustained HTTP publishes per second per client (its API key or token, else its IP
    /// address); over it, 429 with `rate_limited`. Default: 2000.
    #[arg(long, env = "SHARDCAST_HTTP_PUBLISH_RATE", value_name = "N")]
    pub http_publish_rate: Option<u32>,
    /// HTTP publishes one client may send at once above that rate. Default: 2000.
    #[arg(long, env = "SHARDCAST_HTTP_PUBLISH_BURST", value_name = "N")]
    pub http_publish_burst: Option<u32>,
    /// Most rooms the node keeps, split evenly over the shards (the shard owning a room
    /// admits max_rooms/shards, at least 1); a publish or subscribe that would create one
    /// more is refused (`too_many_rooms`: an error op on /ws, HTTP 503 on POST /api/publish
    /// and on a /ws/<room> handshake). Default: 100000.
    #[arg(long, env = "SHARDCAST_MAX_ROOMS", value_name = "N")]
    pub max_rooms: Option<usize>,
    /// Node-wide budget for retained messages (history and snapshots of every room), split
    /// evenly over the shards; each message counts with its envelope and room-per-URL frames
    /// and bookkeeping, so real use stays below. Over it, the least recently used rooms
    /// without subscribers are evicted (their seq restarts under a new epoch); if none is
    /// left, the publishing room drops its oldest messages. Default: 1GiB.
    #[arg(long, env = "SHARDCAST_RETAINED_BYTES", value_name = "SIZE", value_parser = parse_size)]
    pub retained_bytes: Option<usize>,
    /// Forget a room once it has had no subscriber and no message for this long ("off": keep
    /// it while the retained budget allows); per namespace with `room_ttl`. Default: 1h.
    #[arg(long, env = "SHARDCAST_ROOM_TTL", value_name = "DURATION", value_parser = parse_ttl)]
    pub room_ttl: Option<Ttl>,
    /// Join a cluster through this NATS server with JetStream (e.g. nats://127.0.0.1:4222):
    /// every node then serves the same rooms with the same seqs (DESIGN §4). Without it the
    /// node is on its own. Default: none.
    #[arg(long, env = "SHARDCAST_NATS", value_name = "URL")]
    pub nats: Option<String>,
    /// This node's name in the cluster (the broker shows the connection as "shardcast
    /// <node-id>"). Default: <hostname>-<pid>.
    #[arg(long, env = "SHARDCAST_NODE_ID", value_name = "NAME")]
    pub node_id: Option<String>,
    /// Longest wait for the broker on behalf of a client; past it a publish or subscribe
    /// is answered `unavailable` (HTTP 503). Default: 2s.
    #[arg(long, env = "SHARDCAST_NATS_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub nats_timeout: Option<Duration>,
}
