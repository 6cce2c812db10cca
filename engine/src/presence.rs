//! Who is in a room: subscription count, distinct member names, and coalesced diffs.
//!
//! Kept by the room's owner shard, for namespaces that opt in. Why coalesced: a room that
//! 2,000 viewers join within a second must not send 2,000 frames to each of them; the
//! owner sends at most one `presence_diff` per window, carrying the net change since the
//! previous one. A member who joined and left within one window appears in neither list,
//! and a window in which nothing changed sends nothing.
//!
//! Frames (compact JSON, fields in this order):
//! - `{"op":"presence","id":<id>,"room":"<room>","count":n,"members":["a","b"]}` — the
//!   state, sent in reply to a request (`id` verbatim, left out when absent);
//! - `{"op":"presence_diff","room":"<room>","count":n,"joined":[..],"left":[..]}`.
//!
//! `count` counts subscriptions (a member with two tabs counts 2); `members` are the
//! distinct names, sorted. Above `member_limit` distinct members the names are not sent:
//! `members` is left out of the state and `joined`/`left` are `[]`, so a room with 100,000
//! viewers costs a count, not a list. Names are escaped; room names are copied as they are
//! (validated at the edge to need no escaping, as in [`crate::envelope`]).
//!
//! Memory: a member is kept only while it has a subscription. The diff is tracked as the
//! set of names whose presence flipped since the last diff, each with its presence then;
//! it holds at most the members present at the last diff plus those present now, so it is
//! bounded by subscriptions too, and is emptied by every [`Presence::take_diff`].

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::envelope::push_json_string;
use crate::frame::text_frame;

/// A room's presence.
#[derive(Debug, Default)]
pub struct Presence {
    /// Member name → its subscriptions (never 0: a member at 0 is removed).
    members: FxHashMap<Box<str>, u32>,
    /// Subscriptions, the sum of `members`' values.
    count: u64,
    /// Count at the last diff.
    diff_count: u64,
    /// Names whose presence changed since the last diff → whether present at the last diff.
    changed: FxHashMap<Box<str>, bool>,
    member_limit: usize,
}

impl Presence {
    /// An empty room whose member names are sent while there are at most `member_limit`.
    pub fn new(member_limit: usize) -> Self {
        Presence { member_limit, ..Presence::default() }
    }

    /// One more subscription of `member`.
    pub fn join(&mut self, member: &str) {
        self.count += 1;
        if let Some(n) = self.members.get_mut(member) {
            *n += 1;
            return;
        }
        self.members.insert(member.into(), 1);
        self.flipped(member, false);
    }

    /// One subscription of `member` fewer; an unknown member is ignored.
    pub fn leave(&mut self, member: &str) {
        let Some(n) = self.members.get_mut(member) else { return };
        self.count -= 1;
        *n -= 1;
        if *n == 0 {
            self.members.remove(member);
            self.flipped(member, true);
            let len = self.members.len();
            shrink(&mut self.members, len);
        }
    }

    /// Records that `member`'s presence flipped from `was`, keeping its presence at the
    /// last diff if it already flipped in this window.
    fn flipped(&mut self, member: &str, was: bool) {
        if !self.changed.contains_key(member) {
            self.changed.insert(member.into(), was);
        }
    }

