//! Inbound client operations on the multiplexed `/ws` endpoint, and room names.
//!
//! The wire contract is DESIGN §3. Two properties shape this module:
//!
//! * **`pub` data is forwarded as the exact bytes the client sent.** The engine builds the
//!   outbound frame once and fans it out by refcount, so re-serializing a parsed tree would
//!   cost a copy *and* change the bytes (key order, number formatting, escapes). We therefore
//!   locate the raw span of `data` with a small scanner ([`Fields`]) *before* simd-json
//!   validates the whole text in place (simd-json may rewrite the buffer while unescaping).
//! * **The request `id` is echoed verbatim**, as its JSON text (`1`, `"abc"`), so clients can
//!   correlate replies whatever type of id they use.
//!
//! Errors carry a stable wire `code()` and, when it could be recovered, the request id.

use std::ops::Range;

use shardcast_engine::geo::BBox;
use shardcast_engine::pace;
use simd_json::prelude::*;

/// Longest accepted room name, in bytes (DESIGN §3).
pub const MAX_ROOM_LEN: usize = 200;
/// Longest accepted request id, as JSON text. Ids are echoed in every reply; a cap keeps a
/// hostile client from making each reply arbitrarily large.
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted `epoch` in a `sub`. The server's epochs are 10 characters; anything up
/// to this is compared (and simply mismatches), longer is refused so a client cannot make
/// the server carry arbitrary text to the room's owner.
pub const MAX_EPOCH_LEN: usize = 64;

/// A `sub`'s tracking options (DESIGN §3, tracking), as sent: each optional and independent.
/// Ranges are checked here; what a box or a rate means is the engine's (`geo`, `pace`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrackOpts {
    /// `[w, s, e, n]` degrees (lon, lat, lon, lat); `w > e` crosses the antimeridian.
    pub bbox: Option<BBox>,
    /// Messages per key per second.
    pub max_rate: Option<f64>,
    /// Metres from the last position delivered for the key.
    pub min_move_m: Option<f64>,
    /// At least one message per key per this many seconds despite the dead-band.
    pub max_silence_s: Option<f64>,
}

impl TrackOpts {
    /// Whether any option is set.
    pub fn any(&self) -> bool {
        *self != TrackOpts::default()
    }
}

/// One parsed client → server operation.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOp {
    /// Subscribe; optionally replay `seq > since` (of `epoch`, if given) and/or deliver the
    /// key snapshot first; optionally filtered and paced (`track`).
    Sub {
        room: String,
        since: Option<u64>,
        snapshot: bool,
        epoch: Option<Box<str>>,
        id: Option<Box<str>>,
        track: Option<Box<TrackOpts>>,
    },
    /// Move a viewport subscription's box (a map pan).
    View { room: String, bbox: BBox, id: Option<Box<str>> },
    /// Ask for a room's presence state.
    Presence { room: String, id: Option<Box<str>> },
    /// Unsubscribe.
    Unsub { room: String, id: Option<Box<str>> },
    /// Publish `data`: the exact original bytes of the JSON value.
    Pub { room: String, data: Vec<u8>, id: Option<Box<str>> },
    /// Liveness check answered with `pong`.
    Ping { id: Option<Box<str>> },
}

impl ClientOp {
    /// The request id as JSON text, to echo in the reply.
    pub fn id(&self) -> Option<&str> {
        match self {
            ClientOp::Sub { id, .. }
            | ClientOp::View { id, .. }
            | ClientOp::Presence { id, .. }
            | ClientOp::Unsub { id, .. }
            | ClientOp::Pub { id, .. }
            | ClientOp::Ping { id } => id.as_deref(),
        }
    }

    /// The room the op addresses, if any.
    pub fn room(&self) -> Option<&str> {
        match self {
            ClientOp::Sub { room, .. }
            | ClientOp::View { room, .. }
            | ClientOp::Presence { room, .. }
            | ClientOp::Unsub { room, .. }
            | ClientOp::Pub { room, .. } => Some(room),
            ClientOp::Ping { .. } => None,
        }
    }
}

