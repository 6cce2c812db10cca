//! One load-generating thread: an epoll loop over many client sockets.
//!
//! A worker owns its connections (publishers and subscribers), a 64 KiB read buffer shared by
//! all of them (a connection keeps only the tail of a frame split across reads), a timer heap
//! for the open-loop publish schedule (armed through a timerfd for sub-millisecond precision)
//! and its own [`Stats`]. The only shared state is [`Shared`]: phase flags, live counters for
//! the progress line, confirmed subscribers per room, and the fan-out completion rings.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Arc;

use crate::payload::{classify_mux, stamp, MuxMsg, Stamp};
use crate::scenario::PubSpec;
use crate::sim::{Model, Rng};
use crate::stats::{Stats, HIST_MAX_NS};
use crate::sys;
use crate::ws::{self, Handshake, Parse};

pub const PHASE_SETUP: u8 = 0;
pub const PHASE_RUN: u8 = 1;
pub const PHASE_STOP: u8 = 2;

const TIMER_TOKEN: u64 = u64::MAX;
const MAX_CONNECTING_PER_THREAD: usize = 256;
const READ_BUF: usize = 64 * 1024;

/// Fan-out completion slot for one publish: how many expected deliveries are still missing
/// and the latest receive time so far.
pub struct RingEntry {
    tag: AtomicU64,
    remaining: AtomicU32,
    max_recv: AtomicU64,
}

/// Per publisher: a ring of [`RingEntry`] indexed by `seq & mask`.
pub struct Ring {
    mask: u64,
    entries: Box<[RingEntry]>,
}

impl Ring {
    pub fn new(rate_hz: f64) -> Ring {
        // Cover ≥ 4 s of messages so a slow delivery still finds its entry.
        let n = ((rate_hz * 4.0) as usize).clamp(16, 1 << 16).next_power_of_two();
        let entries = (0..n)
            .map(|_| RingEntry {
                tag: AtomicU64::new(0),
                remaining: AtomicU32::new(0),
                max_recv: AtomicU64::new(0),
            })
            .collect();
        Ring { mask: n as u64 - 1, entries }
    }
}

/// State shared by the runner and all workers.
pub struct Shared {
    pub phase: AtomicU8,
    /// Monotonic ns of the loadgen's start; payload `t` is relative to it.
    pub epoch: u64,
    /// Start of the run (monotonic ns), set before the phase becomes RUN.
    pub t0: AtomicU64,
    pub win_start: AtomicU64,
    pub win_end: AtomicU64,
    pub conns_done: AtomicUsize,
    pub conns_ok: AtomicUsize,
    pub slots_done: AtomicUsize,
    pub room_subs: Vec<AtomicU32>,
    pub rings: Vec<Ring>,
    pub live_sent: AtomicU64,
    pub live_expected: AtomicU64,
    pub live_received: AtomicU64,
}

/// What the target speaks.
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
}

pub struct WorkerInit {
    pub cpu: Option<usize>,
    pub index: usize,
    pub shared: Arc<Shared>,
    pub proto: Proto,
    pub dst: SocketAddr,
    pub host: String,
    pub room_names: Arc<Vec<String>>,
    pub conns: Vec<ConnSpec>,
    pub publishers: Vec<PubSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Pending,
    Connecting,
    Handshake,
    Open,
    Closed,
}

const SLOT_PENDING: u8 = 0;
const SLOT_OK: u8 = 1;
const SLOT_DEAD: u8 = 2;

struct Conn {
    fd: RawFd,
    st: St,
    spec: ConnSpec,
    accept: String,
    slot_state: Vec<u8>,
    /// Per slot: publisher id → last seq seen.
    last: Vec<HashMap<u32, u64>>,
    room_map: HashMap<Box<[u8]>, u32>,
    leftover: Vec<u8>,
    need: usize,
    out: Vec<u8>,
    frag: Vec<u8>,
    want_out: bool,
    next_id: u64,
}

