//! Unit tests of the outbox: budgets, policies, gaps and the conflation index.

use super::*;
use std::time::Instant;

fn msg(room: &Arc<str>, seq: u64, key: Option<&str>, policy: Policy) -> Arc<Message> {
    let data = Bytes::from(format!("{{\"k\":\"{}\",\"pad\":\"{}\"}}", key.unwrap_or("-"), "x".repeat(60)));
    Arc::new(Message::new(room.clone(), seq, data, key.map(Into::into), policy, Instant::now()))
}

fn texts(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            Entry::Msg(m) => format!("{}#{}", m.room, m.seq),
            Entry::Ctrl(b) => String::from_utf8_lossy(&b[2..]).into_owned(),
        })
        .collect()
}

/// Room `a`'s outbox with a budget of `frames` messages, seqs `1..=pushed` pushed under
/// `drop` (those past the budget dropped, their gap pending); also the size of one message.
fn dropping(frames: usize, pushed: u64) -> (Outbox, usize) {
    let r: Arc<str> = "a".into();
    let one = msg(&r, 1, None, Policy::Drop).frame.len();
    let mut o = Outbox::new(one * frames, DeliveryMode::Envelope);
    for s in 1..=pushed {
        o.push_msg(&msg(&r, s, None, Policy::Drop));
    }
    (o, one)
}

