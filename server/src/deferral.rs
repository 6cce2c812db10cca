//! Coalescing waits of a shard's writers on one timer, instead of one glommio timer each.
//!
//! Why: on a busy shard a writer that wrote less than the coalescing window ago waits for
//! the window before its next write, so a burst leaves in one `sendmsg` (see
//! [`shardcast_engine::Subscriber::write_due`]). At fan-out scale nearly every write
//! waits (counted at `fanout-1k`: 97% of writer turns), and a glommio timer per wait is a
//! heap-allocated timer, an insert and a removal in the reactor's timer map and a wake-up
//! through it — per subscriber per message. Here waits due in the same slot of
//! [`GRAIN`] share one entry, and one driver task per shard sleeps until the earliest slot,
//! then wakes every writer due by then.
//!
//! Invariants: a waiter is woken at or after the instant it asked for, never before (slots
//! round up), and at most [`GRAIN`] late plus the driver's own scheduling. A waiting
//! future registers its waker once, however often it is polled, so the pending wakers
//! never outnumber the shard's writers; a future dropped while waiting leaves its waker in
//! its slot until the slot fires (at most the coalescing window), which wakes nobody.
//! Memory: one map entry per distinct slot (at most window / GRAIN of them) and one waker
//! per waiting writer.

use futures_lite::future::{or, poll_fn};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Waits whose instants fall in one slot of this length share a wake-up.
pub const GRAIN: Duration = Duration::from_micros(250);

/// A shard's pending coalescing waits, by slot.
pub struct Deferrals {
    /// Slot numbers count [`GRAIN`]s from here.
    epoch: Instant,
    slots: RefCell<BTreeMap<u64, Vec<Waker>>>,
    /// The driver's waker, and whether it must look again (a slot earlier than the one it
    /// sleeps for was added, or the first one to an empty map).
    driver: RefCell<Option<Waker>>,
    kick: Cell<bool>,
}

impl Deferrals {
    pub fn new() -> Rc<Self> {
        Rc::new(Deferrals {
            epoch: Instant::now(),
            slots: RefCell::default(),
            driver: RefCell::default(),
            kick: Cell::new(false),
        })
    }

    /// Completes at or after `at` (at once if it has passed).
    pub fn until(&self, at: Instant) -> Until<'_> {
        Until { deferrals: self, at, registered: false }
    }

    /// The first slot whose start is at or after `at`.
    fn slot_of(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        let grain = GRAIN.as_nanos();
        ns.div_ceil(grain) as u64
    }

    fn start_of(&self, slot: u64) -> Instant {
        self.epoch + Duration::from_nanos(GRAIN.as_nanos() as u64 * slot)
    }

    fn register(&self, at: Instant, waker: &Waker) {
        let slot = self.slot_of(at);
        let mut slots = self.slots.borrow_mut();
        let earliest = slots.first_key_value().is_none_or(|(&first, _)| slot < first);
        slots.entry(slot).or_default().push(waker.clone());
        drop(slots);
        if earliest {
            self.kick.set(true);
            if let Some(w) = self.driver.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Wakes every waiter due by `now`.
    fn fire(&self, now: Instant) {
        let due = {
            let mut slots = self.slots.borrow_mut();
            // Slots whose start is at or before `now`: keys up to floor(now / GRAIN).
            let last = (now.saturating_duration_since(self.epoch).as_nanos() / GRAIN.as_nanos()) as u64;
            let later = slots.split_off(&(last + 1));
            std::mem::replace(&mut *slots, later)
        };
        // Woken outside the borrow: a woken writer may register again.
        due.into_values().flatten().for_each(Waker::wake);
    }

    /// Waiters not yet woken (for tests and the bound).
    pub fn pending(&self) -> usize {
        self.slots.borrow().values().map(Vec::len).sum()
    }

    /// The shard's driver: sleeps until the earliest slot (or until told of an earlier
    /// one), then wakes who is due. Runs until the executor drops it.
    pub async fn run(self: Rc<Self>) {
        loop {
            let first = self.slots.borrow().first_key_value().map(|(&s, _)| s);
            let kicked = poll_fn(|cx| {
                if self.kick.replace(false) {
                    Poll::Ready(())
                } else {
                    *self.driver.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            });
            if let Some(slot) = first {
                let wait = self.start_of(slot).saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    or(glommio::timer::sleep(wait), kicked).await;
                }
            } else {
                kicked.await;
            }
            self.fire(Instant::now());
        }
    }
}

/// See [`Deferrals::until`].
pub struct Until<'a> {
    deferrals: &'a Deferrals,
    at: Instant,
    registered: bool,
}

impl Future for Until<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        // Polled again before its time (its task was woken for something else): the waker
        // it registered still wakes this task.
        if !self.registered {
            self.deferrals.register(self.at, cx.waker());
            self.registered = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default().spawn(f).expect("executor").join().expect("join");
    }

    /// Deferrals with their driver running on this executor.
    fn driven() -> Rc<Deferrals> {
        let d = Deferrals::new();
        glommio::spawn_local(d.clone().run()).detach();
        d
    }

    #[test]
    fn waiters_wake_at_or_after_their_instant_in_order_of_slots() {
        run(|| async {
            let d = driven();
            let woke = Rc::new(RefCell::new(Vec::new()));
            let t0 = Instant::now();
            // Registered latest first: each earlier slot must re-arm the sleeping driver.
            let tasks: Vec<_> = [12u64, 8, 3, 3, 1]
                .into_iter()
                .enumerate()
                .map(|(i, ms)| {
                    let (d, woke) = (d.clone(), woke.clone());
                    glommio::spawn_local(async move {
                        let at = t0 + Duration::from_millis(ms);
                        d.until(at).await;
                        let now = Instant::now();
                        assert!(now >= at, "woken early");
                        woke.borrow_mut().push((ms, i, now - at));
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            let order: Vec<u64> = woke.borrow().iter().map(|w| w.0).collect();
            assert_eq!(order, [1, 3, 3, 8, 12]);
            assert_eq!(d.pending(), 0);
        });
    }

    #[test]
    fn a_past_instant_is_ready_at_once_and_repolls_register_once() {
        run(|| async {
            let d = driven();
            d.until(Instant::now()).await;
            assert_eq!(d.pending(), 0, "nothing registered for a past instant");
            let at = Instant::now() + Duration::from_millis(5);
            let mut fut = Box::pin(d.until(at));
            for _ in 0..10 {
                assert!(futures_lite::future::poll_once(fut.as_mut()).await.is_none());
            }
            assert_eq!(d.pending(), 1, "one waker however often it is polled");
            fut.await;
            assert!(Instant::now() >= at);
            assert_eq!(d.pending(), 0);
        });
    }

    #[test]
    fn a_dropped_waiter_is_cleared_when_its_slot_fires() {
        run(|| async {
            let d = driven();
            let mut fut = Box::pin(d.until(Instant::now() + Duration::from_millis(2)));
            assert!(futures_lite::future::poll_once(fut.as_mut()).await.is_none());
            drop(fut);
            assert_eq!(d.pending(), 1);
            glommio::timer::sleep(Duration::from_millis(10)).await;
            assert_eq!(d.pending(), 0);
        });
    }
}