/// What was wrong with a client message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("invalid JSON: {0}")]
    BadJson(String),
    #[error("unknown op {0:?}; expected \"sub\", \"unsub\", \"pub\", \"ping\", \"view\" or \"presence\"")]
    BadOp(String),
    #[error("missing field \"{0}\"")]
    MissingField(&'static str),
    #[error("invalid room name {name:?}: {reason}")]
    BadRoom { name: String, reason: &'static str },
    #[error("field \"{field}\" {problem}")]
    BadField { field: &'static str, problem: &'static str },
}

/// A rejected client message: the problem plus the request id when it could be recovered, so
/// the `{"op":"error"}` reply can still be correlated by the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ProtocolError {
    pub kind: ErrorKind,
    id: Option<Box<str>>,
}

impl ProtocolError {
    fn new(kind: ErrorKind) -> Self {
        ProtocolError { kind, id: None }
    }

    fn with_id(mut self, id: &Option<Box<str>>) -> Self {
        self.id = id.clone();
        self
    }

    /// Stable machine-readable code for the wire `error` op.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::BadJson(_) => "bad_json",
            ErrorKind::BadOp(_) => "bad_op",
            ErrorKind::MissingField(_) => "missing_field",
            ErrorKind::BadRoom { .. } => "bad_room",
            ErrorKind::BadField { .. } => "bad_field",
        }
    }

    /// The request id (JSON text) if it was recovered before the error was found.
    pub fn error_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

fn bad_json(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorKind::BadJson(msg.into()))
}

/// What a client is told about JSON that does not parse: where, and what was found there —
/// not the parser's internal names (`ExpectedNull at character 0`).
pub fn describe_json_error(e: &simd_json::Error, input_len: usize) -> String {
    use simd_json::ErrorType as T;
    let at = e.index();
    match (e.error(), e.character()) {
        _ if at + 1 >= input_len => "the JSON text ends too early".to_owned(),
        (T::TrailingData, _) => "more than one JSON value".to_owned(),
        (T::Syntax, None) => "unbalanced brackets or an unterminated string".to_owned(),
        (_, Some(c)) if !c.is_control() => format!("unexpected {c:?} at byte {at}"),
        _ => format!("unexpected byte at {at}"),
    }
}

/// Checks a room name: 1–200 bytes of `A-Z a-z 0-9 _ - : . / @`.
pub fn validate_room(room: &str) -> Result<(), ProtocolError> {
    let reason = if room.is_empty() {
        "must not be empty"
    } else if room.len() > MAX_ROOM_LEN {
        "longer than 200 bytes"
    } else if !room.bytes().all(is_room_byte) {
        "allowed characters are A-Z a-z 0-9 _ - : . / @"
    } else {
        return Ok(());
    };
    // Echo at most a prefix: the name may be attacker-sized.
    let name: String = room.chars().take(64).collect();
    Err(ProtocolError::new(ErrorKind::BadRoom { name, reason }))
}

fn is_room_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'/' | b'@')
}

/// The namespace of a room: the part before the first `:` (the whole name if none). The
/// engine's definition, so the server's permissions and the engine's room settings can
/// never disagree on it.
pub use shardcast_engine::namespace;

/// The room of the room-per-URL endpoint: `/ws/tracker/42/` → `tracker/42`.
pub fn room_from_path(path: &str) -> Result<String, ProtocolError> {
    let rest = path.strip_prefix("/ws/").ok_or_else(|| {
        ProtocolError::new(ErrorKind::BadRoom { name: String::new(), reason: "path must start with /ws/" })
    })?;
    let room = rest.strip_suffix('/').unwrap_or(rest);
    validate_room(room)?;
    Ok(room.to_owned())
}

