//! Rooms with a lifecycle and an epoch (issue 7), end to end over real sockets: epochs in
//! every reply that carries a seq, `reset` notices, since + snapshot without resends, the
//! room limit's refusals, idle-room expiry, eviction under the retained-bytes budget, and
//! invented-room churn staying within the limits.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A keep-alive HTTP/1.1 connection, for many requests without a connection each.
struct KeepAlive(TcpStream);

impl KeepAlive {
    fn new(server: &Server) -> KeepAlive {
        KeepAlive(server.tcp())
    }

    fn publish(&mut self, body: &str) -> HttpResponse {
        let req = format!(
            "POST /api/publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.write_all(req.as_bytes()).expect("write request");
        read_http_response(&mut self.0).unwrap_or_else(|e| panic!("publish: {e}"))
    }
}

/// The value of an unlabelled series in `/metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    let text = server.get("/metrics").text();
    let prefix = format!("{name} ");
    let line =
        text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} in /metrics"));
    line[prefix.len()..].parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// `GET /api/rooms/<room>` as JSON.
fn info(server: &Server, room: &str) -> Value {
    let r = server.get(&format!("/api/rooms/{room}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Publishes over HTTP; returns (seq, epoch) from the exact reply.
fn http_publish(server: &Server, room: &str, data: &str) -> (u64, String) {
    let r = server.publish(&format!(r#"{{"room":"{room}","data":{data}}}"#), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let (bare, epoch) = split_epoch(&r.text());
    let seq = r.json()["seq"].as_u64().unwrap();
    assert_eq!(bare, format!(r#"{{"seq":{seq}}}"#));
    (seq, epoch)
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn every_reply_with_a_seq_carries_the_room_epoch() {
    let server = Server::start(&["--shards", "2"]);
    // A room nobody published to already has its epoch.
    let mut s = server.ws();
    let (seq, epoch) = s.sub_epoch("ep:a", 1);
    assert_eq!(seq, 0);
    let mut p = server.ws();
    let reply = p.request(r#"{"op":"pub","room":"ep:a","data":1,"id":2}"#);
    assert_eq!(reply, format!(r#"{{"op":"ok","id":2,"room":"ep:a","seq":1,"epoch":"{epoch}"}}"#));
    assert_eq!(s.recv_text(), envelope("ep:a", 1, "1"), "messages themselves are unchanged");
    assert_eq!(http_publish(&server, "ep:a", "2"), (2, epoch.clone()));
    let r = server.get("/api/rooms/ep:a");
    assert_eq!(
        r.text(),
        format!(r#"{{"room":"ep:a","seq":2,"subscribers":1,"history":2,"epoch":"{epoch}"}}"#)
    );
    // No room, no epoch (and asking creates none).
    let r = server.get("/api/rooms/ep:none");
    assert_eq!(r.text(), r#"{"room":"ep:none","seq":0,"subscribers":0,"history":0,"epoch":null}"#);
    // Another room, another epoch.
    let (_, other) = http_publish(&server, "ep:b", "1");
    assert_ne!(other, epoch);
}

#[test]
fn a_wrong_epoch_or_a_since_beyond_seq_gets_reset_then_the_history() {
    let server = Server::start(&["--shards", "2"]);
    let room = "rs:a";
    let mut epoch = String::new();
    for i in 1..=3 {
        epoch = http_publish(&server, room, &i.to_string()).1;
    }
    let ok = format!(r#"{{"op":"ok","id":1,"room":"{room}","seq":3,"epoch":"{epoch}"}}"#);
    let reset = format!(r#"{{"op":"reset","room":"{room}","epoch":"{epoch}"}}"#);
    let history: Vec<String> = (1..=3).map(|i| envelope(room, i, &i.to_string())).collect();
    for sub in [
        format!(r#"{{"op":"sub","room":"{room}","since":1,"epoch":"wrongwrong","id":1}}"#),
        format!(r#"{{"op":"sub","room":"{room}","epoch":"old","id":1}}"#),
        format!(r#"{{"op":"sub","room":"{room}","since":99,"id":1}}"#),
        format!(r#"{{"op":"sub","room":"{room}","since":99,"epoch":"{epoch}","id":1}}"#),
    ] {
        let mut c = server.ws();
        c.send_text(&sub);
        let frames: Vec<String> = (0..5).map(|_| c.recv_text()).collect();
        assert_eq!(frames[..2], [ok.clone(), reset.clone()], "{sub}");
        assert_eq!(frames[2..], history[..], "{sub}: the whole history, in order");
        c.expect_silence(Duration::from_millis(100));
    }
    // The right epoch: an ordinary resume, no reset.
    let mut c = server.ws();
    c.send_text(&format!(r#"{{"op":"sub","room":"{room}","since":2,"epoch":"{epoch}","id":1}}"#));
    assert_eq!(c.recv_text(), ok);
    assert_eq!(c.recv_text(), envelope(room, 3, "3"));
    c.expect_silence(Duration::from_millis(100));
    http_publish(&server, room, "4");
    assert_eq!(c.recv_text(), envelope(room, 4, "4"));
}

#[test]
fn a_restarted_server_has_new_epochs_and_resuming_clients_get_reset() {
    let first = Server::start(&["--shards", "1"]);
    http_publish(&first, "rst:a", "1");
    let (_, old) = http_publish(&first, "rst:a", "2");
    drop(first);
    let server = Server::start(&["--shards", "1"]);
    let (seq, epoch) = http_publish(&server, "rst:a", "10");
    assert_eq!(seq, 1);
    assert_ne!(epoch, old);
    // since 1 equals the new seq: without the epoch this would look "up to date".
    let mut c = server.ws();
    c.send_text(&format!(r#"{{"op":"sub","room":"rst:a","since":1,"epoch":"{old}","id":1}}"#));
    assert_eq!(without_epoch(&c.recv_text()), r#"{"op":"ok","id":1,"room":"rst:a","seq":1}"#);
    assert_eq!(c.recv_text(), format!(r#"{{"op":"reset","room":"rst:a","epoch":"{epoch}"}}"#));
    assert_eq!(c.recv_text(), envelope("rst:a", 1, "10"));
    c.expect_silence(Duration::from_millis(100));
}

/// Issue 7, bug (a): with `since` + `snapshot` and history not covering `since`, snapshot
/// entries with `seq <= since` (which the client has) were sent again.
#[test]
fn since_with_snapshot_never_resends_what_the_client_has() {
    let dir = TempDir::new();
    let cfg = dir.write("c.toml", "[namespaces.snap]\nkey = \"id\"\nhistory_size = 2\n");
    let server = Server::start(&["--shards", "2", "--config", &cfg]);
    let mut epoch = String::new();
    for (i, k) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        let (seq, e) = http_publish(&server, "snap:x", &format!(r#"{{"id":"{k}"}}"#));
        assert_eq!(seq, i as u64 + 1);
        epoch = e;
    }
    let mut c = server.ws();
    c.send_text(&format!(
        r#"{{"op":"sub","room":"snap:x","since":2,"snapshot":true,"epoch":"{epoch}","id":1}}"#
    ));
    let mut frames: Vec<String> = (0..6).map(|_| c.recv_text()).collect();
    c.expect_silence(Duration::from_millis(200));
    assert_eq!(
        frames.remove(0),
        format!(r#"{{"op":"ok","id":1,"room":"snap:x","seq":6,"epoch":"{epoch}"}}"#)
    );
    assert_eq!(frames.remove(0), r#"{"op":"gap","room":"snap:x","from":3,"to":4}"#);
    let expected: Vec<String> = ["c", "d", "e", "f"]
        .iter()
        .zip(3..)
        .map(|(k, s)| envelope("snap:x", s, &format!(r#"{{"id":"{k}"}}"#)))
        .collect();
    assert_eq!(frames, expected, "snapshot entries above since, then history; nothing at or below 2");
}

#[test]
fn the_room_limit_refuses_over_http_ws_and_room_urls() {
    let server = Server::start(&["--shards", "1", "--max-rooms", "2"]);
    http_publish(&server, "lim:a", "1");
    let mut c = server.ws();
    assert_eq!(c.sub("lim:b", 1), 0);
    // HTTP: 503 with the JSON error body.
    let r = server.publish(r#"{"room":"lim:c","data":1}"#, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "too_many_rooms");
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    // /ws: an error op with the request's id, for pub and for sub; the connection stays.
    assert_error(&c.request(r#"{"op":"pub","room":"lim:c","data":1,"id":7}"#), Some("7"), "too_many_rooms");
    assert_error(&c.request(r#"{"op":"sub","room":"lim:c","id":"s"}"#), Some("\"s\""), "too_many_rooms");
    assert_error(&c.request(r#"{"op":"unsub","room":"lim:c","id":9}"#), Some("9"), "not_subscribed");
    c.ping(8);
    // /ws/<room>: the handshake is refused with 503.
    let e = server.try_connect("/ws/lim:c", &[]).err().expect("refused");
    assert_eq!(e.status(), Some(503), "{e}");
    assert!(e.to_string().contains("too_many_rooms"), "{e}");
    // Existing rooms keep working, including joining them by URL.
    assert_eq!(http_publish(&server, "lim:a", "2").0, 2);
    let mut url = server.connect("/ws/lim:a");
    wait_subscribers(&server, "lim:a", 1);
    http_publish(&server, "lim:a", "3");
    assert_eq!(url.recv_text(), "3");
    assert_eq!(metric(&server, "shardcast_rooms"), 2);
    assert!(metric(&server, "shardcast_rooms_refused_total") >= 3);
    // A subscribe-only room is forgotten when left, which makes room for a new one.
    c.request(r#"{"op":"unsub","room":"lim:b","id":10}"#);
    assert_eq!(http_publish(&server, "lim:c", "1").0, 1);
}

#[test]
fn an_idle_room_expires_after_its_ttl_and_comes_back_with_a_new_epoch() {
    let server = Server::start(&["--shards", "2", "--room-ttl", "1s"]);
    let (_, first) = http_publish(&server, "ttl:a", "1");
    // A subscribed room does not expire; the TTL counts from the last departure.
    let mut c = server.ws();
    assert_eq!(c.sub("ttl:kept", 1), 0);
    http_publish(&server, "ttl:kept", "1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !info(&server, "ttl:a")["epoch"].is_null() {
        assert!(Instant::now() < deadline, "ttl:a never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(info(&server, "ttl:a")["seq"], 0);
    assert!(info(&server, "ttl:kept")["epoch"].is_string(), "a subscribed room stays");
    // A room past its TTL reads as gone at once; the counter counts it when the owner's
    // periodic sweep forgets it, which may be a tick later.
    while metric(&server, "shardcast_rooms_expired_total") < 1 {
        assert!(Instant::now() < deadline, "the expired room was never swept");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = server.ws();
    let (seq, epoch) = s.sub_epoch("ttl:a", 1);
    assert_eq!(seq, 0);
    assert_ne!(epoch, first);
}

#[test]
fn the_retained_budget_evicts_idle_rooms_least_recently_used_first() {
    let server = Server::start(&["--shards", "1", "--retained-bytes", "64KiB"]);
    let kib = format!("\"{}\"", "x".repeat(1022));
    let (_, first) = http_publish(&server, "ev:0", &kib);
    let mut sub = server.ws();
    assert_eq!(sub.sub("ev:kept", 1), 0);
    http_publish(&server, "ev:kept", &kib);
    for i in 1..100 {
        http_publish(&server, &format!("ev:{i}"), &kib);
        assert!(metric(&server, "shardcast_retained_bytes") <= 64 << 10);
    }
    assert!(metric(&server, "shardcast_rooms_evicted_total") > 0);
    assert!(info(&server, "ev:0")["epoch"].is_null(), "the oldest idle room went first");
    assert!(!info(&server, "ev:99")["epoch"].is_null(), "the newest stays");
    assert_eq!(info(&server, "ev:kept")["seq"], 1, "a room with a subscriber is never evicted");
    let (seq, epoch) = http_publish(&server, "ev:0", "1");
    assert_eq!(seq, 1);
    assert_ne!(epoch, first);
}

#[test]
fn twenty_thousand_invented_rooms_stay_within_the_limits() {
    const ROOMS: usize = 20_000;
    const THREADS: usize = 4;
    let server = Server::start(&[
        "--shards",
        "2",
        "--max-rooms",
        "2000",
        "--retained-bytes",
        "2MiB",
        "--http-publish-rate",
        "1000000",
        "--http-publish-burst",
        "1000000",
    ]);
    let rss_before = rss_kib(server.pid());
    let kib = format!("\"{}\"", "x".repeat(1022));
    let (ok, refused) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (server, kib) = (&server, &kib);
                scope.spawn(move || {
                    let mut conn = KeepAlive::new(server);
                    let (mut ok, mut refused) = (0, 0);
                    for i in (t..ROOMS).step_by(THREADS) {
                        let r = conn.publish(&format!(r#"{{"room":"spam:{i}","data":{kib}}}"#));
                        match r.status {
                            200 => ok += 1,
                            503 if r.json()["error"]["code"] == "too_many_rooms" => refused += 1,
                            s => panic!("unexpected {s}: {}", r.text()),
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!(ok + refused, ROOMS);
    let (rooms, retained) = (metric(&server, "shardcast_rooms"), metric(&server, "shardcast_retained_bytes"));
    assert!(rooms <= 2000, "{rooms} rooms");
    assert!(retained <= 2 << 20, "{retained} bytes retained");
    assert!(metric(&server, "shardcast_rooms_evicted_total") > 0);
    let text = server.get("/metrics").text();
    for shard in 0..2 {
        let line = format!("shardcast_shard_retained_bytes{{shard=\"{shard}\"}} ");
        let v: u64 = text.lines().find_map(|l| l.strip_prefix(&line)).unwrap().parse().unwrap();
        assert!(v <= 1 << 20, "shard {shard} retains {v} bytes, over its half of the budget");
    }
    let grown = rss_kib(server.pid()).saturating_sub(rss_before);
    assert!(grown < 64 << 10, "RSS grew by {grown} KiB");
    eprintln!("{ok} published, {refused} refused, {rooms} rooms, {retained} B retained, RSS +{grown} KiB");
}