#[test]
fn take_moves_everything_and_accounts_bytes() {
    let r: Arc<str> = "a".into();
    let mut o = Outbox::new(1 << 20, DeliveryMode::Envelope);
    assert_eq!(o.push_msg(&msg(&r, 1, None, Policy::Drop)), Pushed::Queued { was_empty: true });
    assert_eq!(o.push_msg(&msg(&r, 2, None, Policy::Drop)), Pushed::Queued { was_empty: false });
    o.push_ctrl(envelope::pong_op_frame(None));
    let total = o.queued_bytes();
    let mut out = vec![];
    assert_eq!(o.take(&mut out, 1024), total);
    assert_eq!(o.queued_bytes(), 0);
    assert_eq!(texts(&out), vec!["a#1", "a#2", r#"{"op":"pong"}"#]);
}

#[test]
fn drop_policy_skips_then_announces_gap_before_next_message() {
    let r: Arc<str> = "a".into();
    let (mut o, one) = dropping(2, 5);
    assert!(o.queued_bytes() <= one * 2);
    let mut out = vec![];
    o.take(&mut out, 1024);
    assert_eq!(texts(&out), vec!["a#1", "a#2", r#"{"op":"gap","room":"a","from":3,"to":5}"#]);
    // Next message after a drop: gap first, then the message.
    let (mut o, _) = dropping(2, 4);
    let mut out = vec![];
    o.take(&mut out, 1); // writer took one, room for one more
    o.push_msg(&msg(&r, 5, None, Policy::Drop));
    o.take(&mut out, 1024);
    assert_eq!(texts(&out), vec!["a#1", "a#2", r#"{"op":"gap","room":"a","from":3,"to":4}"#, "a#5"]);
}

#[test]
fn conflate_keeps_newest_per_room_and_key_in_order() {
    let r: Arc<str> = "fleet:x".into();
    let one = msg(&r, 1, Some("v1"), Policy::Conflate).frame.len();
    let mut o = Outbox::new(one * 3, DeliveryMode::Envelope);
    o.push_msg(&msg(&r, 1, Some("v1"), Policy::Conflate));
    o.push_msg(&msg(&r, 2, Some("v2"), Policy::Conflate));
    o.push_msg(&msg(&r, 3, Some("v3"), Policy::Conflate));
    let p = o.push_msg(&msg(&r, 4, Some("v1"), Policy::Conflate));
    assert_eq!(p, Pushed::Conflated { removed: 1, was_empty: false });
    let mut out = vec![];
    o.take(&mut out, 1024);
    assert_eq!(texts(&out), vec!["fleet:x#2", "fleet:x#3", "fleet:x#4"]);
}

/// Found by the `engine_model` fuzz target. A pending gap belongs to the subscription that
/// dropped those messages; when the client subscribes again with a `since` below it, the
/// replay pushes those seqs again (pushes of one subscription only ever go up).
#[test]
fn drops_of_a_replay_below_a_pending_gap_are_announced() {
    let r: Arc<str> = "a".into();
    let (mut o, _) = dropping(3, 5); // 1..=3 queued, 4..=5 pending
    let mut out = vec![];
    o.take(&mut out, 1);
    // Resubscribed with since = 1: after its `ok`, the replay of 2..=5 does not fit.
    o.push_ctrl(envelope::ok_frame(None, Some("a"), Some(5)));
    for s in 2..=5 {
        assert_eq!(o.push_msg(&msg(&r, s, None, Policy::Drop)), Pushed::Dropped);
    }
    o.take(&mut out, 1024);
    let ok = r#"{"op":"ok","room":"a","seq":5}"#;
    assert_eq!(texts(&out), vec!["a#1", "a#2", "a#3", ok, r#"{"op":"gap","room":"a","from":2,"to":5}"#]);
}

#[test]
fn a_pending_gap_is_not_announced_before_a_replay_of_its_seqs() {
    let r: Arc<str> = "a".into();
    let (mut o, _) = dropping(3, 5); // 1..=3 queued, 4..=5 pending
    let mut out = vec![];
    o.take(&mut out, 2);
    // Resubscribed with since = 3: after its `ok`, the replay delivers 4 and drops 5.
    o.push_ctrl(envelope::ok_frame(None, Some("a"), Some(5)));
    for s in 4..=5 {
        o.push_msg(&msg(&r, s, None, Policy::Drop));
    }
    o.take(&mut out, 1024);
    let (ok, gap) = (r#"{"op":"ok","room":"a","seq":5}"#, r#"{"op":"gap","room":"a","from":5,"to":5}"#);
    assert_eq!(texts(&out), vec!["a#1", "a#2", "a#3", ok, "a#4", gap]);
}

/// Found by the `engine_model` fuzz target: a key also serves snapshots under `drop`, and
/// conflating for one room must not silently remove another room's `drop` messages.
#[test]
fn conflation_removes_only_conflate_messages() {
    let (pos, log): (Arc<str>, Arc<str>) = ("fleet:x".into(), "log:x".into());
    let one = msg(&log, 1, Some("v1"), Policy::Drop).frame.len();
    let mut o = Outbox::new(one * 2, DeliveryMode::Envelope);
    o.push_msg(&msg(&log, 1, Some("v1"), Policy::Drop));
    o.push_msg(&msg(&log, 2, Some("v1"), Policy::Drop));
    assert_eq!(o.push_msg(&msg(&pos, 1, Some("v1"), Policy::Conflate)), Pushed::Dropped);
    let mut out = vec![];
    o.take(&mut out, 1024);
    let gap = r#"{"op":"gap","room":"fleet:x","from":1,"to":1}"#;
    assert_eq!(texts(&out), vec!["log:x#1", "log:x#2", gap]);
}

#[test]
fn conflate_without_a_superseded_key_falls_back_to_gap() {
    let r: Arc<str> = "fleet:x".into();
    let one = msg(&r, 1, Some("v1"), Policy::Conflate).frame.len();
    let mut o = Outbox::new(one, DeliveryMode::Envelope);
    o.push_msg(&msg(&r, 1, Some("v1"), Policy::Conflate));
    assert_eq!(o.push_msg(&msg(&r, 2, Some("v2"), Policy::Conflate)), Pushed::Dropped);
}

#[test]
fn disconnect_policy_discards_queue_and_closes_1008() {
    let r: Arc<str> = "a".into();
    let one = msg(&r, 1, None, Policy::Disconnect).frame.len();
    let mut o = Outbox::new(one, DeliveryMode::Envelope);
    o.push_msg(&msg(&r, 1, None, Policy::Disconnect));
    assert_eq!(o.push_msg(&msg(&r, 2, None, Policy::Disconnect)), Pushed::Disconnected);
    assert!(o.is_closed());
    assert_eq!(o.push_msg(&msg(&r, 3, None, Policy::Disconnect)), Pushed::Closed);
    let mut out = vec![];
    o.take(&mut out, 1024);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].bytes(DeliveryMode::Envelope)[..4], &[0x88, 15, 0x03, 0xF0]);
}

#[test]
fn memory_stays_bounded_when_never_drained() {
    let r: Arc<str> = "a".into();
    let mut o = Outbox::new(64 << 10, DeliveryMode::Envelope);
    let mut dropped = 0;
    for s in 1..=100_000 {
        if o.push_msg(&msg(&r, s, None, Policy::Drop)) == Pushed::Dropped {
            dropped += 1;
        }
    }
    assert!(o.queued_bytes() <= 64 << 10);
    assert!(dropped > 99_000);
    assert!(o.len() < 1000);
}

#[test]
fn raw_mode_accounts_raw_frames() {
    let r: Arc<str> = "a".into();
    let m = msg(&r, 1, None, Policy::Drop);
    let mut o = Outbox::new(1 << 20, DeliveryMode::Raw);
    o.push_msg(&m);
    assert_eq!(o.queued_bytes(), m.raw_frame().len());
}

#[test]
fn sustained_conflation_is_incremental_and_bounded() {
    let r: Arc<str> = "fleet:x".into();
    let one = msg(&r, 1, Some("v0"), Policy::Conflate).frame.len();
    // Room for 50 messages, 40 vehicles: never drained, it must settle at one per key.
    let mut o = Outbox::new(one * 50, DeliveryMode::Envelope);
    for s in 1..=200_000u64 {
        let key = format!("v{}", s % 40);
        o.push_msg(&msg(&r, s, Some(&key), Policy::Conflate));
        assert!(o.queue.len() <= 2 * 50 + 64, "holes are compacted");
    }
    assert_eq!(o.len(), 40);
    let mut out = vec![];
    o.take(&mut out, 1024);
    let seqs: Vec<u64> = out
        .iter()
        .filter_map(|e| match e {
            Entry::Msg(m) => Some(m.seq),
            Entry::Ctrl(_) => None,
        })
        .collect();
    assert_eq!(seqs, (200_000 - 39..=200_000).collect::<Vec<_>>(), "newest per key, in order");
    assert!(o.newest.is_none(), "index dropped once drained");
}

#[test]
fn gather_and_consume_write_from_the_front_without_taking() {
    let r: Arc<str> = "a".into();
    let mut o = Outbox::new(1 << 20, DeliveryMode::Envelope);
    let (m1, m2) = (msg(&r, 1, None, Policy::Drop), msg(&r, 2, None, Policy::Drop));
    o.push_msg(&m1);
    o.push_msg(&m2);
    let total = o.queued_bytes();
    let mut iov = [std::io::IoSlice::new(&[]); 4];
    assert_eq!(o.gather(&mut iov), 2);
    assert_eq!(&*iov[0], m1.frame.as_ref());
    // Frame 1 and 5 bytes of frame 2 written: frame 2's tail stays first.
    o.consume(m1.frame.len() + 5);
    assert_eq!(o.queued_bytes(), total - m1.frame.len() - 5);
    let mut out = Vec::new();
    o.take(&mut out, 16);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes(DeliveryMode::Envelope).as_ref(), &m2.frame[5..]);
    assert_eq!(o.queued_bytes(), 0);
    // Everything written: the queue's storage goes.
    o.push_msg(&m1);
    o.consume(m1.frame.len());
    assert!(o.is_empty());
    assert_eq!(o.queued_bytes(), 0);
}

#[test]
fn gather_leaves_pending_gaps_and_closed_outboxes_to_the_writer() {
    let (o, _) = dropping(2, 5);
    let mut iov = [std::io::IoSlice::new(&[]); 4];
    assert_eq!(o.gather(&mut iov), 0, "a gap notice is pending");
    let r: Arc<str> = "a".into();
    let mut c = Outbox::new(1 << 20, DeliveryMode::Envelope);
    c.push_msg(&msg(&r, 1, None, Policy::Drop));
    c.close(1000, "", false);
    assert_eq!(c.gather(&mut iov), 0, "closed");
}
