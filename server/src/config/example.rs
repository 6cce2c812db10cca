//! The documented example configuration.

/// A complete, commented example configuration (parsed by a unit test, so it stays valid).
pub const EXAMPLE_TOML: &str = r#"# shardcast.toml — every key is optional; flags and SHARDCAST_* env vars override it.
listen = "127.0.0.1:8080"
shards = 2
no_demo = false
demo = ["vehicles", "flights", "traffic", "orders", "iot"]
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
write_timeout = "10s"
request_timeout = "10s"
max_http_connections = 1024
http_publish_rate = 2000
http_publish_burst = 2000
max_rooms = 100000
retained_bytes = "1GiB"
room_ttl = "1h"
# nats = "nats://127.0.0.1:4222"   # join a cluster (DESIGN §4); SHARDCAST_NATS
# node_id = "edge-1"
nats_timeout = "2s"

# Room "fleet:berlin" belongs to namespace "fleet".
[namespaces.fleet]
key = "id"            # latest message per vehicle id: snapshot + conflation
policy = "conflate"
history_size = 100
geo = { lat = "lat", lon = "lon" }   # viewports (bbox, view) and min_move_m: docs/tracking.md
# status = ["status", "stopped", "state"]   # a change here always gets through pacing

[namespaces.vehicle]
history_size = 500
history_ttl = "10m"

[namespaces.orders]
policy = "disconnect"   # clients must see every order update or reconnect
client_publish = false  # only the backend publishes, via POST /api/publish

[namespaces.sensor]
key = "id"
liveness_ttl = "30s"    # a sensor silent this long gets one {"op":"offline"}

[namespaces.chat]
presence = true         # counts, members, presence_diff at most once per window
presence_window = "1s"
presence_members = 1000 # above this many members, counts only
"#;
