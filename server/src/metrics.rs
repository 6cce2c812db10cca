//! Prometheus text exposition of server counters.
//!
//! Shards count locally (plain integers, no atomics on the hot path) and the server gathers a
//! [`Counters`] per shard on scrape — the stats map-reduce of DESIGN §6. Totals are exposed as
//! `shardcast_<name>` and per-shard values as separate `shardcast_shard_<name>{shard="N"}`
//! families, so `sum()` over a family never double counts.

use std::fmt::Write;
use std::ops::AddAssign;
use std::sync::atomic::Ordering::Relaxed;

/// Why a connection, request or message was refused, throttled or cut off (label `reason`):
/// every bound on what a client can make the server hold has its overflow counted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Auth,
    Forbidden,
    RateLimited,
    BadRequest,
    TooLarge,
    MaxConnections,
    MaxRooms,
    Origin,
    HandshakeTimeout,
    /// A socket accepted no byte for `--write-timeout` (or its close frame for 5 s): reset.
    WriteTimeout,
    /// A connection outlived its token's `exp`: closed 1008 "token expired".
    TokenExpired,
    /// Over `--max-http-connections`: 503 before reading the request.
    MaxHttpConnections,
    /// A plain-HTTP request not complete within `--request-timeout`.
    RequestTimeout,
    /// Inbound reading paused because the connection held half its outbox budget (the
    /// client is not reading its replies): counted once per pause, not per message.
    ReadPaused,
}

impl RejectReason {
    pub const ALL: [RejectReason; 14] = [
        RejectReason::Auth,
        RejectReason::Forbidden,
        RejectReason::RateLimited,
        RejectReason::BadRequest,
        RejectReason::TooLarge,
        RejectReason::MaxConnections,
        RejectReason::MaxRooms,
        RejectReason::Origin,
        RejectReason::HandshakeTimeout,
        RejectReason::WriteTimeout,
        RejectReason::TokenExpired,
        RejectReason::MaxHttpConnections,
        RejectReason::RequestTimeout,
        RejectReason::ReadPaused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Auth => "auth",
            RejectReason::Forbidden => "forbidden",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::BadRequest => "bad_request",
            RejectReason::TooLarge => "too_large",
            RejectReason::MaxConnections => "max_connections",
            RejectReason::MaxRooms => "max_rooms",
            RejectReason::Origin => "origin",
            RejectReason::HandshakeTimeout => "handshake_timeout",
            RejectReason::WriteTimeout => "write_timeout",
            RejectReason::TokenExpired => "token_expired",
            RejectReason::MaxHttpConnections => "max_http_connections",
            RejectReason::RequestTimeout => "request_timeout",
            RejectReason::ReadPaused => "read_paused",
        }
    }
}

/// One shard's counters and gauges (or their sum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub connections_current: u64,
    pub http_connections: u64,
    pub connections_total: u64,
    pub rooms: u64,
    pub subscriptions: u64,
    pub published_total: u64,
    pub delivered_total: u64,
    /// Messages skipped by the `drop` policy.
    pub dropped_drop_total: u64,
    /// Messages replaced by a newer one under the `conflate` policy.
    pub dropped_conflate_total: u64,
    pub slow_disconnects_total: u64,
    pub queued_bytes: u64,
    /// Idle rooms evicted to keep retained bytes within `--retained-bytes`.
    pub rooms_evicted_total: u64,
    /// Idle rooms forgotten after their `room_ttl`.
    pub rooms_expired_total: u64,
    /// Publishes and subscribes refused by `--max-rooms` (`too_many_rooms`).
    pub rooms_refused_total: u64,
    /// Bytes retained by rooms (history and snapshots), as the budget counts them.
    pub retained_bytes: u64,
    /// Tracking: messages held by subscribers' `max_rate` for the end of the interval.
    pub paced_held_total: u64,
    /// Tracking: messages skipped by subscribers' `min_move_m` dead-band.
    pub paced_skipped_total: u64,
    /// Tracking: keys not delivered to a full viewport (`too_many_keys`).
    pub view_keys_refused_total: u64,
    /// Tracking: messages passed unpaced because the subscriber's pacer was full.
    pub paced_overflow_total: u64,
    /// Tracking: `leave` notices sent to viewports.
    pub view_leaves_total: u64,
    /// Tracking: presence diffs and offline notices emitted (one per room event).
    pub notices_total: u64,
    /// The coalescing window in force, in µs (DESIGN §2, "Write batching"); summed over
    /// shards, the widest.
    pub coalesce_window_us: u64,
    /// Indexed like [`RejectReason::ALL`].
    pub rejected_total: [u64; RejectReason::ALL.len()],
}

