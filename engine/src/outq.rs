//! An ordered, bounded queue from this shard to one peer shard.
//!
//! Why not call the channel's `send().await` directly: several tasks on a shard send to the
//! same peer, and an `await` on a full channel would let a later send overtake an earlier
//! one. Order matters: a subscriber's "replay done, live from seq N" must reach its shard
//! before any message after N. So every send is appended here synchronously (order fixed at
//! the call), one flusher task moves items into the bounded cross-core channel, and the
//! caller then waits while too much is queued: that wait is the backpressure a fast
//! publisher feels, and it keeps this queue bounded.

use glommio::channels::shared_channel::ConnectedSender;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::stats::ShardStats;

/// See the module documentation.
pub(crate) struct OutQueue<T: Send + 'static> {
    tx: ConnectedSender<T>,
    pending: RefCell<VecDeque<T>>,
    flushing: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
    limit: usize,
    closed: Cell<bool>,
}

impl<T: Send + 'static> OutQueue<T> {
    pub(crate) fn new(tx: ConnectedSender<T>, limit: usize) -> Rc<Self> {
        Rc::new(OutQueue {
            tx,
            pending: RefCell::new(VecDeque::new()),
            flushing: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            limit,
            closed: Cell::new(false),
        })
    }

    /// Appends `item` in call order. Returns false if the peer has stopped.
    pub(crate) fn push(self: &Rc<Self>, item: T, stats: &ShardStats) -> bool {
        if self.closed.get() {
            return false;
        }
        ShardStats::add(&stats.cross_shard_sent, 1);
        // Straight into the channel only when nothing is ahead of this item: not in
        // `pending`, and not in the flusher's hands (it pops an item, then waits for room).
        if !self.flushing.get() && self.pending.borrow().is_empty() {
            match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(item))) => {
                    self.pending.borrow_mut().push_back(item);
                }
                Err(_) => {
                    self.closed.set(true);
                    return false;
                }
            }
        } else {
            self.pending.borrow_mut().push_back(item);
        }
        if !self.flushing.get() {
            self.flushing.set(true);
            glommio::spawn_local(Rc::clone(self).flush()).detach();
        }
        true
    }

    /// Waits while more than the limit is queued locally.
    pub(crate) async fn room(&self, stats: &ShardStats) {
        if self.pending.borrow().len() > self.limit {
            ShardStats::add(&stats.backpressure_waits, 1);
        }
        futures_lite::future::poll_fn(|cx| {
            if self.pending.borrow().len() <= self.limit || self.closed.get() {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    async fn flush(self: Rc<Self>) {
        loop {
            let Some(item) = self.pending.borrow_mut().pop_front() else { break };
            if self.tx.send(item).await.is_err() {
                self.closed.set(true);
                self.pending.borrow_mut().clear();
            }
            if self.pending.borrow().len() <= self.limit {
                for w in self.waiters.borrow_mut().drain(..) {
                    w.wake();
                }
            }
        }
        self.flushing.set(false);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }
}
