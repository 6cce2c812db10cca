//! Per-connection publish rate limit: a token bucket.
//!
//! A bucket allows short bursts (a gateway flushing a batch after a network hiccup) while
//! holding the sustained rate, which a fixed window cannot do without either rejecting honest
//! bursts or admitting twice the rate at window edges. Time is passed in, never read, so the
//! connection loop reuses one clock read per batch and tests use synthetic instants.

use std::time::Instant;

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

    /// Whole tokens available at the last update (for diagnostics and tests).
    pub fn available(&self) -> u32 {
        self.tokens as u32
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
}
