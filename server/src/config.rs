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
    /// Address to listen on for WebSocket and HTTP. Default: 127.0.0.1:8080. Binding a
    /// non-loopback address needs --jwt-secret or --allow-anonymous.
    #[arg(long, env = "SHARDCAST_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Number of shards: one pinned thread per core, each owning its connections and rooms.
    /// Default: the number of CPUs available (1..=256).
    #[arg(long, env = "SHARDCAST_SHARDS", value_name = "N")]
    pub shards: Option<usize>,
    /// Do not run the built-in demo fleet publishing into `fleet:demo`. Default: demo on.
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
    /// Coalescing window used while a shard is busy (≥50% of its core): writes to one
    /// connection are then at least this far apart, so a client receiving many messages gets
    /// them in one write (the kernel charges ~6 µs per write, far less per frame). A quiet
    /// shard writes every frame at once. Trades up to this much latency on busy servers for
    /// CPU; "0ms" turns it off. Default: 5ms.
    #[arg(long, env = "SHARDCAST_COALESCE", value_name = "DURATION", value_parser = parse_duration)]
    pub coalesce: Option<Duration>,
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
}

/// The validated server configuration. See [`Args`] for what each setting means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub shards: usize,
    pub no_demo: bool,
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
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: cpus.clamp(1, 256),
            no_demo: false,
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
            namespaces: demo_namespaces(),
        }
    }
}

/// Built-ins so the demo map works out of the box: `fleet` conflates positions per vehicle
/// and snapshots the whole fleet; `vehicle` keeps a short trail. A file table replaces them.
fn demo_namespaces() -> BTreeMap<String, NamespaceConfig> {
    let fleet = NamespaceConfig {
        history_size: Some(100),
        key: Some("id".into()),
        policy: Some(Policy::Conflate),
        ..Default::default()
    };
    let vehicle = NamespaceConfig { history_size: Some(100), ..Default::default() };
    BTreeMap::from([("fleet".into(), fleet), ("vehicle".into(), vehicle)])
}

/// The TOML file: the flags' settings under snake_case names, plus namespace tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    shards: Option<usize>,
    no_demo: Option<bool>,
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
            ping_interval, idle_timeout, outbox_bytes, history_size, policy, coalesce);
        overlay!(cfg, a, Some; jwt_secret, api_key);
        overlay!(cfg, a, |t: Ttl| t.0; history_ttl);
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
        overlay!(cfg, f, |v| v; listen, shards, no_demo, allow_anonymous, origins, log,
            max_rooms_per_conn, max_connections, publish_rate, publish_burst, history_size, policy);
        overlay!(cfg, f, Some; jwt_secret, api_key);
        overlay!(cfg, f, |s: Size| s.0; max_frame, outbox_bytes);
        overlay!(cfg, f, |h: Human| h.0; handshake_timeout, ping_interval, idle_timeout, coalesce);
        overlay!(cfg, f, |t: Ttl| t.0; history_ttl);
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

    // One rule per line reads as a table; rustfmt would spread it over a hundred lines.
    #[rustfmt::skip]
    fn validate(&self) -> Result<(), ConfigError> {
        let secret_ok = |s: &Option<String>| !matches!(s, Some(s) if s.len() < 16);
        let origin_ok = |o: &String| o == "*"
            || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/'));
        let rules: [(bool, &str, &str); 14] = [
            ((1..=256).contains(&self.shards), "shards", "must be within 1..=256"),
            ((128..=16 << 20).contains(&self.max_frame), "max_frame", "must be within 128 B..=16 MiB"),
            (self.outbox_bytes >= self.max_frame, "outbox_bytes", "must be at least max_frame"),
            (self.outbox_bytes <= 1 << 30, "outbox_bytes", "must be at most 1 GiB"),
            ((1..=1_000_000).contains(&self.max_rooms_per_conn), "max_rooms_per_conn", "must be within 1..=1000000"),
            (self.max_connections >= 1, "max_connections", "must be at least 1"),
            (self.publish_rate >= 1, "publish_rate", "must be at least 1 per second"),
            (self.publish_burst >= 1, "publish_burst", "must be at least 1"),
            (!self.handshake_timeout.is_zero(), "handshake_timeout", "must be positive"),
            (self.coalesce <= Duration::from_secs(1), "coalesce", "must be at most 1s"),
            (!self.ping_interval.is_zero(), "ping_interval", "must be positive"),
            (self.idle_timeout > self.ping_interval, "idle_timeout", "must exceed ping_interval, or healthy idle clients get closed"),
            (self.policy != Policy::Conflate, "policy", "conflate needs a key; set it per namespace with `key`"),
            (self.origins.iter().all(origin_ok), "origins", "each must look like https://host[:port] (no path) or *"),
        ];
        if let Some((_, field, msg)) = rules.iter().find(|r| !r.0) {
            return Err(invalid(*field, *msg));
        }
        for (field, secret) in [("jwt_secret", &self.jwt_secret), ("api_key", &self.api_key)] {
            if !secret_ok(secret) {
                return Err(invalid(field, "must be at least 16 bytes; short secrets can be brute-forced"));
            }
        }
        crate::logfilter::log_filter(&self.log).map_err(|e| invalid("log", format!("{:?}: {e}", self.log)))?;
        validate_history("history", self.history_size, self.history_ttl)?;
        for name in self.namespaces.keys() {
            let field = format!("namespaces.{name}");
            let s = self.namespace(name);
            let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./@".contains(&b));
            let rules = [
                (name_ok, "name must be 1+ of A-Z a-z 0-9 _ - . / @"),
                (s.policy != Policy::Conflate || s.key.is_some(), "policy conflate requires key"),
                (!matches!(&s.key, Some(k) if k.is_empty()), "key must not be empty"),
            ];
            if let Some((_, msg)) = rules.iter().find(|r| !r.0) {
                return Err(invalid(field, *msg));
            }
            validate_history(&field, s.history_size, s.history_ttl)?;
        }
        if self.jwt_secret.is_none() && !self.listen.ip().is_loopback() && !self.allow_anonymous {
            return Err(ConfigError::Insecure(self.listen));
        }
        Ok(())
    }
}

