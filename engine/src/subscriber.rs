//! A connection's presence in the engine: its outbox, the waker of its writer task, and the
//! rooms it follows. Lives on the shard that accepted the connection (`Rc`, never shared
//! across cores).

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::io::IoSlice;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::message::{DeliveryMode, Message};
use crate::outbox::{Entry, Outbox, Pushed};
use crate::ticks::Stamp;

/// Where a subscription of this connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubState {
    /// Asked the owner; waiting for the replay and the live edge. The token tells a stale
    /// reply (from an earlier subscribe of the same room) from the current one.
    Pending(u64),
    /// Receiving live messages.
    Live,
}

/// How fan-out writes to a connection's socket itself (see [`Subscriber::set_direct`]):
/// `write(fd, bufs)` writes the buffers, in order, now, without waiting (one vectored
/// call): `Some(n)` bytes went out (maybe fewer than offered), `None` if nothing could be
/// written (full buffer, error).
///
/// A plain function and a descriptor, not a boxed closure: every connection holds one, and
/// the closure cost a heap block (32 B for its 4-byte capture) plus a fat pointer and a
/// borrow flag.
#[derive(Clone, Copy)]
pub struct DirectWrite {
    pub write: fn(i32, &[IoSlice<'_>]) -> Option<usize>,
    pub fd: i32,
}

impl DirectWrite {
    #[inline]
    fn call(self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        (self.write)(self.fd, bufs)
    }
}

/// Most frames one inline flush writes (see [`Subscriber::deliver`]); the rest stays queued
/// for the writer task.
const FLUSH_FRAMES: usize = 64;

/// See the module documentation.
pub struct Subscriber {
    id: u64,
    mode: DeliveryMode,
    outbox: RefCell<Outbox>,
    waker: Cell<Option<Waker>>,
    /// Set while the writer holds a batch it has not finished writing: then a direct write
    /// would overtake it.
    writing: Cell<bool>,
    direct: Cell<Option<DirectWrite>>,
    /// When this socket was last written, for the shard's coalescing window.
    last_write: Cell<Stamp>,
    /// Frames are queued because the window refused a direct write: the writer waits for
    /// the window. Frames queued by a cork leave at once (the cork already batched them).
    deferred: Cell<bool>,
    /// When the previous message arrived, and how many arrivals in a row came within the
    /// window of each other: only a sustained rate (a streak) defers, not one close pair —
    /// jitter on a 100 Hz room must not push a thousand subscribers onto the slow path.
    last_arrival: Cell<Stamp>,
    /// When the client last sent anything, for the server's keep-alive sweep (see
    /// [`Subscriber::heard_from`]). Here rather than in the server's session so that the
    /// shard's connection map is the only map of connections: the sweep walks it.
    last_rx: Cell<Stamp>,
    streak: Cell<u8>,
    /// Bytes of the batch the writer has taken and not finished writing: they still occupy
    /// memory, so the read gate counts them with the queue.
    /// 32 bits (an outbox holds at most 1 GiB): with it the subscriber's allocation is
    /// 16 bytes smaller (256 instead of 272 with the allocator's header).
    in_flight: Cell<u32>,
    /// The connection's reader, parked while the outbox is too full to take more replies
    /// (see [`Subscriber::poll_room_to_read`]).
    read_waker: Cell<Option<Waker>>,
    pub(crate) rooms: RefCell<crate::roomset::RoomSet>,
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
        let now = Stamp::now();
        Subscriber {
            id,
            mode,
            outbox: RefCell::new(Outbox::new(budget, mode)),
            waker: Cell::new(None),
            writing: Cell::new(false),
            direct: Cell::new(None),
            last_write: Cell::new(now),
            deferred: Cell::new(false),
            last_arrival: Cell::new(now),
            last_rx: Cell::new(now),
            streak: Cell::new(0),
            in_flight: Cell::new(0),
            read_waker: Cell::new(None),
            rooms: RefCell::default(),
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
        self.rooms.borrow().contains(room)
    }

    /// Bytes waiting in the outbox.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.borrow().queued_bytes()
    }

    /// True while frames wait in the queue (none taken by the writer yet).
    pub fn has_queued(&self) -> bool {
        !self.outbox.borrow().is_empty()
    }

    /// Bytes this connection holds for its client: queued plus the batch being written.
    pub fn held_bytes(&self) -> usize {
        self.outbox.borrow().queued_bytes() + self.in_flight.get() as usize
    }

    /// The read gate: Ready while the connection holds less than half its outbox budget
    /// (or is closed), else Pending until the writer has made room. A client that does not
    /// read its replies thus stops being read: its requests wait in its own TCP window
    /// (backpressure) instead of turning into server memory, and messages for it meet the
    /// slow-consumer policy. Half the budget leaves room for the replies one read can cause.
    pub fn poll_room_to_read(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.may_read() {
            return Poll::Ready(());
        }
        self.read_waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    /// Records that the client sent something (any bytes; a pong counts).
    pub fn heard_from(&self) {
        self.last_rx.set(Stamp::now());
    }

    /// How long since the client last sent anything (since the subscriber was made, if
    /// never).
    pub fn quiet(&self) -> Duration {
        Stamp::now().since(self.last_rx.get())
    }

    /// Whether the read gate is open now (see [`Subscriber::poll_room_to_read`]).
    pub fn may_read(&self) -> bool {
        self.held_bytes() < self.outbox.borrow().budget() / 2 || self.is_closed()
    }

    fn wake_reader(&self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
    }

    /// Whether the outbox is closed (slow consumer or shutdown).
    pub fn is_closed(&self) -> bool {
        self.outbox.borrow().is_closed()
    }

    /// Lets fan-out write straight to the socket when this subscriber has nothing queued
    /// (write-through, as uWebSockets does): an idle subscriber then costs one `send` and
    /// no task wake-up. The connection must call [`Subscriber::clear_direct`] before its
    /// socket is closed.
    pub fn set_direct(&self, write: DirectWrite) {
        self.direct.set(Some(write));
    }

    /// For the writer: when the next write may go, if it must wait (`None`: write now), so
    /// that writes to this socket are at least `window` apart. Within the window frames
    /// queue and leave together: the kernel charges per call, not per frame. The instant
    /// may already have passed; no clock is read here. A queue at half its byte budget or
    /// more is written at once, window or not.
    pub fn write_due(&self, window: Duration) -> Option<Instant> {
        (!window.is_zero() && self.deferred.get() && !self.half_full())
            .then(|| self.last_write.get().instant() + window)
    }

    /// Whether the outbox holds half its byte budget or more. The coalescing window exists
    /// to batch small frames; past this point the batch is big enough, and holding it
    /// longer could overflow the budget of a subscriber that reads at full speed (large
    /// frames at a high rate under a 20 ms window) and apply the slow-consumer policy to it.
    fn half_full(&self) -> bool {
        let ob = self.outbox.borrow();
        ob.queued_bytes() >= ob.budget() / 2
    }

    /// For the writer, back from waiting until `waited` (an instant [`Self::write_due`]
    /// gave): a later instant if a fan-out wrote the queue inline meanwhile, since the
    /// window then runs from that write and what was queued after it waits for it too.
    /// Without this the writer would send such a frame alone the moment it was queued.
    pub fn write_due_after(&self, window: Duration, waited: Instant) -> Option<Instant> {
        self.write_due(window).filter(|&next| next > waited)
    }

    /// Records an arrival; true once at least two consecutive gaps were shorter than
    /// `window` (three messages in quick succession).
    fn hot(&self, now: Stamp, window: Duration) -> bool {
        let close = now.since(self.last_arrival.get()) < window;
        self.last_arrival.set(now);
        let streak = if close { self.streak.get().saturating_add(1) } else { 0 };
        self.streak.set(streak);
        streak >= 2
    }

    /// Stops direct writes (the socket is about to close, and its fd number may be reused).
    pub fn clear_direct(&self) {
        self.direct.set(None);
    }

    /// Fan-out's entry point: writes the frame at once when the subscriber is idle,
    /// `direct_ok` (the shard is not batching) and its last write is at least `window` ago;
    /// else queues it like [`Subscriber::push_msg`].
    #[inline]
    pub fn deliver(&self, msg: &Arc<Message>, direct_ok: bool, window: Duration, now: Instant) -> Pushed {
        let idle = direct_ok && !self.writing.get();
        // The clock reading as a stamp, taken only while a window is open (it alone needs it).
        let at = (!window.is_zero()).then(|| Stamp::of(now));
        let hot = at.is_some_and(|at| self.hot(at, window));
        if idle && hot && at.is_some_and(|at| at.since(self.last_write.get()) < window) && !self.half_full() {
            self.deferred.set(true);
        } else if idle {
            if let Some(write) = self.direct.get() {
                let mut ob = self.outbox.borrow_mut();
                if !ob.is_empty() {
                    // Frames wait for a writer task that has not run yet (queued under a
                    // cork, or left by a partial write): this one joins them and they all
                    // leave now, in one call, instead of a task wake-up and a write each —
                    // on a shard that fell behind, nearly every delivery takes this path,
                    // and it must cost less than the write-through, not more.
                    drop(ob);
                    let pushed = self.queue_only(msg);
                    if matches!(pushed, Pushed::Queued { .. } | Pushed::Conflated { .. }) {
                        self.flush_queue(window, now);
                    }
                    return pushed;
                }
                if !ob.is_closed() {
                    let frame = msg.frame_for(self.mode);
                    let written = write.call(&[IoSlice::new(frame)]);
                    if let (Some(_), Some(at)) = (written, at) {
                        self.last_write.set(at);
                    }
                    match written {
                        Some(n) if n == frame.len() => return Pushed::Written,
                        Some(n) if n > 0 => {
                            // The rest goes first in the queue: a slice of the shared frame,
                            // not a copy.
                            ob.push_ctrl(frame.slice(n..));
                            drop(ob);
                            self.wake();
                            return Pushed::Written;
                        }
                        _ => {}
                    }
                }
            }
        }
        self.push_msg(msg)
    }

    /// Queues a room message without waking the writer (only a disconnect wakes it, and
    /// the reader). Whoever calls this sends the queue: [`Subscriber::push_msg`] by waking
    /// the writer, corked fan-out by listing the subscriber for the shard's flusher and
    /// [`Subscriber::flush_queue`] when [`Pushed::made_nonempty`].
    pub fn queue_only(&self, msg: &Arc<Message>) -> Pushed {
        let p = self.outbox.borrow_mut().push_msg(msg);
        if p == Pushed::Disconnected {
            self.wake();
            self.wake_reader();
        }
        p
    }

    /// Writes the queue inline if no writer batch is in flight, then wakes the writer for
    /// whatever is left (all of it without a write-through hook).
    pub fn flush_queue(&self, window: Duration, now: Instant) {
        if !self.writing.get() {
            if let Some(write) = self.direct.get() {
                self.flush_inline(write, window, now);
            }
        }
        if self.has_queued() {
            self.wake();
        }
    }

    /// Writes what the outbox holds (up to [`FLUSH_FRAMES`] frames) in one call, now; what
    /// the socket does not take stays queued, first, for the writer task (already woken
    /// when the queue became non-empty). Only while no writer batch is in flight, or the
    /// order would break.
    fn flush_inline(&self, write: DirectWrite, window: Duration, now: Instant) {
        debug_assert!(!self.writing.get());
        let mut ob = self.outbox.borrow_mut();
        let mut iov = [IoSlice::new(&[]); FLUSH_FRAMES];
        let k = ob.gather(&mut iov);
        if k == 0 {
            return;
        }
        let written = write.call(&iov[..k]);
        if let Some(n) = written {
            ob.consume(n);
            if !window.is_zero() {
                self.last_write.set(Stamp::of(now));
            }
        }
    }

    /// Queues a room message (one refcount increment and a queue push) and wakes the
    /// writer if it was idle.
    #[inline]
    pub fn push_msg(&self, msg: &Arc<Message>) -> Pushed {
        let p = self.queue_only(msg);
        if p.made_nonempty() {
            self.wake();
        }
        p
    }

    /// Queues a frame for this connection alone (replies, pongs, errors).
    pub fn push_ctrl(&self, frame: Bytes) {
        if self.outbox.borrow_mut().push_ctrl(frame).made_nonempty() {
            self.wake();
        }
    }

    /// Ends the stream with a close frame (see [`Outbox::close`]) and wakes the writer.
    pub fn close(&self, code: u16, reason: &str, discard: bool) {
        self.outbox.borrow_mut().close(code, reason, discard);
        self.wake();
        self.wake_reader();
    }

    pub(crate) fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// For the writer: Ready(true) once there is something to send, Ready(false) once the
    /// outbox is closed and drained; Pending (waker stored) otherwise.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let ob = self.outbox.borrow();
        if !ob.is_empty() {
            return Poll::Ready(true);
        }
        if ob.is_closed() {
            return Poll::Ready(false);
        }
        self.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    /// For the connection's writer: moves up to `max` queued frames into `out`. Pending
    /// (with the waker stored) while there is nothing to send. Ready(false) once the outbox
    /// is closed and fully drained: the connection should end.
    pub fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<Entry>, max: usize) -> Poll<bool> {
        match self.take(out, max) {
            Some(more) => Poll::Ready(more),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    /// [`Subscriber::poll_take`] without waiting, for a writer that was just woken: None
    /// when nothing is queued (and the outbox is open), else as `poll_take`.
    pub fn take(&self, out: &mut Vec<Entry>, max: usize) -> Option<bool> {
        let mut ob = self.outbox.borrow_mut();
        if ob.is_empty() {
            return ob.is_closed().then_some(false);
        }
        let taken = ob.take(out, max);
        self.in_flight.set(u32::try_from(taken).unwrap_or(u32::MAX));
        self.writing.set(true);
        self.deferred.set(false);
        Some(true)
    }

    /// For the writer: the batch from [`Subscriber::take`] is fully written.
    pub fn batch_written(&self) {
        self.writing.set(false);
        self.in_flight.set(0);
        self.last_write.set(Stamp::now());
        self.wake_reader();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use std::rc::Rc;
    use std::task::Wake;
    use std::time::Instant;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn msg(seq: u64) -> Arc<Message> {
        let data = Bytes::from(format!("{{\"seq\":{seq}}}"));
        Arc::new(Message::new("r".into(), seq, data, None, Policy::Drop, Instant::now()))
    }

    /// A "socket" of this test thread: takes up to `accept` bytes per call (None: refuses)
    /// onto `wire`, and counts the calls.
    struct FakeSocket {
        accept: Option<usize>,
        wire: Rc<RefCell<Vec<u8>>>,
        calls: usize,
    }

    thread_local! {
        /// The fake sockets, by descriptor.
        static SOCKETS: RefCell<Vec<FakeSocket>> = RefCell::default();
    }

    fn fake_write(fd: i32, bufs: &[IoSlice<'_>]) -> Option<usize> {
        SOCKETS.with(|s| {
            let sock = &mut s.borrow_mut()[fd as usize];
            sock.calls += 1;
            let mut left = sock.accept?;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                sock.wire.borrow_mut().extend_from_slice(&b[..take]);
                (n, left) = (n + take, left - take);
            }
            Some(n)
        })
    }

    /// A subscriber whose "socket" accepts up to `accept` bytes per call (None: refuses).
    fn with_socket(accept: Option<usize>) -> (Subscriber, Rc<RefCell<Vec<u8>>>) {
        let sub = Subscriber::new(1, DeliveryMode::Envelope, 1 << 20);
        let wire = Rc::new(RefCell::new(Vec::new()));
        let fd = SOCKETS.with(|s| {
            let mut s = s.borrow_mut();
            s.push(FakeSocket { accept, wire: wire.clone(), calls: 0 });
            s.len() as i32 - 1
        });
        sub.set_direct(DirectWrite { write: fake_write, fd });
        (sub, wire)
    }

    /// Direct writes made so far to the subscriber's fake socket.
    fn write_calls(sub: &Subscriber) -> usize {
        let fd = sub.direct.get().expect("a fake socket").fd;
        SOCKETS.with(|s| s.borrow()[fd as usize].calls)
    }

    fn take(sub: &Subscriber) -> Vec<Entry> {
        let waker = Waker::from(Arc::new(Noop));
        let mut out = vec![];
        let _ = sub.poll_take(&mut Context::from_waker(&waker), &mut out, 1024);
        out
    }

    #[test]
    fn within_the_coalescing_window_frames_queue() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let minute = Duration::from_secs(60);
        sub.batch_written(); // "just wrote"
                             // Corked frames are not held back by the window: the cork already batched them.
        assert!(matches!(sub.deliver(&msg(1), false, minute, Instant::now()), Pushed::Queued { .. }));
        assert_eq!(sub.write_due(minute), None);
        // A sustained rate (third message within the window): the window keeps the frame
        // from a direct write, and the writer waits for the window.
        let _ = take(&sub);
        sub.batch_written();
        assert!(matches!(sub.deliver(&msg(2), true, minute, Instant::now()), Pushed::Queued { .. }));
        assert!(wire.borrow().is_empty());
        assert!(sub.write_due(minute).unwrap() > Instant::now() + Duration::from_secs(59));
        assert_eq!(sub.write_due(Duration::ZERO), None);
    }

    #[test]
    fn a_write_during_the_writers_wait_restarts_its_window() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let w = Duration::from_millis(5);
        let ms = |tenths: u64| Duration::from_micros(tenths * 100);
        // Long after the last arrival: two close arrivals are written through; the third
        // (a streak) is deferred, and the writer is told to wait until 5 ms after the last
        // write.
        let t0 = Instant::now() + Duration::from_secs(1);
        assert_eq!(sub.deliver(&msg(1), true, w, t0 + ms(10)), Pushed::Written);
        assert_eq!(sub.deliver(&msg(2), true, w, t0 + ms(20)), Pushed::Written);
        assert!(matches!(sub.deliver(&msg(3), true, w, t0 + ms(30)), Pushed::Queued { .. }));
        let at = sub.write_due(w).unwrap();
        assert_eq!(at, t0 + ms(70));
        // Before the writer runs, a frame arriving after the window takes the queue with it.
        assert!(matches!(sub.deliver(&msg(4), true, w, t0 + ms(71)), Pushed::Queued { .. }));
        assert_eq!(wire.borrow().len(), msg(1).frame.len() * 4);
        // The next frame is within the window of that write: queued, and the writer, back
        // from its wait, waits again instead of sending it alone.
        assert!(matches!(sub.deliver(&msg(5), true, w, t0 + ms(75)), Pushed::Queued { .. }));
        assert_eq!(sub.write_due_after(w, at), Some(t0 + ms(121)));
        assert_eq!(sub.write_due_after(w, t0 + ms(121)), None);
        assert_eq!(wire.borrow().len(), msg(1).frame.len() * 4);
    }

    #[test]
    fn a_queue_at_half_its_budget_is_not_held_by_the_window() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let minute = Duration::from_secs(60);
        // Long after the subscriber was made (its last write, as far as the window knows).
        let t0 = Instant::now() + 2 * minute;
        let (mut seq, mut sent) = (0, 0);
        let mut deliver = |sub: &Subscriber| {
            seq += 1;
            let m = msg(seq);
            sent += m.frame.len();
            sub.deliver(&m, true, minute, t0)
        };
        // A streak: from the third message on, frames are deferred for the window...
        assert_eq!(deliver(&sub), Pushed::Written);
        assert_eq!(deliver(&sub), Pushed::Written);
        let written = wire.borrow().len();
        while !sub.half_full() {
            assert!(matches!(deliver(&sub), Pushed::Queued { .. }));
            assert_eq!(wire.borrow().len(), written);
            assert_eq!(sub.write_due(minute).is_some(), !sub.half_full());
        }
        // ...until the queue holds half the budget: then the writer must not wait, and the
        // next delivery joins the queue and writes its head at once, in one call.
        assert_eq!(sub.write_due(minute), None);
        let before = sub.outbox.borrow().len();
        assert!(matches!(deliver(&sub), Pushed::Queued { .. }));
        assert_eq!(sub.outbox.borrow().len(), before + 1 - FLUSH_FRAMES);
        assert!(wire.borrow().len() > written);
        let mut rest = 0;
        while sub.has_queued() {
            rest += take(&sub).iter().map(|e| e.bytes(sub.mode).len()).sum::<usize>();
        }
        assert_eq!(wire.borrow().len() + rest, sent, "the writer takes the rest, in order");
    }

    #[test]
    fn one_close_pair_does_not_defer() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let w = Duration::from_millis(5);
        let t0 = Instant::now();
        sub.batch_written();
        // Second arrival 1 ms after the first: close, but no streak yet → written through.
        assert_eq!(sub.deliver(&msg(1), true, w, t0 + Duration::from_millis(10)), Pushed::Written);
        assert_eq!(sub.deliver(&msg(2), true, w, t0 + Duration::from_millis(11)), Pushed::Written);
        assert_eq!(wire.borrow().len(), msg(1).frame.len() * 2);
    }

