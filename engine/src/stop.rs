//! A one-shot "stop" flag that async tasks on a shard can await.
//!
//! The process-wide flag is an `AtomicBool` (set from a signal handler thread or a test);
//! each shard turns it into a local wake-up with a cheap periodic check, so no executor
//! needs a foreign-thread waker.

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

/// Shard-local view: tasks await [`LocalStop::wait`]; the shard calls `fire` once.
#[derive(Debug, Clone, Default)]
pub struct LocalStop(Rc<RefCell<(bool, Vec<Waker>)>>);

impl LocalStop {
    /// Wakes every waiting task; later waits complete at once.
    pub fn fire(&self) {
        let wakers = {
            let mut s = self.0.borrow_mut();
            s.0 = true;
            std::mem::take(&mut s.1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        self.0.borrow().0
    }
    /// Completes once fired.
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        StopWait(self.clone())
    }
}

struct StopWait(LocalStop);

impl Future for StopWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = (self.0).0.borrow_mut();
        if s.0 {
            return Poll::Ready(());
        }
        if !s.1.iter().any(|w| w.will_wake(cx.waker())) {
            s.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
