//! A plain thread that wakes a shard's executor when its housekeeping stopped ticking.
//!
//! Why: glommio 0.9 can go to sleep in `io_uring_enter` without its next timer armed. Seen
//! here: a shard asleep with its 20 ms housekeeping timer pending — a server that ignored
//! SIGINT for minutes, until a debugger's attach interrupted the sleep and it shut down at
//! once; cross-shard replies and HTTP answers that waited seconds for unrelated I/O; an
//! engine test with every shard asleep. A wake from another thread does not depend on that
//! timer: glommio queues it and writes the sleeping executor's eventfd, whose read is armed on
//! the main ring. So each shard keeps one task parked here, and the thread looks at every
//! shard once per [`PERIOD`].
//!
//! It wakes only a shard whose housekeeping did not [`Slot::beat`] since the last look: a
//! shard whose timers fire needs no net, and waking it anyway cost a healthy idle shard 50
//! extra wake-ups a second (each an eventfd write, a completion that interrupts the shard's
//! sleep, a reactor turn and a re-armed read), measured as most of its idle CPU. The
//! housekeeping ticks every 20 ms, so a healthy shard beats at least twice per period; a
//! shard asleep past its timers is woken within two periods (100 ms), whatever the cause.
//! The thread ends when every shard's slot is gone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How often the thread looks at the shards.
pub const PERIOD: Duration = Duration::from_millis(50);

/// Where one shard's parked task leaves its waker, and its housekeeping's heartbeat.
#[derive(Default)]
pub(crate) struct Slot {
    waker: Mutex<Option<Waker>>,
    beats: AtomicU32,
}

impl Slot {
    /// Called by the shard's housekeeping on every tick: the shard's timers are firing.
    pub(crate) fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts the thread over `slots` (held weakly: it stops when the shards are gone).
pub(crate) fn start(slots: &[Arc<Slot>]) -> std::io::Result<()> {
    let weak: Vec<Weak<Slot>> = slots.iter().map(Arc::downgrade).collect();
    let mut seen: Vec<Option<u32>> = vec![None; weak.len()];
    std::thread::Builder::new().name("shard-wakeup".into()).spawn(move || loop {
        std::thread::sleep(PERIOD);
        let mut alive = false;
        for (slot, seen) in weak.iter().zip(seen.iter_mut()) {
            let Some(slot) = slot.upgrade() else { continue };
            alive = true;
            let beats = slot.beats.load(Ordering::Relaxed);
            if seen.replace(beats) == Some(beats) {
                wake(&slot);
            }
        }
        if !alive {
            return;
        }
    })?;
    Ok(())
}

fn wake(slot: &Slot) {
    let waker = slot.waker.lock().ok().and_then(|mut w| w.take());
    if let Some(w) = waker {
        w.wake();
    }
}

/// The task a shard keeps parked in `slot`: every wake makes the executor run a turn (and
/// so notice its timers), and the task parks again. Never completes.
pub(crate) async fn park(slot: Arc<Slot>) {
    futures_lite::future::poll_fn(|cx| {
        if let Ok(mut w) = slot.waker.lock() {
            *w = Some(cx.waker().clone());
        }
        Poll::<()>::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Instant;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn only_a_shard_whose_housekeeping_stopped_is_woken() {
        let (silent, beating) = (Arc::new(Slot::default()), Arc::new(Slot::default()));
        let (cs, cb) = (Arc::new(Count(AtomicUsize::new(0))), Arc::new(Count(AtomicUsize::new(0))));
        start(&[silent.clone(), beating.clone()]).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < PERIOD * 12 {
            // The parked tasks: each re-parks as soon as it was woken.
            for (slot, count) in [(&silent, &cs), (&beating, &cb)] {
                let mut w = slot.waker.lock().unwrap();
                if w.is_none() {
                    *w = Some(Waker::from(count.clone()));
                }
            }
            beating.beat(); // housekeeping ticking far more often than the thread looks
            std::thread::sleep(Duration::from_millis(5));
        }
        let (s, b) = (cs.0.load(Ordering::Relaxed), cb.0.load(Ordering::Relaxed));
        assert!(s >= 4, "the silent shard was woken {s} times in 12 periods");
        assert!(b * 2 <= s, "the beating shard was woken {b} times, the silent one {s}");
    }
}
