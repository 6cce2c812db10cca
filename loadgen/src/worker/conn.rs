//! A worker's connections: what to open ([`ConnSpec`]), their state, and the socket side of
//! the event loop — non-blocking connect, the upgrade handshake, writes, reads and frame
//! splitting. What a complete frame means is [`super::delivery`]'s business.
//!
//! Invariant: a connection in `Connecting`/`Handshake` is counted in `Worker::connecting`,
//! and every connection is counted exactly once in `Shared::conns_done` (when it opens or
//! fails during setup), so the runner's setup wait always terminates.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::*;

use super::{Worker, MAX_CONNECTING_PER_THREAD, READ_BUF};
use crate::sys;
use crate::ws::{self, Handshake, Parse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proto {
    /// shardcast's multiplexed `/ws` (sub/pub ops, envelopes).
    Mux,
    /// One connection per room, raw payloads.
    PerRoom,
}

/// A connection to open.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// Publisher id for publisher connections.
    pub publisher: Option<u32>,
    /// Global room ids: subscriptions (subscriber) or the rooms published into over this
    /// connection (publisher).
    pub rooms: Vec<u32>,
    pub path: String,
    pub src: Option<Ipv4Addr>,
    /// Which target (cluster node) it connects to: an index into the worker's nodes.
    pub node: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
    Pending,
    Connecting,
    Handshake,
    Open,
    Closed,
}

pub(super) const SLOT_PENDING: u8 = 0;
pub(super) const SLOT_OK: u8 = 1;
pub(super) const SLOT_DEAD: u8 = 2;
/// `seq_last` of a subscription whose base the client does not know yet.
pub(super) const SEQ_UNKNOWN: u64 = u64::MAX;
/// The first request id of a connection (`next_id`); above the `sub` ids (1..=rooms).
pub(super) const FIRST_PUB_ID: u64 = 1_000_000;

pub(super) struct Conn {
    pub(super) fd: RawFd,
    pub(super) st: St,
    pub(super) spec: ConnSpec,
    pub(super) accept: String,
    pub(super) slot_state: Vec<u8>,
    /// Per slot: publisher id → last seq seen.
    pub(super) last: Vec<HashMap<u32, u64>>,
    /// Per slot (`/ws` only): the room's highest `seq` seen, from the `ok` of the `sub` on
    /// ([`SEQ_UNKNOWN`] before), to count holes and, at the end, acknowledged publishes
    /// never delivered.
    pub(super) seq_last: Vec<u64>,
    pub(super) room_map: HashMap<Box<[u8]>, u32>,
    pub(super) leftover: Vec<u8>,
    pub(super) need: usize,
    pub(super) out: Vec<u8>,
    pub(super) frag: Vec<u8>,
    pub(super) want_out: bool,
    pub(super) next_id: u64,
}

impl Worker {
    pub(super) fn start_connects(&mut self) {
        while self.connecting < MAX_CONNECTING_PER_THREAD && self.next_start < self.conns.len() {
            let i = self.next_start;
            self.next_start += 1;
            let dst = self.nodes[self.conns[i].spec.node].dst;
            match sys::connect_nonblocking(dst, self.conns[i].spec.src) {
                Ok(fd) => {
                    let c = &mut self.conns[i];
                    c.fd = fd;
                    c.st = St::Connecting;
                    self.connecting += 1;
                    let ev = (libc::EPOLLOUT | libc::EPOLLIN) as u32;
                    if let Err(e) = self.ep.add(fd, ev, i as u64) {
                        self.fail(i, format!("epoll_ctl: {e}"));
                    }
                }
                Err(e) => {
                    self.conns[i].st = St::Connecting;
                    self.connecting += 1;
                    self.fail(i, format!("connect {dst}: {e}"));
                }
            }
        }
    }

    /// A connection that never finished setting up (or broke during it).
    pub(super) fn fail(&mut self, i: usize, why: String) {
        let c = &mut self.conns[i];
        if matches!(c.st, St::Closed) {
            return;
        }
        let setting_up = matches!(c.st, St::Pending | St::Connecting | St::Handshake);
        if c.fd >= 0 {
            sys::close_abort(c.fd);
            c.fd = -1;
        }
        let was = c.st;
        c.st = St::Closed;
        let dead_slots = c.slot_state.iter().filter(|&&s| s == SLOT_PENDING).count();
        for s in &mut c.slot_state {
            if *s == SLOT_PENDING {
                *s = SLOT_DEAD;
            }
        }
        if setting_up {
            if matches!(was, St::Connecting | St::Handshake) {
                self.connecting -= 1;
            }
            self.stats.connect_failures += 1;
            self.stats.error(|| why);
            self.sh.conns_done.fetch_add(1, SeqCst);
        } else {
            self.stats.disconnects += 1;
            self.stats.error(|| why);
            if dead_slots > 0 && !self.running {
                self.stats.sub_failures += dead_slots as u64;
            }
        }
        if dead_slots > 0 && !self.running {
            self.sh.slots_done.fetch_add(dead_slots, SeqCst);
        }
    }