impl Counters {
    pub fn reject(&mut self, reason: RejectReason) {
        self.rejected_total[reason as usize] += 1;
    }
}

impl AddAssign<&Counters> for Counters {
    fn add_assign(&mut self, o: &Counters) {
        self.connections_current += o.connections_current;
        self.http_connections += o.http_connections;
        self.connections_total += o.connections_total;
        self.rooms += o.rooms;
        self.subscriptions += o.subscriptions;
        self.published_total += o.published_total;
        self.delivered_total += o.delivered_total;
        self.dropped_drop_total += o.dropped_drop_total;
        self.dropped_conflate_total += o.dropped_conflate_total;
        self.slow_disconnects_total += o.slow_disconnects_total;
        self.queued_bytes += o.queued_bytes;
        self.rooms_evicted_total += o.rooms_evicted_total;
        self.rooms_expired_total += o.rooms_expired_total;
        self.rooms_refused_total += o.rooms_refused_total;
        self.retained_bytes += o.retained_bytes;
        self.paced_held_total += o.paced_held_total;
        self.paced_skipped_total += o.paced_skipped_total;
        self.view_keys_refused_total += o.view_keys_refused_total;
        self.paced_overflow_total += o.paced_overflow_total;
        self.view_leaves_total += o.view_leaves_total;
        self.notices_total += o.notices_total;
        self.coalesce_window_us = self.coalesce_window_us.max(o.coalesce_window_us);
        for (a, b) in self.rejected_total.iter_mut().zip(o.rejected_total) {
            *a += b;
        }
    }
}

/// Everything one scrape exposes: totals plus the per-shard breakdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub total: Counters,
    pub shards: Vec<Counters>,
}

impl MetricsSnapshot {
    /// Sums the shards into `total`.
    pub fn from_shards(shards: Vec<Counters>) -> Self {
        let mut total = Counters::default();
        shards.iter().for_each(|s| total += s);
        MetricsSnapshot { total, shards }
    }
}

