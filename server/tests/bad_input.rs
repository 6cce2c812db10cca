//! Bad input gets a clear error or close code, and never affects other connections: every test
//! ends by checking that a healthy neighbour connection still gets its messages.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

/// Both endpoints: the multiplexed one and room-per-URL.
const PATHS: [&str; 2] = ["/ws", "/ws/bad:input"];

fn closes_with(server: &Server, path: &str, send: impl FnOnce(&mut RawWs), code: u16) -> String {
    let mut bad = server.raw_ws(path);
    send(&mut bad);
    let (got, reason) = bad.expect_close(TIMEOUT);
    assert_eq!(got, code, "{path}: close code (reason {reason:?})");
    bad.expect_eof(TIMEOUT);
    reason
}

#[test]
fn binary_frame_closes_1003() {
    let server = Server::start(&["--shards", "2"]);
    let mut n = Neighbour::new(&server);
    for path in PATHS {
        closes_with(&server, path, |c| c.send_frame(true, OP_BINARY, b"\x00\x01\x02"), 1003);
        n.check();
    }
    // Through tungstenite too.
    let mut c = server.ws();
    c.send_binary(b"{\"op\":\"ping\"}");
    assert_eq!(c.expect_close(TIMEOUT).0, 1003);
    n.check();
}

#[test]
fn invalid_utf8_closes_1007() {
    let server = Server::start(&["--shards", "2"]);
    let mut n = Neighbour::new(&server);
    for path in PATHS {
        closes_with(&server, path, |c| c.send_frame(true, OP_TEXT, b"{\"a\":\"\xff\xfe\"}"), 1007);
        n.check();
        // A UTF-8 sequence split across fragments is fine; a truncated one is not.
        closes_with(
            &server,
            path,
            |c| {
                c.send_frame(false, OP_TEXT, b"{\"a\":\"\xc3");
                c.send_frame(true, OP_CONT, b"\"}");
            },
            1007,
        );
        n.check();
    }
}

