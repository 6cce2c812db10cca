//! Per-connection publish rate limit: a token bucket.
//!
//! A bucket allows short bursts (a gateway flushing a batch after a network hiccup) while
//! holding the sustained rate, which a fixed window cannot do without either rejecting honest
//! bursts or admitting twice the rate at window edges. Time is passed in, never read, so the
//! connection loop reuses one clock read per batch and tests use synthetic instants.
//!
//! [`KeyedLimiter`] keeps one bucket per client (HTTP publish) in a map of bounded size.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens, refilled continuously at `rate` tokens per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. `rate_per_s` and `burst` are clamped to at least 1.
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket { rate: f64::from(rate_per_s.max(1)), burst, tokens: burst, last: None }
    }

    /// Takes one token if available. Instants earlier than the last one add nothing.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        if !matches!(self.last, Some(l) if now <= l) {
            self.last = Some(now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now`: forgetting it then loses nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = self.last.map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Whole tokens available at the last update (for diagnostics and tests).
    pub fn available(&self) -> u32 {
        self.tokens as u32
    }
}

/// Token buckets per client, at most `capacity` of them.
///
/// Clients are keyed by a keyed hash of what identifies them (API key, token or address),
/// so a long key costs no memory and collisions cannot be aimed. When the map is full, a
/// sweep (at most once a second, so a flood of new keys cannot make every request O(n))
/// forgets buckets that have refilled — they would be recreated full, nothing is lost; if
/// none has, one arbitrary bucket goes, which at worst lets that client burst again.
#[derive(Debug)]
pub struct KeyedLimiter {
    rate: u32,
    burst: u32,
    capacity: usize,
    buckets: HashMap<u64, TokenBucket>,
    hasher: RandomState,
    last_sweep: Option<Instant>,
}

impl KeyedLimiter {
    pub fn new(rate_per_s: u32, burst: u32, capacity: usize) -> Self {
        KeyedLimiter {
            rate: rate_per_s,
            burst,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            hasher: RandomState::new(),
            last_sweep: None,
        }
    }

    /// Takes one token from `client`'s bucket.
    pub fn try_take(&mut self, client: &[u8], now: Instant) -> bool {
        let key = self.hasher.hash_one(client);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.make_room(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.entry(key).or_insert_with(|| TokenBucket::new(rate, burst)).try_take(now)
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        if self.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
            self.last_sweep = Some(now);
            self.buckets.retain(|_, b| !b.is_full(now));
        }
        if self.buckets.len() >= self.capacity {
            if let Some(&k) = self.buckets.keys().next() {
                self.buckets.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn take_n(b: &mut TokenBucket, now: Instant, n: usize) -> usize {
        (0..n).filter(|_| b.try_take(now)).count()
    }

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 10);
        assert_eq!(take_n(&mut b, t0, 20), 10);
        assert!(!b.try_take(t0));
        // 100/s: one token every 10 ms.
        assert!(!b.try_take(t0 + Duration::from_millis(5)));
        assert!(b.try_take(t0 + Duration::from_millis(10)));
        assert_eq!(take_n(&mut b, t0 + Duration::from_millis(60), 10), 5);
    }

    #[test]
    fn refill_caps_at_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 5);
        assert_eq!(take_n(&mut b, t0, 5), 5);
        assert_eq!(take_n(&mut b, t0 + Duration::from_secs(3600), 100), 5);
    }

    #[test]
    fn sustained_rate_over_a_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2000, 2000);
        let mut ok = 0;
        for i in 0..=10_000u64 {
            // 10k attempts spread over one second: burst + ~1 s of refill.
            ok += b.try_take(t0 + Duration::from_micros(i * 100)) as u32;
        }
        assert!((3990..=4001).contains(&ok), "{ok}");
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1, 1);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 - Duration::from_secs(5)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        assert!(b.try_take(t0 + Duration::from_millis(1000)));
        assert_eq!(b.available(), 0);
    }

    #[test]
    fn keyed_limiter_limits_each_client_and_stays_bounded() {
        let t0 = Instant::now();
        let mut l = KeyedLimiter::new(10, 3, 100);
        assert_eq!((0..5).filter(|_| l.try_take(b"alice", t0)).count(), 3);
        assert_eq!((0..5).filter(|_| l.try_take(b"bob", t0)).count(), 3, "own bucket");
        for i in 0..10_000u32 {
            l.try_take(&i.to_le_bytes(), t0);
        }
        assert!(l.len() <= 100);
        // A second later the refilled buckets are forgotten first.
        let t1 = t0 + Duration::from_secs(2);
        l.try_take(b"carol", t1);
        assert!(l.len() <= 100);
    }
}
