//! What a worker does with complete server frames: subscribing once a connection opens,
//! answering pings, and for data messages the measurement itself — per-subscription
//! duplicate/reorder detection, latency from the intended send time, and fan-out completion.
//!
//! Only deliveries of publishes whose intended send time falls in the measurement window are
//! counted, so warm-up traffic and drain stragglers of earlier runs never skew the figures.

use std::io::Write as _;
use std::sync::atomic::Ordering::*;

use super::conn::{Proto, St, FIRST_PUB_ID, SEQ_UNKNOWN, SLOT_DEAD, SLOT_OK, SLOT_PENDING};
use super::Worker;
use crate::payload::{classify_mux, stamp, MuxMsg, Stamp};
use crate::stats::HIST_MAX_NS;
use crate::ws;

impl Worker {
    pub(super) fn on_open(&mut self, i: usize) {
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
                    self.sh.room_subs(r, c.spec.node).fetch_add(1, SeqCst);
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

    pub(super) fn on_frame(&mut self, i: usize, f: ws::Frame<'_>, now: u64) {
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

    pub(super) fn on_message(&mut self, i: usize, msg: &[u8], now: u64) {
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
                MuxMsg::Data { room, seq, stamp } if !is_pub => {
                    let c = &self.conns[i];
                    let slot = if c.spec.rooms.len() == 1 {
                        Some(0)
                    } else {
                        c.room_map.get(room).map(|&s| s as usize)
                    };
                    if let Some(slot) = slot {
                        self.track_seq(i, slot, seq);
                    }
                    match (slot, stamp) {
                        (Some(slot), Some(st)) => self.deliver(i, slot, st, now),
                        _ => self.stats.unparsed += 1,
                    }
                }
                MuxMsg::Ok { id: Some(id), seq } if !is_pub => {
                    let c = &mut self.conns[i];
                    let k = id as usize;
                    if (1..=c.slot_state.len()).contains(&k) && c.slot_state[k - 1] == SLOT_PENDING {
                        c.slot_state[k - 1] = SLOT_OK;
                        // Live messages follow from the room's last seq at the subscription.
                        c.seq_last[k - 1] = seq.unwrap_or(SEQ_UNKNOWN);
                        self.sh.room_subs(c.spec.rooms[k - 1], c.spec.node).fetch_add(1, SeqCst);
                        self.sh.slots_done.fetch_add(1, SeqCst);
                    }
                }
                MuxMsg::Ok { id: Some(id), seq: Some(seq) } if is_pub => self.on_ack(i, id, seq, now),
                MuxMsg::Error { id, .. } => {
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
                MuxMsg::Ok { .. } | MuxMsg::Pong | MuxMsg::Reset { .. } => {}
                MuxMsg::Data { .. } | MuxMsg::Other => self.stats.unparsed += 1,
            },
        }
    }

    /// A room message's `seq` on a confirmed subscription: counts the seqs that never came
    /// between it and the previous one (a cluster node must fill holes from the stream).
    fn track_seq(&mut self, i: usize, slot: usize, seq: u64) {
        let c = &mut self.conns[i];
        if c.slot_state.get(slot) != Some(&SLOT_OK) {
            return;
        }
        let last = &mut c.seq_last[slot];
        if *last != SEQ_UNKNOWN && seq > *last + 1 {
            let missing = seq - *last - 1;
            self.stats.seq_holes += missing;
            self.stats.node(c.spec.node).seq_holes += missing;
        }
        if *last == SEQ_UNKNOWN || seq > *last {
            *last = seq;
        }
    }

    /// A publisher's `ok`: counts it (in the window: for acknowledged publishes per second)
    /// and raises the room's highest acknowledged seq, which every subscriber still
    /// connected at the end must have reached. A publisher connection's ids go up by one per
    /// room it publishes into, in its rooms' order, so the id names the room.
    fn on_ack(&mut self, i: usize, id: u64, seq: u64, now: u64) {
        let rooms = &self.conns[i].spec.rooms;
        let Some(k) = id.checked_sub(FIRST_PUB_ID) else { return };
        let Some(&room) = rooms.get((k % rooms.len().max(1) as u64) as usize) else { return };
        self.sh.max_acked[room as usize].fetch_max(seq, AcqRel);
        self.stats.acked_total += 1;
        if self.running && now >= self.win_start && now < self.win_end {
            self.stats.acked += 1;
        }
    }

    /// At the end of the run: each live `/ws` subscription's last seq, for the runner to
    /// compare with the rooms' highest acknowledged seqs.
    pub(super) fn record_finals(&mut self) {
        if self.proto != Proto::Mux {
            return; // no seqs to compare
        }
        for c in &self.conns {
            if c.st != St::Open || c.spec.publisher.is_some() {
                continue;
            }
            for (slot, &room) in c.spec.rooms.iter().enumerate() {
                if c.slot_state[slot] == SLOT_OK {
                    let last = c.seq_last.get(slot).copied().filter(|&s| s != SEQ_UNKNOWN);
                    self.stats.finals.push((c.spec.node, room, last));
                }
            }
        }
    }

    pub(super) fn deliver(&mut self, i: usize, slot: usize, st: Stamp, now: u64) {
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
        let node = self.stats.node(c.spec.node);
        node.received += 1;
        node.lat.saturating_record(lat);
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
}
