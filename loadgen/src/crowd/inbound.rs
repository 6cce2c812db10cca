//! What the crowd does with what it receives: the upgrade response, WebSocket frames, HTTP
//! publish responses, and — for subscribers — each message through its ledger, recording
//! latency from the intended send time for live messages only.

use super::conn::{CSt, Role};
use super::{Crowd, Ledgers, Proto};
use crate::http::{self, Parsed};
use crate::ledger::{OkCheck, Resume, Seen};
use crate::payload::{classify_mux, stamp, uint_of, MuxMsg, Stamp};
use crate::stats::HIST_MAX_NS;
use crate::ws::{self, Handshake, Parse};

impl Crowd {
    /// Handles the bytes in `buf` for connection `ci`; returns how many were consumed (the
    /// rest is an incomplete frame or response, kept for the next read).
    pub(super) fn process(&mut self, ci: usize, buf: &[u8], now: u64) -> usize {
        let Some(c) = self.conns[ci].as_ref() else { return buf.len() };
        if c.http {
            return self.process_http(ci, buf);
        }
        let mut pos = 0;
        if c.st == CSt::Handshake {
            match ws::parse_handshake_response(buf, &c.accept) {
                Handshake::Incomplete => return 0,
                Handshake::Failed(why) => {
                    let path = c.path.clone();
                    self.lost_conn(ci, format!("handshake {path}: {why}"));
                    return buf.len();
                }
                Handshake::Done(n) => {
                    pos = n;
                    self.connecting = self.connecting.saturating_sub(1);
                    self.on_open(ci);
                    if self.conns[ci].is_none() {
                        return buf.len();
                    }
                }
            }
        }
        while pos < buf.len() {
            match ws::parse_frame(&buf[pos..]) {
                Parse::Frame(f, n) => {
                    pos += n;
                    self.on_frame(ci, f, now);
                    if self.conns[ci].is_none() {
                        return buf.len();
                    }
                }
                Parse::Incomplete(_) => return pos,
                Parse::Error(e) => {
                    self.lost_conn(ci, format!("protocol error from server: {e}"));
                    return buf.len();
                }
            }
        }
        pos
    }

    fn process_http(&mut self, ci: usize, buf: &[u8]) -> usize {
        let Some(Role::Pub(i)) = self.conns[ci].as_ref().map(|c| c.role) else { return buf.len() };
        let mut pos = 0;
        loop {
            match http::parse_response(&buf[pos..]) {
                Parsed::Done(r) => {
                    pos += r.len;
                    let Some((k, s)) = self.pubs[i].http_inflight.pop_front() else {
                        self.lost_conn(ci, "HTTP response nobody asked for".into());
                        return buf.len();
                    };
                    match (r.status, uint_of(r.body, b"\"seq\"")) {
                        (200, Some(seq)) => self.acked(i, k, s, seq),
                        _ => self.refused(i, k, s),
                    }
                }
                Parsed::Incomplete => return pos,
                Parsed::Error(e) => {
                    self.lost_conn(ci, e);
                    return buf.len();
                }
            }
        }
    }

