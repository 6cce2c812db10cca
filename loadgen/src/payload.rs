//! Finding the measurement fields in received messages without a full JSON parse.
//!
//! Every simulated payload starts `{"t":<intended send ns>,"p":<publisher>,"s":<seq>,...`, so
//! the receiver scans a few bytes instead of parsing ~200 bytes of JSON per delivery. For the
//! multiplexed `/ws` protocol the server wraps it as `{"room":R,"seq":N,"data":{"t":..`; replies
//! (`ok`, `error`, `gap`, `pong`, and `reset` from servers with room epochs) start with
//! `{"op":`.

/// The three measurement fields every payload carries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Intended send time, ns since the loadgen's start (monotonic).
    pub t: u64,
    /// Publisher id (global).
    pub p: u32,
    /// Per-publisher sequence number, from 1.
    pub s: u64,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Finds `"key"` (given as `b"\"key\""`) at or after `from` and returns the index just past
/// the following `:` and whitespace.
fn find_key(b: &[u8], key: &[u8], from: usize) -> Option<usize> {
    if from >= b.len() || key.is_empty() {
        return None;
    }
    let hay = &b[from..];
    let mut i = 0;
    while i + key.len() <= hay.len() {
        if hay[i] == key[0] && &hay[i..i + key.len()] == key {
            let j = skip_ws(hay, i + key.len());
            if j < hay.len() && hay[j] == b':' {
                return Some(from + skip_ws(hay, j + 1));
            }
        }
        i += 1;
    }
    None
}

/// Parses an unsigned integer at `i`; returns it and the index after it.
fn parse_uint(b: &[u8], mut i: usize) -> Option<(u64, usize)> {
    let start = i;
    let mut v: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((b[i] - b'0') as u64)?;
        i += 1;
    }
    (i > start).then_some((v, i))
}

fn uint_field(b: &[u8], key: &[u8], from: usize) -> Option<(u64, usize)> {
    let i = find_key(b, key, from)?;
    parse_uint(b, i)
}

/// The first unsigned integer field `key` (given as `b"\"key\""`) anywhere in `b`, e.g. the
/// `seq` of an HTTP publish response `{"seq":12}`.
pub fn uint_of(b: &[u8], key: &[u8]) -> Option<u64> {
    uint_field(b, key, 0).map(|x| x.0)
}

/// Extracts `t`, `p`, `s` from a payload that starts with them (searching from `from`).
pub fn stamp(b: &[u8], from: usize) -> Option<Stamp> {
    // Our payloads put t, p, s first, in that order; a server that re-serialises may not.
    let (t, i) = uint_field(b, b"\"t\"", from)?;
    let (p, _) = uint_field(b, b"\"p\"", i).or_else(|| uint_field(b, b"\"p\"", from))?;
    let (s, _) = uint_field(b, b"\"s\"", i).or_else(|| uint_field(b, b"\"s\"", from))?;
    Some(Stamp { t, p: u32::try_from(p).ok()?, s })
}

/// A server → client message of the multiplexed protocol, borrowed.
#[derive(Debug, PartialEq, Eq)]
pub enum MuxMsg<'a> {
    /// A room message; `stamp` is `None` if the data carries no measurement fields.
    Data {
        room: &'a [u8],
        seq: u64,
        stamp: Option<Stamp>,
    },
    /// `seq`: for `pub`, the seq given to the message; for `sub`, the room's last seq.
    Ok {
        id: Option<u64>,
        seq: Option<u64>,
    },
    /// `code` is empty when the error carries none.
    Error {
        id: Option<u64>,
        code: &'a [u8],
    },
    Gap {
        room: &'a [u8],
        from: u64,
        to: u64,
    },
    Pong,
    /// The room's sequence restarted (new epoch): what the client held no longer applies.
    Reset {
        room: &'a [u8],
    },
    Other,
}

fn string_field<'a>(b: &'a [u8], key: &[u8], from: usize) -> Option<(&'a [u8], usize)> {
    let i = find_key(b, key, from)?;
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = i + 1 + b[i + 1..].iter().position(|&c| c == b'"')?;
    Some((&b[i + 1..end], end + 1))
}