    /// Subscriptions.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Distinct members.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    fn over_limit(&self) -> bool {
        self.members.len() > self.member_limit
    }

    /// The state frame, `id` (JSON text) written verbatim.
    pub fn state_frame(&self, room: &str, id: Option<&str>) -> Bytes {
        let mut names: Vec<&str> = Vec::new();
        if !self.over_limit() {
            names = self.members.keys().map(|k| &**k).collect();
            names.sort_unstable();
        }
        let mut s = String::with_capacity(64 + names.iter().map(|n| n.len() + 3).sum::<usize>());
        s.push_str("{\"op\":\"presence\"");
        if let Some(id) = id {
            s.push_str(",\"id\":");
            s.push_str(id);
        }
        push_room_count(&mut s, room, self.count);
        if !self.over_limit() {
            s.push_str(",\"members\":");
            push_names(&mut s, &names);
        }
        s.push('}');
        text_frame(s.as_bytes())
    }

    /// Whether a diff may be due: something changed since the last one. May be true for
    /// changes that cancelled out; [`Presence::take_diff`] then returns `None`.
    pub fn is_dirty(&self) -> bool {
        self.count != self.diff_count || !self.changed.is_empty()
    }

    /// The diff since the last call, or `None` if neither the count nor the membership
    /// changed; resets the diff.
    pub fn take_diff(&mut self, room: &str) -> Option<Bytes> {
        let mut joined: Vec<&str> = Vec::new();
        let mut left: Vec<&str> = Vec::new();
        for (name, &was) in &self.changed {
            match (was, self.members.contains_key(name)) {
                (false, true) => joined.push(name),
                (true, false) => left.push(name),
                _ => {}
            }
        }
        let frame = if self.count == self.diff_count && joined.is_empty() && left.is_empty() {
            None
        } else {
            if self.over_limit() {
                joined.clear();
                left.clear();
            }
            joined.sort_unstable();
            left.sort_unstable();
            let names = joined.iter().chain(&left).map(|n| n.len() + 3).sum::<usize>();
            let mut s = String::with_capacity(80 + names);
            s.push_str("{\"op\":\"presence_diff\"");
            push_room_count(&mut s, room, self.count);
            s.push_str(",\"joined\":");
            push_names(&mut s, &joined);
            s.push_str(",\"left\":");
            push_names(&mut s, &left);
            s.push('}');
            Some(text_frame(s.as_bytes()))
        };
        self.changed.clear();
        shrink(&mut self.changed, self.members.len());
        self.diff_count = self.count;
        frame
    }

    /// Heap bytes held: both maps' tables and the names they own (an estimate of the
    /// allocator's view, not counting its rounding).
    pub fn heap_bytes(&self) -> usize {
        fn table<V>(m: &FxHashMap<Box<str>, V>) -> usize {
            let slot = std::mem::size_of::<(Box<str>, V)>() + 1;
            m.capacity() * slot + m.keys().map(|k| k.len()).sum::<usize>()
        }
        table(&self.members) + table(&self.changed)
    }
}

/// Gives back a table's memory once it is 4× larger than `wanted` (the room emptied), so
/// memory follows the subscriptions down as well as up; the slack avoids reallocating on
/// every small change.
fn shrink<V>(m: &mut FxHashMap<Box<str>, V>, wanted: usize) {
    if m.capacity() > 64 && m.capacity() > 4 * wanted {
        m.shrink_to(2 * wanted);
    }
}

fn push_room_count(s: &mut String, room: &str, count: u64) {
    s.push_str(",\"room\":\"");
    s.push_str(room);
    s.push_str("\",\"count\":");
    s.push_str(itoa::Buffer::new().format(count));
}

