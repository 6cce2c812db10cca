//! One thread's WebSocket clients for the tracking scenarios: non-blocking connects and
//! handshakes (at most [`MAX_CONNECTING`] at a time), masked text frames out, server frames
//! in (pings answered), every received frame handed to the caller with its wire size, and a
//! timerfd for the open-loop schedules. Built on the loadgen's [`crate::ws`] and
//! [`crate::sys`] pieces, like the workers, but without their scenario bookkeeping: each
//! tracking mode decides what a frame means.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::sim::Rng;
use crate::sys;
use crate::ws::{self, Handshake, Parse};

const MAX_CONNECTING: usize = 256;
const TIMER: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Pending,
    Connecting,
    Handshake,
    Open,
    Closed,
}

struct Client {
    fd: RawFd,
    st: St,
    accept: String,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    want_out: bool,
}

/// Counters every mode reports.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct NetCounters {
    pub connect_failures: u64,
    pub disconnects: u64,
    pub first_error: Option<String>,
}

pub struct Net {
    ep: sys::Epoll,
    timer: sys::TimerFd,
    clients: Vec<Client>,
    dst: SocketAddr,
    host: String,
    path: String,
    rng: Rng,
    connecting: usize,
    next_start: usize,
    rb: Vec<u8>,
    pub counters: NetCounters,
}

impl Net {
    pub fn new(url: &str) -> Result<Net> {
        let u = ws::WsUrl::parse(url)?;
        let dst = ws::WsUrl::loopback_addr(url)?;
        sys::raise_nofile();
        crate::runner::epoch(); // the payloads' clock starts no later than the first frame
        let ep = sys::Epoll::new()?;
        let timer = sys::TimerFd::new()?;
        ep.add(timer.0, libc::EPOLLIN as u32, TIMER)?;
        Ok(Net {
            ep,
            timer,
            clients: Vec::new(),
            dst,
            host: u.host,
            path: u.path,
            rng: Rng::new(sys::mono_ns()),
            connecting: 0,
            next_start: 0,
            rb: vec![0u8; 64 * 1024],
            counters: NetCounters::default(),
        })
    }

    /// Adds `n` clients (not yet connected); returns the index of the first.
    pub fn add(&mut self, n: usize) -> usize {
        let first = self.clients.len();
        for _ in 0..n {
            self.clients.push(Client {
                fd: -1,
                st: St::Pending,
                accept: String::new(),
                inbuf: Vec::new(),
                out: Vec::new(),
                want_out: false,
            });
        }
        first
    }

    pub fn is_open(&self, i: usize) -> bool {
        self.clients[i].st == St::Open
    }

    /// Connects every pending client (handshakes included) within `timeout`; frames that
    /// arrive meanwhile go to `on_frame`. Fails if none could connect.
    pub fn connect_all(
        &mut self,
        timeout: Duration,
        on_frame: &mut impl FnMut(usize, &[u8], usize, u64),
    ) -> Result<()> {
        let end = sys::mono_ns() + timeout.as_nanos() as u64;
        loop {
            self.start_connects();
            let waiting =
                self.clients.iter().any(|c| matches!(c.st, St::Pending | St::Connecting | St::Handshake));
            if !waiting {
                break;
            }
            if sys::mono_ns() > end {
                bail!("connections not set up within {timeout:?}: {:?}", self.counters.first_error);
            }
            self.poll(10, on_frame, &mut |_| {});
        }
        if !self.clients.iter().any(|c| c.st == St::Open) {
            bail!("cannot reach the server at {}: {:?}", self.dst, self.counters.first_error);
        }
        Ok(())
    }

    fn start_connects(&mut self) {
        while self.connecting < MAX_CONNECTING && self.next_start < self.clients.len() {
            let i = self.next_start;
            self.next_start += 1;
            match sys::connect_nonblocking(self.dst, None) {
                Ok(fd) => {
                    self.clients[i].fd = fd;
                    self.clients[i].st = St::Connecting;
                    self.connecting += 1;
                    if let Err(e) = self.ep.add(fd, (libc::EPOLLOUT | libc::EPOLLIN) as u32, i as u64) {
                        self.fail(i, format!("epoll_ctl: {e}"));
                    }
                }
                Err(e) => {
                    self.clients[i].st = St::Closed;
                    self.counters.connect_failures += 1;
                    self.error(format!("connect {}: {e}", self.dst));
                }
            }
        }
    }

    fn error(&mut self, why: String) {
        if self.counters.first_error.is_none() {
            self.counters.first_error = Some(why);
        }
    }

    fn fail(&mut self, i: usize, why: String) {
        let c = &mut self.clients[i];
        if c.st == St::Closed {
            return;
        }
        if c.fd >= 0 {
            sys::close_abort(c.fd);
            c.fd = -1;
        }
        let setting_up = matches!(c.st, St::Connecting | St::Handshake);
        c.st = St::Closed;
        if setting_up {
            self.connecting -= 1;
            self.counters.connect_failures += 1;
        } else {
            self.counters.disconnects += 1;
        }
        self.error(why);
    }

