//! A crowd of well-behaved clients in one thread: the healthy neighbours of `abuse` and the
//! realistic fleet of `soak`.
//!
//! One epoll loop holds publishers (keep-alive pipelined `POST /api/publish`, or `pub` over
//! `/ws`) on an open-loop schedule and subscribers over `/ws` (multiplexed, with `since`
//! resumes) and `/ws/<room>` (room-per-URL). Every delivery goes through a [`crate::ledger`],
//! so the crowd counts loss, duplicates and gap notices exactly, not by totals; it can churn
//! (subscribers leave, join, or come back resuming where they were) and it ends by itself:
//! it publishes for `publish_for`, then drains until every live subscription has every
//! message its publishers were acknowledged for, or `drain` passes.
//!
//! Modules: [`spec`] (what a crowd is asked to do, and its control), [`conn`] (a connection's
//! socket side), [`inbound`] (what received frames mean),
//! [`publish`] (schedule, payloads, acknowledgements), [`lifecycle`] (connecting, churn,
//! disconnects, the final drain), [`tally`] (what a period saw).

mod conn;
mod inbound;
mod lifecycle;
mod publish;
mod spec;
mod tally;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::*;
use std::sync::mpsc::Sender;
use std::sync::Arc;

pub use spec::{
    Churn, Control, CrowdResult, CrowdSpec, Joiner, Payload, Proto, PublisherSpec, SubscriberSpec, Via, RUN,
    SETUP, STOP,
};
pub use tally::{Tally, TallySummary};

use crate::ledger::{SeqLedger, StampLedger};
use crate::sim::{Model, Rng};
use crate::sys;
use conn::Conn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Waiting to (re)connect: not yet connected, or away (churn, or closed by the server
    /// in a crowd that reconnects) and coming back. Not charged for what it misses meanwhile.
    Pending,
    Live,
    /// Closed by the server and not coming back (abuse): what it misses counts as lost.
    Dead,
    /// Left for good (its replacement is another entry).
    Gone,
}

enum Ledgers {
    Seq(Vec<SeqLedger>),
    Stamp(StampLedger),
}

struct Sub {
    spec: SubscriberSpec,
    status: Status,
    conn: Option<usize>,
    ledgers: Ledgers,
    /// Rooms confirmed since the last (re)connect.
    confirmed: usize,
    /// The next connect resumes with `since`.
    resume: bool,
    counted_ready: bool,
}

struct Pub {
    spec: PublisherSpec,
    id: u32,
    conn: Option<usize>,
    model: Option<Model>,
    rng: Rng,
    /// Last stamp counter used.
    s: u64,
    start_ns: u64,
    period_ns: f64,
    k: u64,
    /// HTTP: (room index in spec, s) per request in flight, oldest first.
    http_inflight: std::collections::VecDeque<(usize, u64)>,
    /// WS: ids of `pub`s not acknowledged yet.
    ws_unacked: HashSet<u64>,
    counted_ready: bool,
}

/// A scheduled (re)connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Sub(usize),
    Pub(usize),
}

struct Crowd {
    ctl: Arc<Control>,
    dst: SocketAddr,
    /// Host for the upgrade request (the port is added there).
    host: String,
    /// `Host:` of HTTP requests.
    host_port: String,
    rooms: Vec<String>,
    ep: sys::Epoll,
    timer: sys::TimerFd,
    conns: Vec<Option<Conn>>,
    /// Generation per slot, in the epoll token, so a stale event never reaches a reused slot.
    gens: Vec<u32>,
    free: Vec<usize>,
    connecting: usize,
    subs: Vec<Sub>,
    pubs: Vec<Pub>,
    schedule: BinaryHeap<Reverse<(u64, usize)>>,
    reconnects: BinaryHeap<Reverse<(u64, Who)>>,
    armed: u64,
    rng: Rng,
    churn: Option<Churn>,
    reconnect: bool,
    next_churn: u64,
    /// Per room: the highest seq any publisher was acknowledged.
    final_seq: Vec<u64>,
    /// Per room: publisher id → highest acknowledged stamp `s`.
    final_s: Vec<HashMap<u32, u64>>,
    /// (room, publisher, s) refused or of unknown fate (connection lost before the answer):
    /// a room-per-URL subscriber missing one of these has not lost anything.
    excused: HashSet<(u32, u32, u64)>,
    periods: Vec<Tally>,
    period_starts: Vec<u64>,
    latency_by_send: bool,
    periods_out: Option<Sender<(usize, Tally)>>,
    emitted: usize,
    epoch: u64,
    t0: u64,
    running: bool,
    publish_until: u64,
    drain_ns: u64,
    pbuf: Vec<u8>,
    scratch: Vec<u8>,
}

const TIMER_TOKEN: u64 = u64::MAX;
const MAX_CONNECTING: usize = 128;