    #[test]
    fn an_idle_subscriber_is_written_through() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let m = msg(1);
        assert_eq!(sub.deliver(&m, true, Duration::ZERO, Instant::now()), Pushed::Written);
        assert_eq!(&wire.borrow()[..], &m.frame[..]);
        assert_eq!(sub.queued_bytes(), 0);
    }

    #[test]
    fn a_partial_write_queues_the_rest_as_a_slice_of_the_shared_frame() {
        let (sub, wire) = with_socket(Some(5));
        let m = msg(1);
        assert_eq!(sub.deliver(&m, true, Duration::ZERO, Instant::now()), Pushed::Written);
        assert_eq!(wire.borrow().len(), 5);
        let rest = take(&sub);
        let b = rest[0].bytes(DeliveryMode::Envelope);
        assert_eq!(b.as_ptr(), m.frame[5..].as_ptr(), "no copy");
        // A later message must queue behind the remainder, never overtake it.
        sub.batch_written();
        assert_eq!(sub.deliver(&msg(2), true, Duration::ZERO, Instant::now()), Pushed::Written);
    }

    #[test]
    fn a_frame_behind_a_queue_takes_the_queue_with_it_in_one_write() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let (m1, m2) = (msg(1), msg(2));
        // Corked: queued, nothing written, the writer woken.
        assert!(matches!(sub.deliver(&m1, false, Duration::ZERO, Instant::now()), Pushed::Queued { .. }));
        assert!(wire.borrow().is_empty());
        // The next frame, uncorked, leaves with the queued one: one call, in order.
        assert!(matches!(sub.deliver(&m2, true, Duration::ZERO, Instant::now()), Pushed::Queued { .. }));
        assert_eq!(write_calls(&sub), 1);
        let both = [m1.frame.as_ref(), m2.frame.as_ref()].concat();
        assert_eq!(*wire.borrow(), both);
        assert!(take(&sub).is_empty(), "nothing left for the writer");
        assert_eq!(sub.queued_bytes(), 0);
    }

    #[test]
    fn corked_frames_wait_for_the_flush_then_leave_in_one_write() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        let (m1, m2) = (msg(1), msg(2));
        assert_eq!(sub.queue_only(&m1), Pushed::Queued { was_empty: true });
        assert_eq!(sub.queue_only(&m2), Pushed::Queued { was_empty: false });
        assert!(wire.borrow().is_empty(), "nothing written under the cork");
        sub.flush_queue(Duration::ZERO, Instant::now());
        assert_eq!(*wire.borrow(), [m1.frame.as_ref(), m2.frame.as_ref()].concat());
        assert_eq!(sub.queued_bytes(), 0);
        // A socket that takes nothing: the frames stay queued for the writer task.
        let (refusing, _) = with_socket(None);
        refusing.queue_only(&m1);
        refusing.flush_queue(Duration::ZERO, Instant::now());
        assert_eq!(take(&refusing).len(), 1);
    }

    #[test]
    fn an_inline_flush_written_in_part_leaves_the_rest_first() {
        let (m1, m2, m3) = (msg(1), msg(2), msg(3));
        let (sub, wire) = with_socket(Some(m1.frame.len() + 3));
        assert!(matches!(sub.deliver(&m1, false, Duration::ZERO, Instant::now()), Pushed::Queued { .. }));
        assert!(matches!(sub.deliver(&m2, true, Duration::ZERO, Instant::now()), Pushed::Queued { .. }));
        assert_eq!(*wire.borrow(), [m1.frame.as_ref(), &m2.frame[..3]].concat());
        // The writer gets the unwritten tail of frame 2 first, then frame 3.
        sub.deliver(&m3, false, Duration::ZERO, Instant::now());
        let rest: Vec<u8> =
            take(&sub).iter().flat_map(|e| e.bytes(DeliveryMode::Envelope).to_vec()).collect();
        assert_eq!(rest, [&m2.frame[3..], m3.frame.as_ref()].concat());
    }

    #[test]
    fn queued_in_flight_corked_or_refused_means_queue() {
        let (sub, wire) = with_socket(Some(usize::MAX));
        assert!(
            matches!(sub.deliver(&msg(1), false, Duration::ZERO, Instant::now()), Pushed::Queued { .. }),
            "corked"
        );
        assert_eq!(take(&sub).len(), 1);
        assert!(
            matches!(sub.deliver(&msg(3), true, Duration::ZERO, Instant::now()), Pushed::Queued { .. }),
            "batch in flight"
        );
        sub.batch_written();
        assert_eq!(take(&sub).len(), 1);
        sub.batch_written();
        assert!(wire.borrow().is_empty());
        let (refusing, _) = with_socket(None);
        assert!(matches!(
            refusing.deliver(&msg(1), true, Duration::ZERO, Instant::now()),
            Pushed::Queued { .. }
        ));
        sub.clear_direct();
        assert!(
            matches!(sub.deliver(&msg(4), true, Duration::ZERO, Instant::now()), Pushed::Queued { .. }),
            "hook cleared"
        );
    }

    #[test]
    fn the_read_gate_closes_at_half_the_budget_and_opens_when_written() {
        let sub = Subscriber::new(1, DeliveryMode::Envelope, 1000);
        let reply = Bytes::from(vec![b'x'; 100]);
        for _ in 0..4 {
            sub.push_ctrl(reply.clone());
        }
        assert!(sub.may_read(), "400 of 1000 bytes held");
        sub.push_ctrl(reply.clone());
        assert!(!sub.may_read(), "half the budget held: stop reading");
        // Taken by the writer but not yet written still counts.
        assert_eq!(take(&sub).len(), 5);
        assert_eq!(sub.held_bytes(), 500);
        assert!(!sub.may_read());
        sub.batch_written();
        assert!(sub.may_read());
        // A closed connection is always "readable": the reader must see it end.
        for _ in 0..6 {
            sub.push_ctrl(reply.clone());
        }
        assert!(!sub.may_read());
        sub.close(1000, "", false);
        assert!(sub.may_read());
    }
}
