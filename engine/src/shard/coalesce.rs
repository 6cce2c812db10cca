//! Write batching on one shard: the cork (queue instead of writing through while a burst is
//! at hand) and the adaptive coalescing window (space writes to a connection while the
//! shard is busy).
//!
//! Why: a quiet shard should write every frame at once, for latency; a busy one should pay
//! the ~6 µs per-write kernel cost once per several frames, or it falls behind. Invariant:
//! the window is zero whenever the shard was below 25% busy at the last ten samples (or
//! below 50% since it was last zero), and never more than 4 × the configured base.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Shard;

/// Samples in a row below 25% busy before an open window closes: one second at the 100 ms
/// sampling period. A window that batches a hot room's frames can itself be what keeps the
/// shard under 25% (hot-100: < 0.25 of a core with the window open, > 0.5 without), and
/// closing it on the first quiet sample made the window flap every sample between closed,
/// 5 and 10 ms, at twice the CPU per delivery of a window left open.
pub(crate) const CLOSE_AFTER: u8 = 10;

/// The coalescing window and how many samples in a row found the shard quiet (< 25% busy)
/// while it was open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) len: Duration,
    pub(crate) quiet: u8,
}

/// The coalescing window after a sample where the shard was `busy` (fraction of a core):
/// closed while quiet (< 25%) for [`CLOSE_AFTER`] samples in a row; at least `base` from
/// 50%; while saturated (≥ 90%) it doubles up to 4 × `base`, since a saturated shard is
/// already late and bigger batches are how it catches up. A grown window shrinks (halving
/// towards `base`) only below 50%: shrinking as soon as the bigger window has relieved the
/// shard would saturate it again, and that oscillation is what showed as stalls of hundreds
/// of milliseconds. Only subscribers that received three messages within the window are
/// ever held by it, so an open window costs a light room nothing.
pub(crate) fn next_window(cur: Window, base: Duration, busy: f64) -> Window {
    let quiet = if busy < 0.25 { cur.quiet.saturating_add(1) } else { 0 };
    if base.is_zero() || (cur.len.is_zero() && busy < 0.5) || quiet >= CLOSE_AFTER {
        return Window::default();
    }
    let len = if busy >= 0.9 {
        (cur.len.max(base) * 2).min(base * 4)
    } else if busy >= 0.5 {
        cur.len.max(base)
    } else {
        (cur.len / 2).max(base)
    };
    Window { len, quiet }
}

/// CPU time consumed by the calling thread (user + system).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer for a clock the kernel always provides.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Undoes one [`Shard::cork`] when dropped.
pub struct Cork(Rc<Shard>);

impl Drop for Cork {
    fn drop(&mut self) {
        let left = self.0.cork.get() - 1;
        self.0.cork.set(left);
        if left == 0 {
            self.0.uncorked();
        }
    }
}

impl Shard {
    /// The coalescing window writers should respect now (zero when the shard is not busy).
    pub fn coalesce_window(&self) -> Duration {
        self.coalesce.get()
    }