struct LocalPub {
    spec: PubSpec,
    model: Model,
    rng: Rng,
    seq: u64,
    conns: Vec<usize>,
    start_ns: u64,
    period_ns: f64,
    k: u64,
    fanout: u32,
}

struct Worker {
    sh: Arc<Shared>,
    proto: Proto,
    dst: SocketAddr,
    host: String,
    room_names: Arc<Vec<String>>,
    ep: sys::Epoll,
    timer: sys::TimerFd,
    conns: Vec<Conn>,
    pubs: Vec<LocalPub>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    armed: u64,
    next_start: usize,
    connecting: usize,
    rng: Rng,
    stats: Stats,
    pbuf: Vec<u8>,
    t0: u64,
    win_start: u64,
    win_end: u64,
    running: bool,
    // Live counter deltas not yet published to `Shared`.
    d_sent: u64,
    d_expected: u64,
    d_received: u64,
    tracked_fanouts: u64,
    run_cpu0: u64,
}

/// Runs a worker to completion; returns its stats and the number of publishes whose fan-out
/// completion was tracked (for the incomplete count).
pub fn run(init: WorkerInit) -> (Stats, u64) {
    if let Some(cpu) = init.cpu {
        sys::pin_current_thread(cpu);
    }
    let (ep, timer) = match (sys::Epoll::new(), sys::TimerFd::new()) {
        (Ok(e), Ok(t)) => (e, t),
        (Err(e), _) | (_, Err(e)) => {
            let mut s = Stats::new();
            s.error(|| format!("epoll/timerfd: {e}"));
            init.shared.conns_done.fetch_add(init.conns.len(), SeqCst);
            return (s, 0);
        }
    };
    ep.add(timer.0, libc::EPOLLIN as u32, TIMER_TOKEN).expect("register timerfd");
    let mut conns = Vec::with_capacity(init.conns.len());
    let mut by_pub: HashMap<u32, Vec<usize>> = HashMap::new();
    for spec in init.conns {
        if let Some(p) = spec.publisher {
            by_pub.entry(p).or_default().push(conns.len());
        }
        let n = spec.rooms.len();
        let room_map = if init.proto == Proto::Mux && spec.publisher.is_none() && n > 1 {
            spec.rooms
                .iter()
                .enumerate()
                .map(|(i, &r)| (init.room_names[r as usize].as_bytes().into(), i as u32))
                .collect()
        } else {
            HashMap::new()
        };
        conns.push(Conn {
            fd: -1,
            st: St::Pending,
            slot_state: vec![SLOT_PENDING; if spec.publisher.is_some() { 0 } else { n }],
            last: if spec.publisher.is_some() { vec![] } else { vec![HashMap::new(); n] },
            spec,
            accept: String::new(),
            room_map,
            leftover: Vec::new(),
            need: 0,
            out: Vec::new(),
            frag: Vec::new(),
            want_out: false,
            next_id: 1_000_000,
        });
    }
    let mut rng = Rng::new(0x5eed ^ (init.index as u64) << 32);
    let pubs = init
        .publishers
        .into_iter()
        .map(|spec| {
            let mut prng = Rng::new(spec.id as u64 * 7919 + 17);
            LocalPub {
                model: Model::new(spec.kind, &mut prng),
                rng: prng,
                seq: 0,
                conns: by_pub.remove(&spec.id).unwrap_or_default(),
                start_ns: 0,
                period_ns: 1e9 / spec.rate,
                k: 0,
                fanout: 0,
                spec,
            }
        })
        .collect();
    rng.next_u64();
    let mut w = Worker {
        sh: init.shared,
        proto: init.proto,
        dst: init.dst,
        host: init.host,
        room_names: init.room_names,
        ep,
        timer,
        conns,
        pubs,
        heap: BinaryHeap::new(),
        armed: u64::MAX,
        next_start: 0,
        connecting: 0,
        rng,
        stats: Stats::new(),
        pbuf: Vec::with_capacity(1024),
        t0: 0,
        win_start: 0,
        win_end: 0,
        running: false,
        d_sent: 0,
        d_expected: 0,
        d_received: 0,
        tracked_fanouts: 0,
        run_cpu0: 0,
    };
    w.event_loop();
    w.stats.run_cpu0 = w.run_cpu0;
    (w.stats, w.tracked_fanouts)
}

