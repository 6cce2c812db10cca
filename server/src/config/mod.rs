//! Server configuration: CLI flags, `SHARDCAST_*` environment variables and a TOML file,
//! merged once at start-up into a validated [`Config`].
//!
//! Precedence is CLI > env > TOML > built-in defaults. Every [`Args`] field is an `Option` so
//! that "not given" stays distinguishable from "given the default value" — otherwise a TOML
//! setting could never survive a flag the user did not type. Validation happens once, here, so
//! the hot path never re-checks limits and a bad setting fails loudly before binding a port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod args;
mod example;
#[cfg(test)]
mod tests;
mod validate;
mod values;

pub use args::Args;
pub use example::EXAMPLE_TOML;
pub use values::{parse_duration, parse_size};
use values::{Human, Listen, Size};

/// Slow-consumer policy of a namespace: what happens when a connection's outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Close the connection (1008 "slow consumer"): for clients that must see every message.
    Disconnect,
    /// Skip messages, then send a `gap` notice so the client can recover from history.
    Drop,
    /// Keep only the newest queued message per room+key (needs a namespace `key`).
    Conflate,
}

/// Invalid configuration; the binary prints it and exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file: {0}")]
    Toml(String),
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("refusing to bind non-loopback {0} without --jwt-secret or --allow-anonymous")]
    Insecure(SocketAddr),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.into(), message: message.into() }
}

/// A history TTL that may be explicitly "off" (so a flag can switch off a file's TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Option<Duration>);

/// Per-namespace overrides as written in `[namespaces.<name>]`; unset fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    pub history_size: Option<usize>,
    pub history_ttl: Option<Ttl>,
    /// JSON field naming the entity (e.g. `"id"`) for snapshots and conflation.
    pub key: Option<String>,
    pub policy: Option<Policy>,
    /// May WebSocket clients publish here (false: only the HTTP API)? Default true.
    pub client_publish: Option<bool>,
    /// May WebSocket clients subscribe here? Default true.
    pub client_subscribe: Option<bool>,
    /// Forget a room of this namespace once it has had no subscriber and no message for this
    /// long ("off": keep it while the retained-bytes budget allows).
    pub room_ttl: Option<Ttl>,
    /// Position fields (`geo = { lat = "lat", lon = "lon" }`): enables viewport (`bbox`)
    /// subscriptions and `min_move_m` (DESIGN §3, tracking).
    pub geo: Option<GeoFields>,
    /// Fields whose change is always delivered despite `max_rate`/`min_move_m`. Default
    /// `["status", "stopped", "state"]`.
    pub status: Option<Vec<String>>,
    /// Subscriber count, members and coalesced join/leave diffs. Default false.
    pub presence: Option<bool>,
    /// Distinct members above which presence reports only the count. Default 1000.
    pub presence_members: Option<usize>,
    /// At most one `presence_diff` per room per this window. Default "1s".
    pub presence_window: Option<values::Human>,
    /// A key with no update for this long is announced `offline` (needs `key`). Default off.
    pub liveness_ttl: Option<values::Human>,
}

/// The namespace's position fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoFields {
    pub lat: String,
    pub lon: String,
}

/// Fully resolved settings of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSettings {
    pub history_size: usize,
    pub history_ttl: Option<Duration>,
    pub key: Option<String>,
    pub policy: Policy,
    pub client_publish: bool,
    pub client_subscribe: bool,
    pub room_ttl: Option<Duration>,
    pub geo: Option<GeoFields>,
    pub status: Vec<String>,
    pub presence: bool,
    pub presence_members: usize,
    pub presence_window: Duration,
    pub liveness_ttl: Option<Duration>,
}

