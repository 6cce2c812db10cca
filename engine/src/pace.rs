//! Per-subscriber pacing of a room's keyed messages: a rate limit and a dead-band, per key.
//!
//! Why: a map client that shows 5,000 vehicles does not need each one's 10 Hz position
//! stream; it needs the newest position often enough, and every change of state (a vehicle
//! that stops) at once. Pacing is per subscriber, so one slow dashboard asking for one
//! update every 5 s costs nothing to the others, which still get every message.
//!
//! The wire contract (`sub` options), which [`Pacer`] implements exactly:
//! - `max_rate: r` — at most `r` messages per key per second; the **newest wins** and is
//!   delivered at the end of the interval (`1/r` s), so the last position always arrives.
//! - `min_move_m: d` — a message that moved less than `d` metres from the position last
//!   **delivered to this subscriber** for the key is skipped. A message without a position
//!   is not subject to the dead-band.
//! - status — each message carries a fingerprint of its status fields; a status different
//!   from the last delivered one for the key is delivered at once, whatever the other rules
//!   (fingerprint 0, a message without any status field, says nothing about the status).
//! - `max_silence_s: t` — with `min_move_m`: a message inside the dead-band is delivered
//!   anyway once `t` has passed since the key's last delivery, and is held until then if it
//!   is the newest, so a parked vehicle is confirmed every `t` seconds.
//! - the first message of a key is delivered at once; a held message is replaced by any
//!   newer one of its key (even one inside the dead-band: the client must end on the newest
//!   position), and a replaced message is never delivered.
//!
//! Invariants: at most `max_keys` key states and at most one pending message per key; a
//! message of a new key beyond `max_keys` passes unpaced and is counted
//! ([`Pacer::overflowed`]), never dropped silently. Two deliveries of one key are at least
//! the interval apart (to the millisecond: times are kept as milliseconds since the first
//! instant the pacer saw) unless the status changed. Per key the state is 64 bytes for an
//! `Arc` handle (status, two positions, the pending handle, two times) plus the key string
//! and its map entry.
//!
//! Pending messages are ordered by due time in a `BTreeSet<(due, slot)>`. A FIFO is not
//! enough: a due time is counted from each key's own last delivery (and a dead-band hold
//! from `max_silence`), so holds are not created in due order. The set is kept exact —
//! a replaced, forgotten or bypassed hold removes its entry — so it holds exactly
//! [`Pacer::pending`] entries, at most `max_keys`, and `next_due`/`take_due` never scan keys.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// The most messages per key per second a subscriber may ask for.
pub const MAX_RATE: f64 = 1000.0;
/// The least: one message per key per day.
pub const MIN_RATE: f64 = 1.0 / 86_400.0;
/// The largest dead-band, about half the Earth's circumference.
pub const MAX_MOVE_M: f64 = 20_000_000.0;
/// The longest `max_silence_s`: a day.
pub const MAX_SILENCE_S: f64 = 86_400.0;

/// A subscriber's pacing options, validated ([`PaceRule::from_wire`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceRule {
    /// Least time between two deliveries of one key (`1 / max_rate`); `None`: no rate limit.
    pub interval: Option<Duration>,
    /// Dead-band in metres; `None`: every position counts.
    pub min_move_m: Option<f64>,
    /// Longest a key stays silent when the dead-band suppresses its updates.
    pub max_silence: Option<Duration>,
}

/// Why a subscriber's pacing options were refused; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PaceError {
    #[error("max_rate must be between 1/86400 (one a day) and 1000 messages per second, not {0}")]
    MaxRate(f64),
    #[error("min_move_m must be more than 0 and at most 20000000 metres, not {0}")]
    MinMove(f64),
    #[error("max_silence_s must be more than 0 and at most 86400 seconds, not {0}")]
    MaxSilence(f64),
    /// `max_silence_s` only bounds what the dead-band suppresses; alone it would do nothing.
    #[error("max_silence_s needs min_move_m")]
    SilenceWithoutMove,
}

