//! The open-loop publish schedule: each publisher fires at `start + k * period` (a random
//! phase within one period, so publishers do not fire in lockstep), whatever the server does.
//! A late fire is still stamped with its *intended* time, so a stalled loadgen or server shows
//! up as latency rather than as a lower offered rate.

use std::cmp::Reverse;
use std::io::Write as _;
use std::sync::atomic::Ordering::*;

use super::conn::{Proto, St, SLOT_DEAD, SLOT_PENDING};
use super::Worker;
use crate::scenario::PubSpec;
use crate::sim::{Model, Rng};
use crate::stats::HIST_MAX_NS;
use crate::sys;
use crate::ws;

pub(super) struct LocalPub {
    pub(super) spec: PubSpec,
    pub(super) model: Model,
    pub(super) rng: Rng,
    pub(super) seq: u64,
    pub(super) conns: Vec<usize>,
    pub(super) start_ns: u64,
    pub(super) period_ns: f64,
    pub(super) k: u64,
    pub(super) fanout: u32,
    /// `fanout` per node (subscribers connected to that node).
    pub(super) fanout_nodes: Vec<u32>,
}

impl Worker {
    pub(super) fn begin_run(&mut self) {
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
            p.fanout_nodes = (0..self.sh.nodes)
                .map(|n| p.spec.rooms.iter().map(|&r| self.sh.room_subs(r, n).load(SeqCst)).sum())
                .collect();
            p.fanout = p.fanout_nodes.iter().sum();
            // Random phase within one period so publishers don't fire in lockstep.
            p.start_ns = self.t0 + (p.rng.f64() * p.period_ns) as u64;
            p.k = 0;
            self.heap.push(Reverse((p.start_ns, li)));
        }
        self.run_cpu0 = sys::thread_cpu_ns();
        self.arm();
    }

    pub(super) fn arm(&mut self) {
        if let Some(&Reverse((due, _))) = self.heap.peek() {
            if due != self.armed {
                self.timer.arm_at(due);
                self.armed = due;
            }
        }
    }

    pub(super) fn fire_due(&mut self, now: u64) {
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

    pub(super) fn publish(&mut self, li: usize, due: u64, now: u64) {
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
            for (n, &f) in self.pubs[li].fanout_nodes.iter().enumerate() {
                self.stats.node(n).expected += f as u64;
            }
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
