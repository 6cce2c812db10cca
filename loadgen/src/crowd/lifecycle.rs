//! Connections coming and going: (re)connects on a schedule, what happens when the server
//! closes a well-behaved client, the churn of leaving / joining / resuming subscribers, and
//! the final drain with its loss count.
//!
//! Loss is only ever charged to subscriptions that were supposed to be receiving: live ones,
//! and, in a crowd that does not reconnect (`abuse`), ones the server closed for good. A
//! subscriber away by the churn's own choice is not charged for what it misses meanwhile;
//! when it resumes, its ledger checks the server replays exactly that.

use std::cmp::Reverse;
use std::io::Write as _;
use std::sync::atomic::Ordering::*;

use super::conn::{CSt, Conn, Role};
use super::publish::ROOMS_PER_PUB;
use super::{Crowd, CrowdResult, Ledgers, Proto, Status, Sub, Via, Who, MAX_CONNECTING};
use crate::sys;
use crate::ws;

/// Delay before a client the server closed comes back.
const RECONNECT_AFTER_NS: u64 = 200_000_000;

impl Crowd {
    /// Opens the connections whose time has come, at most `MAX_CONNECTING` at once.
    pub(super) fn start_due_connects(&mut self, now: u64) {
        while self.connecting < MAX_CONNECTING {
            let Some(&Reverse((at, who))) = self.reconnects.peek() else { break };
            if at > now {
                break;
            }
            self.reconnects.pop();
            let (role, http, path) = match who {
                Who::Sub(i) => {
                    let s = &self.subs[i];
                    if s.status != Status::Pending || s.conn.is_some() {
                        continue;
                    }
                    let path = match s.spec.proto {
                        Proto::Mux => "/ws".to_string(),
                        Proto::PerRoom => format!("/ws/{}", self.rooms[s.spec.rooms[0] as usize]),
                    };
                    (Role::Sub(i), false, path)
                }
                Who::Pub(i) => {
                    if self.pubs[i].conn.is_some() {
                        continue;
                    }
                    (Role::Pub(i), self.pubs[i].spec.via == Via::Http, "/ws".to_string())
                }
            };
            if let Err(e) = self.open_conn(role, http, path) {
                self.connect_failed(role, format!("connect {}: {e}", self.dst));
            }
        }
    }

    fn open_conn(&mut self, role: Role, http: bool, path: String) -> std::io::Result<()> {
        let conn = Conn::start(self.dst, role, http, path)?;
        let ci = match self.free.pop() {
            Some(ci) => ci,
            None => {
                self.conns.push(None);
                self.gens.push(0);
                self.conns.len() - 1
            }
        };
        self.gens[ci] = self.gens[ci].wrapping_add(1);
        let fd = conn.fd;
        self.conns[ci] = Some(conn);
        if let Err(e) = self.ep.add(fd, (libc::EPOLLIN | libc::EPOLLOUT) as u32, self.token(ci)) {
            self.release(ci);
            return Err(e);
        }
        self.connecting += 1;
        match role {
            Role::Sub(i) => self.subs[i].conn = Some(ci),
            Role::Pub(i) => self.pubs[i].conn = Some(ci),
        }
        Ok(())
    }

    /// Frees slot `ci` (closing its socket with RST); returns what it was.
    fn release(&mut self, ci: usize) -> Option<Conn> {
        let c = self.conns[ci].take()?;
        if matches!(c.st, CSt::Connecting | CSt::Handshake) {
            self.connecting = self.connecting.saturating_sub(1);
        }
        self.free.push(ci);
        Some(c)
    }