impl PaceRule {
    /// The rule for the `sub` options `max_rate`, `min_move_m`, `max_silence_s`; `Ok(None)`
    /// when none is set (the subscriber gets every message).
    pub fn from_wire(
        max_rate: Option<f64>,
        min_move_m: Option<f64>,
        max_silence_s: Option<f64>,
    ) -> Result<Option<PaceRule>, PaceError> {
        let interval = match max_rate {
            Some(r) if (MIN_RATE..=MAX_RATE).contains(&r) => Some(Duration::from_secs_f64(1.0 / r)),
            Some(r) => return Err(PaceError::MaxRate(r)),
            None => None,
        };
        if let Some(d) = min_move_m {
            if !(d > 0.0 && d <= MAX_MOVE_M) {
                return Err(PaceError::MinMove(d));
            }
        }
        let max_silence = match max_silence_s {
            Some(t) if t > 0.0 && t <= MAX_SILENCE_S => Some(Duration::from_secs_f64(t)),
            Some(t) => return Err(PaceError::MaxSilence(t)),
            None => None,
        };
        if max_silence.is_some() && min_move_m.is_none() {
            return Err(PaceError::SilenceWithoutMove);
        }
        if interval.is_none() && min_move_m.is_none() {
            return Ok(None);
        }
        Ok(Some(PaceRule { interval, min_move_m, max_silence }))
    }
}

/// What [`Pacer::offer`] decided for a message.
#[derive(Debug, PartialEq)]
pub enum Offer<T> {
    /// Deliver it now.
    Send(T),
    /// Kept as the key's pending message. `new_due` is `Some(due)` when the key's pending
    /// slot was created or its due time moved earlier: the caller must call
    /// [`Pacer::take_due`] at or after `due` (or at [`Pacer::next_due`]). `None`: it only
    /// replaced a pending message, whose due time stands.
    Held { new_due: Option<Instant> },
    /// Not delivered: inside the dead-band, no `max_silence`, nothing pending.
    Skipped,
}

/// Position kept as `[lat, lon]`, `lat` NaN for "no position" (saves the `Option` tag).
type Pt = [f64; 2];
const NO_POS: Pt = [f64::NAN, f64::NAN];

fn pt(pos: Option<(f64, f64)>) -> Pt {
    match pos {
        Some((lat, lon)) if lat.is_finite() && lon.is_finite() => [lat, lon],
        _ => NO_POS,
    }
}

/// One key's state; its size is documented in the module header (64 bytes for an `Arc`).
struct KeyState<T> {
    /// Status fingerprint of the last delivered message; a pending message always has
    /// this same status (a different one is delivered at once).
    status: u64,
    last_pos: Pt,
    pend_pos: Pt,
    pending: Option<T>,
    /// When the last message was delivered, in ms since `origin`.
    last_ms: u64,
    /// When `pending` is due; meaningful only while `pending` is `Some`.
    due_ms: u64,
}

/// Pacing of one subscriber's messages of one room, per key. No I/O, no clock: every call
/// takes `now`, and the caller arranges the calls to [`Pacer::take_due`].
pub struct Pacer<T> {
    rule: PaceRule,
    interval_ms: u64,
    silence_ms: Option<u64>,
    max_keys: usize,
    /// The first instant seen; all times are milliseconds since it.
    origin: Option<Instant>,
    index: FxHashMap<Box<str>, u32>,
    slots: Vec<KeyState<T>>,
    free: Vec<u32>,
    /// `(due_ms, slot)` of every pending message, exactly.
    due: BTreeSet<(u64, u32)>,
    overflowed: u64,
}

