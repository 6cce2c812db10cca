//! Start-up validation: every rule names the setting it checks, so a bad value fails loudly
//! before a port is bound and the hot path never re-checks limits.

use std::time::Duration;

use super::{invalid, Config, ConfigError, Policy};

impl Config {
    // One rule per line reads as a table; rustfmt would spread it over a hundred lines.
    #[rustfmt::skip]
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let secret_ok = |s: &Option<String>| !matches!(s, Some(s) if s.len() < 16);
        let origin_ok = |o: &String| o == "*"
            || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/'));
        let rules: [(bool, &str, &str); 22] = [
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
            (self.write_timeout >= Duration::from_secs(1), "write_timeout", "must be at least 1s"),
            (!self.request_timeout.is_zero(), "request_timeout", "must be positive"),
            (self.max_http_connections >= 1, "max_http_connections", "must be at least 1"),
            (self.http_publish_rate >= 1 && self.http_publish_burst >= 1, "http_publish_rate", "rate and burst must be at least 1"),
            (self.max_rooms >= 1, "max_rooms", "must be at least 1"),
            (self.retained_bytes >= self.max_frame, "retained_bytes", "must be at least max_frame"),
            (!self.nats_timeout.is_zero(), "nats_timeout", "must be positive"),
            (self.nats.as_deref().is_none_or(|u| !u.trim().is_empty()), "nats", "must be a URL such as nats://127.0.0.1:4222"),
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
        if self.room_ttl.is_some_and(|t| t.is_zero()) {
            return Err(invalid("room_ttl", "must be positive (use \"off\" to disable)"));
        }
        for name in self.namespaces.keys() {
            let field = format!("namespaces.{name}");
            let s = self.namespace(name);
            let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./@".contains(&b));
            let rules = [
                (name_ok, "name must be 1+ of A-Z a-z 0-9 _ - . / @"),
                (s.policy != Policy::Conflate || s.key.is_some(), "policy conflate requires key"),
                (!matches!(&s.key, Some(k) if k.is_empty()), "key must not be empty"),
                (s.liveness_ttl.is_none() || s.key.is_some(), "liveness_ttl requires key"),
                (s.liveness_ttl.is_none_or(|t| t >= Duration::from_secs(1)), "liveness_ttl must be at least 1s"),
                (
                    s.presence_window >= Duration::from_millis(50) && s.presence_window <= Duration::from_secs(60),
                    "presence_window must be between 50ms and 60s",
                ),
                (s.presence_members <= 100_000, "presence_members must be at most 100000"),
                (s.geo.as_ref().is_none_or(|g| !g.lat.is_empty() && !g.lon.is_empty() && g.lat != g.lon), "geo needs two different non-empty field names"),
                (s.status.len() <= 16 && s.status.iter().all(|f| !f.is_empty()), "status is at most 16 non-empty field names"),
            ];
            if let Some((_, msg)) = rules.iter().find(|r| !r.0) {
                return Err(invalid(field, *msg));
            }
            validate_history(&field, s.history_size, s.history_ttl)?;
            if s.room_ttl.is_some_and(|t| t.is_zero()) {
                return Err(invalid(field, "room_ttl must be positive (use \"off\" to disable)"));
            }
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
