//! Tracking-native subscriptions over real sockets (issue 11, DESIGN §3 "Tracking"):
//! presence with coalesced diffs, liveness (`offline`), viewports (`bbox`, `view`, `leave`)
//! and per-subscriber pacing (`max_rate`, `min_move_m`, `max_silence_s`).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use shardcast_server::auth::sign;

const SECRET: &str = "tracking-test-secret-0123456789ab";

const CONFIG: &str = r#"
[namespaces.chat]
presence = true
presence_window = "300ms"

[namespaces.sensor]
key = "id"
liveness_ttl = "1s"
history_size = 10

[namespaces.fleet]
key = "id"
geo = { lat = "lat", lon = "lon" }
history_size = 10
"#;

fn server(extra: &[&str]) -> (Server, TempDir) {
    let dir = TempDir::new();
    let cfg = dir.write("shardcast.toml", CONFIG);
    let mut args = vec!["--shards", "2", "--config", &cfg];
    args.extend_from_slice(extra);
    (Server::start(&args), dir)
}

/// Frames until `pred` holds for one (returned), within `within`.
fn until(ws: &mut Ws, within: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no matching frame within {within:?}");
        let v: Value = serde_json::from_str(&ws.recv_text_within(left)).unwrap();
        if pred(&v) {
            return v;
        }
    }
}

