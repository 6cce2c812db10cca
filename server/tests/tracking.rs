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
    let first = watcher.recv_until(TIMEOUT, |v| is_op(v, "presence_diff"));
    assert_eq!(first["count"], 1);
    assert_eq!(first["joined"].as_array().unwrap().len(), 1);
    let mut crowd: Vec<Ws> = (0..30).map(|_| server.ws()).collect();
    for (i, c) in crowd.iter_mut().enumerate() {
        c.send_text(&format!(r#"{{"op":"sub","room":"{room}","id":{i}}}"#));
    }
    for c in crowd.iter_mut() {
        c.recv_until(TIMEOUT, |v| is_op(v, "ok"));
    }
    // 30 joins within a few windows: a handful of diffs, never one per join.
    let mut joined = BTreeSet::new();
    let mut diffs = 0;
    let mut count = 0;
    while joined.len() < 30 {
        let v = watcher.recv_until(TIMEOUT, |v| is_op(v, "presence_diff"));
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
        crowd[0].recv_until(TIMEOUT, |v| is_op(v, "presence"))
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
        let v = watcher.recv_until(TIMEOUT, |v| is_op(v, "presence_diff"));
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
        c.recv_until(TIMEOUT, |v| is_op(v, "ok"));
    }
    std::thread::sleep(Duration::from_millis(400));
    b.send_text(&format!(r#"{{"op":"presence","room":"{room}","id":7}}"#));
    let state = b.recv_until(TIMEOUT, |v| is_op(v, "presence"));
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
    let v = s.recv_until(TIMEOUT, |v| v["seq"] == again);
    assert_eq!(v["data"]["id"], "a");
}

/// A fleet position message.
fn fix(id: &str, lat: f64, lon: f64) -> String {
    format!(r#"{{"id":"{id}","lat":{lat},"lon":{lon}}}"#)
}

/// Data messages (`{"room","seq","data"}`) and the ops, in arrival order, within `dur`.
fn frames(ws: &mut Ws, dur: Duration) -> Vec<Value> {
    drain(ws, dur)
}

fn ids(fs: &[Value]) -> Vec<String> {
    fs.iter()
        .filter(|v| v.get("seq").is_some() && v.get("op").is_none())
        .map(|v| v["data"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn leaves(fs: &[Value]) -> Vec<String> {
    fs.iter().filter(|v| is_op(v, "leave")).map(|v| v["key"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_viewport_gets_what_is_inside_and_one_leave_per_exit() {
    let (server, _dir) = server(&[]);
    let room = "fleet:berlin";
    let mut p = server.ws();
    let mut s = server.ws();
    let ok = s.request(&format!(r#"{{"op":"sub","room":"{room}","bbox":[13.0,52.0,14.0,53.0],"id":1}}"#));
    assert!(ok.starts_with(r#"{"op":"ok","id":1,"room":"fleet:berlin","seq":0,"epoch":"#), "{ok}");
    let steps = [
        (fix("v1", 52.5, 13.5), "in"),
        (fix("v2", 50.0, 10.0), "never inside"),
        (fix("v1", 52.0, 13.0), "on the south-west corner: inside"),
        (fix("v1", 51.9, 13.0), "out"),
        (fix("v1", 40.0, 0.0), "still out"),
        (fix("v2", 50.1, 10.1), "never inside"),
        (fix("v1", 53.0, 14.0), "back in at the north-east corner"),
        (r#"{"id":"v1","speed":3}"#.to_owned(), "no position: stays where it was"),
    ];
    for (i, (m, _)) in steps.iter().enumerate() {
        p.publish(room, m, i as u64 + 1);
    }
    let got = frames(&mut s, Duration::from_millis(500));
    let order: Vec<String> = got
        .iter()
        .map(|v| {
            if is_op(v, "leave") {
                format!("leave {}", v["key"].as_str().unwrap())
            } else {
                format!("msg {}", v["seq"])
            }
        })
        .collect();
    assert_eq!(order, ["msg 1", "msg 3", "leave v1", "msg 7", "msg 8"], "{got:?}");
    let leave = got.iter().find(|v| is_op(v, "leave")).unwrap();
    assert_eq!(*leave, serde_json::json!({"op": "leave", "room": room, "key": "v1"}));
}

#[test]
fn a_viewport_across_the_antimeridian() {
    let (server, _dir) = server(&[]);
    let room = "fleet:pacific";
    let mut p = server.ws();
    let mut s = server.ws();
    s.request(&format!(r#"{{"op":"sub","room":"{room}","bbox":[170,-10,-170,10],"id":1}}"#));
    for (i, (id, lat, lon)) in [
        ("east", 0.0, 175.0),
        ("west", 1.0, -175.0),
        ("far", 0.0, 0.0),
        ("edge", 5.0, 180.0),
        ("south", -11.0, 175.0),
    ]
    .iter()
    .enumerate()
    {
        p.publish(room, &fix(id, *lat, *lon), i as u64 + 1);
    }
    assert_eq!(ids(&frames(&mut s, Duration::from_millis(400))), ["east", "west", "edge"]);
}

#[test]
fn a_pan_sends_leaves_then_the_entries_newly_inside() {
    let (server, _dir) = server(&[]);
    let room = "fleet:pan";
    let mut p = server.ws();
    // a and b in the west box, b and c in the overlap/east, d far away.
    for (i, (id, lon)) in [("a", 10.2), ("b", 10.8), ("c", 11.5), ("d", 30.0)].iter().enumerate() {
        p.publish(room, &fix(id, 50.5, *lon), i as u64 + 1);
    }
    let mut s = server.ws();
    s.send_text(&format!(r#"{{"op":"sub","room":"{room}","bbox":[10,50,11,51],"snapshot":true,"id":1}}"#));
    let first = frames(&mut s, Duration::from_millis(400));
    assert!(is_op(&first[0], "ok"));
    assert_eq!(ids(&first), ["a", "b"]);
    s.send_text(&format!(r#"{{"op":"view","room":"{room}","bbox":[10.5,50,12,51],"id":2}}"#));
    let pan = frames(&mut s, Duration::from_millis(400));
    assert_eq!(pan[0], serde_json::json!({"op": "ok", "id": 2, "room": room}), "{pan:?}");
    assert_eq!(leaves(&pan), ["a"]);
    assert_eq!(ids(&pan), ["c"], "b was shown already: not sent again");
    // Live messages now follow the new box: a is outside, c inside.
    p.publish(room, &fix("a", 50.5, 10.3), 10);
    p.publish(room, &fix("c", 50.6, 11.6), 11);
    assert_eq!(ids(&frames(&mut s, Duration::from_millis(300))), ["c"]);
    // Errors: a room not followed, a room followed without a box, bad boxes.
    assert_error(
        &s.request(r#"{"op":"view","room":"fleet:other","bbox":[0,0,1,1],"id":3}"#),
        Some("3"),
        "not_subscribed",
    );
    s.sub("fleet:plain", 4);
    assert_error(
        &s.request(r#"{"op":"view","room":"fleet:plain","bbox":[0,0,1,1],"id":5}"#),
        Some("5"),
        "bad_op",
    );
    assert_error(
        &s.request(r#"{"op":"view","room":"fleet:pan","bbox":[0,1,1,0],"id":6}"#),
        Some("6"),
        "bad_field",
    );
}

#[test]
fn tracking_options_are_checked_against_the_namespace() {
    let (server, _dir) = server(&[]);
    let mut s = server.ws();
    // chat has neither geo nor key; sensor has a key but no geo.
    assert_error(
        &s.request(r#"{"op":"sub","room":"chat:x","bbox":[0,0,1,1],"id":1}"#),
        Some("1"),
        "bad_field",
    );
    assert_error(&s.request(r#"{"op":"sub","room":"chat:x","max_rate":1,"id":2}"#), Some("2"), "bad_field");
    assert_error(
        &s.request(r#"{"op":"sub","room":"sensor:x","min_move_m":5,"id":3}"#),
        Some("3"),
        "bad_field",
    );
    assert_error(
        &s.request(r#"{"op":"sub","room":"fleet:x","max_silence_s":5,"id":4}"#),
        Some("4"),
        "bad_field",
    );
    assert!(s
        .request(r#"{"op":"sub","room":"sensor:x","max_rate":2,"id":5}"#)
        .starts_with(r#"{"op":"ok","id":5"#));
    // At most 8 filtered subscriptions per connection (the paced one above counts).
    for i in 0..7 {
        let ok =
            s.request(&format!(r#"{{"op":"sub","room":"fleet:v{i}","bbox":[0,0,1,1],"id":{}}}"#, 10 + i));
        assert!(ok.starts_with(r#"{"op":"ok""#), "{ok}");
    }
    assert_error(
        &s.request(r#"{"op":"sub","room":"fleet:v9","bbox":[0,0,1,1],"id":30}"#),
        Some("30"),
        "too_many_rooms",
    );
    // Re-subscribing an existing viewport is fine.
    assert!(s
        .request(r#"{"op":"sub","room":"fleet:v0","bbox":[0,0,2,2],"id":31}"#)
        .starts_with(r#"{"op":"ok""#));
}

#[test]
fn max_rate_delivers_the_newest_at_the_end_of_each_interval() {
    let (server, _dir) = server(&[]);
    let room = "sensor:rate";
    let mut p = server.ws();
    let mut s = server.ws();
    s.request(&format!(r#"{{"op":"sub","room":"{room}","max_rate":2,"id":1}}"#));
    let mut all = vec![];
    let mut last = 0;
    for i in 0..30u64 {
        last = p.publish(room, &format!(r#"{{"id":"k","n":{i}}}"#), i + 1);
        all.extend(drain(&mut s, Duration::from_millis(40)));
    }
    all.extend(drain(&mut s, Duration::from_millis(900)));
    let seqs: Vec<u64> = all.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert!(seqs.len() >= 2 && seqs.len() <= 6, "about 2/s over ~1.3 s: {seqs:?}");
    assert_eq!(*seqs.last().unwrap(), last, "the newest always arrives");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
}

#[test]
fn dead_band_skips_small_moves_but_never_a_status_change() {
    let (server, _dir) = server(&[]);
    let room = "fleet:band";
    let mut p = server.ws();
    let mut s = server.ws();
    s.request(&format!(r#"{{"op":"sub","room":"{room}","min_move_m":50,"id":1}}"#));
    let m = |lat: f64, extra: &str| format!(r#"{{"id":"v","lat":{lat},"lon":13.0{extra}}}"#);
    // 0.0001° of latitude is ~11 m.
    let sent = [
        p.publish(room, &m(52.0, ""), 1),                      // first: delivered
        p.publish(room, &m(52.0001, ""), 2),                   // 11 m: skipped
        p.publish(room, &m(52.0002, ""), 3),                   // 22 m: skipped
        p.publish(room, &m(52.0002, r#","stopped":true"#), 4), // status change: delivered
        p.publish(room, &m(52.0003, r#","stopped":true"#), 5), // 11 m from the last delivered: skipped
        p.publish(room, &m(52.0010, r#","stopped":true"#), 6), // 89 m: delivered
    ];
    let seqs: Vec<u64> =
        frames(&mut s, Duration::from_millis(400)).iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert_eq!(seqs, [sent[0], sent[3], sent[5]]);
}

#[test]
fn max_silence_confirms_a_parked_vehicle() {
    let (server, _dir) = server(&[]);
    let room = "fleet:parked";
    let mut p = server.ws();
    let mut s = server.ws();
    s.request(&format!(r#"{{"op":"sub","room":"{room}","min_move_m":100,"max_silence_s":0.5,"id":1}}"#));
    let start = Instant::now();
    let mut got = vec![];
    let mut i = 1;
    while start.elapsed() < Duration::from_millis(1800) {
        p.publish(room, &fix("parked", 52.0, 13.0), i);
        i += 1;
        got.extend(drain(&mut s, Duration::from_millis(100)));
    }
    let n = got.iter().filter(|v| v.get("seq").is_some()).count();
    assert!((3..=6).contains(&n), "the first, then about one per 0.5 s of {} publishes: {n}", i - 1);
}

#[test]
fn rate_and_dead_band_together_and_a_key_flapping_offline() {
    let (server, _dir) = server(&[]);
    // fleet: max_rate 2/s with a 50 m dead-band; the newest position always ends up delivered.
    let room = "fleet:both";
    let mut p = server.ws();
    let mut s = server.ws();
    s.request(&format!(r#"{{"op":"sub","room":"{room}","max_rate":2,"min_move_m":50,"id":1}}"#));
    let mut got = vec![];
    let mut last = 0;
    for i in 0..20u64 {
        // 0.001° of latitude ≈ 111 m per step: every step is outside the dead-band.
        last = p.publish(room, &fix("v", 52.0 + i as f64 * 0.001, 13.0), i + 1);
        got.extend(drain(&mut s, Duration::from_millis(30)));
    }
    // The newest message wins over a held one even inside the dead-band (the client must end
    // on the newest position): the held move is replaced by these tiny ones, the last of
    // which is delivered at the end of the interval.
    let mut newest = last;
    for i in 0..5u64 {
        newest = p.publish(room, &fix("v", 52.019 + i as f64 * 0.00001, 13.0), 100 + i);
    }
    got.extend(drain(&mut s, Duration::from_millis(800)));
    let seqs: Vec<u64> = got.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert_eq!(seqs.last(), Some(&newest), "the newest position arrives: {seqs:?}");
    assert!(seqs.len() <= 6, "about 2/s over ~0.7 s: {seqs:?}");
    // Once delivered, tiny moves alone are skipped by the dead-band, whatever the rate allows.
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..3u64 {
        p.publish(room, &fix("v", 52.019 + i as f64 * 0.00002, 13.0), 200 + i);
    }
    let more: Vec<u64> =
        drain(&mut s, Duration::from_millis(800)).iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert!(more.is_empty(), "sub-50 m moves after a delivery: {more:?}");
    assert!(last < newest);

    // sensor (liveness 1 s): offline, back, offline again — one notice per silence.
    let room = "sensor:flap";
    let mut w = server.ws();
    w.sub(room, 1);
    let mut offline = 0;
    for round in 0..2u64 {
        p.publish(room, r#"{"id":"f","t":1}"#, 300 + round);
        let end = Instant::now() + Duration::from_millis(1900);
        while Instant::now() < end {
            offline +=
                drain(&mut w, Duration::from_millis(200)).iter().filter(|v| is_op(v, "offline")).count();
        }
        assert_eq!(offline as u64, round + 1, "one offline per silence");
    }
}