/// (name, type, help, accessor) of every unlabelled series.
type Series = (&'static str, &'static str, &'static str, fn(&Counters) -> u64);
const SERIES: [Series; 20] = [
    ("connections_current", "gauge", "Open WebSocket connections.", |c| c.connections_current),
    ("http_connections", "gauge", "Connections in the plain-HTTP phase (API calls, handshakes).", |c| {
        c.http_connections
    }),
    ("connections_total", "counter", "WebSocket connections accepted.", |c| c.connections_total),
    ("rooms", "gauge", "Rooms with state on this server.", |c| c.rooms),
    ("subscriptions", "gauge", "Active room subscriptions.", |c| c.subscriptions),
    ("published_total", "counter", "Messages published into rooms.", |c| c.published_total),
    ("delivered_total", "counter", "Messages queued to subscribers.", |c| c.delivered_total),
    ("slow_disconnects_total", "counter", "Connections closed as slow consumers.", |c| {
        c.slow_disconnects_total
    }),
    ("queued_bytes", "gauge", "Bytes waiting in connection outboxes.", |c| c.queued_bytes),
    ("rooms_evicted_total", "counter", "Idle rooms evicted by the retained-bytes budget.", |c| {
        c.rooms_evicted_total
    }),
    ("rooms_expired_total", "counter", "Idle rooms forgotten after their room TTL.", |c| {
        c.rooms_expired_total
    }),
    ("rooms_refused_total", "counter", "Room creations refused by the room limit.", |c| {
        c.rooms_refused_total
    }),
    ("retained_bytes", "gauge", "Bytes retained by room history and snapshots.", |c| c.retained_bytes),
    (
        "paced_held_total",
        "counter",
        "Messages held by subscribers' max_rate for the end of the interval.",
        |c| c.paced_held_total,
    ),
    ("paced_skipped_total", "counter", "Messages skipped by subscribers' min_move_m dead-band.", |c| {
        c.paced_skipped_total
    }),
    ("view_keys_refused_total", "counter", "Keys not delivered to a full viewport (too_many_keys).", |c| {
        c.view_keys_refused_total
    }),
    (
        "paced_overflow_total",
        "counter",
        "Messages passed unpaced because the subscriber's pacer was full.",
        |c| c.paced_overflow_total,
    ),
    ("view_leaves_total", "counter", "Leave notices sent to viewports.", |c| c.view_leaves_total),
    ("notices_total", "counter", "Presence diffs and offline notices emitted.", |c| c.notices_total),
    (
        "coalesce_window_microseconds",
        "gauge",
        "Coalescing window in force: 0 while a shard is quiet, --coalesce and up to 4x that while busy (total: the widest shard's).",
        |c| c.coalesce_window_us,
    ),
];

/// Counter families with one label: (name, help, label, values by label value).
type Labelled = (&'static str, &'static str, &'static str, fn(&Counters) -> Vec<(&'static str, u64)>);
const LABELLED: [Labelled; 2] = [
    ("dropped_total", "Messages not delivered to a slow consumer, by policy.", "policy", |c| {
        vec![("drop", c.dropped_drop_total), ("conflate", c.dropped_conflate_total)]
    }),
    (
        "rejected_total",
        "Refused, throttled or cut-off connections, requests and messages, by reason.",
        "reason",
        |c| RejectReason::ALL.iter().map(|r| r.as_str()).zip(c.rejected_total).collect(),
    ),
];

/// Renders the snapshot in the Prometheus text format (version 0.0.4).
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(4096 + m.shards.len() * 2048);
    let total = [(String::new(), &m.total)];
    let shards: Vec<(String, &Counters)> =
        m.shards.iter().enumerate().map(|(i, c)| (format!("shard=\"{i}\""), c)).collect();
    for (prefix, scope, rows) in
        [("shardcast_", "Total.", &total[..]), ("shardcast_shard_", "Per shard.", &shards)]
    {
        for (name, kind, help, get) in SERIES {
            let _ = writeln!(out, "# HELP {prefix}{name} {scope} {help}\n# TYPE {prefix}{name} {kind}");
            for (labels, c) in rows {
                sample(&mut out, prefix, name, labels, ("", ""), get(c));
            }
        }
        for (name, help, label, get) in LABELLED {
            let _ = writeln!(out, "# HELP {prefix}{name} {scope} {help}\n# TYPE {prefix}{name} counter");
            for (labels, c) in rows {
                for (value, v) in get(c) {
                    sample(&mut out, prefix, name, labels, (label, value), v);
                }
            }
        }
    }
    out
}

/// Appends the cluster link's series (cluster mode only).
pub fn render_cluster(out: &mut String, c: &crate::cluster::Cluster) {
    let s = c.stats();
    let series: [(&str, &str, &str, u64); 8] = [
        (
            "broker_connected",
            "gauge",
            "1 while the link to the broker is up.",
            s.connected.load(Relaxed) as u64,
        ),
        (
            "broker_received_total",
            "counter",
            "Messages received from the broker for rooms this node watches.",
            s.received.load(Relaxed),
        ),
        (
            "broker_delivered_total",
            "counter",
            "Broker messages handed to the shards (duplicates dropped).",
            s.delivered.load(Relaxed),
        ),
        (
            "broker_filled_total",
            "counter",
            "Messages fetched from the stream to fill a hole in a room's seq.",
            s.filled.load(Relaxed),
        ),
        ("broker_published_total", "counter", "Appends to the stream accepted.", s.published.load(Relaxed)),
        (
            "broker_conflicts_total",
            "counter",
            "Appends retried because another node appended to the room first.",
            s.conflicts.load(Relaxed),
        ),
        (
            "broker_failed_total",
            "counter",
            "Requests answered unavailable (broker down or too slow).",
            s.failed.load(Relaxed),
        ),
        (
            "broker_rooms_watched",
            "gauge",
            "Rooms this node receives from the broker (it has subscribers of them).",
            s.watched.load(Relaxed),
        ),
    ];
    for (name, kind, help, v) in series {
        let _ = writeln!(
            out,
            "# HELP shardcast_{name} {help}\n# TYPE shardcast_{name} {kind}\nshardcast_{name} {v}"
        );
    }
}

