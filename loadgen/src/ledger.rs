//! Delivery accounting of one subscription: what each received message means (in order,
//! replayed, duplicate, or after a silent hole), and whether a resume with `since` came back
//! without gap or duplicate.
//!
//! Two ledgers, one per thing a client can check:
//! - [`SeqLedger`] for the multiplexed `/ws` protocol, on the server's per-room `seq`: the
//!   `ok` of a `sub` carries the room's last seq `L`; after it come, in order, an optional
//!   `gap` notice, the replay (seqs `<= L`) and live messages from `L + 1` (DESIGN §3). So
//!   every seq from the subscription's start must arrive exactly once, or be named by a `gap`.
//! - [`StampLedger`] for room-per-URL `/ws/<room>`, which delivers the published bytes with no
//!   envelope: it checks each publisher's own counter `s` (payload field) instead, from the
//!   first message seen, since the subscription's start is not observable there.
//!
//! Neither touches a socket or a clock, so the unit tests drive them directly.

use std::collections::HashMap;

/// What one received message means for its subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first message, which fixes the base (nothing to compare with yet).
    First,
    /// The next one expected, live.
    InOrder,
    /// The next one expected, from history after a resume (its latency is the outage, not
    /// the server's delivery time).
    Replayed,
    /// Already had it (or an older one): duplicate or reordered.
    Duplicate,
    /// Arrived after a hole nobody announced: `from..=to` never came.
    Missing { from: u64, to: u64 },
}

/// How a resume with `since` turned out, decided by the first `gap` or message after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The first message was exactly `since + 1`.
    Verified,
    /// The server announced a `gap` starting at `since + 1` (history no longer covered it).
    ViaGap,
    /// Anything else: a silent hole, a duplicate, or a `reset`.
    Failed { expected: u64, got: u64 },
}

/// What the `ok` of a `sub` said about the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OkCheck {
    Fine,
    /// The resume asked for `since` above the room's last seq (the room restarted, or the
    /// client is confused) and the server accepted it without a `reset`: the client will
    /// silently miss everything up to its `since`.
    SinceAhead {
        since: u64,
        room_seq: u64,
    },
}

/// Per-room `seq` accounting for one `/ws` subscription; see the module docs.
///
/// Invariant: once the base is known, `next - 1` is the highest seq the client may claim to
/// have (received or announced as a gap), which is exactly the `since` to resume from.
#[derive(Debug, Clone, Default)]
pub struct SeqLedger {
    /// The next seq expected; `None` until the base is known.
    next: Option<u64>,
    /// `Some(since)` from a resume until the first `gap` or message settles it.
    verifying: Option<u64>,
    /// After a resume, seqs up to the room's seq in the `ok` are replayed history.
    replay_end: u64,
}

impl SeqLedger {
    pub fn new() -> SeqLedger {
        SeqLedger::default()
    }

    /// (Re)starts the subscription: fresh (`None`, the base comes with the `ok`) or resuming
    /// after `since`, the last seq held.
    pub fn subscribe(&mut self, since: Option<u64>) {
        self.next = since.map(|s| s + 1);
        self.verifying = since;
        self.replay_end = 0;
    }

    pub fn on_ok(&mut self, room_seq: u64) -> OkCheck {
        match (self.next, self.verifying) {
            (None, _) => {
                self.next = Some(room_seq + 1);
                OkCheck::Fine
            }
            (Some(_), Some(since)) if room_seq < since => OkCheck::SinceAhead { since, room_seq },
            (Some(_), _) => {
                self.replay_end = room_seq;
                OkCheck::Fine
            }
        }
    }

    /// A `gap` notice for `from..=to`; returns how many messages it names and, after a
    /// resume, how the resume went.
    pub fn on_gap(&mut self, from: u64, to: u64) -> (u64, Option<Resume>) {
        let n = to.saturating_sub(from) + 1;
        let resume = self.verifying.take().map(|since| {
            if from == since + 1 {
                Resume::ViaGap
            } else {
                Resume::Failed { expected: since + 1, got: from }
            }
        });
        self.next = Some(self.next.map_or(to + 1, |x| x.max(to + 1)));
        (n, resume)
    }

    /// A `reset` notice: the room's sequence restarted, so the base is taken afresh from the
    /// next message. A resume still pending fails (the client cannot continue where it was).
    pub fn on_reset(&mut self) -> Option<Resume> {
        let r = self.verifying.take().map(|s| Resume::Failed { expected: s + 1, got: 0 });
        self.next = None;
        self.replay_end = 0;
        r
    }

    pub fn on_data(&mut self, seq: u64) -> (Seen, Option<Resume>) {
        let resume = self.verifying.take().map(|since| {
            if seq == since + 1 {
                Resume::Verified
            } else {
                Resume::Failed { expected: since + 1, got: seq }
            }
        });
        let seen = match self.next {
            None => {
                self.next = Some(seq + 1);
                Seen::First
            }
            Some(n) if seq == n => {
                self.next = Some(n + 1);
                if seq <= self.replay_end {
                    Seen::Replayed
                } else {
                    Seen::InOrder
                }
            }
            Some(n) if seq < n => Seen::Duplicate,
            Some(n) => {
                self.next = Some(seq + 1);
                Seen::Missing { from: n, to: seq - 1 }
            }
        };
        (seen, resume)
    }

