//! Readiness of a shard's WebSocket sockets from one epoll instance per shard, instead of a
//! glommio poll armed per connection.
//!
//! Why: a glommio `TcpStream` keeps a read poll armed on the io_uring ring for as long as it
//! waits, and that poll's `Source` is a ~490-byte heap object per connection, besides the
//! stream's own 128 bytes — a fifth of an idle session's memory (issue 8). Here a session
//! owns a plain non-blocking fd ([`Socket`]) registered once, edge-triggered, with its
//! shard's epoll instance, and the shard's executor sleeps in that instance
//! ([`Readiness::park_executor`]): glommio adds its rings' fds to it and hands every other
//! event to [`Readiness::dispatch`], which wakes the sessions they name. Per connection that
//! leaves a [`Slot`] here (24 bytes) and the kernel's epoll item.
//!
//! One waker per slot, not one for the reader and one for the writer: a socket's reader and
//! writer are futures of one task (the session's, which runs them under `or`), and any wake
//! of that task polls both, so each re-registers what it still waits for. Two flags say who
//! waits, so that an event nobody waits for wakes nobody.
//!
//! Edge-triggered events say "something changed", never "still ready". So each slot keeps a
//! `readable` and a `writable` flag: events set them, and the session clears one when a write
//! fails with `EAGAIN`, or when a read fails with `EAGAIN` or comes back short (fewer bytes
//! than asked: the receive queue is empty). A session waits only while its flag is clear,
//! and an event that arrives while nobody waits stays in the flag. Invariant: a clear flag
//! means the socket was found empty (or full) after the last event harvested for it, so the
//! kernel will report the next arrival (or room) with a new event.
//!
//! Slots are reused; a token carries the slot's generation so that an event for a slot's
//! previous owner wakes nobody. No token equals glommio's ring token (`u64::MAX`): slot
//! indexes stop below `u32::MAX`.

use futures_lite::future::poll_fn;
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// How often a shard too busy to sleep still harvests its epoll instance: the most a
/// socket event waits for its harvest while every turn finds work.
const BUSY_HARVEST: std::time::Duration = std::time::Duration::from_micros(200);

/// One registered socket's readiness.
#[derive(Default)]
struct Slot {
    /// Bumped when the slot is released: tokens of earlier owners no longer match.
    gen: u32,
    readable: bool,
    writable: bool,
    /// A read waits for `readable`.
    reader_waits: bool,
    /// A write waits for `writable`.
    writer_waits: bool,
    /// The task of the socket's reader and writer (see the module documentation).
    waker: Option<Waker>,
}

/// A shard's epoll instance and the slots of the sockets registered with it.
pub struct Readiness {
    epfd: OwnedFd,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
}

