//! HS256 JWT auth at the handshake (`?token=` or `Authorization: Bearer`) and the room rights
//! of its `sub_rooms` / `pub_rooms` globs.

mod common;

use std::time::Duration;

use common::*;
use shardcast_server::auth::sign;

const SECRET: &str = "auth-test-secret-0123456789abcdef";

fn token(sub_rooms: &[&str], pub_rooms: &[&str], exp: u64) -> String {
    let claims =
        serde_json::json!({ "sub": "tester", "exp": exp, "sub_rooms": sub_rooms, "pub_rooms": pub_rooms });
    sign(&claims.to_string(), SECRET.as_bytes())
}

fn valid() -> String {
    token(&["fleet:*", "tracker/*"], &["vehicle:*", "tracker/1"], now_unix() + 3600)
}

fn server() -> Server {
    Server::start(&["--shards", "2", "--jwt-secret", SECRET])
}

/// Exercises the rights of `valid()` on a connected multiplexed client.
fn check_rights(c: &mut Ws) {
    assert_eq!(c.sub("fleet:berlin", 1), 0);
    assert_error(&c.request(r#"{"op":"sub","room":"vehicle:42","id":2}"#), Some("2"), "forbidden");
    assert_error(
        &c.request(r#"{"op":"pub","room":"fleet:berlin","data":{},"id":3}"#),
        Some("3"),
        "forbidden",
    );
    let seq = c.publish("vehicle:42", r#"{"lat":1}"#, 4);
    assert!(seq >= 1);
    // `fleet:*` does not match `fleets:x`.
    assert_error(&c.request(r#"{"op":"sub","room":"fleets:x","id":5}"#), Some("5"), "forbidden");
    c.ping(6);
}

#[test]
fn token_in_query_grants_its_rooms_only() {
    let server = server();
    let mut c = server.connect(&format!("/ws?token={}", valid()));
    check_rights(&mut c);
}

#[test]
fn token_in_authorization_header_grants_its_rooms_only() {
    let server = server();
    let auth = format!("Bearer {}", valid());
    let mut c = server.try_connect("/ws", &[("Authorization", &auth)]).unwrap_or_else(|e| panic!("{e}"));
    check_rights(&mut c);
}

#[test]
fn allowed_publish_reaches_allowed_subscriber() {
    let server = server();
    let reader = token(&["vehicle:*"], &[], now_unix() + 60);
    let writer = token(&[], &["vehicle:*"], now_unix() + 60);
    let mut r = server.connect(&format!("/ws?token={reader}"));
    let mut w = server.connect(&format!("/ws?token={writer}"));
    assert_eq!(r.sub("vehicle:7", 1), 0);
    assert_error(&w.request(r#"{"op":"sub","room":"vehicle:7","id":1}"#), Some("1"), "forbidden");
    assert_eq!(w.publish("vehicle:7", r#"{"id":7}"#, 2), 1);
    assert_eq!(r.recv_text(), envelope("vehicle:7", 1, r#"{"id":7}"#));
    assert_error(&r.request(r#"{"op":"pub","room":"vehicle:7","data":1,"id":3}"#), Some("3"), "forbidden");
    r.expect_silence(Duration::from_millis(200));
}

fn assert_unauthorized(server: &Server, path: &str, headers: &[(&str, &str)], what: &str) {
    match server.try_connect(path, headers) {
        Ok(_) => panic!("{what}: upgraded"),
        Err(HandshakeFailure::Http { status, body }) => {
            assert_eq!(status, 401, "{what}: {}", String::from_utf8_lossy(&body));
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!("{what}: body not JSON ({e}): {}", String::from_utf8_lossy(&body))
            });
            assert_eq!(v["error"]["code"], "unauthorized", "{what}: {v}");
            assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

#[test]
fn bad_tokens_get_401_without_upgrade() {
    let server = server();
    let expired = token(&["*"], &["*"], now_unix() - 10);
    let forged =
        sign(&format!(r#"{{"exp":{},"sub_rooms":["*"]}}"#, now_unix() + 60), b"some-other-secret-0123456789");
    let alg_none = {
        let v = valid();
        let mut parts = v.split('.');
        let _ = parts.next();
        // {"alg":"none"} base64url, the original payload, no signature.
        format!("eyJhbGciOiJub25lIn0.{}.", parts.next().unwrap())
    };
    for (what, path) in [
        ("missing token", "/ws".to_owned()),
        ("expired token", format!("/ws?token={expired}")),
        ("wrong secret", format!("/ws?token={forged}")),
        ("alg none", format!("/ws?token={alg_none}")),
        ("garbage token", "/ws?token=abc".to_owned()),
        ("expired token, room URL", format!("/ws/tracker/1?token={expired}")),
        ("missing token, room URL", "/ws/tracker/1".to_owned()),
    ] {
        assert_unauthorized(&server, &path, &[], what);
    }
    let bearer = format!("Bearer {expired}");
    assert_unauthorized(&server, "/ws", &[("Authorization", &bearer)], "expired bearer");
    // A healthy client is unaffected.
    let mut c = server.connect(&format!("/ws?token={}", valid()));
    c.ping(1);
}

#[test]
fn room_url_needs_publish_right_to_send() {
    let server = server();
    // tracker/1: sub + pub; tracker/2: sub only.
    let t = valid();
    let mut member1 = server.connect(&format!("/ws/tracker/1/?token={t}"));
    let mut member2 = server.connect(&format!("/ws/tracker/2/?token={t}"));
    wait_subscribers(&server, "tracker/1", 1);
    member1.send_text(r#"{"ok":1}"#);
    assert_eq!(member1.recv_text(), r#"{"ok":1}"#);
    member2.send_text(r#"{"nope":1}"#);
    assert_error(&member2.recv_text(), None, "forbidden");
    member2.expect_silence(Duration::from_millis(200));
}

/// With JWT auth and no API key, HTTP publishing needs a client token with the publish right
/// on the room (as `Authorization: Bearer`).
#[test]
fn http_publish_with_jwt_and_no_api_key_needs_the_publish_right() {
    let server = server();
    let mut sub = server.connect(&format!("/ws?token={}", valid()));
    assert_eq!(sub.sub("fleet:http", 1), 0);
    let body = r#"{"room":"vehicle:1","data":1}"#;
    let r = server.publish(body, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "unauthorized");
    let expired = format!("Bearer {}", token(&[], &["*"], now_unix() - 5));
    let r = server.publish(body, &[("Authorization", &expired)]);
    assert_eq!(r.status, 401, "{}", r.text());
    // `valid()` may subscribe to fleet:* but not publish there.
    let bearer = format!("Bearer {}", valid());
    let r = server.publish(r#"{"room":"fleet:http","data":2}"#, &[("Authorization", &bearer)]);
    assert!(matches!(r.status, 401 | 403), "{} {}", r.status, r.text());
    assert_eq!(r.error_code(), "forbidden");
    sub.expect_silence(Duration::from_millis(200));
    let r = server.publish(body, &[("Authorization", &bearer)]);
    assert_eq!((r.status, without_epoch(&r.text())), (200, r#"{"seq":1}"#.to_owned()));
}

#[test]
fn origins_are_checked_when_configured() {
    let server = Server::start(&["--shards", "1", "--origins", "https://maps.example.com"]);
    let mut ok = server
        .try_connect("/ws", &[("Origin", "https://maps.example.com")])
        .unwrap_or_else(|e| panic!("{e}"));
    ok.ping(1);
    let mut no_origin = server.connect("/ws");
    no_origin.ping(1);
    let err = server
        .try_connect("/ws", &[("Origin", "https://evil.example.com")])
        .err()
        .expect("bad origin upgraded");
    assert_eq!(err.status(), Some(403), "{err}");
    ok.ping(2);
}

#[test]
fn rejected_handshakes_are_counted_in_metrics() {
    let server = server();
    assert_eq!(server.try_connect("/ws?token=nope", &[]).err().and_then(|e| e.status()), Some(401));
    let text = server.get("/metrics").text();
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"shardcast_rejected_total{reason="auth"}"#))
        .unwrap_or_else(|| panic!("no auth rejection metric in\n{text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{line}");
}