/// Runs a crowd to completion (or until `ctl.phase` is STOP).
pub fn run(spec: CrowdSpec, ctl: Arc<Control>) -> CrowdResult {
    let fail = |ctl: &Control, e: std::io::Error| {
        ctl.error(|| format!("epoll/timerfd: {e}"));
        ctl.setup_failures.fetch_add(1, SeqCst);
        CrowdResult { periods: vec![Tally::new()], drained: false, drain_ns: 0 }
    };
    let ep = match sys::Epoll::new() {
        Ok(e) => e,
        Err(e) => return fail(&ctl, e),
    };
    let timer = match sys::TimerFd::new() {
        Ok(t) => t,
        Err(e) => return fail(&ctl, e),
    };
    if let Err(e) = ep.add(timer.0, libc::EPOLLIN as u32, TIMER_TOKEN) {
        return fail(&ctl, e);
    }
    let mut rng = Rng::new(spec.seed);
    let pubs = spec
        .publishers
        .into_iter()
        .enumerate()
        .map(|(id, p)| {
            let mut prng = Rng::new(spec.seed ^ ((id as u64 + 1) * 7919));
            Pub {
                model: match p.payload {
                    Payload::Vehicle { .. } => Some(Model::new(crate::sim::Kind::Vehicle, &mut prng)),
                    Payload::Probe => None,
                },
                rng: prng,
                id: id as u32,
                conn: None,
                s: 0,
                start_ns: 0,
                period_ns: 1e9 / p.rate_hz.max(1e-3),
                k: 0,
                http_inflight: Default::default(),
                ws_unacked: HashSet::new(),
                counted_ready: false,
                spec: p,
            }
        })
        .collect::<Vec<_>>();
    let subs = spec.subscribers.into_iter().map(Sub::new).collect::<Vec<_>>();
    let mut reconnects = BinaryHeap::new();
    for i in 0..pubs.len() {
        reconnects.push(Reverse((0, Who::Pub(i))));
    }
    for i in 0..subs.len() {
        reconnects.push(Reverse((0, Who::Sub(i))));
    }
    rng.next_u64();
    let n_rooms = spec.rooms.len();
    let mut periods_ns = spec.periods_ns;
    if periods_ns.first() != Some(&0) {
        periods_ns.insert(0, 0);
    }
    let mut c = Crowd {
        ctl,
        dst: spec.dst,
        host: spec.dst.ip().to_string(),
        host_port: spec.dst.to_string(),
        rooms: spec.rooms,
        ep,
        timer,
        conns: Vec::new(),
        gens: Vec::new(),
        free: Vec::new(),
        connecting: 0,
        subs,
        pubs,
        schedule: BinaryHeap::new(),
        reconnects,
        armed: u64::MAX,
        rng,
        churn: spec.churn,
        reconnect: spec.reconnect,
        next_churn: u64::MAX,
        final_seq: vec![0; n_rooms],
        final_s: vec![HashMap::new(); n_rooms],
        excused: HashSet::new(),
        periods: (0..periods_ns.len()).map(|_| Tally::new()).collect(),
        period_starts: periods_ns,
        latency_by_send: spec.latency_by_send,
        periods_out: spec.periods_out,
        emitted: 0,
        epoch: crate::runner::epoch(),
        t0: 0,
        running: false,
        publish_until: u64::MAX,
        drain_ns: spec.drain_ns,
        pbuf: Vec::with_capacity(512),
        scratch: Vec::with_capacity(2048),
    };
    let publish_for = spec.publish_for_ns;
    c.event_loop(publish_for)
}

impl Sub {
    fn new(spec: SubscriberSpec) -> Sub {
        let ledgers = match spec.proto {
            Proto::Mux => Ledgers::Seq(vec![SeqLedger::new(); spec.rooms.len()]),
            Proto::PerRoom => Ledgers::Stamp(StampLedger::new()),
        };
        Sub {
            spec,
            status: Status::Pending,
            conn: None,
            ledgers,
            confirmed: 0,
            resume: false,
            counted_ready: false,
        }
    }
}

impl Crowd {
    fn event_loop(&mut self, publish_for: u64) -> CrowdResult {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
        let mut rb = vec![0u8; 64 * 1024];
        let mut next_drain_check = 0u64;
        loop {
            let phase = self.ctl.phase.load(Acquire);
            if phase == STOP {
                return self.finish(false, 0);
            }
            if phase == RUN && !self.running {
                self.begin_run(publish_for);
            }
            let n = self.ep.wait(&mut events, 5);
            for ev in &events[..n] {
                if ev.u64 == TIMER_TOKEN {
                    self.timer.drain();
                    self.armed = u64::MAX;
                } else {
                    self.on_event(ev.u64, ev.events, &mut rb);
                }
            }
            let now = sys::mono_ns();
            self.start_due_connects(now);
            if !self.running {
                continue;
            }
            self.fire_due(now);
            self.churn_tick(now);
            self.emit_finished_periods(now);
            if now >= self.publish_until && now >= next_drain_check {
                next_drain_check = now + 10_000_000;
                let waited = now - self.publish_until;
                if self.caught_up() {
                    return self.finish(true, waited);
                }
                if waited >= self.drain_ns {
                    return self.finish(false, waited);
                }
            }
        }
    }