    /// Queues a masked text frame for client `i` and writes what the socket takes.
    pub fn send_text(&mut self, i: usize, text: &[u8]) {
        if self.clients[i].st != St::Open {
            return;
        }
        let mask = (self.rng.next_u64() as u32).to_ne_bytes();
        ws::encode_client_frame(&mut self.clients[i].out, ws::OP_TEXT, text, mask);
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if c.fd < 0 {
            return;
        }
        if let Err(e) = sys::send_pending(c.fd, &mut c.out) {
            self.fail(i, format!("write: {e}"));
            return;
        }
        let _ = self.ep.want_write(c.fd, i as u64, !c.out.is_empty(), &mut c.want_out);
    }

    /// Arms the timer for an absolute monotonic deadline (ns); `on_timer` of [`Net::poll`]
    /// runs once it passes.
    pub fn arm(&self, deadline_ns: u64) {
        self.timer.arm_at(deadline_ns);
    }

    /// One epoll round (at most `timeout_ms`): every complete text/binary frame goes to
    /// `on_frame(client, payload, wire bytes, now)`; a timer expiry calls `on_timer(now)`.
    pub fn poll(
        &mut self,
        timeout_ms: i32,
        on_frame: &mut impl FnMut(usize, &[u8], usize, u64),
        on_timer: &mut impl FnMut(u64),
    ) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 256];
        let n = self.ep.wait(&mut evs, timeout_ms);
        let mut rb = std::mem::take(&mut self.rb);
        for ev in &evs[..n] {
            let (tok, flags) = (ev.u64, ev.events);
            if tok == TIMER {
                self.timer.drain();
                on_timer(sys::mono_ns());
                continue;
            }
            let i = tok as usize;
            if i >= self.clients.len() || self.clients[i].st == St::Closed {
                continue;
            }
            if self.clients[i].st == St::Connecting {
                if let Err(e) = sys::socket_error(self.clients[i].fd) {
                    self.fail(i, format!("connect {}: {e}", self.dst));
                    continue;
                }
                if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                    continue;
                }
                let url =
                    ws::WsUrl { host: self.host.clone(), port: self.dst.port(), path: self.path.clone() };
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
                key[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
                let (req, accept) = ws::handshake_request(&url, key);
                let c = &mut self.clients[i];
                c.accept = accept;
                c.out.extend_from_slice(&req);
                c.st = St::Handshake;
                c.want_out = true;
                self.flush(i);
                continue;
            }
            if flags & libc::EPOLLOUT as u32 != 0 {
                self.flush(i);
            }
            if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                self.read(i, &mut rb, on_frame);
            }
        }
        self.rb = rb;
    }

    fn read(&mut self, i: usize, rb: &mut [u8], on_frame: &mut impl FnMut(usize, &[u8], usize, u64)) {
        loop {
            let fd = self.clients[i].fd;
            if fd < 0 {
                return;
            }
            match sys::read(fd, rb) {
                Ok(0) => {
                    self.fail(i, "server closed the connection".into());
                    return;
                }
                Ok(n) => {
                    let now = sys::mono_ns();
                    self.clients[i].inbuf.extend_from_slice(&rb[..n]);
                    self.process(i, now, on_frame);
                    if n < rb.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(i, format!("read: {e}"));
                    return;
                }
            }
        }
    }

    fn process(&mut self, i: usize, now: u64, on_frame: &mut impl FnMut(usize, &[u8], usize, u64)) {
        let mut buf = std::mem::take(&mut self.clients[i].inbuf);
        let mut pos = 0;
        if self.clients[i].st == St::Handshake {
            match ws::parse_handshake_response(&buf, &self.clients[i].accept) {
                Handshake::Incomplete => {
                    self.clients[i].inbuf = buf;
                    return;
                }
                Handshake::Failed(why) => {
                    self.fail(i, format!("handshake: {why}"));
                    return;
                }
                Handshake::Done(n) => {
                    pos = n;
                    self.clients[i].st = St::Open;
                    self.connecting -= 1;
                }
            }
        }
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        let mut close = None;
        while pos < buf.len() {
            match ws::parse_frame(&buf[pos..]) {
                Parse::Frame(f, n) => {
                    pos += n;
                    match f.opcode {
                        ws::OP_TEXT | ws::OP_BINARY => on_frame(i, f.payload, n, now),
                        ws::OP_PING => pongs.push(f.payload.to_vec()),
                        ws::OP_CLOSE => {
                            close = Some("server sent close".to_string());
                            break;
                        }
                        _ => {}
                    }
                }
                Parse::Incomplete(_) => break,
                Parse::Error(e) => {
                    close = Some(format!("protocol error from server: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = close {
            self.fail(i, why);
            return;
        }
        buf.drain(..pos);
        self.clients[i].inbuf = buf;
        for p in pongs {
            let mask = (self.rng.next_u64() as u32).to_ne_bytes();
            ws::encode_client_frame(&mut self.clients[i].out, ws::OP_PONG, &p, mask);
            self.flush(i);
        }
    }

    /// Closes every client (RST, no TIME_WAIT).
    pub fn close_all(&mut self) {
        for c in &mut self.clients {
            if c.fd >= 0 {
                sys::close_abort(c.fd);
                c.fd = -1;
            }
            c.st = St::Closed;
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.close_all();
    }
}