#[test]
fn fragmented_text_is_reassembled() {
    let server = Server::start(&["--shards", "1"]);
    let mut n = Neighbour::new(&server);
    let mut c = server.raw_ws("/ws");
    c.send_frame(false, OP_TEXT, b"{\"op\":\"pi");
    c.send_frame(true, OP_PING, b"hi"); // control frames may be interleaved
    c.send_frame(false, OP_CONT, b"ng\",\"id\":\"\xc3");
    c.send_frame(true, OP_CONT, b"\xbc\"}");
    loop {
        match c.read_event(TIMEOUT) {
            RawEvent::Frame { opcode: OP_PONG, payload, .. } => assert_eq!(payload, b"hi"),
            RawEvent::Frame { opcode: OP_TEXT, payload, .. } => {
                assert_eq!(String::from_utf8(payload).unwrap(), "{\"op\":\"pong\",\"id\":\"ü\"}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    n.check();
}

/// The decoder keeps a partial header and payload across reads: frames sent one byte per
/// write (a 64-bit length among them) still decode, and an empty ping still gets its pong.
#[test]
fn frames_trickled_byte_by_byte_are_decoded() {
    let server = Server::start(&["--shards", "1"]);
    let mut n = Neighbour::new(&server);
    let mut c = server.raw_ws("/ws");
    let mut bytes = encode_frame(true, OP_PING, b"", Some([9, 8, 7, 6]));
    // A 64-bit length for a small payload is legal (RFC 6455 only asks for the minimal
    // form when sending).
    let op = br#"{"op":"ping","id":"slow"}"#;
    bytes.extend_from_slice(&[0x81, 0x80 | 127]);
    bytes.extend_from_slice(&(op.len() as u64).to_be_bytes());
    let mask = [1, 2, 3, 4];
    bytes.extend_from_slice(&mask);
    bytes.extend(op.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    for b in &bytes {
        c.send_raw(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        matches!(c.read_event(TIMEOUT), RawEvent::Frame { opcode: OP_PONG, ref payload, .. } if payload.is_empty())
    );
    match c.read_event(TIMEOUT) {
        RawEvent::Frame { opcode: OP_TEXT, payload, .. } => {
            assert_eq!(String::from_utf8(payload).unwrap(), r#"{"op":"pong","id":"slow"}"#)
        }
        other => panic!("{other:?}"),
    }
    n.check();
}

#[test]
fn frame_over_max_frame_closes_1009() {
    let server = Server::start(&["--shards", "2", "--max-frame", "1KiB"]);
    let mut n = Neighbour::new(&server);
    let big = format!(r#"{{"op":"pub","room":"r:1","data":"{}"}}"#, "x".repeat(2000));
    for path in PATHS {
        closes_with(&server, path, |c| c.send_text(&big), 1009);
        n.check();
        // The same size split into fragments, each under the limit.
        closes_with(
            &server,
            path,
            |c| {
                let (a, b) = big.as_bytes().split_at(700);
                c.send_frame(false, OP_TEXT, a);
                c.send_frame(false, OP_CONT, &b[..700]);
                c.send_frame(true, OP_CONT, &b[700..]);
            },
            1009,
        );
        n.check();
    }
    // Just under the limit is fine.
    let mut ok = server.ws();
    let data = format!("\"{}\"", "y".repeat(900));
    ok.publish("r:1", &data, 1);
    n.check();
}

#[test]
fn unmasked_frame_closes_1002() {
    let server = Server::start(&["--shards", "2"]);
    let mut n = Neighbour::new(&server);
    for path in PATHS {
        closes_with(
            &server,
            path,
            |c| c.send_raw(&encode_frame(true, OP_TEXT, br#"{"op":"ping"}"#, None)),
            1002,
        );
        n.check();
    }
}

#[test]
fn protocol_violations_close_1002() {
    let server = Server::start(&["--shards", "2"]);
    let mut n = Neighbour::new(&server);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("reserved data opcode 0x3", encode_frame(true, 0x3, b"x", Some([1, 2, 3, 4]))),
        ("reserved control opcode 0xB", encode_frame(true, 0xB, b"", Some([1, 2, 3, 4]))),
        ("RSV1 without an extension", {
            let mut f = encode_frame(true, OP_TEXT, br#"{"op":"ping"}"#, Some([1, 2, 3, 4]));
            f[0] |= 0x40;
            f
        }),
        ("fragmented ping", encode_frame(false, OP_PING, b"x", Some([1, 2, 3, 4]))),
        ("ping over 125 bytes", encode_frame(true, OP_PING, &[b'p'; 126], Some([1, 2, 3, 4]))),
        ("continuation without a start", encode_frame(true, OP_CONT, b"x", Some([1, 2, 3, 4]))),
        ("new text inside a fragmented message", {
            let mut f = encode_frame(false, OP_TEXT, b"{", Some([1, 2, 3, 4]));
            f.extend(encode_frame(true, OP_TEXT, b"{}", Some([1, 2, 3, 4])));
            f
        }),
    ];
    for (what, bytes) in cases {
        for path in PATHS {
            let mut bad = server.raw_ws(path);
            bad.send_raw(&bytes);
            let (code, reason) = bad.expect_close(TIMEOUT);
            assert_eq!(code, 1002, "{what} on {path}: reason {reason:?}");
            n.check();
        }
    }
}

#[test]
fn non_json_on_ws_gets_bad_json_and_the_connection_stays_open() {
    let server = Server::start(&["--shards", "2"]);
    let mut n = Neighbour::new(&server);
    let mut c = server.ws();
    for bad in ["hello", "{", "{\"op\":\"ping\"", "\"op\"", "{\"op\":\"ping\"} {}", " "] {
        c.send_text(bad);
        assert_error(&c.recv_text(), None, "bad_json");
        n.check();
    }
    c.ping(1);
}

#[test]
fn bad_room_gets_bad_room() {
    let server = Server::start(&["--shards", "2"]);
    let mut n = Neighbour::new(&server);
    let mut c = server.ws();
    let long = "r".repeat(201);
    for (i, room) in ["", "a b", "ü", "a#b", "fleet:*", long.as_str()].iter().enumerate() {
        let id = i as u64 + 1;
        let room_json = serde_json::to_string(room).unwrap();
        assert_error(
            &c.request(&format!(r#"{{"op":"sub","room":{room_json},"id":{id}}}"#)),
            Some(&id.to_string()),
            "bad_room",
        );
        assert_error(
            &c.request(&format!(r#"{{"op":"pub","room":{room_json},"data":1,"id":{id}}}"#)),
            Some(&id.to_string()),
            "bad_room",
        );
        n.check();
    }
    c.ping(99);
}

#[test]
fn publish_over_the_rate_gets_rate_limited() {
    let server = Server::start(&["--shards", "1", "--publish-rate", "1", "--publish-burst", "3"]);
    let mut n = Neighbour::new(&server); // its publisher has its own bucket: 1 publish so far
    let mut c = server.ws();
    for id in 1..=10 {
        c.send_text(&format!(r#"{{"op":"pub","room":"rate:r","data":{id},"id":{id}}}"#));
    }
    let mut limited = 0;
    for id in 1..=10u64 {
        let reply = c.recv_text();
        if id <= 3 {
            assert_eq!(
                without_epoch(&reply),
                format!(r#"{{"op":"ok","id":{id},"room":"rate:r","seq":{id}}}"#)
            );
        } else if reply.starts_with(r#"{"op":"error""#) {
            assert_error(&reply, Some(&id.to_string()), "rate_limited");
            limited += 1;
        } else {
            assert!(reply.starts_with(&format!(r#"{{"op":"ok","id":{id},"#)), "{reply}");
        }
    }
    assert!(limited >= 5, "only {limited} of 7 over-rate publishes were limited");
    c.ping(11); // still open
    n.check();
}

#[test]
fn too_many_rooms_per_connection() {
    let server = Server::start(&["--shards", "2", "--max-rooms-per-conn", "2"]);
    let mut n = Neighbour::new(&server);
    let mut c = server.ws();
    assert_eq!(c.sub("many:a", 1), 0);
    assert_eq!(c.sub("many:b", 2), 0);
    assert_error(&c.request(r#"{"op":"sub","room":"many:c","id":3}"#), Some("3"), "too_many_rooms");
    n.check();
    assert_eq!(
        c.request(r#"{"op":"unsub","room":"many:a","id":4}"#),
        r#"{"op":"ok","id":4,"room":"many:a"}"#
    );
    assert_eq!(c.sub("many:c", 5), 0);
    // The refused room really was not subscribed, the accepted ones are.
    let mut p = server.ws();
    p.publish("many:c", "\"c\"", 1);
    assert_eq!(c.recv_text(), envelope("many:c", 1, "\"c\""));
    n.check();
}

#[test]
fn namespace_rights_give_forbidden() {
    let dir = TempDir::new();
    let cfg = dir.write(
        "c.toml",
        "[namespaces.orders]\nclient_publish = false\n\n[namespaces.internal]\nclient_subscribe = false\n",
    );
    let server = Server::start(&["--shards", "2", "--config", &cfg]);
    let mut n = Neighbour::new(&server);
    let mut c = server.ws();
    assert_error(&c.request(r#"{"op":"pub","room":"orders:1","data":{},"id":1}"#), Some("1"), "forbidden");
    assert_error(&c.request(r#"{"op":"sub","room":"internal:x","id":2}"#), Some("2"), "forbidden");
    n.check();
    // What is allowed still works; backend publishing over HTTP reaches orders subscribers.
    assert_eq!(c.sub("orders:1", 3), 0);
    let r = server.publish(r#"{"room":"orders:1","data":{"state":"paid"}}"#, &[]);
    assert_eq!((r.status, without_epoch(&r.text())), (200, r#"{"seq":1}"#.to_owned()));
    assert_eq!(c.recv_text(), envelope("orders:1", 1, r#"{"state":"paid"}"#));
    assert_eq!(c.publish("internal:x", "1", 4), 1);
    n.check();
}

/// Reads until the server closes the TCP connection; what it sent before is returned.
fn read_until_eof(s: &mut std::net::TcpStream, timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("still open after {timeout:?}; got {:?}", String::from_utf8_lossy(&got)));
        }
        s.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Ok(got), // reset: closed as well
        }
    }
}

#[test]
fn incomplete_handshake_is_closed_after_the_timeout() {
    let server = Server::start(&["--shards", "2", "--handshake-timeout", "500ms"]);
    let mut n = Neighbour::new(&server);
    // Nothing at all, and a head that never ends.
    let mut silent = server.tcp();
    let mut slow = server.tcp();
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n").unwrap();
    let started = Instant::now();
    read_until_eof(&mut silent, Duration::from_secs(5)).unwrap();
    let got = read_until_eof(&mut slow, Duration::from_secs(5)).unwrap();
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&got));
    assert!(started.elapsed() >= Duration::from_millis(300), "closed before the timeout");
    n.check();
}

#[test]
fn malformed_http_gets_4xx() {
    let server = Server::start(&["--shards", "1"]);
    let mut n = Neighbour::new(&server);

    let mut s = server.tcp();
    s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n").unwrap();
    let r = read_http_response(&mut s).expect("a response to garbage");
    assert_eq!(r.status, 400, "{}", r.text());
    r.error_code();
    n.check();

    let mut s = server.tcp();
    let mut head = b"GET /health HTTP/1.1\r\nX-Big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 20 * 1024));
    head.extend_from_slice(b"\r\n\r\n");
    let _ = s.write_all(&head);
    let r = read_http_response(&mut s).expect("a response to an oversized head");
    assert_eq!(r.status, 431, "{}", r.text());
    n.check();

    let mut s = server.tcp();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .unwrap();
    let r = read_http_response(&mut s).unwrap();
    assert_eq!(r.status, 426, "{}", r.text());
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    n.check();

    let mut s = server.tcp();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let r = read_http_response(&mut s).unwrap();
    assert_eq!(r.status, 400, "missing key: {}", r.text());
    n.check();
}

#[test]
fn connections_over_the_limit_get_503() {
    let server = Server::start(&["--shards", "1", "--max-connections", "3"]);
    let mut n = Neighbour::new(&server); // two connections
    let third = server.ws();
    let err = server.try_connect("/ws", &[]).err().expect("fourth connection accepted");
    assert_eq!(err.status(), Some(503), "{err}");
    n.check();
    drop(third);
    // The slot frees up once the server has noticed the close.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match server.try_connect("/ws", &[]) {
            Ok(mut c) => {
                c.ping(1);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "slot never freed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    n.check();
}
