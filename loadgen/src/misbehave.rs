//! The few misbehaving clients of a soak, on one thread, for its whole length: a slow reader
//! (follows a fleet room but reads only 20 KiB/s), a never-reader (follows every fleet room
//! with a tiny receive buffer and never reads; comes back whenever the server releases it),
//! and a garbage sender (one new connection with invalid input per second).
//!
//! They exist to show that what they do stays their own problem: the crowd's figures must
//! not move because of them. Counters are atomics the soak reads at each minute's end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::attack::{self, garbage_once, GarbageKind};
use crate::sim::Rng;
use crate::sys;
use crate::ws::{self, Parse};

/// Bytes the slow reader reads per 100 ms.
const SLOW_READ: usize = 2 * 1024;

#[derive(Debug, Default)]
pub struct Counters {
    pub slow_bytes: AtomicU64,
    pub slow_messages: AtomicU64,
    pub slow_gap_notices: AtomicU64,
    /// Times the server closed the slow reader.
    pub slow_closed: AtomicU64,
    pub never_connections: AtomicU64,
    /// Times the server released the never-reader's socket.
    pub never_released: AtomicU64,
    pub garbage_connections: AtomicU64,
    pub garbage_refused: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Snapshot {
    pub slow_bytes: u64,
    pub slow_messages: u64,
    pub slow_gap_notices: u64,
    pub slow_closed: u64,
    pub never_connections: u64,
    pub never_released: u64,
    pub garbage_connections: u64,
    pub garbage_refused: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            slow_bytes: self.slow_bytes.load(Relaxed),
            slow_messages: self.slow_messages.load(Relaxed),
            slow_gap_notices: self.slow_gap_notices.load(Relaxed),
            slow_closed: self.slow_closed.load(Relaxed),
            never_connections: self.never_connections.load(Relaxed),
            never_released: self.never_released.load(Relaxed),
            garbage_connections: self.garbage_connections.load(Relaxed),
            garbage_refused: self.garbage_refused.load(Relaxed),
        }
    }
}

impl Snapshot {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            slow_bytes: self.slow_bytes - earlier.slow_bytes,
            slow_messages: self.slow_messages - earlier.slow_messages,
            slow_gap_notices: self.slow_gap_notices - earlier.slow_gap_notices,
            slow_closed: self.slow_closed - earlier.slow_closed,
            never_connections: self.never_connections - earlier.never_connections,
            never_released: self.never_released - earlier.never_released,
            garbage_connections: self.garbage_connections - earlier.garbage_connections,
            garbage_refused: self.garbage_refused - earlier.garbage_refused,
        }
    }
}

/// Runs until `until` or `stop`; `slow_room` is followed by the slow reader, `all_rooms` by
/// the never-reader.
pub fn run(
    addr: SocketAddr,
    slow_room: String,
    all_rooms: Vec<String>,
    until: Instant,
    stop: Arc<AtomicBool>,
    c: Arc<Counters>,
) {
    let mut rng = Rng::new(0xbadc0de);
    let mut slow: Option<(TcpStream, Vec<u8>)> = None;
    let mut never: Option<TcpStream> = None;
    let (mut next_slow, mut next_never, mut next_garbage) = (Instant::now(), Instant::now(), Instant::now());
    let mut kind = 0usize;
    let mut chunk = vec![0u8; SLOW_READ];
    while Instant::now() < until && !stop.load(Relaxed) {
        let now = Instant::now();
        if now >= next_slow {
            next_slow = now + Duration::from_millis(100);
            if slow.is_none() {
                slow = subscribe(addr, std::slice::from_ref(&slow_room), Some(8 * 1024), &mut rng)
                    .map(|s| (s, Vec::new()));
            }
            if let Some((s, buf)) = &mut slow {
                if !slow_read(s, buf, &mut chunk, &c) {
                    c.slow_closed.fetch_add(1, Relaxed);
                    if let Some((s, _)) = slow.take() {
                        attack::abort(s);
                    }
                    next_slow = now + Duration::from_secs(1);
                }
            }
        }
        if now >= next_never {
            next_never = now + Duration::from_secs(1);
            match &never {
                None => {
                    never = subscribe(addr, &all_rooms, Some(attack::TINY_RCVBUF), &mut rng);
                    c.never_connections.fetch_add(never.is_some() as u64, Relaxed);
                }
                Some(s) if !held_by_server(addr, s) => {
                    c.never_released.fetch_add(1, Relaxed);
                    if let Some(s) = never.take() {
                        attack::abort(s);
                    }
                }
                Some(_) => {}
            }
        }
        if now >= next_garbage {
            next_garbage = now + Duration::from_secs(1);
            let g = garbage_once(addr, GarbageKind::ALL[kind % GarbageKind::ALL.len()], &mut rng);
            kind += 1;
            c.garbage_connections.fetch_add(1, Relaxed);
            c.garbage_refused.fetch_add(g.refused as u64, Relaxed);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some((s, _)) = slow {
        attack::abort(s);
    }
    if let Some(s) = never {
        attack::abort(s);
    }
}

/// A `/ws` connection following `rooms`; None if it could not be set up (tried again later).
fn subscribe(addr: SocketAddr, rooms: &[String], rcvbuf: Option<usize>, rng: &mut Rng) -> Option<TcpStream> {
    let (s, _) = attack::ws_connect(addr, "/ws", rcvbuf, rng).ok()?;
    let mut out = Vec::new();
    for r in rooms {
        attack::sub_frame(&mut out, r, rng);
    }
    (&s).write_all(&out).ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// Reads at most `SLOW_READ` bytes and counts whole frames; false once the server closed it.
fn slow_read(s: &TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8], c: &Counters) -> bool {
    let n = match (&*s).read(chunk) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(e) if attack::would_block(&e) => return true,
        Err(_) => return false,
    };
    c.slow_bytes.fetch_add(n as u64, Relaxed);
    buf.extend_from_slice(&chunk[..n]);
    let mut pos = 0;
    while let Parse::Frame(f, used) = ws::parse_frame(&buf[pos..]) {
        pos += used;
        match f.opcode {
            ws::OP_CLOSE => return false,
            ws::OP_TEXT if f.payload.starts_with(br#"{"op":"gap""#) => {
                c.slow_gap_notices.fetch_add(1, Relaxed);
            }
            ws::OP_TEXT if f.payload.starts_with(br#"{"room""#) => {
                c.slow_messages.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
    buf.drain(..pos);
    true
}

/// The server still has a process-owned socket for our connection (/proc/net/tcp).
fn held_by_server(addr: SocketAddr, s: &TcpStream) -> bool {
    match (addr, s.local_addr()) {
        (SocketAddr::V4(srv), Ok(SocketAddr::V4(me))) => {
            sys::tcp_entry(srv, me).is_some_and(|e| e.inode != 0)
        }
        _ => true,
    }
}