/// The validated server configuration. See [`Args`] for what each setting means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub shards: usize,
    pub no_demo: bool,
    /// The demo publishers that run unless `no_demo`.
    pub demo: Vec<crate::demo::DemoKind>,
    pub allow_anonymous: bool,
    pub jwt_secret: Option<String>,
    pub api_key: Option<String>,
    /// Allowed `Origin`s; empty = any.
    pub origins: Vec<String>,
    pub log: String,
    pub max_frame: usize,
    pub max_rooms_per_conn: usize,
    pub max_connections: usize,
    pub publish_rate: u32,
    pub publish_burst: u32,
    pub handshake_timeout: Duration,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub outbox_bytes: usize,
    pub history_size: usize,
    pub history_ttl: Option<Duration>,
    pub policy: Policy,
    pub coalesce: Duration,
    pub write_timeout: Duration,
    pub request_timeout: Duration,
    pub max_http_connections: usize,
    pub http_publish_rate: u32,
    pub http_publish_burst: u32,
    pub max_rooms: usize,
    pub retained_bytes: usize,
    pub room_ttl: Option<Duration>,
    /// The cluster's broker (`--nats`); `None`: a single node.
    pub nats: Option<String>,
    pub node_id: Option<String>,
    pub nats_timeout: Duration,
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: cpus.clamp(1, 256),
            no_demo: false,
            demo: crate::demo::DemoKind::ALL.to_vec(),
            allow_anonymous: false,
            jwt_secret: None,
            api_key: None,
            origins: Vec::new(),
            log: "info".into(),
            max_frame: 64 * 1024,
            max_rooms_per_conn: 1024,
            max_connections: 100_000,
            publish_rate: 2000,
            publish_burst: 2000,
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            outbox_bytes: 1024 * 1024,
            coalesce: Duration::from_millis(5),
            history_size: 100,
            history_ttl: None,
            policy: Policy::Drop,
            write_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_http_connections: 1024,
            http_publish_rate: 2000,
            http_publish_burst: 2000,
            max_rooms: 100_000,
            retained_bytes: 1 << 30,
            room_ttl: Some(Duration::from_secs(3600)),
            nats: None,
            node_id: None,
            nats_timeout: Duration::from_secs(2),
            namespaces: demo_namespaces(),
        }
    }
}

/// Built-ins so the demo apps work out of the box: `fleet` conflates positions per vehicle,
/// snapshots the whole fleet and serves viewports (`geo`); `vehicle` keeps a short trail;
/// `flights`, `orders`, `traffic` and `sensor` keep the latest state per `id` (`flights` with
/// `geo`, `sensor` with 10 s liveness). A file table adds to or replaces them.
fn demo_namespaces() -> BTreeMap<String, NamespaceConfig> {
    let fleet = NamespaceConfig {
        history_size: Some(100),
        key: Some("id".into()),
        policy: Some(Policy::Conflate),
        geo: Some(GeoFields { lat: "lat".into(), lon: "lon".into() }),
        ..Default::default()
    };
    let vehicle = NamespaceConfig { history_size: Some(100), ..Default::default() };
    // The other demo apps' keyed rooms (`flights:all`, `orders:all`, `traffic`, `sensor`):
    // the latest state per id on `snapshot`, conflated for slow consumers.
    let keyed = |history| NamespaceConfig {
        history_size: Some(history),
        key: Some("id".into()),
        policy: Some(Policy::Conflate),
        ..Default::default()
    };
    // Tracking (DESIGN §3): flights carry positions (viewports on the world map); a sensor
    // silent for 10 s is announced offline.
    let flights =
        NamespaceConfig { geo: Some(GeoFields { lat: "lat".into(), lon: "lon".into() }), ..keyed(100) };
    let sensor = NamespaceConfig { liveness_ttl: Some(values::Human(Duration::from_secs(10))), ..keyed(100) };
    BTreeMap::from([
        ("fleet".into(), fleet),
        ("vehicle".into(), vehicle),
        ("flights".into(), flights),
        ("orders".into(), keyed(100)),
        ("traffic".into(), keyed(100)),
        ("sensor".into(), sensor),
    ])
}

/// The TOML file: the flags' settings under snake_case names, plus namespace tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Listen>,
    shards: Option<usize>,
    no_demo: Option<bool>,
    demo: Option<Vec<String>>,
    allow_anonymous: Option<bool>,
    jwt_secret: Option<String>,
    api_key: Option<String>,
    origins: Option<Vec<String>>,
    log: Option<String>,
    max_frame: Option<Size>,
    max_rooms_per_conn: Option<usize>,
    max_connections: Option<usize>,
    publish_rate: Option<u32>,
    publish_burst: Option<u32>,
    handshake_timeout: Option<Human>,
    ping_interval: Option<Human>,
    idle_timeout: Option<Human>,
    outbox_bytes: Option<Size>,
    coalesce: Option<Human>,
    history_size: Option<usize>,
    history_ttl: Option<Ttl>,
    policy: Option<Policy>,
    write_timeout: Option<Human>,
    request_timeout: Option<Human>,
    max_http_connections: Option<usize>,
    http_publish_rate: Option<u32>,
    http_publish_burst: Option<u32>,
    max_rooms: Option<usize>,
    retained_bytes: Option<Size>,
    room_ttl: Option<Ttl>,
    nats: Option<String>,
    node_id: Option<String>,
    nats_timeout: Option<Human>,
    #[serde(default)]
    namespaces: BTreeMap<String, NamespaceConfig>,
}