    /// A connection is usable: the upgrade completed (or, for HTTP, the TCP connect).
    pub(super) fn on_open(&mut self, ci: usize) {
        let Some(c) = self.conns[ci].as_mut() else { return };
        c.st = CSt::Open;
        match c.role {
            Role::Pub(i) => {
                let p = &mut self.pubs[i];
                if !p.counted_ready && !self.running {
                    p.counted_ready = true;
                    self.ctl.pubs_ready.fetch_add(1, SeqCst);
                }
            }
            Role::Sub(i) => {
                let resumed = self.subs[i].resume;
                self.subs[i].status = Status::Live;
                self.subs[i].confirmed = 0;
                if resumed {
                    self.tally().reconnects += 1;
                }
                if self.subs[i].spec.proto == Proto::PerRoom {
                    self.confirmed(i); // joined at the handshake
                    return;
                }
                let s = &mut self.subs[i];
                let Ledgers::Seq(ledgers) = &mut s.ledgers else { return };
                let c = self.conns[ci].as_mut().expect("checked above");
                let mut resumes = 0;
                for (k, l) in ledgers.iter_mut().enumerate() {
                    let since = if s.resume { l.resume_point() } else { None };
                    resumes += since.is_some() as u64;
                    l.subscribe(since);
                    let room = &self.rooms[s.spec.rooms[k] as usize];
                    c.send_text(&mut self.rng, |v| {
                        let _ = write!(v, "{{\"op\":\"sub\",\"room\":\"{room}\",\"id\":{}", k + 1);
                        if let Some(since) = since {
                            let _ = write!(v, ",\"since\":{since}");
                        }
                        v.push(b'}');
                    });
                }
                self.tally().resumes += resumes;
                self.flush(ci);
            }
        }
    }

    /// One more room of subscriber `i` is confirmed.
    pub(super) fn confirmed(&mut self, i: usize) {
        let s = &mut self.subs[i];
        s.confirmed += 1;
        if s.confirmed == s.spec.rooms.len() && !s.counted_ready && !self.running {
            s.counted_ready = true;
            self.ctl.subs_ready.fetch_add(1, SeqCst);
        }
    }

    fn connect_failed(&mut self, role: Role, why: String) {
        self.ctl.error(|| why);
        self.after_loss(role);
    }

    /// The connection broke or the server closed it.
    pub(super) fn lost_conn(&mut self, ci: usize, why: String) {
        let Some(c) = self.release(ci) else { return };
        self.ctl.error(|| why);
        self.after_loss(c.role);
    }

    fn after_loss(&mut self, role: Role) {
        let now = sys::mono_ns();
        if !self.running {
            self.ctl.setup_failures.fetch_add(1, SeqCst);
        } else {
            self.tally().disconnects += 1;
        }
        match role {
            Role::Sub(i) => {
                let s = &mut self.subs[i];
                s.conn = None;
                if self.running && self.reconnect {
                    s.status = Status::Pending;
                    s.resume = true;
                    if let Ledgers::Stamp(l) = &mut s.ledgers {
                        // Room-per-URL has no resume: what was published while away is not
                        // this client's to expect (the disconnect itself is counted).
                        *l = crate::ledger::StampLedger::new();
                    }
                    self.reconnects.push(Reverse((now + RECONNECT_AFTER_NS, Who::Sub(i))));
                } else {
                    s.status = Status::Dead;
                }
            }
            Role::Pub(i) => {
                let p = &mut self.pubs[i];
                p.conn = None;
                // Requests in flight have an unknown fate: a miss of one of them is no loss.
                let pid = p.id;
                let mut fates: Vec<(u32, u64)> =
                    p.http_inflight.drain(..).map(|(k, s)| (p.spec.rooms[k], s)).collect();
                fates.extend(
                    p.ws_unacked
                        .drain()
                        .map(|id| (p.spec.rooms[(id % ROOMS_PER_PUB) as usize], id / ROOMS_PER_PUB)),
                );
                for (room, s) in fates {
                    self.excused.insert((room, pid, s));
                }
                if self.running {
                    self.reconnects.push(Reverse((now + RECONNECT_AFTER_NS, Who::Pub(i))));
                }
            }
        }
    }

