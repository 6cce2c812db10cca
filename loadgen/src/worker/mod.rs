//! One load-generating thread: an epoll loop over many client sockets.
//!
//! A worker owns its connections (publishers and subscribers), a 64 KiB read buffer shared by
//! all of them (a connection keeps only the tail of a frame split across reads), a timer heap
//! for the open-loop publish schedule (armed through a timerfd for sub-millisecond precision)
//! and its own [`Stats`]. The only shared state is [`Shared`]: phase flags, live counters for
//! the progress line, confirmed subscribers per room, and the fan-out completion rings.
//!
//! Modules, one noun each: [`shared`] (what the runner and workers share), [`conn`]
//! (connections and their socket I/O), [`delivery`] (what received frames mean and the
//! measurement), [`publisher`] (the open-loop publish schedule).

mod conn;
mod delivery;
mod publisher;
mod shared;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

pub use conn::{ConnSpec, Proto};
pub use shared::{Ring, RingEntry, Shared, PHASE_RUN, PHASE_SETUP, PHASE_STOP};

use crate::runner::Node;
use crate::scenario::PubSpec;
use crate::sim::{Model, Rng};
use crate::stats::Stats;
use crate::sys;
use conn::{Conn, St, FIRST_PUB_ID, SEQ_UNKNOWN, SLOT_PENDING};
use publisher::LocalPub;

const TIMER_TOKEN: u64 = u64::MAX;
const MAX_CONNECTING_PER_THREAD: usize = 256;
const READ_BUF: usize = 64 * 1024;

pub struct WorkerInit {
    pub cpu: Option<usize>,
    pub index: usize,
    pub shared: Arc<Shared>,
    pub proto: Proto,
    /// The targets; a [`ConnSpec`]'s `node` indexes this.
    pub nodes: Arc<Vec<Node>>,
    pub room_names: Arc<Vec<String>>,
    pub conns: Vec<ConnSpec>,
    pub publishers: Vec<PubSpec>,
}

struct Worker {
    sh: Arc<Shared>,
    proto: Proto,
    nodes: Arc<Vec<Node>>,
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
            seq_last: vec![SEQ_UNKNOWN; if spec.publisher.is_some() { 0 } else { n }],
            last: if spec.publisher.is_some() { vec![] } else { vec![HashMap::new(); n] },
            spec,
            accept: String::new(),
            room_map,
            leftover: Vec::new(),
            need: 0,
            out: Vec::new(),
            frag: Vec::new(),
            want_out: false,
            next_id: FIRST_PUB_ID,
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
                fanout_nodes: Vec::new(),
                spec,
            }
        })
        .collect();
    rng.next_u64();
    let mut w = Worker {
        sh: init.shared,
        proto: init.proto,
        nodes: init.nodes,
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
        self.record_finals();
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
}