impl Readiness {
    /// A new epoll instance with no socket.
    pub fn new() -> io::Result<Rc<Self>> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Rc::new(Readiness { epfd, slots: RefCell::default(), free: RefCell::default() }))
    }

    /// Takes over a connected socket: makes `fd` non-blocking and registers it. Until the
    /// first event the socket counts as readable and writable (the caller tries first).
    pub fn register(self: &Rc<Self>, fd: OwnedFd) -> io::Result<Socket> {
        set_nonblocking(fd.as_raw_fd())?;
        let idx = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(Slot::default());
                u32::try_from(slots.len() - 1)
                    .ok()
                    .filter(|&i| i != u32::MAX)
                    .ok_or_else(|| io::Error::other("too many sockets"))?
            }
        };
        let token = {
            let mut slots = self.slots.borrow_mut();
            let s = &mut slots[idx as usize];
            s.readable = true;
            s.writable = true;
            u64::from(s.gen) << 32 | u64::from(idx)
        };
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        let mut ev = libc::epoll_event { events: events as u32, u64: token };
        // SAFETY: both fds are open; `ev` is a valid event.
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) } < 0
        {
            let e = io::Error::last_os_error();
            self.release(token);
            return Err(e);
        }
        Ok(Socket { fd, token, readiness: self.clone() })
    }

    /// Takes a connection over from glommio after its handshake: a duplicate of its fd is
    /// registered here, and the glommio stream (with the read poll it keeps armed) is
    /// dropped, closing only its own fd.
    pub fn adopt(self: &Rc<Self>, stream: glommio::net::TcpStream) -> io::Result<Socket> {
        // SAFETY: duplicating an fd the stream owns; the duplicate is owned from here on.
        let dup = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        drop(stream);
        self.register(fd)
    }

    /// Frees a slot (its socket is about to close, which also removes it from epoll).
    fn release(&self, token: u64) {
        let idx = token as u32;
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[idx as usize];
        *s = Slot { gen: s.gen.wrapping_add(1), ..Slot::default() };
        self.free.borrow_mut().push(idx);
    }

    /// The slot of a live token, for `f`.
    fn with_slot<R>(&self, token: u64, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[token as u32 as usize];
        debug_assert_eq!(s.gen, (token >> 32) as u32, "a socket's own slot");
        f(s)
    }

    /// Sockets registered now.
    pub fn len(&self) -> usize {
        self.slots.borrow().len() - self.free.borrow().len()
    }

    /// Whether no socket is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes this instance the one the shard's executor sleeps in (glommio's
    /// `park_in_epoll`, a patch of ours: `vendor/glommio/PATCHES.md`), with
    /// [`Readiness::dispatch`] as the handler of its events. Call once, on the shard's
    /// thread, before any session waits.
    ///
    /// Why: before, the shard waited for this instance through a poll armed on glommio's
    /// ring, re-armed after every harvest (a `fcntl`, a probing `recv` and a `close` per
    /// wake-up), and glommio's own sleep cost about eight `io_uring_enter` calls and a
    /// `membarrier` per wake-up. Parked here, a light-loaded shard's turn is one
    /// `epoll_wait`, the reads and the sends — what an epoll server does (issue 8,
    /// `results/2026-11-29-issue8-epoll-park/`).
    pub fn park_executor(self: &Rc<Self>) -> io::Result<()> {
        let me = Rc::downgrade(self);
        glommio::executor().park_in_epoll(self.epfd.as_raw_fd(), BUSY_HARVEST, move |events| {
            if let Some(me) = me.upgrade() {
                for ev in events {
                    me.dispatch(ev.u64, ev.events);
                }
            }
        })
    }

    /// Records one event and wakes who waits for it.
    fn dispatch(&self, token: u64, events: u32) {
        let woken = {
            let mut slots = self.slots.borrow_mut();
            let Some(s) = slots.get_mut(token as u32 as usize) else { return };
            if s.gen != (token >> 32) as u32 {
                return;
            }
            let fail = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
            let mut wake = false;
            if events & ((libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | fail) != 0 {
                s.readable = true;
                wake |= s.reader_waits;
            }
            if events & (libc::EPOLLOUT as u32 | fail) != 0 {
                s.writable = true;
                wake |= s.writer_waits;
            }
            // Both flags go with the waker: the task it wakes polls the reader and the
            // writer, and whichever still waits says so again.
            if wake {
                s.reader_waits = false;
                s.writer_waits = false;
                s.waker.take()
            } else {
                None
            }
        };
        // Woken outside the borrow: a waker may run code that registers or releases.
        if let Some(w) = woken {
            w.wake();
        }
    }
}

/// A session's socket: a non-blocking fd registered with its shard's [`Readiness`].
/// Dropping it releases the slot and closes the fd.
pub struct Socket {
    fd: OwnedFd,
    token: u64,
    readiness: Rc<Readiness>,
}