/// Parses one text frame of the multiplexed endpoint. `text` may be modified (simd-json
/// parses in place); the `pub` data is copied out before that happens.
pub fn parse_client_op(text: &mut [u8]) -> Result<ClientOp, ProtocolError> {
    // Pass 1 — raw spans of the fields whose bytes we keep verbatim.
    let mut data_span = None;
    let mut id_span = None;
    let mut scan_err = None;
    // Duplicate known keys are rejected rather than resolved: parsers disagree on which one
    // wins, and a room/data mismatch between our scanner and simd-json must be impossible.
    let mut seen = 0u16;
    for field in Fields::new(text) {
        let (key, value) = match field {
            Ok(kv) => kv,
            Err(e) => {
                scan_err = Some(e);
                break;
            }
        };
        let Some(bit) = KNOWN_KEYS.iter().position(|k| key_is(text, &key, k)) else {
            continue;
        };
        if seen & (1 << bit) != 0 {
            return Err(bad_json(format!("duplicate field \"{}\"", KNOWN_KEYS[bit])));
        }
        seen |= 1 << bit;
        match KNOWN_KEYS[bit] {
            "data" => data_span = Some(value),
            "id" => id_span = Some(value),
            _ => {}
        }
    }
    let data = data_span.map(|r: Range<usize>| text[r].to_vec());
    let id_text = id_span.map(|r: Range<usize>| String::from_utf8_lossy(&text[r]).into_owned());

    // Pass 2 — full validation and typed access.
    let len = text.len();
    let value = crate::json::parse(text).map_err(|e| bad_json(describe_json_error(&e, len)))?;
    if let Some(e) = scan_err {
        return Err(bad_json(e));
    }
    let obj = value.as_object().ok_or_else(|| bad_json("expected a JSON object"))?;

    let id = match (obj.get("id"), id_text) {
        (None, _) => None,
        (Some(v), Some(t)) if (v.is_str() || v.is_number()) && t.len() <= MAX_ID_LEN => Some(t.into()),
        (Some(_), _) => {
            return Err(ProtocolError::new(ErrorKind::BadField {
                field: "id",
                problem: "must be a number or a string of at most 64 bytes",
            }))
        }
    };
    let err = |kind| ProtocolError::new(kind).with_id(&id);

    let op = match obj.get("op") {
        None => return Err(err(ErrorKind::MissingField("op"))),
        Some(v) => {
            v.as_str().ok_or_else(|| err(ErrorKind::BadOp(v.to_string().chars().take(32).collect())))?
        }
    };
    let room = || -> Result<String, ProtocolError> {
        let v = obj.get("room").ok_or_else(|| err(ErrorKind::MissingField("room")))?;
        let r = v
            .as_str()
            .ok_or_else(|| err(ErrorKind::BadField { field: "room", problem: "must be a string" }))?;
        validate_room(r).map_err(|e| e.with_id(&id))?;
        Ok(r.to_owned())
    };
    match op {
        "sub" => {
            let since = match obj.get("since") {
                None => None,
                Some(v) if v.is_null() => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    err(ErrorKind::BadField { field: "since", problem: "must be a non-negative integer" })
                })?),
            };
            let snapshot = match obj.get("snapshot") {
                None => false,
                Some(v) => v.as_bool().ok_or_else(|| {
                    err(ErrorKind::BadField { field: "snapshot", problem: "must be true or false" })
                })?,
            };
            let epoch = match obj.get("epoch") {
                None => None,
                Some(v) if v.is_null() => None,
                Some(v) => match v.as_str() {
                    Some(e) if e.len() <= MAX_EPOCH_LEN => Some(e.into()),
                    _ => {
                        return Err(err(ErrorKind::BadField {
                            field: "epoch",
                            problem: "must be a string of at most 64 bytes",
                        }))
                    }
                },
            };
            let bbox = match obj.get("bbox") {
                None => None,
                Some(v) if v.is_null() => None,
                Some(v) => Some(
                    parse_bbox(v).map_err(|problem| err(ErrorKind::BadField { field: "bbox", problem }))?,
                ),
            };
            let track = TrackOpts {
                bbox,
                max_rate: parse_positive(
                    obj,
                    "max_rate",
                    pace::MAX_RATE,
                    "must be a number above 0 and at most 1000",
                )
                .map_err(err)?,
                min_move_m: parse_positive(
                    obj,
                    "min_move_m",
                    pace::MAX_MOVE_M,
                    "must be a number of metres above 0",
                )
                .map_err(err)?,
                max_silence_s: parse_positive(
                    obj,
                    "max_silence_s",
                    pace::MAX_SILENCE_S,
                    "must be seconds above 0, at most 86400",
                )
                .map_err(err)?,
            };
            let track = track.any().then(|| Box::new(track));
            Ok(ClientOp::Sub { room: room()?, since, snapshot, epoch, id, track })
        }
        "view" => {
            let room = room()?;
            let v = obj.get("bbox").ok_or_else(|| err(ErrorKind::MissingField("bbox")))?;
            let bbox =
                parse_bbox(v).map_err(|problem| err(ErrorKind::BadField { field: "bbox", problem }))?;
            Ok(ClientOp::View { room, bbox, id })
        }
        "presence" => Ok(ClientOp::Presence { room: room()?, id }),
        "unsub" => Ok(ClientOp::Unsub { room: room()?, id }),
        "pub" => {
            let room = room()?;
            let data = data.ok_or_else(|| err(ErrorKind::MissingField("data")))?;
            Ok(ClientOp::Pub { room, data, id })
        }
        "ping" => Ok(ClientOp::Ping { id }),
        other => Err(err(ErrorKind::BadOp(other.chars().take(32).collect()))),
    }
}