fn sample(out: &mut String, prefix: &str, name: &str, labels: &str, extra: (&str, &str), v: u64) {
    let mut all = labels.to_owned();
    if !extra.0.is_empty() {
        let sep = if all.is_empty() { "" } else { "," };
        let _ = write!(all, "{sep}{}=\"{}\"", extra.0, extra.1);
    }
    let braces = if all.is_empty() { String::new() } else { format!("{{{all}}}") };
    let _ = writeln!(out, "{prefix}{name}{braces} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> MetricsSnapshot {
        let mut a = Counters {
            connections_current: 3,
            published_total: 10,
            dropped_drop_total: 2,
            coalesce_window_us: 5000,
            ..Default::default()
        };
        a.reject(RejectReason::Auth);
        let b = Counters {
            connections_current: 4,
            published_total: 5,
            dropped_conflate_total: 7,
            coalesce_window_us: 20000,
            ..Default::default()
        };
        MetricsSnapshot::from_shards(vec![a, b])
    }

    /// Checks each line against the exposition grammar (the subset we emit).
    fn valid_line(line: &str) -> bool {
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .enumerate()
                    .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        };
        if let Some(rest) = line.strip_prefix("# HELP ") {
            return rest.split_once(' ').is_some_and(|(n, h)| ident(n) && !h.is_empty());
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            return rest.split_once(' ').is_some_and(|(n, t)| ident(n) && matches!(t, "counter" | "gauge"));
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            return false;
        };
        if value.parse::<f64>().is_err() {
            return false;
        }
        match series.split_once('{') {
            None => ident(series),
            Some((name, labels)) => {
                ident(name)
                    && labels.strip_suffix('}').is_some_and(|l| {
                        l.split(',').all(|kv| {
                            kv.split_once('=').is_some_and(|(k, v)| {
                                ident(k) && v.len() >= 2 && v.starts_with('"') && v.ends_with('"')
                            })
                        })
                    })
            }
        }
    }

    #[test]
    fn output_is_valid_exposition_format() {
        let text = render(&snapshot());
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            assert!(valid_line(line), "invalid line: {line:?}");
        }
        // Every sample belongs to a family declared just before it.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{name} has no TYPE");
            }
        }
    }

    #[test]
    fn totals_and_shard_labels() {
        let text = render(&snapshot());
        for expected in [
            "shardcast_connections_current 7\n",
            "shardcast_published_total 15\n",
            "shardcast_dropped_total{policy=\"drop\"} 2\n",
            "shardcast_dropped_total{policy=\"conflate\"} 7\n",
            "shardcast_rejected_total{reason=\"auth\"} 1\n",
            "shardcast_shard_connections_current{shard=\"1\"} 4\n",
            "shardcast_shard_dropped_total{shard=\"0\",policy=\"drop\"} 2\n",
            "shardcast_shard_rejected_total{shard=\"0\",reason=\"auth\"} 1\n",
            "# TYPE shardcast_connections_total counter\n",
            "# TYPE shardcast_queued_bytes gauge\n",
            "# TYPE shardcast_retained_bytes gauge\n",
            "# TYPE shardcast_rooms_evicted_total counter\n",
            "shardcast_rooms_refused_total 0\n",
            "shardcast_shard_retained_bytes{shard=\"1\"} 0\n",
            "# TYPE shardcast_coalesce_window_microseconds gauge\n",
            "shardcast_coalesce_window_microseconds 20000\n",
            "shardcast_shard_coalesce_window_microseconds{shard=\"0\"} 5000\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?}");
        }
    }
}
