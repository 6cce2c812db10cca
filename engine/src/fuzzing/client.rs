//! The client's side of `engine_model`: reads what a subscriber's outbox hands the writer,
//! entry by entry, and checks what a client of DESIGN §3 relies on, per room:
//!
//! * an `ok` with a `seq` starts a subscription (the harness says what it asked for); an
//!   `ok` without one ends it (the unsubscribe acknowledgement);
//! * messages arrive in strictly ascending `seq`, never one `<= since`, never one that a
//!   drop `gap` already announced as lost;
//! * the replay `gap` (history no longer covers `since`) comes first and is the one the room
//!   computed; snapshot entries inside it may follow it, nothing else below the live edge;
//! * under `drop` and `disconnect` nothing is skipped silently: every `seq` from the live
//!   edge on is either delivered or inside a gap that arrives before the next message of
//!   the room, and a gap never covers a message this subscription already received;
//! * a close frame is the last thing ever sent.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::frame::{OP_CLOSE, OP_TEXT};
use crate::message::DeliveryMode;
use crate::outbox::Entry;

/// What the harness asked for when it subscribed, and what the room answered.
#[derive(Debug, Clone)]
pub(super) struct SubInfo {
    pub since: Option<u64>,
    pub last_seq: u64,
    pub replay_gap: Option<(u64, u64)>,
}

/// One subscription as the client sees it, from its `ok` on.
#[derive(Debug)]
struct Current {
    info: SubInfo,
    /// No silent skips allowed (every policy but `conflate`, which drops superseded
    /// messages by design).
    strict: bool,
    /// The replay gap has not arrived yet.
    awaiting_replay_gap: bool,
    /// Last `seq` received in this subscription (0: none yet).
    last_rx: u64,
    /// Every `seq` from here on must be delivered or announced.
    next_req: u64,
    /// Ranges announced lost by drop gaps (not the replay gap).
    lost: Vec<(u64, u64)>,
}

impl Current {
    fn new(info: SubInfo, strict: bool) -> Self {
        let next_req = match info.since {
            Some(s) if s < info.last_seq => s + 1,
            _ => info.last_seq + 1,
        };
        let awaiting_replay_gap = info.replay_gap.is_some();
        Current { info, strict, awaiting_replay_gap, last_rx: 0, next_req, lost: Vec::new() }
    }

    fn on_msg(&mut self, room: &str, q: u64) {
        assert!(!self.awaiting_replay_gap, "{room}#{q} arrived before the replay gap");
        assert!(q > self.last_rx, "{room}#{q} after #{}: out of order or duplicate", self.last_rx);
        // A `since` ahead of the room was turned into a reset (since 0) by the harness.
        if let Some(s) = self.info.since {
            assert!(q > s, "{room}#{q} resent although the client asked for seq > {s}");
        }
        if let Some(&(a, b)) = self.lost.iter().find(|(a, b)| (*a..=*b).contains(&q)) {
            panic!("{room}#{q} delivered after a gap announced {a}..={b} as lost");
        }
        if q >= self.next_req {
            if self.strict {
                assert_eq!(q, self.next_req, "{room}: seqs {}..{q} skipped without a gap", self.next_req);
            }
            self.next_req = q + 1;
        } else {
            assert!(q <= self.info.last_seq, "{room}#{q} below the live edge but not a replay");
        }
        self.last_rx = q;
    }

    fn on_gap(&mut self, room: &str, from: u64, to: u64) {
        assert!(from <= to, "{room}: inverted gap {from}..={to}");
        if self.awaiting_replay_gap {
            self.awaiting_replay_gap = false;
            assert_eq!(Some((from, to)), self.info.replay_gap, "{room}: first gap is not the replay gap");
            self.next_req = self.next_req.max(to + 1);
            return;
        }
        assert!(from > self.last_rx, "{room}: gap {from}..={to} covers #{} already received", self.last_rx);
        if self.strict {
            assert!(from <= self.next_req, "{room}: seqs {}..{from} skipped before gap", self.next_req);
        }
        self.lost.push((from, to));
        self.next_req = self.next_req.max(to + 1);
    }
}

#[derive(Debug, Default)]
struct Stream {
    /// Subscriptions whose `ok` is still queued, oldest first.
    pending: VecDeque<SubInfo>,
    cur: Option<Current>,
}