impl Worker {
    fn event_loop(&mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut rbuf = vec![0u8; READ_BUF];
        let mut cur_sec = 0usize;
        let mut win_cpu_start = None;
        let mut win_done = false;
        loop {
            let phase = self.sh.phase.load(Acquire);
            if phase == PHASE_STOP {
                break;
            }
            if phase == PHASE_SETUP {
                self.start_connects();
            } else if !self.running {
                self.begin_run();
            }
            let n = self.ep.wait(&mut events, 5);
            for ev in &events[..n] {
                let (flags, token) = (ev.events, ev.u64);
                if token == TIMER_TOKEN {
                    self.timer.drain();
                    self.armed = u64::MAX;
                } else {
                    self.on_event(token as usize, flags, &mut rbuf);
                    // Keep the publish schedule even in the middle of a large batch of reads.
                    if self.running {
                        if let Some(&Reverse((due, _))) = self.heap.peek() {
                            let now = sys::mono_ns();
                            if due <= now {
                                self.fire_due(now);
                            }
                        }
                    }
                }
            }
            if self.running {
                let now = sys::mono_ns();
                self.fire_due(now);
                let sec = (now.saturating_sub(self.t0) / 1_000_000_000) as usize;
                if sec != cur_sec {
                    let cpu = sys::thread_cpu_ns();
                    for s in cur_sec..sec {
                        self.stats.interval(s).cpu_ns = cpu;
                    }
                    cur_sec = sec;
                }
                if win_cpu_start.is_none() && now >= self.win_start {
                    win_cpu_start = Some((sys::thread_cpu_ns(), now));
                }
                if !win_done && now >= self.win_end {
                    if let Some((c, t)) = win_cpu_start {
                        self.stats.window_cpu_ns = sys::thread_cpu_ns() - c;
                        self.stats.window_wall_ns = now - t;
                    }
                    win_done = true;
                }
            }
            self.flush_live();
        }
        for c in &mut self.conns {
            if c.fd >= 0 {
                sys::close_abort(c.fd);
                c.fd = -1;
            }
        }
    }

    fn flush_live(&mut self) {
        if self.d_sent > 0 {
            self.sh.live_sent.fetch_add(std::mem::take(&mut self.d_sent), Relaxed);
        }
        if self.d_expected > 0 {
            self.sh.live_expected.fetch_add(std::mem::take(&mut self.d_expected), Relaxed);
        }
        if self.d_received > 0 {
            self.sh.live_received.fetch_add(std::mem::take(&mut self.d_received), Relaxed);
        }
    }

