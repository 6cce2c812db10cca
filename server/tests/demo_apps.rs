//! The built-in demo publishers (`--demo`): each app's rooms carry live data within seconds
//! of start, over real sockets, and `--demo` chooses which run.

mod common;

use common::Server;
use serde_json::Value;
use std::time::Duration;

/// The first message of `room` on a fresh subscription (with snapshot).
fn first_message(s: &Server, room: &str) -> Value {
    let mut ws = s.ws();
    let reply = ws.request(&format!(r#"{{"op":"sub","room":"{room}","snapshot":true,"id":1}}"#));
    assert!(reply.starts_with(r#"{"op":"ok""#), "{reply}");
    let text = ws.recv_text_within(Duration::from_secs(15));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["room"], room, "{text}");
    v["data"].clone()
}

#[test]
fn every_app_publishes_into_its_rooms() {
    let s = Server::start_raw(&["--listen", "127.0.0.1:0"]);
    let flight = first_message(&s, "flights:all");
    assert!(flight["callsign"].is_string() && flight["alt_ft"].is_number(), "{flight}");
    let id = flight["id"].as_str().unwrap();
    // The seed's per-flight URL carries the same flight.
    let mut raw = s.connect(&format!("/ws/tracker/{id}/"));
    let v: Value = serde_json::from_str(&raw.recv_text_within(Duration::from_secs(5))).unwrap();
    assert_eq!(v["id"], id);
    let incident = first_message(&s, "traffic");
    assert!(incident["severity"].is_string() && incident["expires_at"].is_u64(), "{incident}");
    let order = first_message(&s, "orders:all");
    assert!(order["status"].is_string() && order["restaurant"].is_string(), "{order}");
    let reading = first_message(&s, "sensor");
    assert!(reading["value"].is_number() && reading["unit"].is_string(), "{reading}");
    let vehicle = first_message(&s, "fleet:demo");
    assert!(vehicle["lat"].is_number(), "{vehicle}");
}

#[test]
fn demo_chooses_the_apps() {
    let s = Server::start_raw(&["--listen", "127.0.0.1:0", "--demo", "iot"]);
    first_message(&s, "sensor");
    let mut ws = s.ws();
    ws.sub("flights:all", 1);
    ws.expect_silence(Duration::from_millis(2500));
}
