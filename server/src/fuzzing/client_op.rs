//! `client_op`: one text frame of the multiplexed `/ws` endpoint, as any client may send it.
//!
//! Input: the frame's bytes. Beyond "no panic", what the session relies on:
//!
//! * an accepted op names a valid room, and its id (echoed verbatim in replies) is a JSON
//!   string or number of at most 64 bytes, taken from the input;
//! * `pub` data is the client's exact bytes and a JSON value on its own (it is spliced into
//!   every subscriber's envelope without re-encoding);
//! * a refusal has one of the documented codes and, if any, a bounded id;
//! * the raw scanner ([`protocol::Fields`], [`protocol::skip_value`]) yields in-bounds,
//!   ordered spans whatever the input, and [`protocol::extract_key`] never panics.

use simd_json::prelude::*;

use crate::protocol::{self, ClientOp, Fields, MAX_ID_LEN};

/// The error codes DESIGN §3 documents for a refused client op.
const CODES: [&str; 5] = ["bad_json", "bad_op", "missing_field", "bad_field", "bad_room"];

pub fn client_op(data: &[u8]) {
    let mut text = data.to_vec();
    match protocol::parse_client_op(&mut text) {
        Ok(op) => check_op(data, &op),
        Err(e) => {
            assert!(CODES.contains(&e.code()), "undocumented code {}", e.code());
            assert!(e.error_id().is_none_or(|id| id.len() <= MAX_ID_LEN), "{e:?}");
            let _ = e.to_string();
        }
    }
    check_scanner(data);
    for field in ["id", "op", "data", ""] {
        if let Some(k) = protocol::extract_key(data, field) {
            assert!(k.len() <= data.len(), "a key longer than its input");
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if protocol::validate_room(s).is_ok() {
            assert!((1..=protocol::MAX_ROOM_LEN).contains(&s.len()) && s.is_ascii());
        }
        if let Ok(room) = protocol::room_from_path(s) {
            assert!(protocol::validate_room(&room).is_ok());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn is_json_value(bytes: &[u8], pred: fn(&simd_json::BorrowedValue) -> bool) -> bool {
    let mut copy = bytes.to_vec();
    simd_json::to_borrowed_value(&mut copy).is_ok_and(|v| pred(&v))
}

fn check_op(input: &[u8], op: &ClientOp) {
    if let Some(room) = op.room() {
        assert!(protocol::validate_room(room).is_ok(), "accepted room {room:?}");
    }
    if let Some(id) = op.id() {
        assert!(id.len() <= MAX_ID_LEN, "id of {} bytes", id.len());
        assert!(contains(input, id.as_bytes()), "id {id:?} is not the client's text");
        assert!(is_json_value(id.as_bytes(), |v| v.is_str() || v.is_number()), "id {id:?}");
    }
    // Tracking options are accepted only in range: the engine's types never see others.
    let bbox = match op {
        ClientOp::Sub { track: Some(t), .. } => {
            for v in [t.max_rate, t.min_move_m, t.max_silence_s].into_iter().flatten() {
                assert!(v.is_finite() && v > 0.0, "accepted {v}");
            }
            t.bbox
        }
        ClientOp::View { bbox, .. } => Some(*bbox),
        _ => None,
    };
    if let Some(b) = bbox {
        assert!(shardcast_engine::geo::BBox::new(b.w, b.s, b.e, b.n).is_ok(), "accepted bbox {b:?}");
    }
    if let ClientOp::Pub { data, .. } = op {
        assert!(!data.is_empty() && contains(input, data), "pub data is not the client's bytes");
        // What the owner reads from a payload: a position only in range.
        let fields = shardcast_engine::track::TrackFields {
            geo: Some(("lat".into(), "lon".into())),
            status: shardcast_engine::track::default_status_fields(),
        };
        let fix = fields.read(data);
        assert!(fix.pos.is_none_or(|p| p.lat.abs() <= 90.0 && p.lon.abs() <= 180.0), "{fix:?}");
        assert!(
            is_json_value(data, |_| true),
            "pub data {:?} is not JSON alone",
            String::from_utf8_lossy(data)
        );
    }
}

fn check_scanner(data: &[u8]) {
    let mut end = 0;
    for (i, field) in Fields::new(data).enumerate() {
        assert!(i <= data.len(), "more members than bytes");
        let Ok((k, v)) = field else { continue };
        assert!(end <= k.start && k.end <= v.start && v.start < v.end && v.end <= data.len());
        assert!(k.len() >= 2 && data[k.start] == b'"' && data[k.end - 1] == b'"', "key span {k:?}");
        assert_eq!(protocol::skip_value(data, v.start), Ok(v.end));
        end = v.end;
    }
    for start in 0..data.len().min(32) {
        if let Ok(e) = protocol::skip_value(data, start) {
            assert!(start < e && e <= data.len(), "value span {start}..{e} of {}", data.len());
        }
    }
}