    /// Once a second during publishing: some live subscribers close; mux ones may come back
    /// resuming with `since`, the others are replaced by fresh ones.
    pub(super) fn churn_tick(&mut self, now: u64) {
        if self.churn.is_none() || now < self.next_churn || now >= self.publish_until {
            return;
        }
        self.next_churn += 1_000_000_000;
        let (per_second, resume_share) = {
            let c = self.churn.as_ref().expect("checked above");
            (c.per_second, c.resume_share)
        };
        for _ in 0..per_second {
            let mut pick = None;
            for _ in 0..16 {
                let i = self.rng.below(self.subs.len() as u64) as usize;
                if self.subs[i].status == Status::Live
                    && self.subs[i].confirmed == self.subs[i].spec.rooms.len()
                {
                    pick = Some(i);
                    break;
                }
            }
            let Some(i) = pick else { continue };
            self.close_politely(i);
            let resume = self.subs[i].spec.proto == Proto::Mux && self.rng.f64() < resume_share;
            if resume {
                let s = &mut self.subs[i];
                s.status = Status::Pending;
                s.resume = true;
                let at = now + 50_000_000 + self.rng.below(450_000_000);
                self.reconnects.push(Reverse((at, Who::Sub(i))));
            } else {
                self.subs[i].status = Status::Gone;
                let churn = self.churn.as_mut().expect("checked above");
                let spec = (churn.join)(&mut self.rng, &self.subs[i].spec);
                self.subs.push(Sub::new(spec));
                let at = now + self.rng.below(1_000_000_000);
                self.reconnects.push(Reverse((at, Who::Sub(self.subs.len() - 1))));
                let t = self.tally();
                t.leaves += 1;
                t.joins += 1;
            }
        }
    }

    /// A clean client close: close frame 1000, then the socket goes (RST).
    fn close_politely(&mut self, i: usize) {
        let Some(ci) = self.subs[i].conn.take() else { return };
        if let Some(c) = self.conns[ci].as_mut() {
            c.send_frame(&mut self.rng, ws::OP_CLOSE, &1000u16.to_be_bytes());
            let _ = c.write_out();
        }
        self.release(ci);
    }

    /// Every live subscription has every message its room's publishers were acknowledged
    /// for, and no publish is still waiting for its answer.
    pub(super) fn caught_up(&self) -> bool {
        let pubs_done = self
            .pubs
            .iter()
            .all(|p| p.conn.is_none() || (p.http_inflight.is_empty() && p.ws_unacked.is_empty()));
        pubs_done
            && self
                .subs
                .iter()
                .filter(|s| s.status == Status::Live)
                .all(|s| s.confirmed == s.spec.rooms.len() && self.missing(s) == 0)
    }

    /// Messages subscriber `s` should have by now and has not (excused ones aside).
    fn missing(&self, s: &Sub) -> u64 {
        match &s.ledgers {
            Ledgers::Seq(ls) => {
                ls.iter().zip(&s.spec.rooms).map(|(l, &r)| l.missing_up_to(self.final_seq[r as usize])).sum()
            }
            Ledgers::Stamp(l) => {
                let room = s.spec.rooms[0];
                self.final_s[room as usize]
                    .iter()
                    .filter_map(|(&p, &fin)| l.last(p).map(|last| self.unexcused(room, p, last + 1, fin)))
                    .sum()
            }
        }
    }

    /// How many of stamps `from..=to` of publisher `p` in `room` are not excused.
    pub(super) fn unexcused(&self, room: u32, p: u32, from: u64, to: u64) -> u64 {
        (from..=to).filter(|&s| !self.excused.contains(&(room, p, s))).count() as u64
    }

    /// Charges what live and dead subscriptions still miss as lost, and hands the periods
    /// over. All sockets close (RST) when the crowd is dropped.
    pub(super) fn finish(&mut self, drained: bool, waited: u64) -> CrowdResult {
        let missing: u64 = self
            .subs
            .iter()
            .filter(|s| matches!(s.status, Status::Live | Status::Dead))
            .map(|s| self.missing(s))
            .sum();
        self.tally().lost += missing;
        CrowdResult { periods: std::mem::take(&mut self.periods), drained, drain_ns: waited }
    }
}