const KNOWN_KEYS: [&str; 11] = [
    "op",
    "room",
    "data",
    "id",
    "since",
    "snapshot",
    "epoch",
    "bbox",
    "max_rate",
    "min_move_m",
    "max_silence_s",
];

/// `bbox`: exactly four numbers, as a box the engine accepts ([`BBox::new`]: lon/lat in
/// range, south not above north) — one validation, the engine's.
fn parse_bbox(v: &simd_json::BorrowedValue) -> Result<BBox, &'static str> {
    const WHAT: &str = "must be [w, s, e, n]: four numbers, lon in -180..180, lat in -90..90, s <= n";
    let a = v.as_array().filter(|a| a.len() == 4).ok_or(WHAT)?;
    let mut b = [0.0; 4];
    for (i, x) in a.iter().enumerate() {
        b[i] = x.cast_f64().ok_or(WHAT)?;
    }
    BBox::from_slice(&b).map_err(|_| WHAT)
}

/// A positive finite number not above `max`, or `null` (= absent).
fn parse_positive(
    obj: &simd_json::borrowed::Object,
    field: &'static str,
    max: f64,
    problem: &'static str,
) -> Result<Option<f64>, ErrorKind> {
    match obj.get(field) {
        None => Ok(None),
        Some(v) if v.is_null() => Ok(None),
        Some(v) => match v.cast_f64() {
            Some(f) if f.is_finite() && f > 0.0 && f <= max => Ok(Some(f)),
            _ => Err(ErrorKind::BadField { field, problem }),
        },
    }
}

/// Value of the top-level `field` of a JSON object, if it is a string or a number — the
/// namespace `key` used for snapshots and conflation. Strings are unescaped; numbers are
/// returned as written.
pub fn extract_key(data: &[u8], field: &str) -> Option<String> {
    let (_, span) = Fields::new(data).map_while(Result::ok).find(|(k, _)| key_is(data, k, field))?;
    let raw = &data[span];
    match raw.first()? {
        b'"' if !raw.contains(&b'\\') => std::str::from_utf8(&raw[1..raw.len() - 1]).ok().map(str::to_owned),
        b'"' => serde_json::from_slice::<String>(raw).ok(),
        b'-' | b'0'..=b'9' => std::str::from_utf8(raw).ok().map(str::to_owned),
        _ => None,
    }
}