impl Socket {
    /// Reads what the socket holds into `buf` (0: the peer closed), or waits until it is
    /// readable.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let ready = self.readiness.with_slot(self.token, |s| {
                if !s.readable {
                    s.reader_waits = true;
                    park(&mut s.waker, cx);
                }
                s.readable
            });
            if !ready {
                return Poll::Pending;
            }
            // SAFETY: `buf` is a live, writable slice of the length passed.
            let r = unsafe {
                libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
            };
            if r >= 0 {
                // A short read emptied the socket's receive queue: clear the flag now rather
                // than spend a second `recv` on the `EAGAIN` that would say so (at light load
                // that empty read is one system call per message). No arrival is missed: the
                // kernel queues an edge on every arrival (each `sk_data_ready` re-adds the
                // item to the epoll ready list, not only the first after empty), and the
                // harvest runs on this thread (between task runs), so an arrival after this
                // `recv` sets the flag again when it is harvested. An arrival before it was
                // read by it; its event, harvested later, costs at most one empty read. A
                // zero-byte read is the peer's close and ends the session either way.
                if r > 0 && (r as usize) < buf.len() {
                    self.readiness.with_slot(self.token, |s| s.readable = false);
                }
                return Poll::Ready(Ok(r as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => self.readiness.with_slot(self.token, |s| s.readable = false),
                io::ErrorKind::Interrupted => {}
                _ => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Ready once the socket may take more bytes (after a write found it full).
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.readiness.with_slot(self.token, |s| {
            if s.writable {
                Poll::Ready(())
            } else {
                s.writer_waits = true;
                park(&mut s.waker, cx);
                Poll::Pending
            }
        })
    }

    /// A write found the socket's buffer full: writability now waits for the next event.
    fn full(&self) {
        self.readiness.with_slot(self.token, |s| s.writable = false);
    }

    /// Writes some of `buf` now, or waits until the socket takes bytes again.
    ///
    /// It tries the send first, whatever the flag says (as glommio's `poll_write` does):
    /// a writer that stalls re-enters here every tick, so even an edge the flag missed
    /// would cost it a tick, never the connection.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: a live slice of the length passed, on a socket we own.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => {
                    self.full();
                    poll_fn(|cx| self.poll_writable(cx)).await;
                }
                io::ErrorKind::Interrupted => {}
                _ => return Err(e),
            }
        }
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // The fd closes after this (a field), which also takes it out of the epoll set.
        self.readiness.release(self.token);
    }
}

