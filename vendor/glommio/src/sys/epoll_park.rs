// PATCH (shardcast): not part of glommio 0.9.0. See PATCHES.md at the crate's root.
//
//! An executor that sleeps in an epoll instance of the application's.
//!
//! Why: an application that watches its sockets with its own epoll instance (one per
//! executor) otherwise has to wait for that instance through a poll armed on the ring, and
//! glommio's sleep itself costs a poll linking the latency ring into the main ring, an
//! `io_uring_enter` to submit it, one to wait, one to cancel it after, and a re-arm of both
//! preemption timers on every turn. With a parked epoll the executor's one blocking point is
//! `epoll_wait` on the application's instance, in which glommio registers its two rings'
//! fds (level-triggered `EPOLLIN`: a ring fd is readable while its completion queue holds
//! entries). So one `epoll_wait` hears both the application's sockets and every glommio
//! completion: I/O, timers armed on the ring, and the eventfd other threads write to wake a
//! sleeping executor (its read is armed on the latency ring).
//!
//! Invariants:
//! - Before blocking, every queued submission is in the kernel (the caller flushed the
//!   rings and found nothing to do), the eventfd read is armed, and the sleep notifier says
//!   "sleeping" (glommio's order: flag, fence, one more look at the channels; the fence is
//!   a `SeqCst` one, matched by the one every notifier issues, not `membarrier`).
//! - The block is bounded by the next user timer (to the nanosecond with `epoll_pwait2`;
//!   on kernels without it, rounded up to whole milliseconds).
//! - Application events are collected here and handed to the application's handler only
//!   after the reactor released its rings (`Reactor::deliver_parked_events`): the handler may
//!   wake tasks, register fds, or drop sources.
//! - While the executor is busy and never sleeps, the instance is still harvested (without
//!   blocking) at least every `busy_interval`, so the application's sockets are not starved.
//! - At most [`MAX_ROUNDS`] × [`EVENTS`] events are taken per harvest; the rest stay in the
//!   epoll instance for the next one.

use std::{
    cell::{Cell, RefCell},
    io,
    os::unix::io::RawFd,
    time::{Duration, Instant},
};

/// The token glommio's own ring fds carry in the application's epoll instance. An
/// application must not use it for its own fds.
pub const RING_TOKEN: u64 = u64::MAX;

/// Events taken by one `epoll_wait`.
const EVENTS: usize = 256;

/// `epoll_wait` calls per harvest at most (only while each one fills the buffer).
const MAX_ROUNDS: usize = 4;

/// The application's handler of its own events.
pub(crate) type Handler = Box<dyn FnMut(&[libc::epoll_event])>;

/// An executor's parked epoll instance (see the module's doc).
pub(crate) struct EpollPark {
    epfd: RawFd,
    busy_interval: Duration,
    last_harvest: Cell<Instant>,
    /// The kernel has no `epoll_pwait2`: wait with `epoll_wait`'s milliseconds.
    no_pwait2: Cell<bool>,
    buf: RefCell<Vec<libc::epoll_event>>,
    /// Application events harvested and not yet handed over.
    ready: RefCell<Vec<libc::epoll_event>>,
    handler: RefCell<Handler>,
}

impl EpollPark {
    /// Registers `ring_fds` in `epfd` and makes the parked instance, which keeps a duplicate
    /// of `epfd` (closed when the park is dropped).
    pub(crate) fn new(
        epfd: RawFd,
        ring_fds: &[RawFd],
        busy_interval: Duration,
        handler: Handler,
    ) -> io::Result<EpollPark> {
        // Our own duplicate: the instance then lives as long as this executor's park, even
        // if the application closes its fd first (a closed, reused fd number must never be
        // what the executor sleeps on).
        // SAFETY: plain syscall; the duplicate is owned by the returned value.
        let epfd = unsafe { libc::fcntl(epfd, libc::F_DUPFD_CLOEXEC, 0) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let park = EpollPark {
            epfd,
            busy_interval,
            last_harvest: Cell::new(Instant::now()),
            no_pwait2: Cell::new(false),
            buf: RefCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS]),
            ready: RefCell::new(Vec::new()),
            handler: RefCell::new(handler),
        };
        for &fd in ring_fds {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: RING_TOKEN,
            };
            // SAFETY: plain syscall on fds the caller owns; `ev` is valid.
            if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(park)
    }

    /// Whether a busy executor is due to look at the instance.
    pub(crate) fn busy_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_harvest.get()) >= self.busy_interval
    }

    /// Blocks until the instance has an event or `timeout` passed (`None`: no bound), and
    /// keeps the application's events for [`EpollPark::deliver`]. `Some(ZERO)` never
    /// blocks. An interrupted wait (a signal, or io_uring's task work) counts as a wake.
    pub(crate) fn harvest(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut timeout = timeout;
        let mut buf = self.buf.borrow_mut();
        let mut ready = self.ready.borrow_mut();
        for _ in 0..MAX_ROUNDS {
            let n = self.epoll_wait(&mut buf, timeout);
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    break;
                }
                return Err(e);
            }
            let n = n as usize;
            ready.extend(buf[..n].iter().filter(|ev| { ev.u64 } != RING_TOKEN).copied());
            if n < buf.len() {
                break;
            }
            timeout = Some(Duration::ZERO);
        }
        self.last_harvest.set(Instant::now());
        Ok(())
    }

    /// One wait, to the nanosecond with `epoll_pwait2` (Linux 5.11), else to the
    /// millisecond, rounded up (a wake before the timer is due would only sleep again).
    fn epoll_wait(&self, buf: &mut [libc::epoll_event], timeout: Option<Duration>) -> i32 {
        let max = buf.len() as i32;
        if !self.no_pwait2.get() {
            let ts = timeout.map(|d| libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            });
            let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `buf` has room for `max` events; `tsp` is null or a live timespec;
            // no signal mask.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.epfd,
                    buf.as_mut_ptr(),
                    max,
                    tsp,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            } as i32;
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
                return n;
            }
            self.no_pwait2.set(true);
        }
        let ms = match timeout {
            None => -1,
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        // SAFETY: `buf` has room for `max` events.
        unsafe { libc::epoll_wait(self.epfd, buf.as_mut_ptr(), max, ms) }
    }

    /// Whether application events wait for [`EpollPark::deliver`].
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    /// Hands the harvested application events to the handler. Call with no reactor state
    /// borrowed: the handler may do anything a task may, except park the executor again.
    pub(crate) fn deliver(&self) {
        if !self.has_ready() {
            return;
        }
        let mut events = std::mem::take(&mut *self.ready.borrow_mut());
        (self.handler.borrow_mut())(&events);
        // Nothing harvests while the handler runs: give the buffer back, emptied, so that
        // a harvest does not allocate.
        events.clear();
        *self.ready.borrow_mut() = events;
    }
}

impl Drop for EpollPark {
    fn drop(&mut self) {
        // SAFETY: our own duplicate, closed once.
        unsafe { libc::close(self.epfd) };
    }
}