/// A control frame the engine sends, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Ctrl<'a> {
    Ok { room: &'a str, seq: Option<u64> },
    Gap { room: &'a str, from: u64, to: u64 },
    Close,
}

/// Parses the few control frames the model produces (server frames: unmasked, final).
fn parse_ctrl(f: &Bytes) -> Ctrl<'_> {
    assert!(f.len() >= 2 && f[0] & 0x80 != 0 && f[1] & 0x80 == 0, "bad frame head {:?}", &f[..]);
    let (len, head) = match f[1] {
        126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
        127 => panic!("control frame with a 64-bit length"),
        n => (n as usize, 2),
    };
    assert_eq!(f.len(), head + len, "frame length field disagrees with its size");
    match f[0] & 0x0F {
        OP_CLOSE => return Ctrl::Close,
        OP_TEXT => {}
        op => panic!("unexpected opcode {op}"),
    }
    let text = std::str::from_utf8(&f[head..]).expect("control frame is UTF-8");
    let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("bad number in {text}"));
    if let Some(rest) = text.strip_prefix(r#"{"op":"ok","room":""#) {
        return match rest.split_once(r#"","seq":"#) {
            Some((room, seq)) => {
                Ctrl::Ok { room, seq: Some(num(seq.strip_suffix('}').unwrap_or_else(|| bad(text)))) }
            }
            None => Ctrl::Ok { room: rest.strip_suffix(r#""}"#).unwrap_or_else(|| bad(text)), seq: None },
        };
    }
    let rest = text.strip_prefix(r#"{"op":"gap","room":""#).unwrap_or_else(|| bad(text));
    let (room, rest) = rest.split_once(r#"","from":"#).unwrap_or_else(|| bad(text));
    let (from, to) =
        rest.strip_suffix('}').and_then(|r| r.split_once(r#","to":"#)).unwrap_or_else(|| bad(text));
    Ctrl::Gap { room, from: num(from), to: num(to) }
}

fn bad<T>(text: &str) -> T {
    panic!("unexpected control frame {text}")
}

/// One subscriber's client. See the module documentation.
#[derive(Debug)]
pub(super) struct Client {
    /// Room names and whether their policy forbids silent skips.
    rooms: Vec<(Arc<str>, bool)>,
    streams: Vec<Stream>,
    mode: DeliveryMode,
    closed: bool,
}

impl Client {
    pub fn new(rooms: Vec<(Arc<str>, bool)>, mode: DeliveryMode) -> Self {
        let streams = rooms.iter().map(|_| Stream::default()).collect();
        Client { rooms, streams, mode, closed: false }
    }

    /// The harness queued the `ok` of a subscription to room `r`.
    pub fn expect_sub(&mut self, r: usize, info: SubInfo) {
        self.streams[r].pending.push_back(info);
    }

    fn room(&self, name: &str) -> usize {
        self.rooms.iter().position(|(n, _)| &**n == name).unwrap_or_else(|| panic!("unknown room {name}"))
    }

    /// The next entry the writer would send.
    pub fn receive(&mut self, e: &Entry) {
        assert!(!self.closed, "a frame after the close frame");
        match e {
            Entry::Msg(m) => {
                assert!(
                    e.bytes(self.mode).as_ptr() == m.frame_for(self.mode).as_ptr(),
                    "message frame copied"
                );
                let r = self.room(&m.room);
                let cur = self.streams[r].cur.as_mut();
                cur.unwrap_or_else(|| panic!("{}#{} while not subscribed", m.room, m.seq))
                    .on_msg(&m.room, m.seq);
            }
            Entry::Ctrl(f) => match parse_ctrl(f) {
                Ctrl::Close => self.closed = true,
                Ctrl::Ok { room, seq: Some(seq) } => {
                    let r = self.room(room);
                    let s = &mut self.streams[r];
                    let info = s.pending.pop_front().unwrap_or_else(|| panic!("unexpected ok for {room}"));
                    assert_eq!(info.last_seq, seq, "{room}: ok carries the wrong seq");
                    s.cur = Some(Current::new(info, self.rooms[r].1));
                }
                Ctrl::Ok { room, seq: None } => {
                    let r = self.room(room);
                    assert!(
                        self.streams[r].cur.take().is_some(),
                        "unsubscribe ok for {room} without a subscription"
                    );
                }
                Ctrl::Gap { room, from, to } => {
                    let r = self.room(room);
                    match self.streams[r].cur.as_mut() {
                        Some(c) => c.on_gap(room, from, to),
                        // A drop notice of an ended subscription: true, and harmless.
                        None => assert!(from <= to, "{room}: inverted gap {from}..={to}"),
                    }
                }
            },
        }
    }

    /// After the outbox was fully drained: in every room still followed under a strict
    /// policy, everything up to the room's `last_seq` was delivered or announced.
    pub fn finish(&self, r: usize, last_seq: u64) {
        if self.closed {
            return;
        }
        if let Some(c) = &self.streams[r].cur {
            assert!(!c.awaiting_replay_gap, "{}: replay gap never arrived", self.rooms[r].0);
            if c.strict {
                assert_eq!(c.next_req, last_seq + 1, "{}: tail lost without a gap", self.rooms[r].0);
            }
        }
    }
}
