//! Write batching on one shard: the cork (queue instead of writing through while a burst is
//! at hand) and the adaptive coalescing window (space writes to a connection while the
//! shard is busy).
//!
//! Why: a quiet shard should write every frame at once, for latency; a busy one should pay
//! the ~6 µs per-write kernel cost once per several frames, or it falls behind. Invariant:
//! the window is zero whenever the shard was below 25% busy at the last sample, and never
//! more than 4 × the configured base.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Shard;

/// The coalescing window after a sample where the shard was `busy` (fraction of a core):
/// zero below 25%; at least `base` from 50%; while saturated (≥ 90%) it doubles up to
/// 4 × `base`, since a saturated shard is already late and bigger batches are how it
/// catches up. A grown window shrinks (halving towards `base`) only below 50%: shrinking as
/// soon as the bigger window has relieved the shard would saturate it again, and that
/// oscillation is what showed as stalls of hundreds of milliseconds.
pub(crate) fn next_window(current: Duration, base: Duration, busy: f64) -> Duration {
    if base.is_zero() || busy < 0.25 {
        Duration::ZERO
    } else if busy >= 0.9 {
        (current.max(base) * 2).min(base * 4)
    } else if busy >= 0.5 {
        current.max(base)
    } else if current > base {
        (current / 2).max(base)
    } else {
        current
    }
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
    /// the last sample) and closes it when it is quiet again (< 25%); see [`next_window`].
    /// A quiet shard writes every frame at once, for latency; a busy one spends its CPU on
    /// frames, not on per-call kernel overhead, which also keeps it from falling behind.
    pub(crate) fn adapt_coalescing(&self) {
        let now = Instant::now();
        let cpu = thread_cpu_time();
        if let Some((t0, c0)) = self.cpu_sample.replace(Some((now, cpu))) {
            let wall = now.saturating_duration_since(t0).as_secs_f64();
            if wall > 0.0 {
                let busy = cpu.saturating_sub(c0).as_secs_f64() / wall;
                let window = next_window(self.coalesce.get(), self.coalesce_max, busy);
                self.coalesce.set(window);
                let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
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
    use super::next_window;
    use std::time::Duration;

    #[test]
    fn the_window_follows_load_without_flapping() {
        let base = Duration::from_millis(5);
        let z = Duration::ZERO;
        assert_eq!(next_window(z, base, 0.1), z);
        assert_eq!(next_window(z, base, 0.4), z, "between thresholds: stays closed");
        assert_eq!(next_window(z, base, 0.6), base);
        assert_eq!(next_window(base, base, 0.4), base, "between thresholds: stays open");
        let mut w = base;
        for _ in 0..5 {
            w = next_window(w, base, 0.95);
        }
        assert_eq!(w, base * 4, "saturated: grows, capped");
        assert_eq!(next_window(w, base, 0.8), w);
        assert_eq!(next_window(w, base, 0.6), w, "relieved but busy: keeps the grown window");
        assert_eq!(next_window(w, base, 0.4), base * 2, "quiet: shrinks towards base");
        assert_eq!(next_window(w, base, 0.2), z);
        assert_eq!(next_window(w, z, 0.99), z, "disabled");
    }
}
