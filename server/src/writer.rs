//! The connection's writer: takes every frame queued in the outbox and writes them with one
//! vectored `sendmsg` — the lever that matters most, since the kernel costs ~6 µs per write
//! call but well under 1 µs per frame when many frames share a call.
//!
//! The frames are the engine's shared buffers: the iovecs point straight into them, so
//! nothing is copied in user space. The fast path is a non-blocking `sendmsg`
//! (`MSG_DONTWAIT`); only when the socket buffer is full does the writer wait for
//! writability, from the shard's epoll instance ([`crate::readiness`]).
//!
//! Every wait for writability has a deadline: a socket that accepts no byte for the write
//! timeout (a client that stopped reading, a half-open peer) ends the connection with
//! [`io::ErrorKind::TimedOut`], whatever the slow-consumer policy; once the outbox is closed
//! (policy or shutdown), its last frames get at most [`CLOSE_LINGER`]. The caller then
//! resets the socket ([`reset_on_close`]) so the kernel frees its unsent bytes at once.

use futures_lite::future::{or, poll_fn};
use shardcast_engine::outbox::Entry;
use shardcast_engine::{DeliveryMode, Subscriber};
use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::readiness::Socket;
use crate::state::ShardCtx;

/// Most frames one `sendmsg` carries (the kernel's IOV_MAX).
const MAX_IOV: usize = 1024;

/// The most a closed connection's remaining frames (ending with its close frame) may take
/// to leave once its socket stalls: the slow-consumer policy has already given up on it.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How often a stalled writer re-checks whether its outbox was closed meanwhile.
const STALL_TICK: Duration = Duration::from_secs(1);

/// The batch and iovec buffers a shard's writers borrow for one write each, so that a
/// write costs no allocation (a fan-out writes once per subscriber) and an idle writer
/// holds none. A writer takes them, fills, sends and clears them, and puts them back; one
/// that must wait for writability keeps its own meanwhile, and a writer that finds them
/// taken starts from empty ones (the last put back is kept). Each holds at most
/// [`MAX_IOV`] entries' capacity: a few tens of KiB per shard.
#[derive(Default)]
pub struct Scratch {
    batch: Cell<Vec<Entry>>,
    iov: Cell<Vec<libc::iovec>>,
}

impl Scratch {
    fn put(&self, mut batch: Vec<Entry>, mut iov: Vec<libc::iovec>) {
        // Cleared first: the batch's frames are shared buffers, released now.
        batch.clear();
        iov.clear();
        self.batch.set(batch);
        self.iov.set(iov);
    }
}

/// Writes until the outbox is closed and drained (Ok) or the socket fails (Err); a socket
/// that accepts nothing for the write timeout fails with `TimedOut`.
///
/// Every session holds this future while idle: it keeps one reference to the shard's
/// context, not one each to the parts it uses (the shard, its scratch buffers, its
/// deferrals, the timeout): each kept reference is 8 bytes in every idle session. The
/// coalescing wait is the shard's [`Deferrals`](crate::deferral::Deferrals), not a timer
/// each. A batch is written without waiting ([`Batch::send_now`]); only a writer whose
/// socket is full keeps its batch across a wait, in a boxed future ([`finish_stalled`]),
/// so the batch's buffers and cursor are not part of every idle writer (136 → 80 bytes).
/// No `async fn`: that keeps its arguments twice.
#[allow(clippy::manual_async_fn)]
pub fn run<'a>(
    socket: &'a Socket,
    sub: &'a Subscriber,
    ctx: &'a ShardCtx,
) -> impl std::future::Future<Output = io::Result<()>> + 'a {
    async move {
        loop {
            // Wait for something to send, then (if this connection wrote less than the
            // coalescing window ago) for the window to pass, so the rest of the burst joins.
            if !poll_fn(|cx| sub.poll_ready(cx)).await {
                return Ok(());
            }
            let mut due = sub.write_due(ctx.shard.coalesce_window());
            while let Some(at) = due {
                ctx.deferrals.until(at).await;
                due = sub.write_due_after(ctx.shard.coalesce_window(), at);
            }
            // A block, so that no batch outlives it: what is left of a stalled one moves
            // into the boxed future awaited below.
            let stalled = {
                let scratch = &ctx.write_scratch;
                let mut b = Batch { frames: scratch.batch.take(), iov: scratch.iov.take(), idx: 0, off: 0 };
                match sub.take(&mut b.frames, MAX_IOV) {
                    // Nothing queued: a fan-out wrote the whole queue inline while this
                    // writer waited.
                    None => {
                        scratch.put(b.frames, b.iov);
                        continue;
                    }
                    Some(false) => return Ok(()),
                    Some(true) => {}
                }
                if b.send_now(socket.as_raw_fd(), sub.mode())? {
                    sub.batch_written();
                    scratch.put(b.frames, b.iov);
                    None
                } else {
                    Some(Box::pin(finish_stalled(socket, sub, ctx, b)))
                }
            };
            if let Some(rest) = stalled {
                rest.await?;
            }
        }
    }
}

