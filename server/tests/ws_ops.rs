//! The multiplexed `/ws` protocol (DESIGN §3): every op and its exact reply, ordering and
//! exactly-once delivery across shards, `since` recovery and key snapshots.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn ping_pong_echoes_the_id_verbatim() {
    let server = Server::start(&["--shards", "1"]);
    let mut c = server.ws();
    assert_eq!(c.request(r#"{"op":"ping","id":4}"#), r#"{"op":"pong","id":4}"#);
    assert_eq!(c.request(r#"{"op":"ping","id":"abc-1"}"#), r#"{"op":"pong","id":"abc-1"}"#);
    assert_eq!(c.request(r#"{"op":"ping"}"#), r#"{"op":"pong"}"#);
    // Whitespace and key order of the request do not matter.
    assert_eq!(c.request("{ \"id\" : 7 ,\n \"op\" : \"ping\" }"), r#"{"op":"pong","id":7}"#);
}

#[test]
fn sub_pub_unsub_replies_and_delivery() {
    let server = Server::start(&["--shards", "1"]);
    let room = "test:alpha";
    let mut sub = server.ws();
    let mut publisher = server.ws();

    assert_eq!(
        without_epoch(&sub.request(r#"{"op":"sub","room":"test:alpha","id":1}"#)),
        r#"{"op":"ok","id":1,"room":"test:alpha","seq":0}"#
    );
    assert_eq!(
        without_epoch(&publisher.request(r#"{"op":"pub","room":"test:alpha","data":{"x":1},"id":3}"#)),
        r#"{"op":"ok","id":3,"room":"test:alpha","seq":1}"#
    );
    assert_eq!(sub.recv_text(), r#"{"room":"test:alpha","seq":1,"data":{"x":1}}"#);

    // A string id, and no id at all.
    assert_eq!(
        without_epoch(&publisher.request(r#"{"op":"pub","room":"test:alpha","data":[1,2],"id":"p2"}"#)),
        r#"{"op":"ok","id":"p2","room":"test:alpha","seq":2}"#
    );
    assert_eq!(sub.recv_text(), r#"{"room":"test:alpha","seq":2,"data":[1,2]}"#);
    assert_eq!(
        without_epoch(&publisher.request(r#"{"op":"pub","room":"test:alpha","data":"s"}"#)),
        r#"{"op":"ok","room":"test:alpha","seq":3}"#
    );
    assert_eq!(sub.recv_text(), envelope(room, 3, r#""s""#));

    // A second subscriber learns the room's last seq; sub without id.
    let mut late = server.ws();
    assert_eq!(
        without_epoch(&late.request(r#"{"op":"sub","room":"test:alpha"}"#)),
        r#"{"op":"ok","room":"test:alpha","seq":3}"#
    );

    // Unsubscribe: exact reply, and no more messages afterwards.
    assert_eq!(
        sub.request(r#"{"op":"unsub","room":"test:alpha","id":2}"#),
        r#"{"op":"ok","id":2,"room":"test:alpha"}"#
    );
    assert_eq!(publisher.publish(room, r#"{"x":4}"#, 5), 4);
    assert_eq!(late.recv_text(), envelope(room, 4, r#"{"x":4}"#));
    sub.ping(9);
    sub.expect_silence(Duration::from_millis(300));
    publisher.expect_silence(Duration::from_millis(100));
}

#[test]
fn seq_starts_at_one_and_grows_by_one_per_room() {
    let server = Server::start(&["--shards", "2"]);
    let mut p = server.ws();
    for i in 1..=20u64 {
        assert_eq!(p.publish("seq:a", &format!("{{\"i\":{i}}}"), i), i);
        if i % 2 == 0 {
            assert_eq!(p.publish("seq:b", "null", 1000 + i), i / 2);
        }
    }
    let mut s = server.ws();
    assert_eq!(s.sub("seq:a", 1), 20);
    assert_eq!(s.sub("seq:b", 2), 10);
    assert_eq!(s.sub("seq:never-published", 3), 0);
}

#[test]
fn errors_carry_code_message_and_id() {
    let server = Server::start(&["--shards", "1"]);
    let mut c = server.ws();
    assert_error(&c.request(r#"{"op":"jump","id":1}"#), Some("1"), "bad_op");
    assert_error(&c.request(r#"{"op":"sub","id":2}"#), Some("2"), "missing_field");
    assert_error(&c.request(r#"{"op":"pub","room":"r:1","id":"q"}"#), Some("\"q\""), "missing_field");
    assert_error(&c.request(r#"{"op":"sub","room":"no spaces","id":3}"#), Some("3"), "bad_room");
    assert_error(
        &c.request(&format!(r#"{{"op":"sub","room":"{}","id":4}}"#, "a".repeat(201))),
        Some("4"),
        "bad_room",
    );
    assert_error(&c.request(r#"{"op":"sub","room":""}"#), None, "bad_room");
    assert_error(&c.request(r#"{"op":"sub","room":7,"id":5}"#), Some("5"), "bad_field");
    assert_error(&c.request(r#"{"op":"sub","room":"r:1","since":-1,"id":6}"#), Some("6"), "bad_field");
    assert_error(&c.request("not json"), None, "bad_json");
    assert_error(&c.request("[1,2]"), None, "bad_json");
    assert_error(&c.request(r#"{"op":"pub","room":"r:1","data":{"a":}}"#), None, "bad_json");
    // The connection is still fully usable.
    c.ping(99);
    assert_eq!(c.sub("r:1", 100), 0);
    // A 200-byte room is fine.
    let long = "b".repeat(200);
    assert_eq!(c.sub(&long, 101), 0);
}

/// Several publishers and subscribers on rooms spread over two shards: every subscriber sees
/// every message of its rooms exactly once, with contiguous seqs, each publisher's messages in
/// the order sent, and the same seq → data mapping the publishers were told in their `ok`s.
#[test]
fn ordering_and_exactly_once_across_two_shards() {
    let server = Server::start(&["--shards", "2"]);
    const ROOMS: usize = 6;
    const PUBLISHERS: usize = 3;
    const PER_ROOM: u64 = 60; // per publisher per room
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("order:r{i}")).collect();
    let total = PUBLISHERS as u64 * PER_ROOM;

    // Subscribers: each follows a different subset (all rooms, evens, odds, first three).
    let subsets: Vec<Vec<String>> = vec![
        rooms.clone(),
        rooms.iter().step_by(2).cloned().collect(),
        rooms.iter().skip(1).step_by(2).cloned().collect(),
        rooms.iter().take(3).cloned().collect(),
        rooms.clone(),
    ];
    let mut sub_threads = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for subset in subsets {
        let mut ws = server.ws();
        for (i, r) in subset.iter().enumerate() {
            assert_eq!(ws.sub(r, i as u64 + 1), 0);
        }
        let ready = ready_tx.clone();
        sub_threads.push(thread::spawn(move || {
            ready.send(()).unwrap();
            let want = subset.len() as u64 * total;
            let mut got: HashMap<String, Vec<(u64, String)>> = HashMap::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0;
            while n < want {
                assert!(Instant::now() < deadline, "subscriber got only {n} of {want}");
                let text = ws.recv_text();
                let v: Value = serde_json::from_str(&text).unwrap();
                let room = v["room"].as_str().unwrap_or_else(|| panic!("not a message: {text}")).to_owned();
                let seq = v["seq"].as_u64().unwrap();
                let data = data_of(&text, &room, seq);
                assert!(subset.contains(&room), "message of a room not subscribed: {text}");
                got.entry(room).or_default().push((seq, data));
                n += 1;
            }
            ws.expect_silence(Duration::from_millis(200));
            (subset, got)
        }));
    }
    for _ in 0..sub_threads.len() {
        ready_rx.recv().unwrap();
    }

    let mut pub_threads = Vec::new();
    for p in 0..PUBLISHERS {
        let mut ws = server.ws();
        let rooms = rooms.clone();
        pub_threads.push(thread::spawn(move || {
            // Pipeline a batch, then collect its oks: seq per (room, publisher, i).
            let mut told = Vec::new();
            let mut id = 0u64;
            for i in 0..PER_ROOM {
                let mut sent = Vec::new();
                for r in &rooms {
                    id += 1;
                    let data = format!(r#"{{"p":{p},"i":{i}}}"#);
                    ws.send_text(&format!(r#"{{"op":"pub","room":"{r}","data":{data},"id":{id}}}"#));
                    sent.push((id, r.clone(), data));
                }
                // Replies for different rooms may come in any order (different owners);
                // they are matched by id.
                let mut replies = HashMap::new();
                for _ in 0..sent.len() {
                    let reply = ws.recv_text();
                    let v: Value = serde_json::from_str(&reply).unwrap();
                    let id = v["id"].as_u64().unwrap_or_else(|| panic!("{reply}"));
                    assert!(replies.insert(id, reply).is_none(), "two replies for id {id}");
                }
                for (id, r, data) in sent {
                    let reply = replies.remove(&id).unwrap_or_else(|| panic!("no reply for id {id}"));
                    let v: Value = serde_json::from_str(&reply).unwrap();
                    let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("{reply}"));
                    assert_eq!(
                        without_epoch(&reply),
                        format!(r#"{{"op":"ok","id":{id},"room":"{r}","seq":{seq}}}"#)
                    );
                    told.push((r, seq, data));
                }
            }
            told
        }));
    }
    let mut told: HashMap<String, BTreeMap<u64, String>> = HashMap::new();
    for t in pub_threads {
        for (room, seq, data) in t.join().expect("publisher") {
            assert!(
                told.entry(room.clone()).or_default().insert(seq, data).is_none(),
                "seq {seq} of {room} assigned twice"
            );
        }
    }
    for r in &rooms {
        let seqs: Vec<u64> = told[r].keys().copied().collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "assigned seqs of {r}");
    }
    for t in sub_threads {
        let (subset, got) = t.join().expect("subscriber");
        for r in &subset {
            let msgs = &got[r];
            let seqs: Vec<u64> = msgs.iter().map(|m| m.0).collect();
            assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "delivered seqs of {r}");
            let mut last_i = [-1i64; PUBLISHERS];
            for (seq, data) in msgs {
                assert_eq!(
                    &told[r][seq], data,
                    "seq {seq} of {r}: delivered data differs from the published one"
                );
                let v: Value = serde_json::from_str(data).unwrap();
                let (p, i) = (v["p"].as_u64().unwrap() as usize, v["i"].as_i64().unwrap());
                assert!(i > last_i[p], "publisher {p} out of order in {r}: {i} after {}", last_i[p]);
                last_i[p] = i;
            }
        }
    }
}

/// `since` replays `seq > since` from history and then goes live with no gap and no
/// duplicate, even while a publisher keeps publishing during the subscribe.
#[test]
fn since_recovery_has_no_gap_and_no_duplicate() {
    let server = Server::start(&["--shards", "2", "--history-size", "1000"]);
    let room = "recover:truck7";
    let mut p = server.ws();
    for i in 1..=50u64 {
        assert_eq!(p.publish(room, &format!(r#"{{"i":{i}}}"#), i), i);
    }
    let publisher = thread::spawn(move || {
        for i in 51..=250u64 {
            assert_eq!(p.publish(room, &format!(r#"{{"i":{i}}}"#), i), i);
        }
    });
    let mut s = server.ws();
    s.send_text(r#"{"op":"sub","room":"recover:truck7","since":20,"id":"r"}"#);
    let mut seen = Vec::new();
    let mut ok = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.last().copied() != Some(250) {
        assert!(Instant::now() < deadline, "stuck after {:?}", seen.last());
        let text = s.recv_text();
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["op"] == "ok" {
            assert!(ok.is_none(), "two oks");
            let last = v["seq"].as_u64().unwrap();
            assert_eq!(
                without_epoch(&text),
                format!(r#"{{"op":"ok","id":"r","room":"{room}","seq":{last}}}"#)
            );
            assert!((50..=250).contains(&last), "{text}");
            ok = Some(last);
            continue;
        }
        assert!(v.get("op").is_none(), "unexpected control frame {text}");
        let seq = v["seq"].as_u64().unwrap();
        assert_eq!(text, envelope(room, seq, &format!(r#"{{"i":{seq}}}"#)));
        seen.push(seq);
    }
    publisher.join().unwrap();
    assert!(ok.is_some(), "no ok for the sub");
    assert_eq!(seen, (21..=250).collect::<Vec<_>>());
    s.expect_silence(Duration::from_millis(200));

    // `since` equal to the last seq: nothing replayed.
    let mut t = server.ws();
    assert_eq!(
        without_epoch(&t.request(r#"{"op":"sub","room":"recover:truck7","since":250,"id":1}"#)),
        r#"{"op":"ok","id":1,"room":"recover:truck7","seq":250}"#
    );
    t.expect_silence(Duration::from_millis(200));
}

/// History shorter than what `since` asks for: a `gap` notice for the missing range first,
/// then the messages history still holds.
#[test]
fn since_beyond_history_gets_a_gap_first() {
    let server = Server::start(&["--shards", "1", "--history-size", "5"]);
    let room = "short:hist";
    let mut p = server.ws();
    for i in 1..=20u64 {
        assert_eq!(p.publish(room, &format!("{i}"), i), i);
    }
    let mut s = server.ws();
    s.send_text(r#"{"op":"sub","room":"short:hist","since":2,"id":1}"#);
    let mut frames = Vec::new();
    for _ in 0..7 {
        frames.push(ok_without_epoch(s.recv_text()));
    }
    s.expect_silence(Duration::from_millis(200));
    let ok = r#"{"op":"ok","id":1,"room":"short:hist","seq":20}"#;
    let gap = r#"{"op":"gap","room":"short:hist","from":3,"to":15}"#;
    assert!(frames.contains(&ok.to_owned()), "{frames:#?}");
    let rest: Vec<&String> = frames.iter().filter(|f| *f != ok).collect();
    assert_eq!(rest[0], gap, "the gap notice comes before the replay: {frames:#?}");
    let replay: Vec<String> = (16..=20).map(|i| envelope(room, i, &i.to_string())).collect();
    assert_eq!(rest[1..].iter().map(|s| s.as_str()).collect::<Vec<_>>(), replay);
}

/// A namespace with a `key` keeps the latest message per key; `snapshot: true` delivers them
/// all on subscribe.
#[test]
fn snapshot_delivers_latest_message_per_key() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "shardcast.toml",
        "[namespaces.tracked]\nkey = \"id\"\nhistory_size = 100\npolicy = \"drop\"\n",
    );
    let server = Server::start(&["--shards", "2", "--config", &cfg]);
    let room = "tracked:berlin";
    let mut p = server.ws();
    let msgs = [
        r#"{"id":"a","v":1}"#,
        r#"{"id":"b","v":1}"#,
        r#"{"id":"a","v":2}"#,
        r#"{"v":3,"id":"c"}"#,
        r#"{"id":"b", "v":2}"#,
        r#"{"id":"a","v":3}"#,
    ];
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(p.publish(room, m, i as u64 + 1), i as u64 + 1);
    }
    let mut s = server.ws();
    s.send_text(r#"{"op":"sub","room":"tracked:berlin","snapshot":true,"id":1}"#);
    let mut snapshot = HashSet::new();
    let mut got_ok = false;
    while snapshot.len() < 3 || !got_ok {
        let text = s.recv_text();
        if text.starts_with(r#"{"op":"ok""#) {
            assert_eq!(without_epoch(&text), r#"{"op":"ok","id":1,"room":"tracked:berlin","seq":6}"#);
            got_ok = true;
        } else {
            assert!(snapshot.insert(text.clone()), "duplicate snapshot entry {text}");
        }
    }
    let expected: HashSet<String> =
        [envelope(room, 4, msgs[3]), envelope(room, 5, msgs[4]), envelope(room, 6, msgs[5])]
            .into_iter()
            .collect();
    assert_eq!(snapshot, expected);
    s.expect_silence(Duration::from_millis(200));
    // Then live.
    assert_eq!(p.publish(room, r#"{"id":"d","v":1}"#, 7), 7);
    assert_eq!(s.recv_text(), envelope(room, 7, r#"{"id":"d","v":1}"#));
}

#[test]
fn publisher_subscribed_to_its_room_gets_ok_and_message() {
    let server = Server::start(&["--shards", "1"]);
    let mut c = server.ws();
    assert_eq!(c.sub("self:r", 1), 0);
    c.send_text(r#"{"op":"pub","room":"self:r","data":{"me":true},"id":2}"#);
    let mut frames = vec![ok_without_epoch(c.recv_text()), ok_without_epoch(c.recv_text())];
    frames.sort();
    assert_eq!(
        frames,
        vec![
            r#"{"op":"ok","id":2,"room":"self:r","seq":1}"#.to_owned(),
            r#"{"room":"self:r","seq":1,"data":{"me":true}}"#.to_owned()
        ]
    );
}

#[test]
fn unknown_path_is_not_upgraded() {
    let server = Server::start(&["--shards", "1"]);
    let err = server.try_connect("/nope", &[]).err().expect("upgrade on an unknown path");
    assert_eq!(err.status(), Some(404), "{err}");
}

/// The `data` bytes of a message envelope, checking the envelope's exact layout around them.
fn data_of(text: &str, room: &str, seq: u64) -> String {
    let prefix = format!(r#"{{"room":"{room}","seq":{seq},"data":"#);
    let data = text
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or_else(|| panic!("bad envelope layout {text:?}"));
    data.to_owned()
}

#[test]
fn ids_are_echoed_as_their_exact_json_text() {
    let server = Server::start(&["--shards", "1"]);
    let mut c = server.ws();
    for id in ["0", "-3", "1.50", "1e3", r#""""#, r#""a\"b""#, r#""ü""#, r#""\u00fc""#] {
        assert_eq!(
            c.request(&format!(r#"{{"op":"ping","id":{id}}}"#)),
            format!(r#"{{"op":"pong","id":{id}}}"#)
        );
    }
    assert_eq!(
        without_epoch(&c.request(r#"{"op":"sub","room":"ids:r","id":"s-1"}"#)),
        r#"{"op":"ok","id":"s-1","room":"ids:r","seq":0}"#
    );
    // Ids that are neither numbers nor short strings are refused (without an id in the reply).
    assert_error(&c.request(r#"{"op":"ping","id":{"a":1}}"#), None, "bad_field");
    assert_error(&c.request(r#"{"op":"ping","id":[1]}"#), None, "bad_field");
}

#[test]
fn subscribing_twice_delivers_once() {
    let server = Server::start(&["--shards", "2"]);
    let mut c = server.ws();
    assert_eq!(c.sub("twice:r", 1), 0);
    assert_eq!(c.sub("twice:r", 2), 0);
    let mut p = server.ws();
    assert_eq!(p.publish("twice:r", "1", 1), 1);
    assert_eq!(c.recv_text(), envelope("twice:r", 1, "1"));
    c.expect_silence(Duration::from_millis(300));
    // One unsub is enough to stop delivery.
    assert_eq!(
        c.request(r#"{"op":"unsub","room":"twice:r","id":3}"#),
        r#"{"op":"ok","id":3,"room":"twice:r"}"#
    );
    assert_eq!(p.publish("twice:r", "2", 2), 2);
    c.expect_silence(Duration::from_millis(300));
}

#[test]
fn client_close_is_answered_with_a_close() {
    let server = Server::start(&["--shards", "1"]);
    let mut raw = server.raw_ws("/ws");
    raw.send_frame(true, OP_CLOSE, &[0x03, 0xE8]); // 1000
    let (code, _) = raw.expect_close(TIMEOUT);
    assert_eq!(code, 1000);
    match raw.read_event(TIMEOUT) {
        RawEvent::Eof(_) => {}
        RawEvent::Timeout => panic!("server kept the socket open after the close handshake"),
        RawEvent::Frame { opcode, payload, .. } => {
            panic!("frame after close: opcode {opcode} {payload:?}")
        }
    }
}

#[test]
fn history_size_zero_still_sequences_and_gaps_on_since() {
    let server = Server::start(&["--shards", "1", "--history-size", "0"]);
    let mut p = server.ws();
    for i in 1..=3 {
        assert_eq!(p.publish("nohist:r", "1", i), i);
    }
    let mut s = server.ws();
    s.send_text(r#"{"op":"sub","room":"nohist:r","since":1,"id":1}"#);
    let mut frames = vec![ok_without_epoch(s.recv_text()), ok_without_epoch(s.recv_text())];
    frames.sort();
    assert_eq!(
        frames,
        vec![
            r#"{"op":"gap","room":"nohist:r","from":2,"to":3}"#.to_owned(),
            r#"{"op":"ok","id":1,"room":"nohist:r","seq":3}"#.to_owned(),
        ]
    );
    s.expect_silence(Duration::from_millis(200));
}

#[test]
fn idle_clients_that_answer_pings_stay_and_silent_ones_are_closed() {
    let server = Server::start(&["--shards", "1", "--ping-interval", "200ms", "--idle-timeout", "1s"]);
    let mut good = server.ws();
    // tungstenite answers pings while it reads: this client stays alive.
    let good = thread::spawn(move || {
        good.expect_silence(Duration::from_millis(2500));
        good.ping(1);
    });
    let mut mute = server.raw_ws("/ws");
    let started = Instant::now();
    let mut pings = 0;
    let closed = loop {
        match mute.read_event(Duration::from_secs(5)) {
            RawEvent::Frame { opcode: OP_PING, .. } => pings += 1,
            RawEvent::Frame { opcode: OP_CLOSE, payload, .. } => break Some(payload),
            RawEvent::Frame { opcode, .. } => panic!("unexpected opcode {opcode}"),
            RawEvent::Eof(_) => break None,
            RawEvent::Timeout => panic!("silent client still open after {:?}", started.elapsed()),
        }
    };
    assert!(pings >= 1, "no server ping before the idle close");
    assert!(started.elapsed() >= Duration::from_millis(800), "closed too early: {:?}", started.elapsed());
    if let Some(p) = closed {
        assert!(p.len() >= 2, "close without code");
    }
    good.join().expect("the client answering pings was closed");
}
