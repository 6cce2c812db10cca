//! What a tracking namespace reads from each published payload: the entity's position and a
//! fingerprint of its status fields (issue 11: viewports, dead-band, status-change delivery).
//!
//! Why at publish, once: every subscriber filter (a viewport, a dead-band, "always deliver a
//! status change") needs the same two facts about a message, so the room's owner reads them
//! once when it sequences the message and stores them in the shared
//! [`Message`](crate::message::Message); fan-out then compares numbers, never JSON. The read is one scan
//! of the payload's top-level members ([`crate::json::Fields`]), only in namespaces that
//! configure `geo` or have a `key` (status matters only per key).
//!
//! Invariants: a [`Pos`] is always finite with `lat` in [-90, 90] and `lon` in [-180, 180]
//! (anything else in a payload means "no position"); a status fingerprint is 0 exactly when
//! none of the status fields is present, else non-zero, and equal for equal raw values.

use std::hash::Hasher;

use crate::json::{key_is, Fields};

pub use crate::geo::Pos;

/// What fan-out knows about a message beyond its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fix {
    /// Where the entity is, if the namespace has `geo` fields and the payload carried valid ones.
    pub pos: Option<Pos>,
    /// Fingerprint of the status fields' raw values; 0 when none is present.
    pub status: u64,
}

/// The fields a namespace reads (`geo = { lat = "lat", lon = "lon" }`, `status = [..]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFields {
    /// Latitude and longitude field names, when the namespace is geo-enabled.
    pub geo: Option<(String, String)>,
    /// Status fields: a change in any of them is delivered despite `max_rate`/`min_move_m`.
    pub status: Vec<String>,
}

/// The default status fields (DESIGN §3).
pub fn default_status_fields() -> Vec<String> {
    ["status", "stopped", "state"].map(String::from).to_vec()
}

impl TrackFields {
    /// Reads position and status fingerprint from `data` in one scan of its top-level members.
    pub fn read(&self, data: &[u8]) -> Fix {
        let mut lat = None;
        let mut lon = None;
        let mut h = rustc_hash::FxHasher::default();
        let mut any_status = false;
        for (k, v) in Fields::new(data).map_while(Result::ok) {
            if let Some((la, lo)) = &self.geo {
                if key_is(data, &k, la) {
                    lat = number(&data[v]);
                    continue;
                }
                if key_is(data, &k, lo) {
                    lon = number(&data[v]);
                    continue;
                }
            }
            if let Some(i) = self.status.iter().position(|f| key_is(data, &k, f)) {
                any_status = true;
                h.write_usize(i);
                h.write(&data[v]);
            }
        }
        let pos = match (lat, lon) {
            (Some(la), Some(lo)) => Pos::new(la, lo),
            _ => None,
        };
        Fix { pos, status: if any_status { h.finish() | 1 } else { 0 } }
    }
}

/// A JSON number span as `f64` (strings and other values are not positions).
fn number(raw: &[u8]) -> Option<f64> {
    match raw.first()? {
        b'-' | b'0'..=b'9' => std::str::from_utf8(raw).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> TrackFields {
        TrackFields { geo: Some(("lat".into(), "lon".into())), status: default_status_fields() }
    }

    #[test]
    fn reads_position_and_status() {
        let f = fields();
        let a = f.read(br#"{"id":7,"lat":52.5,"lon":13.4,"stopped":false}"#);
        assert_eq!(a.pos, Some(Pos { lat: 52.5, lon: 13.4 }));
        assert_ne!(a.status, 0);
        let b = f.read(br#"{"id":7,"lon":13.5,"lat":52.6,"stopped":false}"#);
        assert_eq!(a.status, b.status, "same status values, same fingerprint");
        let c = f.read(br#"{"id":7,"lat":52.5,"lon":13.4,"stopped":true}"#);
        assert_ne!(a.status, c.status);
        let d = f.read(br#"{"id":7,"lat":52.5,"lon":13.4,"state":false}"#);
        assert_ne!(a.status, d.status, "the field name counts, not only the value");
    }

    #[test]
    fn no_position_unless_both_valid_numbers() {
        let f = fields();
        assert_eq!(f.read(br#"{"lat":52.5}"#).pos, None);
        assert_eq!(f.read(br#"{"lat":"52.5","lon":13}"#).pos, None);
        assert_eq!(f.read(br#"{"lat":91,"lon":13}"#).pos, None);
        assert_eq!(f.read(br#"{"lat":1,"lon":-180.5}"#).pos, None);
        assert_eq!(f.read(br#"{"lat":-1e1,"lon":180}"#).pos, Some(Pos { lat: -10.0, lon: 180.0 }));
        assert_eq!(f.read(br#"{"pos":{"lat":1,"lon":2}}"#).pos, None, "top level only");
        assert_eq!(f.read(b"[1,2]"), Fix::default());
        // Payloads are validated before they reach the engine; a broken one reads what precedes the break.
        assert_eq!(f.read(br#"{"lat":1,"lon":2,"status":"#).status, 0);
    }

    #[test]
    fn no_status_fields_is_zero() {
        let f = fields();
        assert_eq!(f.read(br#"{"id":1,"lat":1,"lon":2}"#).status, 0);
        assert_ne!(f.read(br#"{"status":null}"#).status, 0);
        let none = TrackFields { geo: None, status: vec![] };
        assert_eq!(none.read(br#"{"status":"x","lat":1,"lon":1}"#), Fix::default());
    }
}