/// Overwrites `$dst.$f` with every `Some` in `$src.$f`, converting with `$conv`.
macro_rules! overlay {
    ($dst:ident, $src:ident, $conv:expr; $($f:ident),* $(,)?) => {
        $( if let Some(v) = $src.$f { $dst.$f = $conv(v); } )*
    };
}

impl Config {
    /// Merges defaults, the `--config` file, environment and flags, then validates.
    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            cfg.apply_toml(&text).map_err(|e| match e {
                ConfigError::Toml(m) => ConfigError::Toml(format!("{}: {m}", path.display())),
                e => e,
            })?;
        }
        let a = args;
        overlay!(cfg, a, |v| v; listen, shards, no_demo, allow_anonymous, origins, log, max_frame,
            max_rooms_per_conn, max_connections, publish_rate, publish_burst, handshake_timeout,
            ping_interval, idle_timeout, outbox_bytes, history_size, policy, coalesce, write_timeout,
            request_timeout, max_http_connections, http_publish_rate, http_publish_burst, max_rooms,
            retained_bytes);
        overlay!(cfg, a, |v| v; nats_timeout, demo);
        overlay!(cfg, a, Some; jwt_secret, api_key, nats, node_id);
        overlay!(cfg, a, |t: Ttl| t.0; history_ttl, room_ttl);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Defaults plus a TOML document, validated (what `load` does without flags or env).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.apply_toml(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let f: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        let cfg = self;
        overlay!(cfg, f, |l: Listen| l.0; listen);
        if let Some(names) = f.demo {
            let kinds: Result<Vec<_>, _> = names.iter().map(|n| crate::demo::DemoKind::parse(n)).collect();
            cfg.demo = kinds.map_err(|e| ConfigError::Toml(format!("demo: {e}")))?;
        }
        overlay!(cfg, f, |v| v; shards, no_demo, allow_anonymous, origins, log,
            max_rooms_per_conn, max_connections, publish_rate, publish_burst, history_size, policy,
            max_http_connections, http_publish_rate, http_publish_burst, max_rooms);
        overlay!(cfg, f, Some; jwt_secret, api_key, nats, node_id);
        overlay!(cfg, f, |s: Size| s.0; max_frame, outbox_bytes, retained_bytes);
        overlay!(cfg, f, |h: Human| h.0; handshake_timeout, ping_interval, idle_timeout, coalesce,
            write_timeout, request_timeout, nats_timeout);
        overlay!(cfg, f, |t: Ttl| t.0; history_ttl, room_ttl);
        cfg.namespaces.extend(f.namespaces);
        Ok(())
    }

    /// Settings of namespace `ns` (the part of a room name before the first `:`).
    pub fn namespace(&self, ns: &str) -> NamespaceSettings {
        let o = self.namespaces.get(ns).cloned().unwrap_or_default();
        NamespaceSettings {
            history_size: o.history_size.unwrap_or(self.history_size),
            history_ttl: o.history_ttl.map_or(self.history_ttl, |t| t.0),
            policy: o.policy.unwrap_or(self.policy),
            key: o.key,
            client_publish: o.client_publish.unwrap_or(true),
            client_subscribe: o.client_subscribe.unwrap_or(true),
            room_ttl: o.room_ttl.map_or(self.room_ttl, |t| t.0),
            geo: o.geo,
            status: o.status.unwrap_or_else(shardcast_engine::track::default_status_fields),
            presence: o.presence.unwrap_or(false),
            presence_members: o.presence_members.unwrap_or(1_000),
            presence_window: o.presence_window.map_or(Duration::from_secs(1), |h| h.0),
            liveness_ttl: o.liveness_ttl.map(|h| h.0),
        }
    }

    /// Whether a handshake's `Origin` may connect. No header means a non-browser client,
    /// which the origin check (a browser CSRF defence) does not concern.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            _ if self.origins.is_empty() => true,
            None => true,
            Some(o) => self.origins.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(o)),
        }
    }
}
