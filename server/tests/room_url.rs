//! Room-per-URL (`GET /ws/<room>`, the Django Channels style): every text frame is published
//! as is and delivered as the exact bytes published, with no envelope.

mod common;

use std::time::Duration;

use common::*;

/// Payloads whose bytes a re-serializing server would change: odd whitespace, key order,
/// escapes, non-ASCII text, number spellings.
const PAYLOADS: &[&str] = &[
    r#"{"lat":52.52,"lon":13.405}"#,
    "{ \"a\" : 1 ,  \"b\":[1, 2 ,3] }",
    "{\n\t\"name\": \"Zoë – 日本語 😀\",\r\n  \"ok\": true\n}",
    r#"{"esc":"\u00e9\"\\\/\n","z":1.0e+2,"a":-0.0}"#,
    r#""just a string""#,
    "123",
    "[ ]",
    "null",
    " {\"padded\":1} ",
    r#"{"b":1,"a":2}"#,
];

#[test]
fn exact_bytes_to_every_member_including_channels_style_paths() {
    let server = Server::start(&["--shards", "2"]);
    // The same room three ways: trailing slash or not.
    let mut a = server.connect("/ws/tracker/42/");
    let mut b = server.connect("/ws/tracker/42");
    let mut publisher = server.connect("/ws/tracker/42/");
    // Give subscriptions on other shards a moment to be registered before publishing; the
    // HTTP room info is the observable signal.
    wait_subscribers(&server, "tracker/42", 3);
    for p in PAYLOADS {
        publisher.send_text(p);
        assert_eq!(a.recv_text(), *p, "member a");
        assert_eq!(b.recv_text(), *p, "member b");
    }
    // Nothing else (no ok replies, no envelopes) arrives on the subscribers.
    a.expect_silence(Duration::from_millis(200));
    b.expect_silence(Duration::from_millis(50));
}

#[test]
fn the_sending_member_also_receives_its_messages() {
    let server = Server::start(&["--shards", "1"]);
    let mut publisher = server.connect("/ws/tracker/7/");
    for p in PAYLOADS {
        publisher.send_text(p);
        assert_eq!(publisher.recv_text(), *p);
    }
}

#[test]
fn room_url_and_multiplexed_clients_share_the_room() {
    let server = Server::start(&["--shards", "2"]);
    let mut url_member = server.connect("/ws/chat:lobby/");
    let mut mux = server.ws();
    assert_eq!(mux.sub("chat:lobby", 1), 0);
    wait_subscribers(&server, "chat:lobby", 2);

    // Room-URL publish → multiplexed subscriber gets the envelope around the exact bytes.
    let p1 = "{ \"from\" : \"url\" }";
    url_member.send_text(p1);
    assert_eq!(url_member.recv_text(), p1);
    assert_eq!(mux.recv_text(), envelope("chat:lobby", 1, p1));

    // Multiplexed publish → room-URL member gets just the data bytes.
    let mut mux_pub = server.ws();
    let p2 = "{\"from\":\"mux\",  \"t\":\"ü\"}";
    assert_eq!(mux_pub.publish("chat:lobby", p2, 9), 2);
    assert_eq!(url_member.recv_text(), p2);
    assert_eq!(mux.recv_text(), envelope("chat:lobby", 2, p2));
}

#[test]
fn invalid_json_gets_bad_json_and_is_not_published() {
    let server = Server::start(&["--shards", "1"]);
    let mut sender = server.connect("/ws/tracker/1/");
    let mut other = server.connect("/ws/tracker/1/");
    wait_subscribers(&server, "tracker/1", 2);
    for bad in ["not json", "{\"a\":", "{\"a\":1} trailing", ""] {
        sender.send_text(bad);
        assert_error(&sender.recv_text(), None, "bad_json");
    }
    other.expect_silence(Duration::from_millis(200));
    // The connection stays open and works.
    sender.send_text(r#"{"after":"errors"}"#);
    assert_eq!(other.recv_text(), r#"{"after":"errors"}"#);
    assert_eq!(sender.recv_text(), r#"{"after":"errors"}"#);
}

#[test]
fn bad_room_paths_are_refused_at_the_handshake() {
    let server = Server::start(&["--shards", "1"]);
    let long = format!("/ws/{}", "x".repeat(201));
    for path in ["/ws/a%20b", "/ws/a*b", "/ws/%C3%BC", long.as_str()] {
        let err = server.try_connect(path, &[]).err().unwrap_or_else(|| panic!("{path} was upgraded"));
        let status = err.status().unwrap_or_else(|| panic!("{path}: {err}"));
        assert!((400..500).contains(&status), "{path}: {err}");
        if let HandshakeFailure::Http { body, .. } = &err {
            let v: serde_json::Value =
                serde_json::from_slice(body).unwrap_or_else(|e| panic!("{path}: {e}: {err}"));
            assert_eq!(v["error"]["code"], "bad_room", "{path}: {v}");
        }
    }
    // `/ws/` names no room: with the trailing slash ignored it is the multiplexed endpoint.
    let mut mux = server.connect("/ws/");
    mux.ping(1);
    assert_eq!(mux.sub("slash:r", 2), 0);
}

#[test]
fn op_shaped_payloads_are_published_not_interpreted() {
    let server = Server::start(&["--shards", "1"]);
    let mut a = server.connect("/ws/ops/here");
    let mut b = server.connect("/ws/ops/here/");
    wait_subscribers(&server, "ops/here", 2);
    for p in
        [r#"{"op":"ping","id":1}"#, r#"{"op":"sub","room":"other"}"#, r#"{"op":"pub","room":"x","data":1}"#]
    {
        a.send_text(p);
        assert_eq!(b.recv_text(), p);
        assert_eq!(a.recv_text(), p);
    }
}

#[test]
fn large_payload_under_the_limit_is_delivered_intact() {
    let server = Server::start(&["--shards", "2"]);
    let mut a = server.connect("/ws/big/1");
    let mut b = server.connect("/ws/big/1");
    wait_subscribers(&server, "big/1", 2);
    let p = format!("{{\"blob\":\"{}\", \"end\" : \"ü\"}}", "0123456789abcdef".repeat(3800));
    a.send_text(&p);
    assert_eq!(b.recv_text(), p);
    assert_eq!(a.recv_text(), p);
}
