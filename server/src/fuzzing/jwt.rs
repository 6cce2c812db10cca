//! `jwt`: HS256 token verification, on arbitrary tokens and differentially on tokens the
//! harness signs itself.
//!
//! Input: the first byte's low bit picks the mode.
//!
//! * **Raw** (even): the rest is a token, verified with a fixed secret at a fixed time. No
//!   panic; an accepted token is unexpired and already valid; and if accepted, no token with
//!   one byte changed anywhere is.
//! * **Differential** (odd): the rest decodes to a secret, a clock, and claims built field by
//!   field (each field absent, of the right type, or of a wrong one; fields may repeat).
//!   `auth::sign` makes the token; it must verify exactly when a simple model says the
//!   claims are valid — `exp` an unsigned integer above `now`, `nbf` absent, null or an
//!   unsigned integer not above `now`, `sub` absent or a string, the room lists absent or
//!   arrays of strings, no known field twice — and then carry those claims. One byte
//!   changed in the signature, or a different secret, never verifies.

use super::Input;
use crate::auth::{sign, AuthError, Glob, Verifier};

/// The raw mode's secret and clock; the seeds are signed with them.
pub const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef";
pub const NOW: u64 = 1_700_000_000;

pub fn jwt(data: &[u8]) {
    let mut u = Input::new(data);
    if u.byte() & 1 == 0 {
        raw(u.rest());
    } else {
        differential(&mut u);
    }
}

fn raw(token: &[u8]) {
    let token = String::from_utf8_lossy(token);
    let v = Verifier::new(SECRET);
    let Ok(claims) = v.verify(&token, NOW) else { return };
    assert!(claims.exp > NOW, "accepted a token expired at {}", claims.exp);
    let mut forged = token.as_bytes().to_vec();
    for i in 0..forged.len() {
        for mask in [0x01, 0x20, 0x80] {
            forged[i] ^= mask;
            if let Ok(t) = std::str::from_utf8(&forged) {
                assert!(v.verify(t, NOW).is_err(), "byte {i} ^ {mask:#x} still verifies");
            }
            forged[i] ^= mask;
        }
    }
}

/// A claim value of a chosen JSON type; `Ok(u64)` when it is an unsigned integer.
fn value(u: &mut Input, now: u64) -> (String, Kind) {
    match u.below(10) {
        0 => {
            let n = now.wrapping_add(u.byte() as i8 as i64 as u64);
            (n.to_string(), Kind::U64(n))
        }
        1 => {
            let n = u.u64();
            (n.to_string(), Kind::U64(n))
        }
        2 => (format!("-{}", 1 + u.byte() as u32), Kind::Other),
        3 => {
            let text = format!("{now}.{}", u.byte() % 10);
            let date = text.parse::<f64>().ok().and_then(crate::auth::numeric_date);
            (text, date.map_or(Kind::Other, Kind::U64))
        }
        4 => (u64::MAX.to_string() + "0", Kind::Other),
        5 => {
            let s = String::from_utf8_lossy(u.string(24)).into_owned();
            (serde_json::to_string(&s).expect("a string serializes"), Kind::Str(s))
        }
        6 => ("null".into(), Kind::Null),
        7 => (if u.bool() { "true" } else { "false" }.into(), Kind::Other),
        8 => {
            let v: Vec<String> =
                (0..u.below(4)).map(|_| String::from_utf8_lossy(u.string(12)).into()).collect();
            (serde_json::to_string(&v).expect("strings serialize"), Kind::Strings(v))
        }
        _ => ("[1]".into(), Kind::Other),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    U64(u64),
    Str(String),
    Strings(Vec<String>),
    Null,
    Other,
}

const FIELDS: [&str; 6] = ["exp", "nbf", "sub", "sub_rooms", "pub_rooms", "iat"];

fn differential(u: &mut Input) {
    let secret = u.string(40).to_vec();
    let now = match u.below(3) {
        0 => NOW,
        1 => u.u64(),
        _ => u64::MAX - u.below(2) as u64,
    };
    let mut fields: Vec<(&str, String, Kind)> = Vec::new();
    for _ in 0..u.below(8) {
        let name = FIELDS[u.below(FIELDS.len())];
        let (text, kind) = value(u, now);
        fields.push((name, text, kind));
    }
    let json = format!(
        "{{{}}}",
        fields.iter().map(|(n, t, _)| format!("\"{n}\":{t}")).collect::<Vec<_>>().join(",")
    );
    let token = sign(&json, &secret);
    let got = Verifier::new(&secret).verify(&token, now);
    let get = |name: &str| fields.iter().find(|(n, _, _)| *n == name).map(|(_, _, k)| k.clone());
    let dup = FIELDS[..5].iter().any(|f| fields.iter().filter(|(n, _, _)| n == f).count() > 1);
    let exp = match get("exp") {
        Some(Kind::U64(e)) => Some(e),
        _ => None,
    };
    let nbf_ok = match get("nbf") {
        None | Some(Kind::Null) => true,
        Some(Kind::U64(n)) => now >= n,
        _ => false,
    };
    let types_ok = matches!(get("nbf"), None | Some(Kind::Null | Kind::U64(_)))
        && matches!(get("sub"), None | Some(Kind::Str(_)))
        && ["sub_rooms", "pub_rooms"].iter().all(|f| matches!(get(f), None | Some(Kind::Strings(_))));
    let valid = !dup && types_ok && exp.is_some_and(|e| now < e) && nbf_ok;
    match &got {
        Ok(c) => {
            assert!(valid, "{json} accepted at {now}");
            let rooms = |f| match get(f) {
                Some(Kind::Strings(v)) => v.iter().map(|s| Glob::new(s)).collect(),
                _ => Vec::new(),
            };
            let sub = match get("sub") {
                Some(Kind::Str(s)) => s,
                _ => String::new(),
            };
            assert_eq!((&c.sub, Some(c.exp)), (&sub, exp), "{json}");
            assert_eq!((c.sub_rooms.clone(), c.pub_rooms.clone()), (rooms("sub_rooms"), rooms("pub_rooms")));
        }
        Err(e) => assert!(!valid, "{json} refused at {now}: {e}"),
    }
    // Tampering. HMAC pads short keys with zeros, so "another secret" must differ in a
    // byte, not merely in trailing zeros.
    let mut other = if secret.is_empty() { b"x".to_vec() } else { secret.clone() };
    other[0] ^= if secret.is_empty() { 0 } else { 1 };
    assert_eq!(Verifier::new(&other).verify(&token, now).err(), Some(AuthError::BadSignature), "{json}");
    let sig_start = token.rfind('.').expect("three segments") + 1;
    let mut forged = token.clone().into_bytes();
    let at = sig_start + u.u16() as usize % (token.len() - sig_start);
    forged[at] ^= 1 + u.below(255) as u8;
    if let Ok(t) = std::str::from_utf8(&forged) {
        assert!(
            Verifier::new(&secret).verify(t, now).is_err(),
            "signature byte {at} changed, still verifies"
        );
    }
}
