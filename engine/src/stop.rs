//! A one-shot "stop" flag that async tasks on a shard can await.
//!
//! The process-wide flag is an `AtomicBool` (set from a signal handler thread or a test);
//! each shard turns it into a local wake-up with a cheap periodic check, so no executor
//! needs a foreign-thread waker. Waiting is O(1): each waiting future owns one slot, freed
//! when it is dropped, so thousands of waiters cost nothing per poll.

use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Shared across threads: set once to ask every shard to stop.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the flag.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Debug, Default)]
struct Inner {
    fired: bool,
    next: u64,
    waiters: FxHashMap<u64, Waker>,
}

/// Shard-local view: tasks await [`LocalStop::wait`]; the shard calls `fire` once.
#[derive(Debug, Clone, Default)]
pub struct LocalStop(Rc<RefCell<Inner>>);

impl LocalStop {
    /// Wakes every waiting task; later waits complete at once.
    pub fn fire(&self) {
        let wakers: Vec<Waker> = {
            let mut s = self.0.borrow_mut();
            s.fired = true;
            s.waiters.drain().map(|(_, w)| w).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }
    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        self.0.borrow().fired
    }
    /// Completes once fired.
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        StopWait { stop: self.clone(), slot: None }
    }
    /// Tasks currently waiting (for tests).
    pub fn waiting(&self) -> usize {
        self.0.borrow().waiters.len()
    }
}

struct StopWait {
    stop: LocalStop,
    slot: Option<u64>,
}

impl Future for StopWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.stop.0.borrow_mut();
        if s.fired {
            return Poll::Ready(());
        }
        match this.slot {
            Some(id) => {
                if let Some(w) = s.waiters.get_mut(&id) {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                }
            }
            None => {
                let id = s.next;
                s.next += 1;
                s.waiters.insert(id, cx.waker().clone());
                this.slot = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for StopWait {
    fn drop(&mut self) {
        if let Some(id) = self.slot {
            self.stop.0.borrow_mut().waiters.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn waiters_are_woken_once_and_dropped_waiters_leave_no_trace() {
        let stop = LocalStop::default();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut a = Box::pin(stop.wait());
        for _ in 0..3 {
            assert!(a.as_mut().poll(&mut cx).is_pending());
        }
        {
            let mut b = Box::pin(stop.wait());
            assert!(b.as_mut().poll(&mut cx).is_pending());
            assert_eq!(stop.waiting(), 2);
        }
        assert_eq!(stop.waiting(), 1);
        stop.fire();
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(stop.fired());
    }
}