/// Milliseconds, rounded up so that a rate is never exceeded.
fn ceil_ms(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

impl<T> Pacer<T> {
    /// A pacer for `rule` keeping at most `max_keys` key states.
    pub fn new(rule: PaceRule, max_keys: usize) -> Self {
        Pacer {
            rule,
            interval_ms: rule.interval.map_or(0, ceil_ms),
            silence_ms: rule.max_silence.map(ceil_ms),
            max_keys,
            origin: None,
            index: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            due: BTreeSet::new(),
            overflowed: 0,
        }
    }

    /// The rule this pacer applies.
    pub fn rule(&self) -> &PaceRule {
        &self.rule
    }

    fn ms(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_millis() as u64
    }

    fn instant(&self, ms: u64) -> Instant {
        // `origin` is set: a due time exists only after a call that took `now`.
        self.origin.expect("origin set before any due time") + Duration::from_millis(ms)
    }

    /// Whether `pos` is within the dead-band of `last` (both must have a position).
    fn inside_dead_band(&self, last: Pt, pos: Pt) -> bool {
        match self.rule.min_move_m {
            Some(d) if !last[0].is_nan() && !pos[0].is_nan() => {
                distance_m((last[0], last[1]), (pos[0], pos[1])) < d
            }
            _ => false,
        }
    }

    /// Decides what happens to `item`, the newest message of `key`, offered at `now`.
    /// `now` never goes back between calls (an instant before the first one the pacer
    /// saw counts as that one).
    pub fn offer(
        &mut self,
        key: &str,
        pos: Option<(f64, f64)>,
        status: u64,
        item: T,
        now: Instant,
    ) -> Offer<T> {
        let now_ms = self.ms(now);
        let pos = pt(pos);
        let Some(&slot) = self.index.get(key) else {
            if !self.insert(key, pos, status, now_ms) {
                self.overflowed += 1;
            }
            return Offer::Send(item);
        };
        let s = &self.slots[slot as usize];
        // 0: the message carries none of the status fields — no news about the status.
        let status = if status == 0 { s.status } else { status };
        let old_due = s.pending.is_some().then_some(s.due_ms);
        let due = if status != s.status {
            Some(now_ms)
        } else {
            let rate_due = s.last_ms + self.interval_ms;
            let own = if !self.inside_dead_band(s.last_pos, pos) {
                Some(rate_due)
            } else {
                self.silence_ms.map(|t| (s.last_ms + t).max(rate_due))
            };
            // Newest wins: a pending message is replaced, its due time stands unless
            // this message may go sooner.
            match (old_due, own) {
                (Some(o), Some(c)) => Some(o.min(c)),
                (o, c) => o.or(c),
            }
        };
        let s = &mut self.slots[slot as usize];
        match due {
            None => Offer::Skipped,
            Some(d) if d <= now_ms => {
                if s.pending.take().is_some() {
                    self.due.remove(&(s.due_ms, slot));
                }
                s.status = status;
                s.last_pos = pos;
                s.last_ms = now_ms;
                Offer::Send(item)
            }
            Some(d) => {
                s.pending = Some(item);
                s.pend_pos = pos;
                if old_due == Some(d) {
                    return Offer::Held { new_due: None };
                }
                if let Some(o) = old_due {
                    self.due.remove(&(o, slot));
                }
                s.due_ms = d;
                self.due.insert((d, slot));
                Offer::Held { new_due: Some(self.instant(d)) }
            }
        }
    }

    /// Creates the state of a new key as just delivered; false when `max_keys` are kept.
    fn insert(&mut self, key: &str, pos: Pt, status: u64, now_ms: u64) -> bool {
        if self.index.len() >= self.max_keys {
            return false;
        }
        let state =
            KeyState { status, last_pos: pos, pend_pos: NO_POS, pending: None, last_ms: now_ms, due_ms: 0 };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = state;
                slot
            }
            None => {
                self.slots.push(state);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key.into(), slot);
        true
    }

    /// Moves every pending item due at `now` into `out` (oldest due first) and records
    /// them as delivered at `now`.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<T>) {
        let now_ms = self.ms(now);
        while let Some(&(due, slot)) = self.due.first() {
            if due > now_ms {
                break;
            }
            self.due.pop_first();
            let s = &mut self.slots[slot as usize];
            let item = s.pending.take().expect("a due entry has a pending item");
            s.last_pos = s.pend_pos;
            s.last_ms = now_ms;
            out.push(item);
        }
    }

    /// When the earliest pending item is due; `None` when nothing is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|&(due, _)| self.instant(due))
    }

    /// Forgets a key entirely (its pending item is dropped): used when a key leaves the
    /// subscriber's viewport.
    pub fn forget(&mut self, key: &str) {
        if let Some(slot) = self.index.remove(key) {
            let s = &mut self.slots[slot as usize];
            if s.pending.take().is_some() {
                self.due.remove(&(s.due_ms, slot));
            }
            self.free.push(slot);
        }
    }

    /// Records that a message for `key` was delivered by another path (e.g. a snapshot
    /// entry sent on a map pan), so pacing continues from it. That message is the key's
    /// newest, so a pending one (older) is dropped. A new key beyond `max_keys` is ignored.
    pub fn note_sent(&mut self, key: &str, pos: Option<(f64, f64)>, status: u64, now: Instant) {
        let now_ms = self.ms(now);
        let pos = pt(pos);
        let Some(&slot) = self.index.get(key) else {
            self.insert(key, pos, status, now_ms);
            return;
        };
        let s = &mut self.slots[slot as usize];
        if s.pending.take().is_some() {
            self.due.remove(&(s.due_ms, slot));
        }
        s.status = status;
        s.last_pos = pos;
        s.last_ms = now_ms;
    }

    /// Keys with state.
    pub fn keys(&self) -> usize {
        self.index.len()
    }

    /// Keys with a pending item.
    pub fn pending(&self) -> usize {
        self.due.len()
    }

    /// Messages passed through unpaced because `max_keys` states were full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