/// Stores the task's waker, unless the one stored already wakes it.
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on an open fd.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default().spawn(f).expect("executor").join().expect("join");
    }

    /// A new instance this test's executor sleeps in.
    fn parked() -> Rc<Readiness> {
        let r = Readiness::new().unwrap();
        r.park_executor().unwrap();
        r
    }

    /// Writes `bytes` to `peer` from another thread after `ms`, while the executor sleeps
    /// or spins; joining gives `peer` back.
    fn write_later(
        mut peer: UnixStream,
        ms: u64,
        bytes: &'static [u8],
    ) -> std::thread::JoinHandle<UnixStream> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            peer.write_all(bytes).unwrap();
            peer
        })
    }

    /// A registered socket and the test's end of the pair.
    fn pair(r: &Rc<Readiness>) -> (Socket, UnixStream) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        (r.register(OwnedFd::from(a)).expect("register"), b)
    }

    #[test]
    fn a_read_waits_for_data_and_sees_every_later_arrival() {
        run(|| async {
            let r = parked();
            let (sock, mut peer) = pair(&r);
            let mut buf = [0u8; 64];
            // Nothing yet: the first read finds the socket empty and waits.
            let wrote = glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(20)).await;
                peer.write_all(b"hello").unwrap();
                glommio::timer::sleep(Duration::from_millis(20)).await;
                peer.write_all(b"again").unwrap();
                peer
            });
            let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
            assert_eq!(&buf[..n], b"hello");
            // That read was short (the socket is empty): the next one waits for the next
            // event without reading, then gets it.
            let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
            assert_eq!(&buf[..n], b"again");
            drop(wrote.await);
            // The peer closed: readable, 0 bytes.
            assert_eq!(poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap(), 0);
        });
    }

    #[test]
    fn an_arrival_right_after_a_short_read_is_not_missed() {
        run(|| async {
            let r = parked();
            let (sock, mut peer) = pair(&r);
            let mut buf = [0u8; 64];
            for round in 0..50u8 {
                peer.write_all(&[round]).unwrap();
                let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
                assert_eq!(&buf[..n], &[round], "short read clears the flag");
                // The next byte lands before the loop harvests its event (same thread): the
                // event still sets the flag, and the read below gets the byte.
                peer.write_all(&[round, round]).unwrap();
                let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
                assert_eq!(&buf[..n], &[round, round]);
            }
            // A read that fills the buffer says nothing about what is left: the rest is read
            // without another event.
            peer.write_all(&[9u8; 100]).unwrap();
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap(), 64);
            assert_eq!(poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap(), 36);
        });
    }

    #[test]
    fn an_event_with_nobody_waiting_is_kept() {
        run(|| async {
            let r = parked();
            let (sock, mut peer) = pair(&r);
            let mut buf = [0u8; 64];
            assert!(poll_fn(|cx| Poll::Ready(sock.poll_read(cx, &mut buf))).await.is_pending());
            peer.write_all(b"x").unwrap();
            // Let the loop harvest the event while the reader is not waiting.
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
            assert_eq!(&buf[..n], b"x");
        });
    }

    /// Counts the wakes of a waker.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn one_waker_serves_the_reader_and_the_writer_for_what_they_wait_for() {
        run(|| async {
            let r = parked();
            let (sock, _peer) = pair(&r);
            let wakes = Arc::new(Wakes::default());
            let waker = Waker::from(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            let count = || wakes.0.load(Ordering::Relaxed);
            let mut buf = [0u8; 8];
            // The reader waits (no event yet); nobody waits for writability.
            assert!(sock.poll_read(&mut cx, &mut buf).is_pending());
            r.dispatch(sock.token, libc::EPOLLOUT as u32);
            assert_eq!(count(), 0, "an event nobody waits for wakes nobody");
            r.dispatch(sock.token, libc::EPOLLIN as u32);
            assert_eq!(count(), 1);
            // Both wait now: the reader found the socket empty, the writer found it full.
            r.with_slot(sock.token, |s| s.readable = false);
            assert!(sock.poll_read(&mut cx, &mut buf).is_pending());
            sock.full();
            assert!(sock.poll_writable(&mut cx).is_pending());
            r.dispatch(sock.token, libc::EPOLLOUT as u32);
            assert_eq!(count(), 2, "an event either waits for wakes their task");
            // Until the task has polled them again, nobody is registered: no second wake.
            r.dispatch(sock.token, libc::EPOLLIN as u32);
            assert_eq!(count(), 2);
            // The events were kept in the flags: polled again, neither waits.
            assert!(sock.poll_writable(&mut cx).is_ready());
            assert!(r.with_slot(sock.token, |s| s.readable && !s.reader_waits && !s.writer_waits));
        });
    }

    #[test]
    fn a_full_socket_waits_until_the_peer_reads() {
        run(|| async {
            let r = parked();
            let (sock, mut peer) = pair(&r);
            let chunk = vec![7u8; 64 << 10];
            let mut sent = 0;
            // Fill the socket until a write would wait.
            loop {
                let fut = sock.write(&chunk);
                futures_lite::pin!(fut);
                match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
                    Poll::Ready(n) => sent += n.unwrap(),
                    Poll::Pending => break,
                }
            }
            let reader = std::thread::spawn(move || {
                let mut got = vec![0u8; sent + chunk.len()];
                let mut n = 0;
                while n < sent + 1 {
                    n += peer.read(&mut got[n..]).unwrap();
                }
                n
            });
            let n = sock.write(&[1u8; 1]).await.unwrap();
            assert_eq!(n, 1);
            drop(sock);
            assert!(reader.join().unwrap() > sent);
        });
    }

    #[test]
    fn slots_are_reused_and_stale_tokens_wake_nobody() {
        run(|| async {
            let r = Readiness::new().unwrap();
            let (a, _pa) = pair(&r);
            let old = a.token;
            drop(a);
            assert_eq!(r.len(), 0);
            let (b, _pb) = pair(&r);
            assert_eq!(b.token as u32, old as u32, "slot reused");
            assert_ne!(b.token, old, "new generation");
            r.with_slot(b.token, |s| s.readable = false);
            r.dispatch(old, libc::EPOLLIN as u32);
            assert!(!r.with_slot(b.token, |s| s.readable), "stale token ignored");
            r.dispatch(b.token, libc::EPOLLIN as u32);
            assert!(r.with_slot(b.token, |s| s.readable));
        });
    }

    /// The executor's one blocking point is the epoll instance: it must still wake for
    /// its own timers, for a wake from another thread (glommio's eventfd, read on its
    /// latency ring, whose fd sits in the instance), and for a socket.
    #[test]
    fn a_parked_executor_wakes_for_timers_other_threads_and_sockets() {
        run(|| async {
            let r = parked();
            assert_eq!(
                r.park_executor().unwrap_err().kind(),
                io::ErrorKind::AlreadyExists,
                "one instance per executor"
            );
            // A timer, with nothing else to do: the wait is bounded by it.
            let t0 = std::time::Instant::now();
            glommio::timer::sleep(Duration::from_millis(30)).await;
            assert!(t0.elapsed() >= Duration::from_millis(30));
            // A wake from another thread while asleep.
            let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
            let woke = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (s2, w2) = (slot.clone(), woke.clone());
            let waker_thread = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                w2.store(true, Ordering::SeqCst);
                let w = s2.lock().unwrap().take();
                w.expect("the task parked its waker").wake();
            });
            poll_fn(|cx| {
                if woke.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                *slot.lock().unwrap() = Some(cx.waker().clone());
                if woke.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            waker_thread.join().unwrap();
            // A socket written from another thread while asleep.
            let (sock, peer) = pair(&r);
            let mut buf = [0u8; 8];
            let writer = write_later(peer, 30, b"late");
            let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
            assert_eq!(&buf[..n], b"late");
            drop(writer.join());
        });
    }

    /// An executor that always has a task to run never sleeps, so it never blocks in the
    /// instance: it must still harvest it (every `BUSY_HARVEST`), or its sockets starve.
    #[test]
    fn a_busy_executor_still_hears_its_sockets() {
        run(|| async {
            let r = parked();
            let (sock, peer) = pair(&r);
            let done = Rc::new(std::cell::Cell::new(false));
            let d2 = done.clone();
            // Always runnable until the read below completes.
            let spinner = glommio::spawn_local(async move {
                let mut turns = 0u64;
                while !d2.get() {
                    futures_lite::future::yield_now().await;
                    turns += 1;
                }
                turns
            });
            let writer = write_later(peer, 20, b"busy");
            let mut buf = [0u8; 8];
            let n = poll_fn(|cx| sock.poll_read(cx, &mut buf)).await.unwrap();
            assert_eq!(&buf[..n], b"busy");
            done.set(true);
            assert!(spinner.await > 0, "the spinner kept the executor busy");
            drop(writer.join());
        });
    }

    /// A parked executor arms no preemption timer: the slice of a latency-sensitive task
    /// queue is a clock deadline. A task that never awaits must still see `need_preempt`
    /// turn true about one slice after its turn began, and false again in its next turn.
    #[test]
    fn a_parked_executor_still_ends_time_slices() {
        run(|| async {
            let _r = parked();
            let slice = Duration::from_millis(2);
            let tq = glommio::executor().create_task_queue(
                glommio::Shares::default(),
                glommio::Latency::Matters(slice),
                "slices",
            );
            let spins = glommio::spawn_local_into(
                async move {
                    let mut spins = Vec::new();
                    for _ in 0..3 {
                        let start = std::time::Instant::now();
                        let guard = Duration::from_secs(5);
                        while !glommio::executor().need_preempt() && start.elapsed() < guard {}
                        spins.push(start.elapsed());
                        glommio::executor().yield_task_queue_now().await;
                    }
                    spins
                },
                tq,
            )
            .unwrap()
            .await;
            for spun in spins {
                assert!(spun < Duration::from_secs(5), "need_preempt never turned true");
                assert!(spun > Duration::from_micros(500), "a new turn began preempted: {spun:?}");
            }
        });
    }

    /// The executor sleeps on its own duplicate of the instance: dropping the `Readiness`
    /// (closing its fd) while the executor goes on must not leave it sleeping on a closed,
    /// perhaps reused, fd number.
    #[test]
    fn an_executor_outlives_the_instance_it_parked_in() {
        run(|| async {
            drop(parked());
            // A file opened now may take the closed fd's number.
            let f = std::fs::File::open("/dev/null").unwrap();
            glommio::timer::sleep(Duration::from_millis(20)).await;
            glommio::timer::sleep(Duration::from_millis(20)).await;
            drop(f);
        });
    }
}