fn push_names(s: &mut String, names: &[&str]) {
    s.push('[');
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_json_string(s, n);
    }
    s.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(f: &Bytes) -> &str {
        assert_eq!(f[0], 0x81);
        let h = match f[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        std::str::from_utf8(&f[h..]).unwrap()
    }

    fn diff(p: &mut Presence) -> Option<String> {
        p.take_diff("chat:lobby").map(|f| payload(&f).to_owned())
    }

    #[test]
    fn state_frame_is_byte_exact() {
        let mut p = Presence::new(10);
        assert_eq!(
            payload(&p.state_frame("chat:lobby", None)),
            r#"{"op":"presence","room":"chat:lobby","count":0,"members":[]}"#
        );
        p.join("bob");
        p.join("alice");
        p.join("bob");
        assert_eq!((p.count(), p.members()), (3, 2));
        assert_eq!(
            payload(&p.state_frame("chat:lobby", Some("7"))),
            r#"{"op":"presence","id":7,"room":"chat:lobby","count":3,"members":["alice","bob"]}"#
        );
        assert_eq!(
            payload(&p.state_frame("chat:lobby", Some(r#""q1""#))),
            r#"{"op":"presence","id":"q1","room":"chat:lobby","count":3,"members":["alice","bob"]}"#
        );
    }

    #[test]
    fn diff_is_byte_exact_and_reset() {
        let mut p = Presence::new(10);
        assert!(!p.is_dirty());
        assert_eq!(diff(&mut p), None);
        p.join("bob");
        p.join("alice");
        assert!(p.is_dirty());
        assert_eq!(
            diff(&mut p).unwrap(),
            r#"{"op":"presence_diff","room":"chat:lobby","count":2,"joined":["alice","bob"],"left":[]}"#
        );
        assert!(!p.is_dirty());
        assert_eq!(diff(&mut p), None);
        p.leave("bob");
        p.join("carol");
        assert_eq!(
            diff(&mut p).unwrap(),
            r#"{"op":"presence_diff","room":"chat:lobby","count":2,"joined":["carol"],"left":["bob"]}"#
        );
    }

    #[test]
    fn a_second_tab_changes_the_count_only() {
        let mut p = Presence::new(10);
        p.join("alice");
        diff(&mut p);
        p.join("alice");
        assert_eq!(
            diff(&mut p).unwrap(),
            r#"{"op":"presence_diff","room":"chat:lobby","count":2,"joined":[],"left":[]}"#
        );
        p.leave("alice");
        assert_eq!(
            diff(&mut p).unwrap(),
            r#"{"op":"presence_diff","room":"chat:lobby","count":1,"joined":[],"left":[]}"#
        );
        // Still a member: leaving one of two tabs is not leaving.
        assert_eq!(p.members(), 1);
    }

    #[test]
    fn join_and_leave_within_one_window_cancel_out() {
        let mut p = Presence::new(10);
        p.join("alice");
        diff(&mut p);
        p.join("bob");
        p.leave("bob");
        p.leave("alice");
        p.join("alice");
        assert_eq!(diff(&mut p), None);
        p.leave("nobody");
        assert!(!p.is_dirty());
        assert_eq!((p.count(), p.members()), (1, 1));
    }

    #[test]
    fn two_thousand_joins_coalesce_into_one_frame() {
        let mut p = Presence::new(5000);
        for i in 0..2000 {
            p.join(&format!("u{i:04}"));
        }
        let f = diff(&mut p).unwrap();
        let names: Vec<String> = (0..2000).map(|i| format!("\"u{i:04}\"")).collect();
        let want = format!(
            r#"{{"op":"presence_diff","room":"chat:lobby","count":2000,"joined":[{}],"left":[]}}"#,
            names.join(",")
        );
        assert_eq!(f, want);
        assert_eq!(diff(&mut p), None);
    }

    #[test]
    fn over_the_member_limit_names_are_left_out() {
        let mut p = Presence::new(2);
        p.join("a");
        p.join("b");
        diff(&mut p);
        p.join("c");
        assert_eq!(payload(&p.state_frame("r", None)), r#"{"op":"presence","room":"r","count":3}"#);
        assert_eq!(
            p.take_diff("r").map(|f| payload(&f).to_owned()).unwrap(),
            r#"{"op":"presence_diff","room":"r","count":3,"joined":[],"left":[]}"#
        );
        // Back under the limit: names again, relative to the last diff.
        p.leave("a");
        assert_eq!(
            payload(&p.state_frame("r", None)),
            r#"{"op":"presence","room":"r","count":2,"members":["b","c"]}"#
        );
        assert_eq!(
            p.take_diff("r").map(|f| payload(&f).to_owned()).unwrap(),
            r#"{"op":"presence_diff","room":"r","count":2,"joined":[],"left":["a"]}"#
        );
    }

    #[test]
    fn odd_member_names_are_escaped() {
        let mut p = Presence::new(10);
        p.join("quote\"back\\slash");
        p.join("line\nbreak\u{1}");
        p.join("ünï 🚚");
        assert_eq!(
            payload(&p.state_frame("r", None)),
            r#"{"op":"presence","room":"r","count":3,"members":["line\nbreak\u0001","quote\"back\\slash","ünï 🚚"]}"#
        );
        let d = p.take_diff("r").unwrap();
        assert_eq!(
            payload(&d),
            r#"{"op":"presence_diff","room":"r","count":3,"joined":["line\nbreak\u0001","quote\"back\\slash","ünï 🚚"],"left":[]}"#
        );
    }

    #[test]
    fn memory_follows_subscriptions() {
        let mut p = Presence::new(10);
        let empty = p.heap_bytes();
        for i in 0..1000 {
            p.join(&format!("member-{i}"));
        }
        let full = p.heap_bytes();
        assert!(full > empty + 1000 * 8, "{full}");
        p.take_diff("r");
        for i in 0..1000 {
            p.leave(&format!("member-{i}"));
        }
        p.take_diff("r");
        assert_eq!((p.count(), p.members(), p.changed.len()), (0, 0, 0));
        // Nothing is kept once the members have left and the diff was taken.
        assert!(p.heap_bytes() <= 2 * 64 * 25, "{}", p.heap_bytes());
    }
}