    /// Opens the coalescing window while this shard's thread is busy (≥ 50% of a core over
    /// the last sample) and closes it when it is quiet again (< 25% for a second); see
    /// [`next_window`].
    /// A quiet shard writes every frame at once, for latency; a busy one spends its CPU on
    /// frames, not on per-call kernel overhead, which also keeps it from falling behind.
    pub(crate) fn adapt_coalescing(&self) {
        let now = Instant::now();
        let cpu = thread_cpu_time();
        if let Some((t0, c0)) = self.cpu_sample.replace(Some((now, cpu))) {
            let wall = now.saturating_duration_since(t0).as_secs_f64();
            if wall > 0.0 {
                let busy = cpu.saturating_sub(c0).as_secs_f64() / wall;
                let cur = Window { len: self.coalesce.get(), quiet: self.coalesce_quiet.get() };
                let next = next_window(cur, self.coalesce_max, busy);
                self.coalesce.set(next.len);
                self.coalesce_quiet.set(next.quiet);
                let us = u64::try_from(next.len.as_micros()).unwrap_or(u64::MAX);
                self.stats.coalesce_window_us.store(us, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Batches fan-out until the guard drops: messages are queued, not written through.
    /// Whoever holds a burst (several inbound messages or cross-shard events at hand) corks
    /// around it; the first message of a burst may go through uncorked.
    ///
    /// The queues are written by the shard's flusher ([`Shard::flush_loop`]), woken when the
    /// last cork goes: it runs behind every task already runnable, so other sessions'
    /// messages join the queues first (the batching writer tasks used to get by running
    /// there), and then writes each listed queue inline, in one call — one task wake-up
    /// per cork instead of one per subscriber. A writer task is woken only for what a
    /// socket did not take.
    pub fn cork(self: &Rc<Self>) -> Cork {
        self.cork.set(self.cork.get() + 1);
        Cork(self.clone())
    }

    /// The last cork went: the flusher has work (or, without one, the writers do).
    fn uncorked(&self) {
        if self.corked.borrow().is_empty() {
            return;
        }
        if !self.flusher_alive.get() {
            let corked = std::mem::take(&mut *self.corked.borrow_mut());
            corked.iter().for_each(|s| s.wake());
        } else if let Some(w) = self.flusher.borrow_mut().take() {
            w.wake();
        }
    }

    /// The shard's flusher: writes the queues corked fan-out listed, each in one call.
    /// Runs until the executor drops it; spawn it into the input queue, beside the
    /// sessions (see [`Shard::cork`]).
    pub async fn flush_loop(self: Rc<Self>) {
        self.flusher_alive.set(true);
        let mut batch = Vec::new();
        loop {
            futures_lite::future::poll_fn(|cx| {
                // Work only once no cork is held: a cork taken since would list more.
                if self.cork.get() == 0 && !self.corked.borrow().is_empty() {
                    std::task::Poll::Ready(())
                } else {
                    *self.flusher.borrow_mut() = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            })
            .await;
            std::mem::swap(&mut batch, &mut *self.corked.borrow_mut());
            let (window, now) = (self.coalesce.get(), Instant::now());
            for s in batch.drain(..) {
                s.flush_queue(window, now);
            }
            glommio::yield_if_needed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{next_window, Window, CLOSE_AFTER};
    use std::time::Duration;

    fn w(len: Duration) -> Window {
        Window { len, quiet: 0 }
    }

    #[test]
    fn the_window_follows_load_without_flapping() {
        let base = Duration::from_millis(5);
        let z = Duration::ZERO;
        assert_eq!(next_window(w(z), base, 0.1).len, z);
        assert_eq!(next_window(w(z), base, 0.4).len, z, "between thresholds: stays closed");
        assert_eq!(next_window(w(z), base, 0.6).len, base);
        assert_eq!(next_window(w(base), base, 0.4).len, base, "between thresholds: stays open");
        let mut g = w(base);
        for _ in 0..5 {
            g = next_window(g, base, 0.95);
        }
        assert_eq!(g.len, base * 4, "saturated: grows, capped");
        assert_eq!(next_window(g, base, 0.8), g);
        assert_eq!(next_window(g, base, 0.6), g, "relieved but busy: keeps the grown window");
        assert_eq!(next_window(g, base, 0.4).len, base * 2, "quiet: shrinks towards base");
        assert_eq!(next_window(g, z, 0.99).len, z, "disabled");
    }

    #[test]
    fn an_open_window_closes_only_after_a_second_of_quiet() {
        let base = Duration::from_millis(5);
        let mut g = w(base * 2);
        for i in 1..CLOSE_AFTER {
            g = next_window(g, base, 0.2);
            assert_eq!(g.len, base, "quiet sample {i}: open, shrunk to base");
            assert_eq!(g.quiet, i);
        }
        assert_eq!(next_window(g, base, 0.2), Window::default(), "closed after {CLOSE_AFTER}");
        // One busier sample (the window's own relief ending) restarts the count.
        let g = next_window(next_window(w(base), base, 0.2), base, 0.3);
        assert_eq!(g, w(base));
    }

    #[test]
    fn a_window_that_keeps_the_shard_quiet_stays_open() {
        // hot-100 as measured: < 25% busy with the window open, > 50% without.
        let base = Duration::from_millis(5);
        let mut g = w(Duration::ZERO);
        let mut open = 0;
        for _ in 0..100 {
            let busy = if g.len.is_zero() { 0.55 } else { 0.2 };
            g = next_window(g, base, busy);
            open += usize::from(!g.len.is_zero());
        }
        assert!(open >= 90, "open in {open} of 100 samples");
    }
}