    fn on_frame(&mut self, ci: usize, f: ws::Frame<'_>, now: u64) {
        let Some(c) = self.conns[ci].as_mut() else { return };
        match f.opcode {
            ws::OP_TEXT | ws::OP_BINARY if f.fin && c.frag.is_empty() => self.on_message(ci, f.payload, now),
            ws::OP_TEXT | ws::OP_BINARY | ws::OP_CONT => {
                c.frag.extend_from_slice(f.payload);
                if f.fin {
                    let msg = std::mem::take(&mut c.frag);
                    self.on_message(ci, &msg, now);
                }
            }
            ws::OP_PING => {
                c.send_frame(&mut self.rng, ws::OP_PONG, f.payload);
                self.flush(ci);
            }
            ws::OP_CLOSE => {
                let why = match f.payload {
                    [a, b, reason @ ..] => format!(
                        "server closed the connection: {} {}",
                        u16::from_be_bytes([*a, *b]),
                        String::from_utf8_lossy(reason)
                    ),
                    _ => "server closed the connection".into(),
                };
                self.lost_conn(ci, why);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ci: usize, msg: &[u8], now: u64) {
        let Some(role) = self.conns[ci].as_ref().map(|c| c.role) else { return };
        let i = match role {
            Role::Pub(i) => return self.on_pub_reply(i, msg),
            Role::Sub(i) => i,
        };
        if self.subs[i].spec.proto == Proto::PerRoom {
            match stamp(msg, 0) {
                Some(st) => self.on_stamp(i, st, now),
                None => self.tally().unparsed += 1,
            }
            return;
        }
        match classify_mux(msg) {
            MuxMsg::Data { room, seq, stamp } => {
                let Some(k) = self.slot(i, room) else { return self.tally().unparsed += 1 };
                let Ledgers::Seq(ls) = &mut self.subs[i].ledgers else { return };
                let (seen, resume) = ls[k].on_data(seq);
                self.settle_resume(resume);
                let n = match seen {
                    Seen::Missing { from, to } => to - from + 1,
                    _ => 0,
                };
                self.on_seen(seen, n, stamp, now);
            }
            MuxMsg::Ok { id: Some(id), seq } => {
                let k = id as usize;
                if k == 0 || k > self.subs[i].spec.rooms.len() {
                    return;
                }
                let Ledgers::Seq(ls) = &mut self.subs[i].ledgers else { return };
                if let Some(OkCheck::SinceAhead { since, room_seq }) = seq.map(|s| ls[k - 1].on_ok(s)) {
                    self.tally().since_ahead += 1;
                    self.ctl.error(|| {
                        format!("sub with since {since} accepted although the room's seq is {room_seq}")
                    });
                }
                self.confirmed(i);
            }
            MuxMsg::Gap { room, from, to } => {
                let Some(k) = self.slot(i, room) else { return };
                let Ledgers::Seq(ls) = &mut self.subs[i].ledgers else { return };
                let (n, resume) = ls[k].on_gap(from, to);
                self.settle_resume(resume);
                let t = self.tally();
                t.gap_notices += 1;
                t.gap_messages += n;
            }
            MuxMsg::Reset { room } => {
                let Some(k) = self.slot(i, room) else { return };
                let Ledgers::Seq(ls) = &mut self.subs[i].ledgers else { return };
                let resume = ls[k].on_reset();
                self.settle_resume(resume);
                self.tally().resets += 1;
            }
            MuxMsg::Error { .. } => {
                self.tally().server_errors += 1;
                let text = String::from_utf8_lossy(msg).into_owned();
                self.ctl.error(|| format!("server error to a subscriber: {text}"));
            }
            MuxMsg::Ok { id: None, .. } | MuxMsg::Pong => {}
            MuxMsg::Other => self.tally().unparsed += 1,
        }
    }

    /// Index of `room` among subscriber `i`'s rooms.
    fn slot(&self, i: usize, room: &[u8]) -> Option<usize> {
        self.subs[i].spec.rooms.iter().position(|&r| self.rooms[r as usize].as_bytes() == room)
    }

    fn on_stamp(&mut self, i: usize, st: Stamp, now: u64) {
        let room = self.subs[i].spec.rooms[0];
        let Ledgers::Stamp(l) = &mut self.subs[i].ledgers else { return };
        let seen = l.on_stamp(st.p, st.s);
        let n = match seen {
            Seen::Missing { from, to } => self.unexcused(room, st.p, from, to),
            _ => 0,
        };
        self.on_seen(seen, n, Some(st), now);
    }

    /// Counts one received message; `lost` is how many it showed missing.
    fn on_seen(&mut self, seen: Seen, lost: u64, st: Option<Stamp>, now: u64) {
        match seen {
            Seen::Duplicate => self.tally().duplicates += 1,
            Seen::Replayed => self.tally().replayed += 1,
            Seen::First | Seen::InOrder | Seen::Missing { .. } => {
                self.tally().lost += lost;
                match st {
                    Some(st) => self.record_latency(st.t, now),
                    None => self.tally().unparsed += 1,
                }
            }
        }
    }

    fn record_latency(&mut self, t: u64, now: u64) {
        let sent = self.epoch + t;
        let lat = now.saturating_sub(sent).clamp(1, HIST_MAX_NS);
        let p = self.period_of(if self.latency_by_send { sent } else { now });
        let tally = &mut self.periods[p];
        tally.deliveries += 1;
        tally.lat.saturating_record(lat);
    }

    fn settle_resume(&mut self, r: Option<Resume>) {
        match r {
            None => {}
            Some(Resume::Verified) => self.tally().resumes_verified += 1,
            Some(Resume::ViaGap) => self.tally().resumes_via_gap += 1,
            Some(Resume::Failed { expected, got }) => {
                self.tally().resume_failures += 1;
                self.ctl.error(|| format!("resume expected seq {expected} first, got {got}"));
            }
        }
    }
}