    /// The `since` to resume from: the last seq held (received or announced), if known.
    pub fn resume_point(&self) -> Option<u64> {
        self.next.map(|n| n - 1)
    }

    /// Messages up to `final_seq` (the room's last seq the publishers were told) not had yet.
    pub fn missing_up_to(&self, final_seq: u64) -> u64 {
        self.next.map_or(0, |n| final_seq.saturating_sub(n - 1))
    }
}

/// Per-publisher `s` accounting for one room-per-URL subscription; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct StampLedger {
    last: HashMap<u32, u64>,
}

impl StampLedger {
    pub fn new() -> StampLedger {
        StampLedger::default()
    }

    /// Message `s` of publisher `p`.
    pub fn on_stamp(&mut self, p: u32, s: u64) -> Seen {
        match self.last.get_mut(&p) {
            None => {
                self.last.insert(p, s);
                Seen::First
            }
            Some(last) if s == *last + 1 => {
                *last = s;
                Seen::InOrder
            }
            Some(last) if s <= *last => Seen::Duplicate,
            Some(last) => {
                let from = *last + 1;
                *last = s;
                Seen::Missing { from, to: s - 1 }
            }
        }
    }

    /// The last `s` seen from publisher `p`.
    pub fn last(&self, p: u32) -> Option<u64> {
        self.last.get(&p).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_subscription_counts_holes_and_duplicates() {
        let mut l = SeqLedger::new();
        l.subscribe(None);
        assert_eq!(l.on_ok(10), OkCheck::Fine);
        assert_eq!(l.resume_point(), Some(10));
        assert_eq!(l.on_data(11), (Seen::InOrder, None));
        assert_eq!(l.on_data(11), (Seen::Duplicate, None));
        assert_eq!(l.on_data(14), (Seen::Missing { from: 12, to: 13 }, None));
        assert_eq!(l.on_gap(15, 19), (5, None));
        assert_eq!(l.on_data(20), (Seen::InOrder, None));
        assert_eq!(l.missing_up_to(23), 3);
        assert_eq!(l.missing_up_to(20), 0);
    }

    #[test]
    fn resume_replays_then_goes_live() {
        let mut l = SeqLedger::new();
        l.subscribe(Some(5));
        assert_eq!(l.on_ok(8), OkCheck::Fine);
        assert_eq!(l.on_data(6), (Seen::Replayed, Some(Resume::Verified)));
        assert_eq!(l.on_data(7).0, Seen::Replayed);
        assert_eq!(l.on_data(8).0, Seen::Replayed);
        assert_eq!(l.on_data(9).0, Seen::InOrder);
    }

    #[test]
    fn resume_outcomes() {
        let mut l = SeqLedger::new();
        l.subscribe(Some(5));
        l.on_ok(5);
        assert_eq!(l.on_data(6), (Seen::InOrder, Some(Resume::Verified)));

        let mut l = SeqLedger::new();
        l.subscribe(Some(5));
        l.on_ok(300);
        assert_eq!(l.on_gap(6, 200), (195, Some(Resume::ViaGap)));
        assert_eq!(l.on_data(201).0, Seen::Replayed);

        let mut l = SeqLedger::new();
        l.subscribe(Some(5));
        l.on_ok(9);
        assert_eq!(l.on_data(5), (Seen::Duplicate, Some(Resume::Failed { expected: 6, got: 5 })));

        let mut l = SeqLedger::new();
        l.subscribe(Some(5));
        l.on_ok(9);
        assert_eq!(l.on_data(8).1, Some(Resume::Failed { expected: 6, got: 8 }));

        let mut l = SeqLedger::new();
        l.subscribe(Some(50));
        assert_eq!(l.on_ok(3), OkCheck::SinceAhead { since: 50, room_seq: 3 });
        assert_eq!(l.on_reset(), Some(Resume::Failed { expected: 51, got: 0 }));
        assert_eq!(l.on_data(1).0, Seen::First);
        assert_eq!(l.on_data(2).0, Seen::InOrder);
    }

    #[test]
    fn stamps_per_publisher() {
        let mut l = StampLedger::new();
        assert_eq!(l.on_stamp(1, 7), Seen::First);
        assert_eq!(l.on_stamp(2, 1), Seen::First);
        assert_eq!(l.on_stamp(1, 8), Seen::InOrder);
        assert_eq!(l.on_stamp(1, 8), Seen::Duplicate);
        assert_eq!(l.on_stamp(1, 11), Seen::Missing { from: 9, to: 10 });
        assert_eq!((l.last(1), l.last(2), l.last(3)), (Some(11), Some(1), None));
    }
}
