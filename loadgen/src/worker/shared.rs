//! State shared by the runner and all workers: phase flags, live counters for the progress
//! line, confirmed subscribers per room, and the fan-out completion rings.
//!
//! Everything here is atomics: workers never lock, and the runner only reads counters or flips
//! the phase. A ring entry is claimed by its publisher (tag = seq, stored last with Release) and
//! counted down by whichever workers deliver that seq, so the last delivery knows the fan-out
//! completed without any worker talking to another.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

pub const PHASE_SETUP: u8 = 0;
pub const PHASE_RUN: u8 = 1;
pub const PHASE_STOP: u8 = 2;

/// Fan-out completion slot for one publish: how many expected deliveries are still missing
/// and the latest receive time so far.
pub struct RingEntry {
    pub(super) tag: AtomicU64,
    pub(super) remaining: AtomicU32,
    pub(super) max_recv: AtomicU64,
}

/// Per publisher: a ring of [`RingEntry`] indexed by `seq & mask`.
pub struct Ring {
    pub(super) mask: u64,
    pub(super) entries: Box<[RingEntry]>,
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
    /// Number of targets (cluster nodes).
    pub nodes: usize,
    /// Confirmed subscriptions per (room, node), at `room * nodes + node`: a publisher's
    /// expected deliveries, per node so each node's loss is its own.
    pub room_subs: Vec<AtomicU32>,
    /// Per room: the highest `seq` a publisher was acknowledged (`/ws` `ok` of a `pub`).
    pub max_acked: Vec<AtomicU64>,
    pub rings: Vec<Ring>,
    pub live_sent: AtomicU64,
    pub live_expected: AtomicU64,
    pub live_received: AtomicU64,
}

impl Shared {
    /// The counter of confirmed subscriptions of `room` on `node`.
    pub fn room_subs(&self, room: u32, node: usize) -> &AtomicU32 {
        &self.room_subs[room as usize * self.nodes + node]
    }
}
