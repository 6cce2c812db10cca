//! The HTTP side: `POST /api/publish`, `GET /api/rooms/<room>`, `/health`, `/metrics`, `/`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

const API_KEY: &str = "test-api-key-0123456789";

#[test]
fn publish_reaches_multiplexed_and_room_url_subscribers() {
    let server = Server::start(&["--shards", "2"]);
    let mut mux = server.ws();
    assert_eq!(mux.sub("http:room", 1), 0);
    let mut url = server.connect("/ws/http:room");
    wait_subscribers(&server, "http:room", 2);

    let data = "{\"k\": 1,  \"s\":\"ü 😀\", \"arr\":[1 ,2]}";
    let r = server.publish(&format!(r#"{{"room":"http:room","data":{data}}}"#), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(without_epoch(&r.text()), r#"{"seq":1}"#);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    assert_eq!(mux.recv_text(), envelope("http:room", 1, data));
    assert_eq!(url.recv_text(), data);

    let r = server.publish(r#"{"data":[true],"room":"http:room"}"#, &[]);
    assert_eq!((r.status, without_epoch(&r.text())), (200, r#"{"seq":2}"#.to_owned()));
    assert_eq!(mux.recv_text(), envelope("http:room", 2, "[true]"));
    assert_eq!(url.recv_text(), "[true]");
}

#[test]
fn publish_errors_are_json_4xx() {
    let server = Server::start(&["--shards", "1"]);
    let r = server.publish("not json", &[]);
    r.error_code();
    let r = server.publish(r#"{"data":1}"#, &[]);
    r.error_code();
    let r = server.publish(r#"{"room":"a b","data":1}"#, &[]);
    assert_eq!(r.error_code(), "bad_room");
    let r = server.publish(r#"{"room":"ok:room"}"#, &[]);
    r.error_code();
    let r = server.get("/api/publish");
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
    let r = server.get("/no/such/path");
    assert_eq!(r.status, 404, "{}", r.text());
    r.error_code();
    // Nothing was published by any of these.
    let info = server.get("/api/rooms/ok:room");
    assert_eq!(info.status, 200, "{}", info.text());
    assert_eq!(info.json()["seq"], 0);
}

#[test]
fn room_info_reports_seq_subscribers_and_history() {
    let server = Server::start(&["--shards", "2", "--history-size", "2"]);
    let mut a = server.ws();
    let mut b = server.connect("/ws/info:x/");
    assert_eq!(a.sub("info:x", 1), 0);
    wait_subscribers(&server, "info:x", 2);
    for i in 1..=3 {
        let r = server.publish(&format!(r#"{{"room":"info:x","data":{i}}}"#), &[]);
        assert_eq!(without_epoch(&r.text()), format!(r#"{{"seq":{i}}}"#));
        assert_eq!(a.recv_text(), envelope("info:x", i, &i.to_string()));
        assert_eq!(b.recv_text(), i.to_string());
    }
    let r = server.get("/api/rooms/info:x");
    assert_eq!(r.status, 200);
    assert_eq!(without_epoch(&r.text()), r#"{"room":"info:x","seq":3,"subscribers":2,"history":2}"#);

    drop(b);
    a.request(r#"{"op":"unsub","room":"info:x","id":2}"#);
    wait_subscribers(&server, "info:x", 0);

    let r = server.get("/api/rooms/a%20b");
    assert_eq!(r.error_code(), "bad_room");
}

#[test]
fn health_metrics_and_map_page() {
    let server = Server::start(&["--shards", "2"]);
    let r = server.get("/health");
    assert_eq!((r.status, r.text()), (200, r#"{"status":"ok"}"#.to_owned()));
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));

    // Some traffic so the counters move.
    let mut s = server.ws();
    s.sub("metrics:m", 1);
    let r = server.publish(r#"{"room":"metrics:m","data":1}"#, &[]);
    assert_eq!(r.status, 200);
    s.recv_text();

    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain")), "{:?}", r.headers);
    let text = r.text();
    assert!(text.contains("# TYPE shardcast_"), "{text}");
    let published = metric(&text, "shardcast_published_total").expect("shardcast_published_total");
    assert!(published >= 1.0, "{text}");
    let conns = metric(&text, "shardcast_connections_current").expect("shardcast_connections_current");
    assert!(conns >= 1.0, "{text}");
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        assert!(line.starts_with("shardcast_"), "non-shardcast metric line {line:?}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample value in {line:?}");
    }

    let r = server.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", r.headers);
    assert!(r.text().to_ascii_lowercase().starts_with("<!doctype html>"));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(&["--shards", "1"]);
    let mut s = server.tcp();
    for _ in 0..3 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_http_response(&mut s).unwrap();
        assert_eq!((r.status, r.text()), (200, r#"{"status":"ok"}"#.to_owned()));
    }
}

#[test]
fn api_key_is_required_when_configured() {
    let server = Server::start(&["--shards", "1", "--api-key", API_KEY]);
    let mut sub = server.ws();
    assert_eq!(sub.sub("keyed:r", 1), 0);
    let body = r#"{"room":"keyed:r","data":{"n":1}}"#;

    let r = server.publish(body, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    r.error_code();
    let r = server.publish(body, &[("Authorization", "Bearer wrong-key-0123456789")]);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = server.publish(body, &[("X-Api-Key", "wrong-key-0123456789")]);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = server.publish(body, &[("Authorization", &format!("Basic {API_KEY}"))]);
    assert_eq!(r.status, 401, "{}", r.text());
    sub.expect_silence(Duration::from_millis(200));

    let r = server.publish(body, &[("Authorization", &format!("Bearer {API_KEY}"))]);
    assert_eq!((r.status, without_epoch(&r.text())), (200, r#"{"seq":1}"#.to_owned()));
    assert_eq!(sub.recv_text(), envelope("keyed:r", 1, r#"{"n":1}"#));
    let r = server.publish(body, &[("X-Api-Key", API_KEY)]);
    assert_eq!((r.status, without_epoch(&r.text())), (200, r#"{"seq":2}"#.to_owned()));
    assert_eq!(sub.recv_text(), envelope("keyed:r", 2, r#"{"n":1}"#));
}

/// The value of an unlabelled sample `name value`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn the_favicon_is_served_so_pages_log_no_404() {
    let s = Server::start(&[]);
    for path in ["/favicon.ico", "/favicon.svg"] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        assert!(r.body.starts_with(b"<svg"), "{path}");
    }
}

#[test]
fn the_room_of_a_publish_is_a_json_string_with_escapes_decoded_and_fields_are_not_repeated() {
    let s = Server::start(&[]);
    // PHP's json_encode writes "/" as "\/".
    let r = s.publish(r#"{"room":"tracker\/7","data":{"v":1}}"#, &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let info: serde_json::Value = serde_json::from_slice(&s.get("/api/rooms/tracker/7").body).unwrap();
    assert_eq!(info["seq"], 1, "{info}");
    for body in [r#"{"room":"a","data":1,"room":"b"}"#, r#"{"room":"a","data":1,"data":2}"#] {
        let r = s.publish(body, &[]);
        assert_eq!(r.status, 400, "{body}");
        assert!(String::from_utf8_lossy(&r.body).contains(r#""code":"bad_json""#), "{body}");
    }
    let r = s.publish(r#"{"room":7,"data":1}"#, &[]);
    assert!(String::from_utf8_lossy(&r.body).contains("missing_field"));
}
