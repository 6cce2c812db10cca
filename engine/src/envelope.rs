//! The server→client JSON of DESIGN §3, written straight into complete frames.
//!
//! The message envelope `{"room":..,"seq":..,"data":..}` is built once per room message (by
//! the owner shard) and then shared; the small control replies (`ok`, `gap`, `error`,
//! `pong`) are built per request. Room names are validated at the edge to a character set
//! that needs no JSON escaping, so they are copied as they are; `id`s are kept as the JSON
//! text the client sent and echoed verbatim.

use bytes::Bytes;

use crate::epoch::Epoch;
use crate::frame::{frame_from_parts, OP_TEXT};

/// The text frame `{"room":"<room>","seq":<seq>,"data":<data>}`; `data` must be JSON.
pub fn message_frame(room: &str, seq: u64, data: &[u8]) -> Bytes {
    let mut num = itoa::Buffer::new();
    frame_from_parts(
        OP_TEXT,
        &[
            b"{\"room\":\"",
            room.as_bytes(),
            b"\",\"seq\":",
            num.format(seq).as_bytes(),
            b",\"data\":",
            data,
            b"}",
        ],
    )
}

/// `{"op":"ok","id":<id>,"room":"<room>","seq":<seq>}`; `id`, `room` and `seq` are left out
/// when absent.
pub fn ok_frame(id: Option<&str>, room: Option<&str>, seq: Option<u64>) -> Bytes {
    let mut s = String::with_capacity(64);
    s.push_str("{\"op\":\"ok\"");
    push_id(&mut s, id);
    if let Some(room) = room {
        s.push_str(",\"room\":\"");
        s.push_str(room);
        s.push('"');
    }
    if let Some(seq) = seq {
        s.push_str(",\"seq\":");
        s.push_str(itoa::Buffer::new().format(seq));
    }
    s.push('}');
    frame_from_parts(OP_TEXT, &[s.as_bytes()])
}

/// `{"op":"ok","id":<id>,"room":"<room>","seq":<seq>,"epoch":"<epoch>"}` (`id` left out when
/// absent): the reply to `sub` (seq = the room's last) and `pub` (seq = the message's).
/// `epoch` comes last so the frame is the pre-epoch `ok` plus one field.
pub fn ok_epoch_frame(id: Option<&str>, room: &str, seq: u64, epoch: Epoch) -> Bytes {
    let mut s = String::with_capacity(80);
    s.push_str("{\"op\":\"ok\"");
    push_id(&mut s, id);
    s.push_str(",\"room\":\"");
    s.push_str(room);
    s.push_str("\",\"seq\":");
    s.push_str(itoa::Buffer::new().format(seq));
    s.push_str(",\"epoch\":\"");
    s.push_str(epoch.as_str());
    s.push_str("\"}");
    frame_from_parts(OP_TEXT, &[s.as_bytes()])
}

/// `{"op":"reset","room":"<room>","epoch":"<epoch>"}`: the position the client resumed from
/// (`since`, `epoch`) does not belong to the room as it is now; what follows is the room's
/// retained history from the start of `epoch`.
pub fn reset_frame(room: &str, epoch: Epoch) -> Bytes {
    frame_from_parts(
        OP_TEXT,
        &[
            b"{\"op\":\"reset\",\"room\":\"",
            room.as_bytes(),
            b"\",\"epoch\":\"",
            epoch.as_str().as_bytes(),
            b"\"}",
        ],
    )
}

