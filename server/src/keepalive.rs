//! One keepalive task per shard: token expiry, server pings and idle timeouts, with one
//! timer per shard instead of one per connection (idle connections stay cheap).
//!
//! * Every [`EXPIRY_TICK`] it closes sessions whose token expired (1008 "token expired"),
//!   O(log n) each from the expiry index.
//! * Pings are spread over the ping interval: a [`PingRound`] takes the shard's connections
//!   alive at its start (the engine's subscribers, weakly: it keeps none alive) and walks
//!   them in equal slices, one every [`PING_TICK`]. Pinging every session at once woke
//!   thousands of writers in one burst (~30 ms of a shard's time at 2,500 connections, every
//!   20 s) and every delivery queued behind it; that burst was the light-load tail that grew
//!   with uptime (issue 8).
//! * A session that sent something within the ping interval is alive by definition: it gets
//!   no ping. A session silent for `idle_timeout` is closed (1001 "idle timeout").
//!
//! Invariant: every session alive at a round's start is visited once in that round, so a
//! quiet client is pinged at least once per two ping intervals and an idle one is closed
//! at most `idle_timeout + 2 × ping_interval` after its last input.

use futures_lite::future::or;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::metrics::RejectReason;
use crate::state::ShardCtx;

/// How often the token-expiry index is checked.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// How often the ping round takes its next slice.
const PING_TICK: Duration = Duration::from_millis(100);

/// Runs until the shard stops.
pub async fn run(ctx: Rc<ShardCtx>) {
    let cfg = &ctx.shared.config;
    let ping = shardcast_engine::frame::ping_frame(b"");
    let tick = PING_TICK.min(cfg.ping_interval);
    let mut round = PingRound::new(Vec::new(), Instant::now(), cfg.ping_interval, tick);
    let mut last_expiry = Instant::now();
    loop {
        let stopped = or(
            async {
                // On the engine's tick grid: with the default 100 ms this wakes the shard
                // at the same instants as its 20 ms housekeeping, not between them.
                shardcast_engine::ticks::sleep_to_next(tick).await;
                false
            },
            async {
                ctx.shard.stopping().await;
                true
            },
        )
        .await;
        if stopped {
            return;
        }
        let now = Instant::now();
        if now.duration_since(last_expiry) >= EXPIRY_TICK {
            last_expiry = now;
            close_expired(&ctx, crate::auth::now_unix());
        }
        if round.is_over(now) {
            // Weak: a session that ends during the round frees its subscriber (and any
            // frames still queued for it) at once, not when the round is over.
            round = PingRound::new(ctx.shard.subscribers(), now, cfg.ping_interval, tick);
        }
        for sub in round.next_slice().iter().filter_map(Weak::upgrade) {
            let quiet = sub.quiet();
            if sub.is_closed() || quiet < cfg.ping_interval {
                continue;
            }
            if quiet >= cfg.idle_timeout {
                sub.close(1001, "idle timeout", false);
            } else {
                sub.push_ctrl(ping.clone());
            }
        }
    }
}

/// The sessions of one ping interval, handed out in equal slices, one per tick.
pub struct PingRound<T> {
    items: Vec<T>,
    pos: usize,
    per_tick: usize,
    ends: Instant,
}

impl<T> PingRound<T> {
    /// A round over `items` starting at `now`, lasting `interval`, sliced every `tick`.
    pub fn new(items: Vec<T>, now: Instant, interval: Duration, tick: Duration) -> Self {
        let ticks = (interval.as_nanos() / tick.as_nanos().max(1)).max(1) as usize;
        let per_tick = items.len().div_ceil(ticks).max(1);
        PingRound { items, pos: 0, per_tick, ends: now + interval }
    }

    /// The next slice (empty once every item was handed out).
    pub fn next_slice(&mut self) -> &[T] {
        let start = self.pos;
        self.pos = (start + self.per_tick).min(self.items.len());
        &self.items[start..self.pos]
    }

    /// True once the interval has passed and every item was handed out: time for a new
    /// round (a round that fell behind finishes first).
    pub fn is_over(&self, now: Instant) -> bool {
        now >= self.ends && self.pos >= self.items.len()
    }
}

/// Closes every session whose token's `exp` is at or before `now` (unix seconds).
fn close_expired(ctx: &ShardCtx, now: u64) {
    let expired = |e: &mut std::collections::BTreeSet<(u64, u64)>| {
        e.first().is_some_and(|&(exp, _)| exp <= now).then(|| e.pop_first()).flatten()
    };
    while let Some((_, id)) = expired(&mut ctx.expiries.borrow_mut()) {
        if let Some(sub) = ctx.shard.subscriber(id) {
            ctx.reject(RejectReason::TokenExpired);
            sub.close(1008, "token expired", false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_hands_out_every_item_once_in_equal_slices() {
        let t0 = Instant::now();
        let mut r =
            PingRound::new((0..1000).collect(), t0, Duration::from_secs(20), Duration::from_millis(100));
        let mut seen = Vec::new();
        let mut slices = 0;
        loop {
            let s = r.next_slice();
            if s.is_empty() {
                break;
            }
            assert!(s.len() <= 5, "1000 items over 200 ticks: at most 5 a tick");
            seen.extend_from_slice(s);
            slices += 1;
        }
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(slices, 200);
        assert!(!r.is_over(t0 + Duration::from_secs(19)), "not before the interval ends");
        assert!(r.is_over(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn a_round_behind_schedule_finishes_before_the_next() {
        let t0 = Instant::now();
        let mut r = PingRound::new(vec![1, 2, 3], t0, Duration::from_millis(100), Duration::from_millis(100));
        assert!(!r.is_over(t0 + Duration::from_secs(1)), "items left: not over");
        assert_eq!(r.next_slice(), &[1, 2, 3]);
        assert!(r.is_over(t0 + Duration::from_secs(1)));
        assert!(PingRound::<u8>::new(Vec::new(), t0, Duration::from_secs(1), Duration::from_millis(100))
            .is_over(t0 + Duration::from_secs(1)));
    }
}
