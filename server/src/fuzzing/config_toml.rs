//! `config_toml`: the `--config` file, as [`Config::from_toml_str`] loads it.
//!
//! Input: the file's bytes (invalid UTF-8 replaced, as a reader would have to). No panic,
//! the same text always gives the same result, and an accepted config satisfies every rule
//! `validate` promises — checked here independently, from the resolved values, so that a
//! rule lost in a refactor (the config module is being split) shows up as a failure.

use std::time::Duration;

use crate::config::{Config, Policy};

pub fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = Config::from_toml_str(&text);
    match &parsed {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(c) => check(c),
    }
    let again = Config::from_toml_str(&text);
    assert_eq!(parsed.as_ref().ok(), again.as_ref().ok(), "the same text loaded twice differs");
}

fn check(c: &Config) {
    assert!((1..=256).contains(&c.shards), "shards {}", c.shards);
    assert!((128..=16 << 20).contains(&c.max_frame), "max_frame {}", c.max_frame);
    assert!(c.outbox_bytes >= c.max_frame && c.outbox_bytes <= 1 << 30, "outbox_bytes {}", c.outbox_bytes);
    assert!((1..=1_000_000).contains(&c.max_rooms_per_conn));
    assert!(c.max_connections >= 1 && c.publish_rate >= 1 && c.publish_burst >= 1);
    assert!(!c.handshake_timeout.is_zero() && !c.ping_interval.is_zero());
    assert!(c.idle_timeout > c.ping_interval, "idle {:?} <= ping {:?}", c.idle_timeout, c.ping_interval);
    assert!(c.coalesce <= Duration::from_secs(1));
    assert_ne!(c.policy, Policy::Conflate, "conflate needs a key; the default policy has none");
    for secret in [&c.jwt_secret, &c.api_key].into_iter().flatten() {
        assert!(secret.len() >= 16, "a secret of {} bytes", secret.len());
    }
    for o in &c.origins {
        assert!(
            o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/')),
            "{o}"
        );
    }
    assert!(c.listen.ip().is_loopback() || c.jwt_secret.is_some() || c.allow_anonymous);
    assert!(c.history_size <= 1_000_000 && c.history_ttl.is_none_or(|t| !t.is_zero()));
    let names = c.namespaces.keys().map(String::as_str);
    for name in names.chain(["", "fleet", "no-such-namespace"]) {
        let s = c.namespace(name);
        assert!(s.history_size <= 1_000_000, "{name}: history_size {}", s.history_size);
        assert!(s.history_ttl.is_none_or(|t| !t.is_zero()), "{name}: zero ttl");
        assert!(s.policy != Policy::Conflate || s.key.as_deref().is_some_and(|k| !k.is_empty()), "{name}");
        if c.namespaces.contains_key(name) {
            let ok = |b: u8| b.is_ascii_alphanumeric() || b"_-./@".contains(&b);
            assert!(!name.is_empty() && name.bytes().all(ok), "namespace name {name:?}");
        }
    }
}