/// [`crate::geo::distance_m`] of two `(lat, lon)` pairs in degrees, as pacing stores them.
fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    use crate::geo::Pos;
    crate::geo::distance_m(Pos { lat: a.0, lon: a.1 }, Pos { lat: b.0, lon: b.1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1; // the usual status fingerprint (0 would mean "no status field")

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rule(max_rate: Option<f64>, min_move_m: Option<f64>, max_silence_s: Option<f64>) -> PaceRule {
        PaceRule::from_wire(max_rate, min_move_m, max_silence_s).unwrap().unwrap()
    }

    /// A point `north_m` metres north of (52.5, 13.4).
    fn p(north_m: f64) -> Option<(f64, f64)> {
        Some((52.5 + north_m / 111_195.0, 13.4))
    }

    fn due(p: &mut Pacer<u64>, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        p.take_due(now, &mut out);
        out
    }

    #[test]
    fn wire_options_are_validated() {
        assert_eq!(PaceRule::from_wire(None, None, None), Ok(None));
        let r = rule(Some(0.2), None, None);
        assert_eq!(r.interval, Some(Duration::from_secs(5)));
        assert_eq!(rule(Some(10.0), Some(5.0), Some(60.0)).max_silence, Some(Duration::from_secs(60)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1000.5, 1e-6] {
            assert!(
                matches!(PaceRule::from_wire(Some(bad), None, None), Err(PaceError::MaxRate(_))),
                "{bad}"
            );
        }
        for bad in [0.0, -3.0, f64::NAN, 2.1e7] {
            assert!(matches!(PaceRule::from_wire(None, Some(bad), None), Err(PaceError::MinMove(_))));
        }
        for bad in [0.0, f64::NEG_INFINITY, 86_401.0] {
            assert!(matches!(PaceRule::from_wire(None, Some(1.0), Some(bad)), Err(PaceError::MaxSilence(_))));
        }
        assert_eq!(PaceRule::from_wire(Some(1.0), None, Some(5.0)), Err(PaceError::SilenceWithoutMove));
        assert_eq!(
            PaceError::MaxRate(0.0).to_string(),
            "max_rate must be between 1/86400 (one a day) and 1000 messages per second, not 0"
        );
    }

    #[test]
    fn key_state_is_64_bytes_for_an_arc() {
        assert_eq!(std::mem::size_of::<KeyState<std::sync::Arc<()>>>(), 64);
    }

    #[test]
    fn haversine_distance() {
        let d = distance_m((52.0, 13.0), (53.0, 13.0));
        assert!((d - 111_195.08).abs() < 1.0, "{d}");
        assert_eq!(distance_m((10.0, 20.0), (10.0, 20.0)), 0.0);
        let half = distance_m((0.0, 0.0), (0.0, 180.0));
        assert!((half - std::f64::consts::PI * 6_371_008.8).abs() < 1.0);
        assert!((distance_m(p(0.0).unwrap(), p(20.0).unwrap()) - 20.0).abs() < 0.01);
    }

    #[test]
    fn first_message_of_each_key_is_sent_at_once() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(0.2), Some(100.0), None), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        assert_eq!(pc.offer("b", p(0.0), S, 2, t0), Offer::Send(2));
        assert_eq!((pc.keys(), pc.pending()), (2, 0));
    }

    #[test]
    fn max_rate_holds_the_newest_until_the_interval_ends() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), None, None), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        assert_eq!(pc.offer("a", p(1.0), S, 2, t0 + ms(100)), Offer::Held { new_due: Some(t0 + ms(1000)) });
        // Newest wins: 3 replaces 2, the due time stands.
        assert_eq!(pc.offer("a", p(2.0), S, 3, t0 + ms(400)), Offer::Held { new_due: None });
        assert_eq!(pc.offer("b", None, S, 10, t0 + ms(500)), Offer::Send(10));
        assert_eq!(pc.next_due(), Some(t0 + ms(1000)));
        assert_eq!(due(&mut pc, t0 + ms(999)), Vec::<u64>::new());
        assert_eq!(due(&mut pc, t0 + ms(1000)), vec![3]);
        assert_eq!((pc.pending(), pc.next_due()), (0, None));
        // The interval counts from that delivery.
        assert_eq!(pc.offer("a", None, S, 4, t0 + ms(1900)), Offer::Held { new_due: Some(t0 + ms(2000)) });
        assert_eq!(pc.offer("a", None, S, 5, t0 + ms(1950)), Offer::Held { new_due: None });
        // A late timer: delivered when called, and that counts as the delivery time.
        assert_eq!(due(&mut pc, t0 + ms(2300)), vec![5]);
        assert_eq!(pc.offer("a", None, S, 6, t0 + ms(3000)), Offer::Held { new_due: Some(t0 + ms(3300)) });
        // After a quiet interval a message goes at once.
        assert_eq!(due(&mut pc, t0 + ms(3300)), vec![6]);
        assert_eq!(pc.offer("a", None, S, 7, t0 + ms(5000)), Offer::Send(7));
    }

    #[test]
    fn pending_items_come_out_oldest_due_first() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), None, None), 10);
        pc.offer("b", None, S, 2, t0);
        pc.offer("a", None, S, 1, t0 + ms(300));
        pc.offer("a", None, S, 3, t0 + ms(400)); // due 1300
        pc.offer("b", None, S, 4, t0 + ms(500)); // due 1000: held later, due sooner
        assert_eq!(pc.next_due(), Some(t0 + ms(1000)));
        assert_eq!(due(&mut pc, t0 + ms(5000)), vec![4, 3]);
    }

    #[test]
    fn ten_hz_at_one_per_second_delivers_about_ten_ending_on_the_newest() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), None, None), 10);
        let mut delivered = Vec::new();
        for i in 0..100u64 {
            let now = t0 + ms(i * 100);
            pc.take_due(now, &mut delivered);
            if let Offer::Send(x) = pc.offer("v1", p(i as f64), S, i, now) {
                delivered.push(x);
            }
        }
        let end = pc.next_due().unwrap();
        pc.take_due(end, &mut delivered);
        assert!((10..=11).contains(&delivered.len()), "{delivered:?}");
        assert_eq!(delivered.last(), Some(&99));
        assert!(delivered.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn dead_band_counts_from_the_last_delivered_position() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(None, Some(10.0), None), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        assert_eq!(pc.offer("a", p(4.0), S, 2, t0 + ms(1)), Offer::Skipped);
        assert_eq!(pc.offer("a", p(8.0), S, 3, t0 + ms(2)), Offer::Skipped);
        assert_eq!(pc.offer("a", p(12.0), S, 4, t0 + ms(3)), Offer::Send(4));
        assert_eq!(pc.offer("a", p(3.0), S, 5, t0 + ms(4)), Offer::Skipped); // 9 m back
        assert_eq!(pc.offer("a", p(1.9), S, 6, t0 + ms(5)), Offer::Send(6)); // 10.1 m back
                                                                             // No position: not subject to the dead-band; the last position stays unknown.
        assert_eq!(pc.offer("a", None, S, 7, t0 + ms(6)), Offer::Send(7));
        assert_eq!(pc.offer("a", p(1.9), S, 8, t0 + ms(7)), Offer::Send(8));
        assert_eq!(pc.pending(), 0);
    }

    #[test]
    fn a_status_change_bypasses_rate_and_dead_band_and_drops_the_pending() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(0.1), Some(50.0), None), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        assert_eq!(pc.offer("a", p(100.0), S, 2, t0 + ms(1)), Offer::Held { new_due: Some(t0 + ms(10_000)) });
        // Stopped: same place, new status, delivered at once; 2 is never delivered.
        assert_eq!(pc.offer("a", p(100.0), 7, 3, t0 + ms(2)), Offer::Send(3));
        assert_eq!((pc.pending(), pc.next_due()), (0, None));
        assert_eq!(due(&mut pc, t0 + ms(60_000)), Vec::<u64>::new());
        // Back to moving: a change again.
        assert_eq!(pc.offer("a", p(100.0), S, 4, t0 + ms(3)), Offer::Send(4));
        // Same status again: paced from that delivery.
        assert_eq!(pc.offer("a", p(300.0), S, 5, t0 + ms(4)), Offer::Held { new_due: Some(t0 + ms(10_003)) });
    }

    #[test]
    fn rate_and_dead_band_together() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), Some(10.0), None), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        // Inside the dead-band, nothing pending: skipped.
        assert_eq!(pc.offer("a", p(5.0), S, 2, t0 + ms(100)), Offer::Skipped);
        assert_eq!(pc.pending(), 0);
        // Moved: held to the interval's end.
        assert_eq!(pc.offer("a", p(20.0), S, 3, t0 + ms(200)), Offer::Held { new_due: Some(t0 + ms(1000)) });
        // Back inside the dead-band of the delivered position, but newest wins over the
        // pending one: the client ends on the newest position.
        assert_eq!(pc.offer("a", p(2.0), S, 4, t0 + ms(300)), Offer::Held { new_due: None });
        assert_eq!(due(&mut pc, t0 + ms(1000)), vec![4]);
        // Moved after the interval: at once.
        assert_eq!(pc.offer("a", p(15.0), S, 5, t0 + ms(2000)), Offer::Send(5));
    }

    #[test]
    fn max_silence_delivers_a_suppressed_update_when_it_expires() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(None, Some(10.0), Some(30.0)), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        assert_eq!(
            pc.offer("a", p(1.0), S, 2, t0 + ms(1000)),
            Offer::Held { new_due: Some(t0 + ms(30_000)) }
        );
        assert_eq!(pc.offer("a", p(2.0), S, 3, t0 + ms(5000)), Offer::Held { new_due: None });
        assert_eq!(due(&mut pc, t0 + ms(29_999)), Vec::<u64>::new());
        assert_eq!(due(&mut pc, t0 + ms(30_000)), vec![3]);
        // The next delivery counts from there; a move goes at once and clears the hold.
        assert_eq!(
            pc.offer("a", p(2.5), S, 4, t0 + ms(31_000)),
            Offer::Held { new_due: Some(t0 + ms(60_000)) }
        );
        assert_eq!(pc.offer("a", p(20.0), S, 5, t0 + ms(32_000)), Offer::Send(5));
        assert_eq!(pc.pending(), 0);
        // Inside the dead-band after the silence has passed: at once.
        assert_eq!(pc.offer("a", p(20.0), S, 6, t0 + ms(62_000)), Offer::Send(6));
    }

    #[test]
    fn a_move_brings_a_silence_hold_forward_to_the_rate_due() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(0.5), Some(10.0), Some(60.0)), 10);
        assert_eq!(pc.offer("a", p(0.0), S, 1, t0), Offer::Send(1));
        assert_eq!(pc.offer("a", p(1.0), S, 2, t0 + ms(100)), Offer::Held { new_due: Some(t0 + ms(60_000)) });
        assert_eq!(pc.offer("a", p(50.0), S, 3, t0 + ms(200)), Offer::Held { new_due: Some(t0 + ms(2000)) });
        assert_eq!(pc.pending(), 1);
        assert_eq!(pc.next_due(), Some(t0 + ms(2000)));
        assert_eq!(due(&mut pc, t0 + ms(2000)), vec![3]);
        assert_eq!(due(&mut pc, t0 + ms(60_000)), Vec::<u64>::new());
    }

    #[test]
    fn forget_drops_the_key_and_its_pending_item() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), None, None), 10);
        pc.offer("a", None, S, 1, t0);
        pc.offer("a", None, S, 2, t0 + ms(10));
        pc.offer("b", None, S, 3, t0);
        pc.forget("a");
        pc.forget("zzz");
        assert_eq!((pc.keys(), pc.pending(), pc.next_due()), (1, 0, None));
        assert_eq!(due(&mut pc, t0 + ms(5000)), Vec::<u64>::new());
        // Back in view: a first message again, and its slot is reused.
        assert_eq!(pc.offer("a", None, S, 4, t0 + ms(20)), Offer::Send(4));
        assert_eq!(pc.slots.len(), 2);
    }

    #[test]
    fn keys_beyond_the_limit_pass_unpaced_and_are_counted() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), None, None), 2);
        pc.offer("a", None, S, 1, t0);
        pc.offer("b", None, S, 2, t0);
        assert_eq!(pc.offer("c", None, S, 3, t0), Offer::Send(3));
        assert_eq!(pc.offer("c", None, S, 4, t0 + ms(1)), Offer::Send(4));
        assert_eq!((pc.keys(), pc.overflowed()), (2, 2));
        assert_eq!(pc.offer("a", None, S, 5, t0 + ms(1)), Offer::Held { new_due: Some(t0 + ms(1000)) });
        // A forgotten key makes room.
        pc.forget("b");
        assert_eq!(pc.offer("c", None, S, 6, t0 + ms(2)), Offer::Send(6));
        assert_eq!(pc.offer("c", None, S, 7, t0 + ms(3)), Offer::Held { new_due: Some(t0 + ms(1002)) });
        assert_eq!(pc.overflowed(), 2);
    }

    #[test]
    fn note_sent_continues_pacing_from_another_path() {
        let t0 = Instant::now();
        let mut pc = Pacer::new(rule(Some(1.0), Some(10.0), None), 10);
        pc.note_sent("a", p(0.0), S, t0);
        assert_eq!(pc.offer("a", p(50.0), S, 1, t0 + ms(100)), Offer::Held { new_due: Some(t0 + ms(1000)) });
        // A snapshot entry (the newest) sent on a pan supersedes the pending one.
        pc.note_sent("a", p(60.0), S, t0 + ms(200));
        assert_eq!(pc.pending(), 0);
        assert_eq!(pc.offer("a", p(65.0), S, 2, t0 + ms(1500)), Offer::Skipped);
        assert_eq!(pc.offer("a", p(75.0), S, 3, t0 + ms(1500)), Offer::Send(3));
    }

    /// xorshift64: a tiny seeded PRNG so the long test is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[derive(Clone, Copy)]
    struct Sent {
        key: usize,
        pos: Option<(f64, f64)>,
        status: u64,
    }

    /// Random traffic under every combination of rules, checking the invariants: each
    /// message is delivered at most once, never an older one after a newer one of its key,
    /// never two of a key within the interval unless the status changed, and the last
    /// message of every key is eventually delivered — or skipped, only by the dead-band
    /// without `max_silence`.
    #[test]
    fn random_traffic_keeps_the_invariants() {
        let rules = [
            (Some(1.0), None, None),
            (None, Some(10.0), None),
            (None, Some(10.0), Some(3.0)),
            (Some(2.0), Some(10.0), None),
            (Some(0.5), Some(8.0), Some(5.0)),
            (Some(5.0), Some(30.0), Some(1.0)),
        ];
        const KEYS: usize = 8;
        const MAX_KEYS: usize = 6;
        for (seed, &(r, d, t)) in (1u64..).zip(rules.iter().cycle().take(24)) {
            let rule = rule(r, d, t);
            let interval_ms = rule.interval.map_or(0, ceil_ms);
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut pc: Pacer<u64> = Pacer::new(rule, MAX_KEYS);
            let t0 = Instant::now();
            let mut now_ms = 0u64;
            let mut msgs: Vec<Sent> = Vec::new();
            let mut north = [0.0f64; KEYS];
            let mut status = [0u64; KEYS];
            let mut known: Vec<usize> = Vec::new();
            let mut overflowed = 0;
            let mut last_offer: [Option<(u64, bool)>; KEYS] = [None; KEYS]; // (id, skipped)
                                                                            // Per key: (id, time ms, status, position) of the last delivery.
                                                                            // Per key: (id, time ms) of the last delivery; its status and position are msgs[id]'s.
            let mut last_del: [Option<(u64, u64)>; KEYS] = [None; KEYS];
            let (mut held, mut skipped) = (0, 0);
            let mut delivered = vec![false; 5000];
            let mut deliver =
                |id: u64, at: u64, msgs: &[Sent], last_del: &mut [Option<_>; KEYS], paced: bool| {
                    let m = msgs[id as usize];
                    assert!(!delivered[id as usize], "seed {seed}: {id} delivered twice");
                    delivered[id as usize] = true;
                    if let Some((prev, prev_at)) = last_del[m.key] {
                        let prev_status = msgs[prev as usize].status;
                        assert!(prev < id, "seed {seed}: {id} after newer {prev}");
                        if paced && prev_status == m.status {
                            assert!(
                                at - prev_at >= interval_ms,
                                "seed {seed}: {id} {at} too soon after {prev_at}"
                            );
                        }
                    }
                    last_del[m.key] = Some((id, at));
                };
            let mut out = Vec::new();
            for id in 0..5000u64 {
                now_ms += rng.below(300);
                let now = t0 + ms(now_ms);
                out.clear();
                pc.take_due(now, &mut out);
                for &x in &out {
                    deliver(x, now_ms, &msgs, &mut last_del, true);
                }
                let key = rng.below(KEYS as u64) as usize;
                if rng.below(20) == 0 {
                    status[key] += 1;
                }
                north[key] += rng.below(16) as f64 - 4.0;
                let pos = if rng.below(10) == 0 { None } else { p(north[key]) };
                msgs.push(Sent { key, pos, status: status[key] });
                let paced = known.contains(&key) || known.len() < MAX_KEYS;
                if paced && !known.contains(&key) {
                    known.push(key);
                } else if !paced {
                    overflowed += 1;
                }
                let name = format!("k{key}");
                let got = pc.offer(&name, pos, status[key], id, now);
                last_offer[key] = Some((id, got == Offer::Skipped));
                match got {
                    Offer::Send(x) => {
                        assert_eq!(x, id);
                        deliver(x, now_ms, &msgs, &mut last_del, paced);
                    }
                    Offer::Held { new_due } => {
                        held += 1;
                        if let Some(d) = new_due {
                            assert!(d > now);
                        }
                        assert!(pc.next_due().unwrap() > now);
                    }
                    Offer::Skipped => {
                        skipped += 1;
                        let last = msgs[last_del[key].unwrap().0 as usize];
                        let (st, last_pos) = (last.status, last.pos);
                        assert!(rule.min_move_m.is_some() && st == status[key]);
                        let dist = distance_m(last_pos.unwrap(), pos.unwrap());
                        assert!(dist < rule.min_move_m.unwrap(), "seed {seed}: skipped {id} moved {dist}");
                        // Skipping is only allowed without max_silence once it expired.
                        assert!(rule.max_silence.is_none());
                    }
                }
                assert!(pc.keys() <= MAX_KEYS && pc.pending() <= pc.keys());
            }
            now_ms += 2 * 86_400_000;
            out.clear();
            pc.take_due(t0 + ms(now_ms), &mut out);
            for &x in &out {
                deliver(x, now_ms, &msgs, &mut last_del, true);
            }
            assert_eq!(pc.pending(), 0);
            assert_eq!(pc.overflowed(), overflowed);
            // Each rule was exercised.
            assert_eq!(held > 0, rule.interval.is_some() || rule.max_silence.is_some(), "seed {seed}");
            assert_eq!(skipped > 0, rule.min_move_m.is_some() && rule.max_silence.is_none(), "seed {seed}");
            for (key, last) in last_offer.iter().enumerate() {
                let Some((id, skipped)) = *last else { continue };
                let ok = delivered[id as usize] || (skipped && rule.max_silence.is_none());
                assert!(ok, "seed {seed}: last message {id} of key {key} lost");
            }
        }
    }
}