fn validate_history(field: &str, size: usize, ttl: Option<Duration>) -> Result<(), ConfigError> {
    if size > 1_000_000 {
        return Err(invalid(field, format!("history_size {size} exceeds 1000000")));
    }
    if ttl.is_some_and(|t| t.is_zero()) {
        return Err(invalid(field, "history_ttl must be positive (use \"off\" to disable)"));
    }
    Ok(())
}

/// Parses `500ms`, `5s`, `2m`, `1h` (a whole number and a unit; the unit is mandatory so
/// that `5` never silently means 5 ms to one reader and 5 s to another).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s, 2m, 1h"))?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("invalid duration {s:?}: unit must be ms, s, m or h")),
    };
    n.checked_mul(mult).map(Duration::from_millis).ok_or_else(|| format!("duration {s:?} is too large"))
}

fn parse_ttl(s: &str) -> Result<Ttl, String> {
    match s.trim() {
        "off" | "none" => Ok(Ttl(None)),
        s => parse_duration(s).map(|d| Ttl(Some(d))),
    }
}

/// Parses a byte size: `65536`, `64KiB`, `1MiB`, `1GiB` (also KB/MB/GB = powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize =
        num.parse().map_err(|_| format!("invalid size {s:?}: expected e.g. 65536, 64KiB, 1MiB"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("invalid size {s:?}: unit must be B, KiB, MiB, GiB, KB, MB or GB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

/// A size in TOML: an integer (bytes) or a string with a unit.
#[derive(Debug, Clone, Copy)]
struct Size(usize);
/// A duration in TOML: a string with a unit.
#[derive(Debug, Clone, Copy)]
struct Human(Duration);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size such as 65536 or \"64KiB\""))?
        {
            Raw::N(n) => usize::try_from(n).map(Size).map_err(serde::de::Error::custom),
            Raw::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Human {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration string such as \"5s\""))?;
        parse_duration(&s).map(Human).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"10m\" or \"off\""))?;
        parse_ttl(&s).map_err(serde::de::Error::custom)
    }
}

/// A complete, commented example configuration (parsed by a unit test, so it stays valid).
pub const EXAMPLE_TOML: &str = r#"# shardcast.toml — every key is optional; flags and SHARDCAST_* env vars override it.
listen = "127.0.0.1:8080"
shards = 2
no_demo = false
allow_anonymous = false
# jwt_secret = "change-me-to-32-random-bytes...."   # better: SHARDCAST_JWT_SECRET
api_key = "local-dev-api-key-0123"
origins = ["https://maps.example.com", "http://localhost:3000"]
log = "info,shardcast_server=debug"

max_frame = "64KiB"
max_rooms_per_conn = 1024
max_connections = 100000
publish_rate = 2000
publish_burst = 2000
handshake_timeout = "5s"
ping_interval = "20s"
idle_timeout = "60s"
outbox_bytes = "1MiB"
coalesce = "5ms"
history_size = 100
history_ttl = "off"
policy = "drop"

# Room "fleet:berlin" belongs to namespace "fleet".
[namespaces.fleet]
key = "id"            # latest message per vehicle id: snapshot + conflation
policy = "conflate"
history_size = 100

[namespaces.vehicle]
history_size = 500
history_ttl = "10m"

