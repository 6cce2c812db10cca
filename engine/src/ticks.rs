//! One grid of tick instants for the whole process, so a shard's periodic tasks wake it
//! together instead of one after another.
//!
//! Why: at light load a shard sleeps between messages, and every periodic timer that comes
//! due while it sleeps costs a wake-up of its own (a context switch in and out, a reactor
//! turn: tens of µs on this host class). The engine's housekeeping ticks every 20 ms and the
//! server's keepalive every 100 ms; each used to sleep its period after its own work, so
//! their deadlines drifted apart and an idle shard woke for each. Ticks taken from one grid
//! (multiples of the period since a process-wide origin) land on the same instants whenever
//! one period divides the other, and one wake runs both.
//!
//! Invariant: [`next_after`] returns a grid point strictly after `now`, so a task that sleeps
//! until it and then asks again never runs twice for one tick, and one that overran a tick
//! skips it instead of running late ticks back to back.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process-wide origin of the grid (the first call's instant).
pub fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// An instant in 8 bytes instead of `Instant`'s 16: nanoseconds since [`origin`]
/// (centuries of range; instants before it read as it). For per-connection state, where
/// a connection's memory is the server's scale: each subscriber keeps two, each session one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(u64);

impl Stamp {
    /// The stamp of `t`.
    pub fn of(t: Instant) -> Self {
        Stamp(u64::try_from(t.saturating_duration_since(origin()).as_nanos()).unwrap_or(u64::MAX))
    }

    /// The stamp of now.
    pub fn now() -> Self {
        Self::of(Instant::now())
    }

    /// The instant this stamp stands for.
    pub fn instant(self) -> Instant {
        origin() + Duration::from_nanos(self.0)
    }

    /// How long after `earlier` this is (zero if not after): plain integer arithmetic, so
    /// fan-out converts its clock reading once per delivery, not once per comparison.
    pub fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// The first multiple of `period` after the origin that is strictly later than `now`.
/// A zero period is treated as 1 ns.
pub fn next_after(now: Instant, period: Duration) -> Instant {
    let o = origin();
    let p = period.as_nanos().max(1);
    let since = now.saturating_duration_since(o).as_nanos();
    let k = since / p + 1;
    let nanos = k.saturating_mul(p);
    o + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Sleeps until the next grid point of `period` (glommio timer; call on a shard).
pub async fn sleep_to_next(period: Duration) {
    let now = Instant::now();
    glommio::timer::sleep(next_after(now, period).saturating_duration_since(now)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_stands_for_its_instant_to_the_nanosecond() {
        let o = origin();
        let t = o + Duration::from_nanos(1_234_567_891);
        assert_eq!(Stamp::of(t).instant(), t);
        assert_eq!(Stamp::of(t).since(Stamp::of(o)), Duration::from_nanos(1_234_567_891));
        assert_eq!(Stamp::of(o).since(Stamp::of(t)), Duration::ZERO, "not after: zero");
    }

    #[test]
    fn ticks_are_grid_points_strictly_after_now() {
        let o = origin();
        let p = Duration::from_millis(20);
        assert_eq!(next_after(o, p), o + p);
        assert_eq!(next_after(o + Duration::from_millis(19), p), o + p);
        assert_eq!(next_after(o + p, p), o + 2 * p, "a tick at its own instant moves on");
        assert_eq!(next_after(o + Duration::from_millis(95), p), o + Duration::from_millis(100));
    }

    #[test]
    fn a_longer_period_that_the_shorter_divides_lands_on_the_same_instants() {
        let o = origin();
        for ms in [0u64, 7, 20, 99, 100, 101, 250] {
            let now = o + Duration::from_millis(ms);
            let slow = next_after(now, Duration::from_millis(100));
            let mut fast = next_after(now, Duration::from_millis(20));
            while fast < slow {
                fast = next_after(fast, Duration::from_millis(20));
            }
            assert_eq!(fast, slow, "from {ms} ms");
        }
    }

    #[test]
    fn a_zero_period_still_moves_forward() {
        let now = origin() + Duration::from_millis(3);
        assert!(next_after(now, Duration::ZERO) > now);
    }
}