/// `{"op":"gap","room":"<room>","from":<from>,"to":<to>}`: the client will not receive the
/// messages `from..=to` of `room`.
pub fn gap_frame(room: &str, from: u64, to: u64) -> Bytes {
    let (mut a, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
    frame_from_parts(
        OP_TEXT,
        &[
            b"{\"op\":\"gap\",\"room\":\"",
            room.as_bytes(),
            b"\",\"from\":",
            a.format(from).as_bytes(),
            b",\"to\":",
            b.format(to).as_bytes(),
            b"}",
        ],
    )
}

/// `{"op":"offline","room":"<room>","key":"<key>","last_seq":<seq>}`: the key had no update
/// for its namespace's `liveness_ttl`; `last_seq` is its latest message.
pub fn offline_frame(room: &str, key: &str, last_seq: u64) -> Bytes {
    let mut s = String::with_capacity(48 + room.len() + key.len());
    s.push_str("{\"op\":\"offline\",\"room\":\"");
    s.push_str(room);
    s.push_str("\",\"key\":");
    push_json_string(&mut s, key);
    s.push_str(",\"last_seq\":");
    s.push_str(itoa::Buffer::new().format(last_seq));
    s.push('}');
    frame_from_parts(OP_TEXT, &[s.as_bytes()])
}

/// `{"op":"leave","room":"<room>","key":"<key>"}`: a key the subscriber's viewport showed is
/// no longer inside it (it moved out, or the viewport moved).
pub fn leave_frame(room: &str, key: &str) -> Bytes {
    let mut s = String::with_capacity(32 + room.len() + key.len());
    s.push_str("{\"op\":\"leave\",\"room\":\"");
    s.push_str(room);
    s.push_str("\",\"key\":");
    push_json_string(&mut s, key);
    s.push('}');
    frame_from_parts(OP_TEXT, &[s.as_bytes()])
}

/// `{"op":"error","id":<id>,"code":"<code>","message":"<message>"}` (`id` left out when
/// absent). `code` and `message` are escaped.
pub fn error_frame(id: Option<&str>, code: &str, message: &str) -> Bytes {
    let mut s = String::with_capacity(64 + message.len());
    s.push_str("{\"op\":\"error\"");
    push_id(&mut s, id);
    s.push_str(",\"code\":");
    push_json_string(&mut s, code);
    s.push_str(",\"message\":");
    push_json_string(&mut s, message);
    s.push('}');
    frame_from_parts(OP_TEXT, &[s.as_bytes()])
}

/// `{"op":"pong","id":<id>}` (`id` left out when absent).
pub fn pong_op_frame(id: Option<&str>) -> Bytes {
    let mut s = String::with_capacity(32);
    s.push_str("{\"op\":\"pong\"");
    push_id(&mut s, id);
    s.push('}');
    frame_from_parts(OP_TEXT, &[s.as_bytes()])
}

fn push_id(s: &mut String, id: Option<&str>) {
    if let Some(id) = id {
        s.push_str(",\"id\":");
        s.push_str(id);
    }
}

/// Appends `v` as a JSON string literal, escaping what RFC 8259 requires.
pub fn push_json_string(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                s.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(f: &Bytes) -> &str {
        let h = match f[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        std::str::from_utf8(&f[h..]).unwrap()
    }

    #[test]
    fn message_envelope_is_byte_exact() {
        let f = message_frame("fleet:berlin", 1235, br#"{"id":"v1","lat":52.5}"#);
        assert_eq!(f[0], 0x81);
        assert_eq!(payload(&f), r#"{"room":"fleet:berlin","seq":1235,"data":{"id":"v1","lat":52.5}}"#);
    }

    #[test]
    fn tracking_notices_are_byte_exact() {
        assert_eq!(
            payload(&offline_frame("sensor:hall", "t\"1", 42)),
            r#"{"op":"offline","room":"sensor:hall","key":"t\"1","last_seq":42}"#
        );
        assert_eq!(payload(&leave_frame("fleet:b", "v7")), r#"{"op":"leave","room":"fleet:b","key":"v7"}"#);
    }

    #[test]
    fn control_replies_match_design() {
        assert_eq!(
            payload(&ok_frame(Some("1"), Some("fleet:berlin"), Some(1235))),
            r#"{"op":"ok","id":1,"room":"fleet:berlin","seq":1235}"#
        );
        assert_eq!(payload(&ok_frame(None, Some("r"), None)), r#"{"op":"ok","room":"r"}"#);
        let e = Epoch::from_u64(62);
        assert_eq!(
            payload(&ok_epoch_frame(Some("1"), "fleet:berlin", 1235, e)),
            r#"{"op":"ok","id":1,"room":"fleet:berlin","seq":1235,"epoch":"0100000000"}"#
        );
        assert_eq!(
            payload(&ok_epoch_frame(None, "r", 0, e)),
            r#"{"op":"ok","room":"r","seq":0,"epoch":"0100000000"}"#
        );
        assert_eq!(
            payload(&reset_frame("fleet:berlin", e)),
            r#"{"op":"reset","room":"fleet:berlin","epoch":"0100000000"}"#
        );
        assert_eq!(
            payload(&gap_frame("fleet:berlin", 1000, 1100)),
            r#"{"op":"gap","room":"fleet:berlin","from":1000,"to":1100}"#
        );
        assert_eq!(
            payload(&error_frame(Some("3"), "forbidden", "no publish right on vehicle:42")),
            r#"{"op":"error","id":3,"code":"forbidden","message":"no publish right on vehicle:42"}"#
        );
        assert_eq!(payload(&pong_op_frame(Some("4"))), r#"{"op":"pong","id":4}"#);
        assert_eq!(payload(&pong_op_frame(Some("\"a\""))), r#"{"op":"pong","id":"a"}"#);
    }

    #[test]
    fn error_message_is_escaped() {
        let f = error_frame(None, "bad_json", "unexpected \"}\"\n");
        assert_eq!(payload(&f), r#"{"op":"error","code":"bad_json","message":"unexpected \"}\"\n"}"#);
    }
}