    pub(super) fn on_event(&mut self, i: usize, flags: u32, rbuf: &mut Vec<u8>) {
        if i >= self.conns.len() || self.conns[i].st == St::Closed {
            return;
        }
        if self.conns[i].st == St::Connecting {
            let node = &self.nodes[self.conns[i].spec.node];
            if let Err(e) = sys::socket_error(self.conns[i].fd) {
                let dst = node.dst;
                self.fail(i, format!("connect {dst}: {e}"));
                return;
            }
            if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                return;
            }
            let url = ws::WsUrl {
                host: node.host.clone(),
                port: node.dst.port(),
                path: self.conns[i].spec.path.clone(),
            };
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            key[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            let (req, accept) = ws::handshake_request(&url, key);
            let c = &mut self.conns[i];
            c.accept = accept;
            c.out.extend_from_slice(&req);
            c.st = St::Handshake;
            c.want_out = true; // registered with EPOLLOUT; flush() settles it
            self.flush(i);
            return;
        }
        if flags & libc::EPOLLOUT as u32 != 0 {
            self.flush(i);
        }
        if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            self.read_conn(i, rbuf);
        }
    }

    pub(super) fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.fd < 0 {
            return;
        }
        if let Err(e) = sys::send_pending(c.fd, &mut c.out) {
            self.fail(i, format!("write: {e}"));
            return;
        }
        let _ = self.ep.want_write(c.fd, i as u64, !c.out.is_empty(), &mut c.want_out);
    }

    pub(super) fn read_conn(&mut self, i: usize, rb: &mut Vec<u8>) {
        loop {
            let c = &mut self.conns[i];
            if c.fd < 0 {
                return;
            }
            let l = c.leftover.len();
            if l + 4096 > rb.len() || c.need > rb.len() {
                let n = (rb.len() * 2).max(c.need).max(l + READ_BUF);
                rb.resize(n, 0);
            }
            rb[..l].copy_from_slice(&c.leftover);
            c.leftover.clear();
            match sys::read(c.fd, &mut rb[l..]) {
                Ok(0) => {
                    self.fail(i, "server closed the connection".into());
                    return;
                }
                Ok(n) => {
                    let now = sys::mono_ns();
                    let total = l + n;
                    let used = self.process(i, &rb[..total], now);
                    let c = &mut self.conns[i];
                    if c.st == St::Closed {
                        return;
                    }
                    c.leftover.extend_from_slice(&rb[used..total]);
                    if total < rb.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    c.leftover.extend_from_slice(&rb[..l]);
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    c.leftover.extend_from_slice(&rb[..l]);
                }
                Err(e) => {
                    self.fail(i, format!("read: {e}"));
                    return;
                }
            }
        }
    }

    /// Handles the bytes in `buf`; returns how many were consumed.
    pub(super) fn process(&mut self, i: usize, buf: &[u8], now: u64) -> usize {
        let mut pos = 0;
        if self.conns[i].st == St::Handshake {
            match ws::parse_handshake_response(buf, &self.conns[i].accept) {
                Handshake::Incomplete => return 0,
                Handshake::Failed(why) => {
                    let host = &self.nodes[self.conns[i].spec.node].host;
                    self.fail(i, format!("handshake with {host}{}: {why}", self.conns[i].spec.path));
                    return buf.len();
                }
                Handshake::Done(n) => {
                    pos = n;
                    self.on_open(i);
                }
            }
        }
        while pos < buf.len() {
            match ws::parse_frame(&buf[pos..]) {
                Parse::Frame(f, n) => {
                    pos += n;
                    self.on_frame(i, f, now);
                    if self.conns[i].st == St::Closed {
                        return buf.len();
                    }
                }
                Parse::Incomplete(need) => {
                    self.conns[i].need = need;
                    return pos;
                }
                Parse::Error(e) => {
                    self.fail(i, format!("protocol error from server: {e}"));
                    return buf.len();
                }
            }
        }
        self.conns[i].need = 0;
        pos
    }
}
