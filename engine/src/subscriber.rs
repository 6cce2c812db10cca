//! A connection's presence in the engine: its outbox, the waker of its writer task, and the
//! rooms it follows. Lives on the shard that accepted the connection (`Rc`, never shared
//! across cores).

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::message::{DeliveryMode, Message};
use crate::outbox::{Entry, Outbox, Pushed};

/// Where a subscription of this connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubState {
    /// Asked the owner; waiting for the replay and the live edge. The token tells a stale
    /// reply (from an earlier subscribe of the same room) from the current one.
    Pending(u64),
    /// Receiving live messages.
    Live,
}

/// See the module documentation.
pub struct Subscriber {
    id: u64,
    mode: DeliveryMode,
    outbox: RefCell<Outbox>,
    waker: Cell<Option<Waker>>,
    pub(crate) rooms: RefCell<FxHashMap<Arc<str>, SubState>>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("id", &self.id).field("mode", &self.mode).finish()
    }
}

impl Subscriber {
    /// A subscriber with an outbox of `budget` bytes. Connections get theirs from
    /// [`Shard::new_subscriber`](crate::Shard::new_subscriber); this is public for benches
    /// and tests of the fan-out path.
    pub fn new(id: u64, mode: DeliveryMode, budget: usize) -> Self {
        Subscriber {
            id,
            mode,
            outbox: RefCell::new(Outbox::new(budget, mode)),
            waker: Cell::new(None),
            rooms: RefCell::new(FxHashMap::default()),
        }
    }

    /// Shard-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How this subscriber wants messages framed.
    pub fn mode(&self) -> DeliveryMode {
        self.mode
    }

    /// Rooms followed or being joined.
    pub fn room_count(&self) -> usize {
        self.rooms.borrow().len()
    }

    /// Whether `room` is followed (live or pending).
    pub fn follows(&self, room: &str) -> bool {
        self.rooms.borrow().contains_key(room)
    }

    /// Bytes waiting in the outbox.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.borrow().queued_bytes()
    }

    /// Whether the outbox is closed (slow consumer or shutdown).
    pub fn is_closed(&self) -> bool {
        self.outbox.borrow().is_closed()
    }

    /// Queues a room message (one refcount increment and a queue push) and wakes the
    /// writer if it was idle. This is the whole per-subscriber cost of fan-out.
    #[inline]
    pub fn push_msg(&self, msg: &Arc<Message>) -> Pushed {
        let p = self.outbox.borrow_mut().push_msg(msg);
        if matches!(
            p,
            Pushed::Queued { was_empty: true }
                | Pushed::Conflated { was_empty: true, .. }
                | Pushed::Disconnected
        ) {
            self.wake();
        }
        p
    }

    /// Queues a frame for this connection alone (replies, pongs, errors).
    pub fn push_ctrl(&self, frame: Bytes) {
        if let Pushed::Queued { was_empty: true } = self.outbox.borrow_mut().push_ctrl(frame) {
            self.wake();
        }
    }

    /// Ends the stream with a close frame (see [`Outbox::close`]) and wakes the writer.
    pub fn close(&self, code: u16, reason: &str, discard: bool) {
        self.outbox.borrow_mut().close(code, reason, discard);
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// For the connection's writer: moves up to `max` queued frames into `out`. Pending
    /// (with the waker stored) while there is nothing to send. Ready(false) once the outbox
    /// is closed and fully drained: the connection should end.
    pub fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<Entry>, max: usize) -> Poll<bool> {
        let mut ob = self.outbox.borrow_mut();
        if ob.is_empty() {
            if ob.is_closed() {
                return Poll::Ready(false);
            }
            self.waker.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        ob.take(out, max);
        Poll::Ready(true)
    }
}
