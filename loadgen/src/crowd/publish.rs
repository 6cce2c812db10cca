//! The crowd's publishers: an open-loop schedule (tick `k` of a publisher is due at
//! `start + k * period` whatever the server does, and is stamped with that *intended* time),
//! the payloads, and what the server answered to each publish.
//!
//! Answers matter for loss accounting: the highest acknowledged seq of a room is what its
//! `/ws` subscribers must reach, and the highest acknowledged stamp per publisher is what its
//! `/ws/<room>` subscribers must reach; refused publishes are excused.

use std::cmp::Reverse;
use std::io::Write as _;

use super::conn::CSt;
use super::{Crowd, Payload, Via};
use crate::http;
use crate::payload::{classify_mux, MuxMsg};
use crate::stats::HIST_MAX_NS;

/// `pub` ids encode (stamp, room index): `s * ROOMS_PER_PUB + k`.
pub(super) const ROOMS_PER_PUB: u64 = 8;

impl Crowd {
    pub(super) fn fire_due(&mut self, now: u64) {
        while let Some(&Reverse((due, i))) = self.schedule.peek() {
            if due > now {
                break;
            }
            self.schedule.pop();
            if due >= self.publish_until {
                continue; // this publisher is done
            }
            self.publish(i, due, now);
            let p = &mut self.pubs[i];
            p.k += 1;
            let next = p.start_ns + (p.k as f64 * p.period_ns) as u64;
            self.schedule.push(Reverse((next, i)));
        }
        self.arm();
    }

    fn publish(&mut self, i: usize, due: u64, now: u64) {
        let ci = match self.pubs[i].conn {
            Some(ci) if self.conns[ci].as_ref().is_some_and(|c| c.st == CSt::Open) => ci,
            _ => {
                self.tally().send_skipped += 1;
                return;
            }
        };
        let t = due.saturating_sub(self.epoch);
        let p = &mut self.pubs[i];
        p.s += 1;
        let (s, id) = (p.s, p.id);
        self.pbuf.clear();
        match (&mut p.model, p.spec.payload) {
            (Some(m), Payload::Vehicle { entity }) => {
                m.tick(&mut p.rng, p.period_ns / 1e9, t, id, s, entity, &mut self.pbuf)
            }
            _ => {
                let _ = write!(self.pbuf, "{{\"t\":{t},\"p\":{id},\"s\":{s},\"kind\":\"probe\"}}");
            }
        }
        let c = self.conns[ci].as_mut().expect("checked above");
        for (k, &room) in p.spec.rooms.iter().enumerate() {
            let name = &self.rooms[room as usize];
            let data = &self.pbuf;
            match p.spec.via {
                Via::Http => {
                    http::encode_publish(&mut c.out, &mut self.scratch, &self.host_port, name, |v| {
                        v.extend_from_slice(data)
                    });
                    p.http_inflight.push_back((k, s));
                }
                Via::Ws => {
                    let pub_id = s * ROOMS_PER_PUB + k as u64;
                    c.send_text(&mut self.rng, |v| {
                        let _ = write!(v, "{{\"op\":\"pub\",\"room\":\"{name}\",\"data\":");
                        v.extend_from_slice(data);
                        let _ = write!(v, ",\"id\":{pub_id}}}");
                    });
                    p.ws_unacked.insert(pub_id);
                }
            }
        }
        self.flush(ci);
        let t = self.tally();
        t.publishes += 1;
        t.send_lag.saturating_record(now.saturating_sub(due).clamp(1, HIST_MAX_NS));
    }

    /// A `/ws` publisher's reply: `ok` with the seq, or an `error` (refused).
    pub(super) fn on_pub_reply(&mut self, i: usize, msg: &[u8]) {
        match classify_mux(msg) {
            MuxMsg::Ok { id: Some(id), seq: Some(seq) } if self.pubs[i].ws_unacked.remove(&id) => {
                self.acked(i, (id % ROOMS_PER_PUB) as usize, id / ROOMS_PER_PUB, seq)
            }
            MuxMsg::Error { id: Some(id), .. } if self.pubs[i].ws_unacked.remove(&id) => {
                self.refused(i, (id % ROOMS_PER_PUB) as usize, id / ROOMS_PER_PUB)
            }
            _ => {}
        }
    }

    /// Publish `s` of publisher `i` into its `k`-th room got `seq`.
    pub(super) fn acked(&mut self, i: usize, k: usize, s: u64, seq: u64) {
        let p = &self.pubs[i];
        let room = p.spec.rooms[k] as usize;
        self.final_seq[room] = self.final_seq[room].max(seq);
        let e = self.final_s[room].entry(p.id).or_insert(0);
        *e = (*e).max(s);
    }

    pub(super) fn refused(&mut self, i: usize, k: usize, s: u64) {
        let p = &self.pubs[i];
        self.excused.insert((p.spec.rooms[k], p.id, s));
        self.tally().publish_refusals += 1;
    }
}