/// Frames taken from the outbox for one write, and how far they have gone out.
struct Batch {
    frames: Vec<Entry>,
    iov: Vec<libc::iovec>,
    /// The first frame not fully written, and the bytes of it that were.
    idx: usize,
    off: usize,
}

impl Batch {
    /// Writes what the socket takes now, in vectored `sendmsg`s: Ok(true) when all of the
    /// batch is out, Ok(false) when the socket buffer is full first.
    fn send_now(&mut self, fd: i32, mode: DeliveryMode) -> io::Result<bool> {
        while self.idx < self.frames.len() {
            self.iov.clear();
            for (i, e) in self.frames[self.idx..].iter().enumerate() {
                let b = &e.bytes(mode)[if i == 0 { self.off } else { 0 }..];
                self.iov.push(libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: b.len() });
            }
            match send_vectored(fd, &self.iov) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => advance(&self.frames, mode, &mut self.idx, &mut self.off, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// The rest of a batch whose socket filled up: waits for writability and sends what is
/// left of the current frame alone (within the write timeout), then the rest as the
/// socket takes it.
async fn finish_stalled(socket: &Socket, sub: &Subscriber, ctx: &ShardCtx, mut b: Batch) -> io::Result<()> {
    let (mode, fd) = (sub.mode(), socket.as_raw_fd());
    loop {
        let chunk = &b.frames[b.idx].bytes(mode)[b.off..];
        let n = write_within(socket, chunk, sub, ctx.shared.config.write_timeout).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        advance(&b.frames, mode, &mut b.idx, &mut b.off, n);
        if b.send_now(fd, mode)? {
            sub.batch_written();
            ctx.write_scratch.put(b.frames, b.iov);
            return Ok(());
        }
    }
}

/// Writes some of `chunk` once the socket takes it, or fails with `TimedOut` when it takes
/// nothing for `timeout` (for [`CLOSE_LINGER`] once the outbox is closed).
async fn write_within(
    socket: &Socket,
    chunk: &[u8],
    sub: &Subscriber,
    timeout: Duration,
) -> io::Result<usize> {
    let start = Instant::now();
    let mut closed_at = None;
    loop {
        if sub.is_closed() {
            closed_at.get_or_insert_with(Instant::now);
        }
        let deadline = match closed_at {
            Some(c) => (start + timeout).min(c + CLOSE_LINGER),
            None => start + timeout,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let write = async { Some(socket.write(chunk).await) };
        let tick = async {
            glommio::timer::sleep(left.min(STALL_TICK)).await;
            None
        };
        if let Some(r) = or(write, tick).await {
            return r;
        }
    }
}

/// Makes the socket's close a reset (`SO_LINGER` 0): a peer that stopped reading would
/// otherwise keep the kernel holding, and retrying, its unsent bytes long after we gave up.
pub fn reset_on_close(fd: i32) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid option struct of the size passed, on a socket we own.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// The subscriber's write-through: one non-blocking `send` of a frame on `fd` (a vectored
/// `sendmsg` for several), taking what the socket buffer accepts. Never waits; `None` when
/// nothing went out.
pub fn direct(fd: i32) -> shardcast_engine::subscriber::DirectWrite {
    shardcast_engine::subscriber::DirectWrite { write: send_now, fd }
}

/// Writes `bufs` to `fd` without waiting, for [`direct`].
fn send_now(fd: i32, bufs: &[std::io::IoSlice<'_>]) -> Option<usize> {
    let r = if let [b] = bufs {
        // SAFETY: `b` is a live slice; the session clears this hook before closing `fd`.
        unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) }
    } else {
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix, and the slices outlive
        // the call.
        let iov = unsafe { std::slice::from_raw_parts(bufs.as_ptr().cast::<libc::iovec>(), bufs.len()) };
        match send_vectored(fd, iov) {
            Ok(n) => n as isize,
            Err(_) => -1,
        }
    };
    (r > 0).then_some(r as usize)
}

/// Moves the (frame, offset) cursor forward by `n` written bytes.
fn advance(batch: &[Entry], mode: DeliveryMode, idx: &mut usize, off: &mut usize, mut n: usize) {
    while n > 0 && *idx < batch.len() {
        let left = batch[*idx].bytes(mode).len() - *off;
        if n >= left {
            n -= left;
            *idx += 1;
            *off = 0;
        } else {
            *off += n;
            n = 0;
        }
    }
}

fn send_vectored(fd: i32, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: the iovecs point into `Bytes` the caller keeps alive for the whole call; the
    // msghdr names no address and no control data.
    let r = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn advance_walks_across_frames() {
        let batch: Vec<Entry> =
            [&b"abc"[..], b"de", b"fghi"].iter().map(|b| Entry::Ctrl(Bytes::copy_from_slice(b))).collect();
        let (mut i, mut o) = (0, 0);
        advance(&batch, DeliveryMode::Envelope, &mut i, &mut o, 4);
        assert_eq!((i, o), (1, 1));
        advance(&batch, DeliveryMode::Envelope, &mut i, &mut o, 1);
        assert_eq!((i, o), (2, 0));
        advance(&batch, DeliveryMode::Envelope, &mut i, &mut o, 4);
        assert_eq!((i, o), (3, 0));
    }
}