/// Every frame that arrives within `dur`.
fn drain(ws: &mut Ws, dur: Duration) -> Vec<Value> {
    let end = Instant::now() + dur;
    let mut out = vec![];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match ws.next_frame(left) {
            Ok(Some(Frame::Text(t))) => out.push(serde_json::from_str(&t).unwrap()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    out
}

fn is_op(v: &Value, op: &str) -> bool {
    v["op"] == op
}

#[test]
fn presence_coalesces_joins_into_few_diffs_and_answers_the_state() {
    let (server, _dir) = server(&[]);
    let room = "chat:lobby";
    let mut watcher = server.ws();
    watcher.sub(room, 1);
    // The watcher's own join arrives as a diff first.
    let first = until(&mut watcher, TIMEOUT, |v| is_op(v, "presence_diff"));
    assert_eq!(first["count"], 1);
    assert_eq!(first["joined"].as_array().unwrap().len(), 1);
    let mut crowd: Vec<Ws> = (0..30).map(|_| server.ws()).collect();
    for (i, c) in crowd.iter_mut().enumerate() {
        c.send_text(&format!(r#"{{"op":"sub","room":"{room}","id":{i}}}"#));
    }
    for c in crowd.iter_mut() {
        until(c, TIMEOUT, |v| is_op(v, "ok"));
    }
    // 30 joins within a few windows: a handful of diffs, never one per join.
    let mut joined = BTreeSet::new();
    let mut diffs = 0;
    let mut count = 0;
    while joined.len() < 30 {
        let v = until(&mut watcher, TIMEOUT, |v| is_op(v, "presence_diff"));
        diffs += 1;
        count = v["count"].as_u64().unwrap();
        for m in v["joined"].as_array().unwrap() {
            joined.insert(m.as_str().unwrap().to_owned());
        }
        assert!(v["left"].as_array().unwrap().is_empty());
    }
    assert_eq!(count, 31);
    assert!(diffs <= 10, "{diffs} diffs for 30 joins");
    // The state on request: every member, sorted, the count of subscriptions.
    let state: Value =
        serde_json::from_str(&crowd[0].request(&format!(r#"{{"op":"presence","room":"{room}","id":"p"}}"#)))
            .unwrap();
    // crowd[0] also gets diffs; skip them to the reply.
    let state = if is_op(&state, "presence") {
        state
    } else {
        until(&mut crowd[0], TIMEOUT, |v| is_op(v, "presence"))
    };
    assert_eq!(state["id"], "p");
    assert_eq!(state["room"], room);
    assert_eq!(state["count"], 31);
    let members: Vec<&str> =
        state["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(members.len(), 31);
    assert!(members.windows(2).all(|w| w[0] < w[1]), "sorted and distinct: {members:?}");
    // Ten leave: one diff (or a few) with ten names.
    for c in crowd.drain(..10) {
        c.close();
    }
    let mut left = BTreeSet::new();
    while left.len() < 10 {
        let v = until(&mut watcher, TIMEOUT, |v| is_op(v, "presence_diff"));
        count = v["count"].as_u64().unwrap();
        for m in v["left"].as_array().unwrap() {
            left.insert(m.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(count, 21);
    assert!(left.is_subset(&joined));
}

#[test]
fn presence_members_are_token_subjects_and_count_tabs() {
    let (server, _dir) = server(&["--jwt-secret", SECRET]);
    let token = |sub: &str| {
        let claims = serde_json::json!({ "sub": sub, "exp": now_unix() + 3600, "sub_rooms": ["chat:*"] });
        sign(&claims.to_string(), SECRET.as_bytes())
    };
    let room = "chat:ops";
    let mut a1 = server.connect(&format!("/ws?token={}", token("alice")));
    let mut a2 = server.connect(&format!("/ws?token={}", token("alice")));
    let mut b = server.connect(&format!("/ws?token={}", token("bob \"the\" builder")));
    for c in [&mut a1, &mut a2, &mut b] {
        c.send_text(&format!(r#"{{"op":"sub","room":"{room}","id":1}}"#));
        until(c, TIMEOUT, |v| is_op(v, "ok"));
    }
    std::thread::sleep(Duration::from_millis(400));
    b.send_text(&format!(r#"{{"op":"presence","room":"{room}","id":7}}"#));
    let state = until(&mut b, TIMEOUT, |v| is_op(v, "presence"));
    assert_eq!(state["count"], 3);
    assert_eq!(state["members"], serde_json::json!(["alice", "bob \"the\" builder"]));
    // A room outside the token's rights is refused like a `sub`.
    let e = b.request(r#"{"op":"presence","room":"chat2:x","id":8}"#);
    let e = if e.contains("\"presence_diff\"") { b.recv_text() } else { e };
    assert_error(&e, Some("8"), "forbidden");
}

#[test]
fn presence_is_refused_where_not_enabled() {
    let (server, _dir) = server(&[]);
    let mut c = server.ws();
    assert_error(&c.request(r#"{"op":"presence","room":"fleet:b","id":3}"#), Some("3"), "bad_op");
}

#[test]
fn a_silent_key_goes_offline_once_and_comes_back_with_its_next_update() {
    let (server, _dir) = server(&[]);
    let room = "sensor:hall";
    let mut p = server.ws();
    let mut s = server.ws();
    s.sub(room, 1);
    let a = p.publish(room, r#"{"id":"a","t":20.5}"#, 1);
    // `b` keeps reporting; `a` falls silent.
    let start = Instant::now();
    let mut frames = vec![];
    let mut i = 2;
    while start.elapsed() < Duration::from_millis(2600) {
        p.publish(room, &format!(r#"{{"id":"b","t":{i}}}"#), i);
        i += 1;
        frames.extend(drain(&mut s, Duration::from_millis(250)));
    }
    let offline: Vec<&Value> = frames.iter().filter(|v| is_op(v, "offline")).collect();
    assert_eq!(offline.len(), 1, "exactly one offline notice: {offline:?}");
    assert_eq!(*offline[0], serde_json::json!({"op": "offline", "room": room, "key": "a", "last_seq": a}));
    // A new subscriber with a snapshot learns that `a` is offline, after the entries.
    let mut late = server.ws();
    late.send_text(&format!(r#"{{"op":"sub","room":"{room}","snapshot":true,"id":9}}"#));
    let got = drain(&mut late, Duration::from_millis(300));
    let pos_a = got.iter().position(|v| v["data"]["id"] == "a").expect("a's entry");
    let pos_off = got.iter().position(|v| is_op(v, "offline")).expect("offline notice");
    assert!(pos_off > pos_a, "{got:?}");
    assert_eq!(got.iter().filter(|v| is_op(v, "offline")).count(), 1);
    // `a` reports again: delivered as usual; no second offline while it keeps reporting.
    let again = p.publish(room, r#"{"id":"a","t":21}"#, 100);
    let v = until(&mut s, TIMEOUT, |v| v["seq"] == again);
    assert_eq!(v["data"]["id"], "a");
}