/// Classifies a text frame of the multiplexed `/ws` protocol.
pub fn classify_mux(b: &[u8]) -> MuxMsg<'_> {
    let i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return MuxMsg::Other;
    }
    let j = skip_ws(b, i + 1);
    let rest = &b[j..];
    if rest.starts_with(b"\"room\"") {
        let Some((room, k)) = string_field(b, b"\"room\"", j) else {
            return MuxMsg::Other;
        };
        let seq = uint_field(b, b"\"seq\"", k).map(|x| x.0).unwrap_or(0);
        let stamp = find_key(b, b"\"data\"", k).and_then(|d| stamp(b, d));
        return MuxMsg::Data { room, seq, stamp };
    }
    if rest.starts_with(b"\"op\"") {
        let Some((op, k)) = string_field(b, b"\"op\"", j) else {
            return MuxMsg::Other;
        };
        // `id` may come before `op` in other servers' encodings: search the whole object.
        let id = || uint_field(b, b"\"id\"", i).map(|x| x.0);
        return match op {
            b"ok" => MuxMsg::Ok { id: id(), seq: uint_field(b, b"\"seq\"", i).map(|x| x.0) },
            b"error" => {
                MuxMsg::Error { id: id(), code: string_field(b, b"\"code\"", i).map(|x| x.0).unwrap_or(b"") }
            }
            b"pong" => MuxMsg::Pong,
            b"reset" => MuxMsg::Reset { room: string_field(b, b"\"room\"", i).map(|x| x.0).unwrap_or(b"") },
            b"gap" => {
                let room = string_field(b, b"\"room\"", i).map(|x| x.0).unwrap_or(b"");
                let from = uint_field(b, b"\"from\"", k).map(|x| x.0).unwrap_or(0);
                let to = uint_field(b, b"\"to\"", k).map(|x| x.0).unwrap_or(from);
                MuxMsg::Gap { room, from, to }
            }
            _ => MuxMsg::Other,
        };
    }
    MuxMsg::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_from_payload() {
        let p = br#"{"t":123456789,"p":42,"s":7,"kind":"vehicle","lat":52.5}"#;
        assert_eq!(stamp(p, 0), Some(Stamp { t: 123456789, p: 42, s: 7 }));
        let spaced = br#"{ "t" : 5, "p": 1 ,"s":2}"#;
        assert_eq!(stamp(spaced, 0), Some(Stamp { t: 5, p: 1, s: 2 }));
        assert_eq!(stamp(br#"{"x":1}"#, 0), None);
        assert_eq!(stamp(br#"{"t":"a","p":1,"s":1}"#, 0), None);
        assert_eq!(stamp(br#"{"t":1,"p":1"#, 0), None);
        assert_eq!(stamp(br#"{"lat":1,"p":2,"s":3,"t":4}"#, 0), Some(Stamp { t: 4, p: 2, s: 3 }));
    }

    #[test]
    fn mux_data_envelope() {
        let m = br#"{"room":"fleet:berlin","seq":1235,"data":{"t":99,"p":3,"s":4,"lat":1}}"#;
        assert_eq!(
            classify_mux(m),
            MuxMsg::Data { room: b"fleet:berlin", seq: 1235, stamp: Some(Stamp { t: 99, p: 3, s: 4 }) }
        );
        let no_stamp = br#"{"room":"a","seq":1,"data":{"hello":1}}"#;
        assert!(matches!(classify_mux(no_stamp), MuxMsg::Data { stamp: None, seq: 1, .. }));
    }

    #[test]
    fn mux_replies() {
        assert_eq!(
            classify_mux(br#"{"op":"ok","id":1,"room":"fleet:berlin","seq":1235}"#),
            MuxMsg::Ok { id: Some(1), seq: Some(1235) }
        );
        assert_eq!(classify_mux(br#"{"op":"ok","room":"r"}"#), MuxMsg::Ok { id: None, seq: None });
        assert_eq!(
            classify_mux(br#"{"op":"error","id":3,"code":"forbidden","message":"no"}"#),
            MuxMsg::Error { id: Some(3), code: b"forbidden" }
        );
        assert_eq!(classify_mux(br#"{"op":"reset","room":"r","epoch":"k3x"}"#), MuxMsg::Reset { room: b"r" });
        assert_eq!(uint_of(br#"{"seq":42}"#, b"\"seq\""), Some(42));
        assert_eq!(
            classify_mux(br#"{"op":"gap","room":"r","from":1000,"to":1100}"#),
            MuxMsg::Gap { room: b"r", from: 1000, to: 1100 }
        );
        assert_eq!(classify_mux(br#"{"op":"pong","id":4}"#), MuxMsg::Pong);
        assert_eq!(classify_mux(br#"{"op":"weird"}"#), MuxMsg::Other);
        assert_eq!(classify_mux(b"[1,2]"), MuxMsg::Other);
    }
}