pub use shardcast_engine::json::{key_is, skip_value, Fields, Member};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientOp, ProtocolError> {
        parse_client_op(&mut s.as_bytes().to_vec())
    }

    fn span(s: &str) -> &str {
        &s[..skip_value(s.as_bytes(), 0).unwrap()]
    }

    /// `{"op":"sub","room":<room>}` as parsed.
    fn bare_sub(room: &str) -> ClientOp {
        ClientOp::Sub { room: room.into(), since: None, snapshot: false, epoch: None, id: None, track: None }
    }

    #[test]
    fn tracking_fields() {
        let op = parse(r#"{"op":"sub","room":"fleet:b","bbox":[170,-10,-170,10.5],"max_rate":0.5,"min_move_m":10,"max_silence_s":30,"snapshot":true}"#).unwrap();
        let ClientOp::Sub { track: Some(t), snapshot: true, .. } = op else { panic!("{op:?}") };
        assert_eq!(
            *t,
            TrackOpts {
                bbox: Some(BBox::new(170.0, -10.0, -170.0, 10.5).unwrap()),
                max_rate: Some(0.5),
                min_move_m: Some(10.0),
                max_silence_s: Some(30.0)
            }
        );
        let only = parse(r#"{"op":"sub","room":"a","min_move_m":5}"#).unwrap();
        assert!(
            matches!(only, ClientOp::Sub { track: Some(t), .. } if t.min_move_m == Some(5.0) && t.bbox.is_none())
        );
        let nulls = parse(r#"{"op":"sub","room":"a","bbox":null,"max_rate":null}"#).unwrap();
        assert!(matches!(nulls, ClientOp::Sub { track: None, .. }));
        for bad in [
            r#"{"op":"sub","room":"a","bbox":[1,2,3],"id":9}"#,
            r#"{"op":"sub","room":"a","bbox":[1,2,3,"4"],"id":9}"#,
            r#"{"op":"sub","room":"a","bbox":[181,0,3,4],"id":9}"#,
            r#"{"op":"sub","room":"a","bbox":[0,5,3,4],"id":9}"#,
            r#"{"op":"sub","room":"a","bbox":[0,-91,3,4],"id":9}"#,
            r#"{"op":"sub","room":"a","max_rate":0,"id":9}"#,
            r#"{"op":"sub","room":"a","max_rate":-1,"id":9}"#,
            r#"{"op":"sub","room":"a","max_rate":"1","id":9}"#,
            r#"{"op":"sub","room":"a","min_move_m":true,"id":9}"#,
            r#"{"op":"sub","room":"a","max_silence_s":1e9,"id":9}"#,
            r#"{"op":"view","room":"a","bbox":[0,0,1],"id":9}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!((e.code(), e.error_id()), ("bad_field", Some("9")), "{bad}");
        }
        let dup = parse(r#"{"op":"sub","room":"a","bbox":[0,0,1,1],"bbox":[0,0,2,2]}"#).unwrap_err();
        assert_eq!(dup.code(), "bad_json");
        assert_eq!(
            parse(r#"{"op":"view","room":"a","bbox":[-1,-2,3,4],"id":"v"}"#).unwrap(),
            ClientOp::View {
                room: "a".into(),
                bbox: BBox::new(-1.0, -2.0, 3.0, 4.0).unwrap(),
                id: Some("\"v\"".into())
            }
        );
        assert_eq!(parse(r#"{"op":"view","room":"a"}"#).unwrap_err().code(), "missing_field");
        assert_eq!(
            parse(r#"{"op":"presence","room":"a","id":1}"#).unwrap(),
            ClientOp::Presence { room: "a".into(), id: Some("1".into()) }
        );
    }

    #[test]
    fn every_op() {
        assert_eq!(
            parse(r#"{"op":"sub","room":"fleet:berlin","since":1234,"snapshot":true,"id":1}"#).unwrap(),
            ClientOp::Sub {
                room: "fleet:berlin".into(),
                since: Some(1234),
                snapshot: true,
                epoch: None,
                id: Some("1".into()),
                track: None
            }
        );
        assert_eq!(parse(r#"{"op":"sub","room":"a"}"#).unwrap(), bare_sub("a"));
        assert_eq!(
            parse(r#"{"op":"sub","room":"a","since":7,"epoch":"q8Xk2pLm0Z"}"#).unwrap(),
            ClientOp::Sub {
                room: "a".into(),
                since: Some(7),
                snapshot: false,
                epoch: Some("q8Xk2pLm0Z".into()),
                id: None,
                track: None
            }
        );
        assert_eq!(parse(r#"{"op":"sub","room":"a","epoch":null}"#).unwrap(), bare_sub("a"));
        let e = parse(r#"{"op":"sub","room":"a","epoch":1,"id":2}"#).unwrap_err();
        assert_eq!((e.code(), e.error_id()), ("bad_field", Some("2")));
        let long = format!(r#"{{"op":"sub","room":"a","epoch":"{}"}}"#, "x".repeat(65));
        assert_eq!(parse(&long).unwrap_err().code(), "bad_field");
        let ok = format!(r#"{{"op":"sub","room":"a","epoch":"{}"}}"#, "x".repeat(64));
        assert!(parse(&ok).is_ok());
        let dup = parse(r#"{"op":"sub","room":"a","epoch":"a","epoch":"b"}"#).unwrap_err();
        assert_eq!(dup.code(), "bad_json");
        assert_eq!(
            parse(r#"{"op":"unsub","room":"fleet:berlin","id":"x-2"}"#).unwrap(),
            ClientOp::Unsub { room: "fleet:berlin".into(), id: Some("\"x-2\"".into()) }
        );
        assert_eq!(
            parse(r#" { "op" : "ping" , "id" : 4 } "#).unwrap(),
            ClientOp::Ping { id: Some("4".into()) }
        );
        assert_eq!(parse(r#"{"op":"ping"}"#).unwrap().id(), None);
    }

    #[test]
    fn pub_keeps_exact_data_bytes() {
        let raw = r#"{"id":3,"data": {"b" : 1.50, "s":"}\"{[", "u":"ü\u00fc", "n":[1,{"x":[]}]} ,"op":"pub","room":"vehicle:42"}"#;
        match parse(raw).unwrap() {
            ClientOp::Pub { room, data, id } => {
                assert_eq!(room, "vehicle:42");
                assert_eq!(id.as_deref(), Some("3"));
                assert_eq!(data, r#"{"b" : 1.50, "s":"}\"{[", "u":"ü\u00fc", "n":[1,{"x":[]}]}"#.as_bytes());
            }
            other => panic!("{other:?}"),
        }
        let scalar = parse(r#"{"op":"pub","room":"r","data":-1.5e3}"#).unwrap();
        assert!(matches!(scalar, ClientOp::Pub { data, .. } if data == b"-1.5e3"));
        let s = parse(r#"{"op":"pub","room":"r","data":"a\\"}"#).unwrap();
        assert!(matches!(s, ClientOp::Pub { data, .. } if data == br#""a\\""#));
    }

    #[test]
    fn value_spans() {
        assert_eq!(span(r#""a\"b}" , 1"#), r#""a\"b}""#);
        assert_eq!(span(r#""\\",1"#), r#""\\""#);
        assert_eq!(span(r#"[1,"]",[{}]],2"#), r#"[1,"]",[{}]]"#);
        assert_eq!(span(r#"{"a":{"b":"}}"}}x"#), r#"{"a":{"b":"}}"}}"#);
        assert_eq!(span("true}"), "true");
        assert_eq!(span("12.5e-3,"), "12.5e-3");
        assert_eq!(span(r#""日本""#), r#""日本""#);
        assert!(skip_value(br#""abc"#, 0).is_err());
        assert!(skip_value(b"[1,2", 0).is_err());
        assert!(skip_value(b"]", 0).is_err());
        assert!(skip_value(b"", 0).is_err());
        assert!(skip_value(br#""\"#, 0).is_err());
    }

    #[test]
    fn escaped_key_names_are_matched() {
        let op = parse(r#"{"op":"pub","room":"r","\u0064ata":[1]}"#).unwrap();
        assert!(matches!(op, ClientOp::Pub { data, .. } if data == b"[1]"));
    }

    #[test]
    fn errors_have_codes_and_ids() {
        let e = parse(r#"{"op":"sub","id":7}"#).unwrap_err();
        assert_eq!((e.code(), e.error_id()), ("missing_field", Some("7")));
        assert_eq!(e.to_string(), "missing field \"room\"");
        let e = parse(r#"{"op":"pub","room":"r","id":"q"}"#).unwrap_err();
        assert_eq!((e.code(), e.error_id()), ("missing_field", Some("\"q\"")));
        assert_eq!(parse(r#"{"room":"r"}"#).unwrap_err().code(), "missing_field");
        assert_eq!(parse(r#"{"op":"jump","id":1}"#).unwrap_err().code(), "bad_op");
        assert_eq!(parse(r#"{"op":5}"#).unwrap_err().code(), "bad_op");
        let e = parse(r#"{"op":"sub","room":"no spaces","id":2}"#).unwrap_err();
        assert_eq!((e.code(), e.error_id()), ("bad_room", Some("2")));
        assert_eq!(parse(r#"{"op":"sub","room":7}"#).unwrap_err().code(), "bad_field");
        assert_eq!(parse(r#"{"op":"sub","room":"r","since":-1}"#).unwrap_err().code(), "bad_field");
        assert_eq!(parse(r#"{"op":"sub","room":"r","since":"1"}"#).unwrap_err().code(), "bad_field");
        assert_eq!(parse(r#"{"op":"sub","room":"r","snapshot":1}"#).unwrap_err().code(), "bad_field");
        let e = parse(r#"{"op":"ping","id":{"a":1}}"#).unwrap_err();
        assert_eq!((e.code(), e.error_id()), ("bad_field", None));
        let long = format!(r#"{{"op":"ping","id":"{}"}}"#, "x".repeat(80));
        assert_eq!(parse(&long).unwrap_err().code(), "bad_field");
        for bad in ["", "{", "[1]", "\"op\"", r#"{"op":"ping",}"#, r#"{"op":"ping"} x"#, "\u{1}"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.code(), "bad_json", "{bad:?}");
            assert!(!err.to_string().contains("Expected"), "no parser internals: {err}");
        }
        assert_eq!(parse(r#"{"op":"pub","room":"r","data":1,"data":2}"#).unwrap_err().code(), "bad_json");
        assert_eq!(parse(r#"{"op":"ping","op":"sub"}"#).unwrap_err().code(), "bad_json");
    }

    #[test]
    fn rooms() {
        assert!(validate_room("fleet:berlin/mitte.1_a-b@x").is_ok());
        assert!(validate_room(&"a".repeat(200)).is_ok());
        assert!(validate_room(&"a".repeat(201)).is_err());
        for bad in ["", "a b", "ü", "a#b", "a\"b", "a*"] {
            assert_eq!(validate_room(bad).unwrap_err().code(), "bad_room", "{bad:?}");
        }
        assert_eq!(namespace("fleet:berlin:x"), "fleet");
        assert_eq!(namespace("tracker/42"), "tracker/42");
        assert_eq!(namespace(":x"), "");
        assert_eq!(room_from_path("/ws/tracker/42/").unwrap(), "tracker/42");
        assert_eq!(room_from_path("/ws/fleet:demo").unwrap(), "fleet:demo");
        assert!(room_from_path("/ws/").is_err());
        assert!(room_from_path("/api/x").is_err());
        assert!(room_from_path("/ws/a%20b").is_err());
    }

    #[test]
    fn extract_keys() {
        let d = br#"{"lat":52.5,"id":"v17","n":{"id":"inner"}}"#;
        assert_eq!(extract_key(d, "id").as_deref(), Some("v17"));
        assert_eq!(extract_key(br#"{"id":42}"#, "id").as_deref(), Some("42"));
        assert_eq!(extract_key(br#"{"id":"a\"b"}"#, "id").as_deref(), Some("a\"b"));
        assert_eq!(extract_key(br#"{"x":{"id":1}}"#, "id"), None);
        assert_eq!(extract_key(br#"{"id":true}"#, "id"), None);
        assert_eq!(extract_key(br#"{"id":[1]}"#, "id"), None);
        assert_eq!(extract_key(b"[1]", "id"), None);
    }
}
