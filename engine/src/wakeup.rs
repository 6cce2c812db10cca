//! A plain thread that wakes every shard's executor once per period.
//!
//! Why: glommio 0.9 can go to sleep in `io_uring_enter` without its next timer armed. Seen
//! here: a shard asleep with its 20 ms housekeeping timer pending — a server that ignored
//! SIGINT for minutes, until a debugger's attach interrupted the sleep and it shut down at
//! once; cross-shard replies and HTTP answers that waited seconds for unrelated I/O; an
//! engine test with every shard asleep. A wake from another thread does not depend on that
//! timer: glommio queues it and writes the sleeping executor's eventfd, whose read is armed on
//! the main ring. So each shard keeps one task parked here, and the thread wakes it every
//! [`PERIOD`]: a missed timer then costs at most one period, whatever its cause.
//!
//! Cost: one wake-up per shard per period (the housekeeping tick already wakes an idle shard
//! as often). The thread ends when every shard's slot is gone.

use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How often every shard is woken.
pub const PERIOD: Duration = Duration::from_millis(20);

/// Where one shard's parked task leaves its waker.
pub(crate) type Slot = Arc<Mutex<Option<Waker>>>;

/// Starts the thread over `slots` (held weakly: it stops when the shards are gone).
pub(crate) fn start(slots: &[Slot]) -> std::io::Result<()> {
    let weak: Vec<Weak<Mutex<Option<Waker>>>> = slots.iter().map(Arc::downgrade).collect();
    std::thread::Builder::new().name("shard-wakeup".into()).spawn(move || loop {
        std::thread::sleep(PERIOD);
        let mut alive = false;
        for slot in weak.iter().filter_map(Weak::upgrade) {
            alive = true;
            let waker = slot.lock().ok().and_then(|mut w| w.take());
            if let Some(w) = waker {
                w.wake();
            }
        }
        if !alive {
            return;
        }
    })?;
    Ok(())
}

/// The task a shard keeps parked in `slot`: every wake makes the executor run a turn (and
/// so notice its timers), and the task parks again. Never completes.
pub(crate) async fn park(slot: Slot) {
    futures_lite::future::poll_fn(|cx| {
        if let Ok(mut w) = slot.lock() {
            *w = Some(cx.waker().clone());
        }
        Poll::<()>::Pending
    })
    .await
}