    fn begin_run(&mut self, publish_for: u64) {
        self.running = true;
        self.t0 = self.ctl.t0.load(SeqCst);
        self.publish_until = self.t0 + publish_for;
        self.next_churn = self.t0 + 1_000_000_000;
        for (i, p) in self.pubs.iter_mut().enumerate() {
            // A random phase within one period, so publishers do not fire in lockstep.
            p.start_ns = self.t0 + (p.rng.f64() * p.period_ns) as u64;
            p.k = 0;
            self.schedule.push(Reverse((p.start_ns, i)));
        }
        self.arm();
    }

    /// The period `t` (monotonic ns) falls in; before the start counts as the first.
    fn period_of(&self, t: u64) -> usize {
        let rel = t.saturating_sub(self.t0);
        self.period_starts.partition_point(|&s| s <= rel).saturating_sub(1).max(self.emitted)
    }

    /// The tally for events noticed now.
    fn tally(&mut self) -> &mut Tally {
        let p = if self.running { self.period_of(sys::mono_ns()) } else { 0 };
        &mut self.periods[p]
    }

    /// Sends every period that is over (receive-time attribution only: with latency by send
    /// time, late deliveries may still belong to an earlier period).
    fn emit_finished_periods(&mut self, now: u64) {
        let Some(tx) = &self.periods_out else { return };
        if self.latency_by_send {
            return;
        }
        let cur = self.period_of(now);
        while self.emitted < cur && self.emitted + 1 < self.periods.len() {
            let t = std::mem::take(&mut self.periods[self.emitted]);
            let _ = tx.send((self.emitted, t));
            self.emitted += 1;
        }
    }

    fn arm(&mut self) {
        if let Some(&Reverse((due, _))) = self.schedule.peek() {
            if due != self.armed {
                self.timer.arm_at(due);
                self.armed = due;
            }
        }
    }

    fn token(&self, ci: usize) -> u64 {
        (self.gens[ci] as u64) << 32 | ci as u64
    }

    /// Updates the epoll interest after output was queued or written.
    fn after_write(&mut self, ci: usize) -> std::io::Result<()> {
        let token = self.token(ci);
        let Some(c) = self.conns[ci].as_mut() else { return Ok(()) };
        c.write_out()?;
        self.ep.want_write(c.fd, token, !c.out.is_empty(), &mut c.want_out)
    }

    /// Flushes a connection, handling a broken one.
    fn flush(&mut self, ci: usize) {
        if let Err(e) = self.after_write(ci) {
            self.lost_conn(ci, format!("write: {e}"));
        }
    }

    fn on_event(&mut self, token: u64, flags: u32, rb: &mut Vec<u8>) {
        let ci = (token & 0xffff_ffff) as usize;
        if ci >= self.conns.len() || self.gens[ci] != (token >> 32) as u32 || self.conns[ci].is_none() {
            return;
        }
        let connecting = self.conns[ci].as_ref().is_some_and(|c| c.st == conn::CSt::Connecting);
        if connecting {
            if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
                return;
            }
            let (host, port) = (self.host.clone(), self.dst.port());
            let c = self.conns[ci].as_mut().expect("checked above");
            if let Err(e) = c.connected(&host, port, &mut self.rng) {
                self.lost_conn(ci, format!("connect {}: {e}", self.dst));
                return;
            }
            if c.http {
                self.connecting -= 1;
                self.on_open(ci);
            }
            self.flush(ci);
            return;
        }
        if flags & libc::EPOLLOUT as u32 != 0 {
            self.flush(ci);
        }
        if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            self.read_conn(ci, rb);
        }
    }

    /// Reads and handles what arrived; a few reads per event so that one busy connection does
    /// not hold up the publish schedule.
    fn read_conn(&mut self, ci: usize, rb: &mut Vec<u8>) {
        for _ in 0..8 {
            let Some(c) = self.conns[ci].as_mut() else { return };
            match c.read_into(rb) {
                conn::ReadOutcome::Data(n) => {
                    let now = sys::mono_ns();
                    let used = self.process(ci, &rb[..n], now);
                    match self.conns[ci].as_mut() {
                        Some(c) => c.leftover.extend_from_slice(&rb[used..n]),
                        None => return,
                    }
                }
                conn::ReadOutcome::WouldBlock => return,
                conn::ReadOutcome::Eof => return self.lost_conn(ci, "server closed the connection".into()),
                conn::ReadOutcome::Failed(e) => return self.lost_conn(ci, format!("read: {e}")),
            }
        }
    }
}