[namespaces.orders]
policy = "disconnect"   # clients must see every order update or reconnect
client_publish = false  # only the backend publishes, via POST /api/publish
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(v: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("shardcast").chain(v.iter().copied())).unwrap()
    }

    #[test]
    fn example_parses() {
        let c = Config::from_toml_str(EXAMPLE_TOML).unwrap();
        assert_eq!(c.shards, 2);
        assert_eq!(c.max_frame, 65536);
        assert_eq!(c.outbox_bytes, 1 << 20);
        assert_eq!(c.origins.len(), 2);
        let v = c.namespace("vehicle");
        assert_eq!(
            (v.history_size, v.history_ttl, v.policy),
            (500, Some(Duration::from_secs(600)), Policy::Drop)
        );
        let o = c.namespace("orders");
        assert!(!o.client_publish && o.client_subscribe && o.policy == Policy::Disconnect);
    }

    #[test]
    fn defaults_and_demo_namespaces() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.shards >= 1);
        let f = c.namespace("fleet");
        assert_eq!((f.key.as_deref(), f.policy, f.history_size), (Some("id"), Policy::Conflate, 100));
        let other = c.namespace("tracker/42");
        assert_eq!(
            (other.key, other.policy, other.history_size, other.client_publish),
            (None, Policy::Drop, 100, true)
        );
        // A user table replaces the built-in one wholesale.
        let c = Config::from_toml_str("[namespaces.fleet]\nhistory_size = 5").unwrap();
        assert_eq!((c.namespace("fleet").key, c.namespace("fleet").policy), (None, Policy::Drop));
    }

    #[test]
    fn precedence_cli_over_file() {
        let dir = std::env::temp_dir().join(format!("shardcast-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "shards = 3\nmax_frame = 1000\nhistory_ttl = \"5m\"\n").unwrap();
        let p = path.to_str().unwrap();
        let c = Config::load(args(&["--config", p, "--shards", "4", "--history-ttl", "off", "--no-demo"]))
            .unwrap();
        assert_eq!((c.shards, c.max_frame, c.history_ttl, c.no_demo), (4, 1000, None, true));
        let c = Config::load(args(&["-c", p, "--max-frame", "2KiB", "--ping-interval", "500ms"])).unwrap();
        assert_eq!((c.shards, c.max_frame, c.ping_interval), (3, 2048, Duration::from_millis(500)));
        assert!(matches!(Config::load(args(&["-c", "/nonexistent.toml"])), Err(ConfigError::Read { .. })));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn humane_values() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["5", "s", "5x", "-1s", "1.5s", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 kb"), Ok(2000));
        assert!(parse_size("1TiB").is_err() && parse_size("x").is_err());
        assert!(Config::from_toml_str("handshake_timeout = 5")
            .unwrap_err()
            .to_string()
            .contains("handshake_timeout"));
        assert!(Config::from_toml_str("max_frame = \"64XB\"").unwrap_err().to_string().contains("max_frame"));
        assert!(Config::from_toml_str("shard = 2").unwrap_err().to_string().contains("shard"));
    }

    #[test]
    fn validation_names_the_field() {
        let err = |t: &str| Config::from_toml_str(t).unwrap_err().to_string();
        assert!(err("shards = 0").contains("shards"));
        assert!(err("shards = 300").contains("shards"));
        assert!(err("max_frame = 100").contains("max_frame"));
        assert!(err("max_frame = \"32MiB\"").contains("max_frame"));
        assert!(err("outbox_bytes = 1000").contains("outbox_bytes"));
        assert!(err("idle_timeout = \"10s\"").contains("idle_timeout"));
        assert!(err("jwt_secret = \"short\"").contains("jwt_secret"));
        assert!(err("origins = [\"example.com\"]").contains("origins"));
        assert!(err("log = \"[[[\"").contains("log"));
        assert!(err("policy = \"conflate\"").contains("policy"));
        assert!(err("[namespaces.pos]\npolicy = \"conflate\"").contains("namespaces.pos"));
        assert!(err("[namespaces.pos]\npolicy = \"sometimes\"").contains("policy"));
        assert!(err("[namespaces.\"a:b\"]\nkey = \"id\"").contains("namespaces.a:b"));
        assert!(err("[namespaces.x]\nhistory_ttl = \"0s\"").contains("namespaces.x"));
    }

    #[test]
    fn refuses_open_public_bind() {
        let e = Config::from_toml_str("listen = \"0.0.0.0:8080\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "refusing to bind non-loopback 0.0.0.0:8080 without --jwt-secret or --allow-anonymous"
        );
        assert!(Config::from_toml_str("listen = \"0.0.0.0:8080\"\nallow_anonymous = true").is_ok());
        assert!(Config::from_toml_str("listen = \"0.0.0.0:8080\"\njwt_secret = \"0123456789abcdef\"").is_ok());
        assert!(Config::from_toml_str("listen = \"[::1]:9000\"").is_ok());
    }

    #[test]
    fn origins() {
        let mut c = Config::default();
        assert!(c.origin_allowed(Some("https://evil.example")));
        c.origins = vec!["https://maps.example.com".into()];
        assert!(c.origin_allowed(Some("https://maps.example.com")));
        assert!(!c.origin_allowed(Some("https://evil.example")));
        assert!(c.origin_allowed(None));
    }

    #[test]
    fn help_documents_every_flag() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for flag in
            ["--listen", "--jwt-secret", "--history-ttl", "--policy", "Default: 64KiB", "SHARDCAST_MAX_FRAME"]
        {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
        Args::command().debug_assert();
    }
}