    fn start_connects(&mut self) {
        while self.connecting < MAX_CONNECTING_PER_THREAD && self.next_start < self.conns.len() {
            let i = self.next_start;
            self.next_start += 1;
            match sys::connect_nonblocking(self.dst, self.conns[i].spec.src) {
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
                    self.fail(i, format!("connect {}: {e}", self.dst));
                }
            }
        }
    }

    /// A connection that never finished setting up (or broke during it).
    fn fail(&mut self, i: usize, why: String) {
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

    fn on_event(&mut self, i: usize, flags: u32, rbuf: &mut Vec<u8>) {
        if i >= self.conns.len() || self.conns[i].st == St::Closed {
            return;
        }
        if self.conns[i].st == St::Connecting {
            if let Err(e) = sys::socket_error(self.conns[i].fd) {
                self.fail(i, format!("connect {}: {e}", self.dst));
                return;
            }
            if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                return;
            }
            let url = ws::WsUrl {
                host: self.host.clone(),
                port: self.dst.port(),
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

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.fd < 0 {
            return;
        }
        let mut err = None;
        while !c.out.is_empty() {
            match sys::write(c.fd, &c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = err {
            self.fail(i, format!("write: {e}"));
            return;
        }
        let want = !c.out.is_empty();
        if want != c.want_out {
            c.want_out = want;
            let ev = libc::EPOLLIN as u32 | if want { libc::EPOLLOUT as u32 } else { 0 };
            let _ = self.ep.modify(c.fd, ev, i as u64);
        }
    }

    fn read_conn(&mut self, i: usize, rb: &mut Vec<u8>) {
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
    fn process(&mut self, i: usize, buf: &[u8], now: u64) -> usize {
        let mut pos = 0;
        if self.conns[i].st == St::Handshake {
            match ws::parse_handshake_response(buf, &self.conns[i].accept) {
                Handshake::Incomplete => return 0,
                Handshake::Failed(why) => {
                    self.fail(i, format!("handshake with {}{}: {why}", self.host, self.conns[i].spec.path));
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

    fn on_open(&mut self, i: usize) {
        self.connecting -= 1;
        self.sh.conns_done.fetch_add(1, SeqCst);
        self.sh.conns_ok.fetch_add(1, SeqCst);
        let c = &mut self.conns[i];
        c.st = St::Open;
        if c.spec.publisher.is_some() {
            return;
        }
        match self.proto {
            Proto::PerRoom => {
                // Joined at the handshake.
                for (s, &r) in c.slot_state.iter_mut().zip(&c.spec.rooms) {
                    *s = SLOT_OK;
                    self.sh.room_subs[r as usize].fetch_add(1, SeqCst);
                }
                self.sh.slots_done.fetch_add(c.spec.rooms.len(), SeqCst);
            }
            Proto::Mux => {
                for (k, &r) in c.spec.rooms.iter().enumerate() {
                    let room = &self.room_names[r as usize];
                    let mask = (self.rng.next_u64() as u32).to_ne_bytes();
                    ws::encode_client_text_with(&mut c.out, mask, |v| {
                        let _ = write!(v, "{{\"op\":\"sub\",\"room\":\"{room}\",\"id\":{}}}", k + 1);
                    });
                }
                self.flush(i);
            }
        }
    }

    fn on_frame(&mut self, i: usize, f: ws::Frame<'_>, now: u64) {
        match f.opcode {
            ws::OP_TEXT | ws::OP_BINARY if f.fin && self.conns[i].frag.is_empty() => {
                self.on_message(i, f.payload, now)
            }
            ws::OP_TEXT | ws::OP_BINARY | ws::OP_CONT => {
                self.conns[i].frag.extend_from_slice(f.payload);
                if f.fin {
                    let msg = std::mem::take(&mut self.conns[i].frag);
                    self.on_message(i, &msg, now);
                }
            }
            ws::OP_PING => {
                let mask = (self.rng.next_u64() as u32).to_ne_bytes();
                ws::encode_client_frame(&mut self.conns[i].out, ws::OP_PONG, f.payload, mask);
                self.flush(i);
            }
            ws::OP_CLOSE => {
                let reason = if f.payload.len() >= 2 {
                    let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                    format!(
                        "server closed the connection: {code} {}",
                        String::from_utf8_lossy(&f.payload[2..])
                    )
                } else {
                    "server closed the connection".into()
                };
                self.fail(i, reason);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, i: usize, msg: &[u8], now: u64) {
        let is_pub = self.conns[i].spec.publisher.is_some();
        match self.proto {
            Proto::PerRoom => {
                if is_pub {
                    return; // the room's echo of our own publishes
                }
                match stamp(msg, 0) {
                    Some(st) => self.deliver(i, 0, st, now),
                    None => self.stats.unparsed += 1,
                }
            }
            Proto::Mux => match classify_mux(msg) {
                MuxMsg::Data { room, stamp, .. } if !is_pub => {
                    let c = &self.conns[i];
                    let slot = if c.spec.rooms.len() == 1 {
                        Some(0)
                    } else {
                        c.room_map.get(room).map(|&s| s as usize)
                    };
                    match (slot, stamp) {
                        (Some(slot), Some(st)) => self.deliver(i, slot, st, now),
                        _ => self.stats.unparsed += 1,
                    }
                }
                MuxMsg::Ok { id: Some(id) } if !is_pub => {
                    let c = &mut self.conns[i];
                    let k = id as usize;
                    if (1..=c.slot_state.len()).contains(&k) && c.slot_state[k - 1] == SLOT_PENDING {
                        c.slot_state[k - 1] = SLOT_OK;
                        self.sh.room_subs[c.spec.rooms[k - 1] as usize].fetch_add(1, SeqCst);
                        self.sh.slots_done.fetch_add(1, SeqCst);
                    }
                }
                MuxMsg::Error { id } => {
                    self.stats.server_errors += 1;
                    let err = String::from_utf8_lossy(msg).into_owned();
                    self.stats.error(|| format!("server error: {err}"));
                    let c = &mut self.conns[i];
                    let k = id.unwrap_or(0) as usize;
                    if !is_pub && (1..=c.slot_state.len()).contains(&k) && c.slot_state[k - 1] == SLOT_PENDING
                    {
                        c.slot_state[k - 1] = SLOT_DEAD;
                        self.stats.sub_failures += 1;
                        self.sh.slots_done.fetch_add(1, SeqCst);
                    }
                }
                MuxMsg::Gap { from, to, .. } => {
                    self.stats.gap_notices += 1;
                    self.stats.gap_messages += to.saturating_sub(from) + 1;
                }
                MuxMsg::Ok { .. } | MuxMsg::Pong => {}
                MuxMsg::Data { .. } | MuxMsg::Other => self.stats.unparsed += 1,
            },
        }
    }

    fn deliver(&mut self, i: usize, slot: usize, st: Stamp, now: u64) {
        let c = &mut self.conns[i];
        if c.slot_state.get(slot) != Some(&SLOT_OK) {
            return;
        }
        let last = c.last[slot].entry(st.p).or_insert(0);
        if st.s == *last {
            self.stats.duplicated += 1;
            return;
        }
        if st.s < *last {
            self.stats.reordered += 1;
        } else {
            *last = st.s;
        }
        let sent_abs = self.sh.epoch + st.t;
        if sent_abs < self.win_start || sent_abs >= self.win_end || !self.running {
            return;
        }
        let lat = now.saturating_sub(sent_abs).clamp(1, HIST_MAX_NS);
        self.stats.received += 1;
        self.d_received += 1;
        self.stats.lat.saturating_record(lat);
        let sec = (now.saturating_sub(self.t0) / 1_000_000_000) as usize;
        let iv = self.stats.interval(sec);
        iv.received += 1;
        iv.lat.saturating_record(lat);
        if let Some(ring) = self.sh.rings.get(st.p as usize) {
            let e = &ring.entries[(st.s & ring.mask) as usize];
            if e.tag.load(Acquire) == st.s {
                let prev_max = e.max_recv.fetch_max(now, AcqRel);
                if e.remaining.fetch_sub(1, AcqRel) == 1 {
                    let done = prev_max.max(now).max(e.max_recv.load(Acquire));
                    self.stats
                        .completion
                        .saturating_record(done.saturating_sub(sent_abs).clamp(1, HIST_MAX_NS));
                }
            }
        }
    }

    fn begin_run(&mut self) {
        self.running = true;
        self.t0 = self.sh.t0.load(SeqCst);
        self.win_start = self.sh.win_start.load(SeqCst);
        self.win_end = self.sh.win_end.load(SeqCst);
        // Whatever is still setting up now has missed the start.
        for i in 0..self.conns.len() {
            if matches!(self.conns[i].st, St::Pending | St::Connecting | St::Handshake) {
                self.fail(i, "connection setup timed out".into());
            }
            let c = &mut self.conns[i];
            for s in &mut c.slot_state {
                if *s == SLOT_PENDING {
                    *s = SLOT_DEAD;
                    self.stats.sub_failures += 1;
                }
            }
        }
        for (li, p) in self.pubs.iter_mut().enumerate() {
            p.fanout = p.spec.rooms.iter().map(|&r| self.sh.room_subs[r as usize].load(SeqCst)).sum();
            // Random phase within one period so publishers don't fire in lockstep.
            p.start_ns = self.t0 + (p.rng.f64() * p.period_ns) as u64;
            p.k = 0;
            self.heap.push(Reverse((p.start_ns, li)));
        }
        self.run_cpu0 = sys::thread_cpu_ns();
        self.arm();
    }

    fn arm(&mut self) {
        if let Some(&Reverse((due, _))) = self.heap.peek() {
            if due != self.armed {
                self.timer.arm_at(due);
                self.armed = due;
            }
        }
    }

    fn fire_due(&mut self, now: u64) {
        while let Some(&Reverse((due, li))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            if due >= self.win_end {
                continue; // this publisher is done
            }
            self.publish(li, due, now);
            let p = &mut self.pubs[li];
            p.k += 1;
            let next = p.start_ns + (p.k as f64 * p.period_ns) as u64;
            self.heap.push(Reverse((next, li)));
        }
        self.arm();
    }

    fn publish(&mut self, li: usize, due: u64, now: u64) {
        let p = &mut self.pubs[li];
        if p.conns.is_empty() || p.conns.iter().any(|&c| self.conns[c].st != St::Open) {
            self.stats.send_skipped += 1;
            return;
        }
        p.seq += 1;
        let seq = p.seq;
        let t = due - self.sh.epoch;
        self.pbuf.clear();
        p.model.tick(&mut p.rng, p.period_ns / 1e9, t, p.spec.id, seq, p.spec.entity, &mut self.pbuf);
        let in_window = due >= self.win_start;
        let fanout = p.fanout;
        if in_window && fanout > 0 {
            if let Some(ring) = self.sh.rings.get(p.spec.id as usize) {
                let e = &ring.entries[(seq & ring.mask) as usize];
                e.max_recv.store(0, Relaxed);
                e.remaining.store(fanout, Relaxed);
                e.tag.store(seq, Release);
                self.tracked_fanouts += 1;
            }
        }
        for j in 0..self.pubs[li].conns.len() {
            let ci = self.pubs[li].conns[j];
            let c = &mut self.conns[ci];
            match self.proto {
                Proto::PerRoom => {
                    let mask = (self.rng.next_u64() as u32).to_ne_bytes();
                    ws::encode_client_frame(&mut c.out, ws::OP_TEXT, &self.pbuf, mask)
                }
                Proto::Mux => {
                    for &r in &c.spec.rooms {
                        let room = &self.room_names[r as usize];
                        let id = c.next_id;
                        c.next_id += 1;
                        let data = &self.pbuf;
                        let mask = (self.rng.next_u64() as u32).to_ne_bytes();
                        ws::encode_client_text_with(&mut c.out, mask, |v| {
                            let _ = write!(v, "{{\"op\":\"pub\",\"room\":\"{room}\",\"data\":");
                            v.extend_from_slice(data);
                            let _ = write!(v, ",\"id\":{id}}}");
                        });
                    }
                }
            }
            self.flush(ci);
        }
        if in_window {
            self.stats.sent += 1;
            self.stats.expected += fanout as u64;
            self.d_sent += 1;
            self.d_expected += fanout as u64;
            self.stats.send_lag.saturating_record(now.saturating_sub(due).clamp(1, HIST_MAX_NS));
            let sec = (due.saturating_sub(self.t0) / 1_000_000_000) as usize;
            self.stats.interval(sec).sent += 1;
        } else {
            let sec = (due.saturating_sub(self.t0) / 1_000_000_000) as usize;
            self.stats.interval(sec).sent += 1;
        }
    }
}
