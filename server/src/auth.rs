//! Authentication: HS256 JWTs for WebSocket clients, an API key for HTTP publishing.
//!
//! Only HS256 is accepted. The header's `alg` is checked *before* anything else so that the
//! classic `alg: none` and algorithm-confusion tricks are refused outright, and signatures are
//! compared in constant time (`Mac::verify_slice`) so timing does not leak how many bytes of a
//! forged signature were right. Room rights are glob patterns carried in the token, so a
//! connection's rights are decided once at the handshake with no per-message lookup.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Longest token we bother to decode; real tokens are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token or key was refused. The reply carries the code `unauthorized` and this text
/// (DESIGN §3): a client can tell an expired token (refresh it) from a broken one (fix it);
/// none of it reveals the secret or which part of a signature failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token given")]
    MissingToken,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported alg {0:?}; only HS256 is accepted")]
    BadAlgorithm(String),
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
}

/// A room pattern: `*` matches any run of characters (including `:` and `/`), `?` exactly one
/// byte, everything else itself. Room names are ASCII, so bytes are characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Box<str>);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.into())
    }

    /// Iterative matcher with single-star backtracking: O(pattern × text) worst case, no
    /// recursion, so a hostile pattern like `*a*a*a*b` cannot blow the stack.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), text.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// Verified token claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub sub_rooms: Vec<Glob>,
    pub pub_rooms: Vec<Glob>,
}

impl Claims {
    pub fn can_subscribe(&self, room: &str) -> bool {
        self.sub_rooms.iter().any(|g| g.matches(room))
    }

    pub fn can_publish(&self, room: &str) -> bool {
        self.pub_rooms.iter().any(|g| g.matches(room))
    }
}

/// What a connection may do: everything (anonymous mode) or what its token grants.
///
/// The claims are boxed: every session keeps its rights for its whole life, and inline
/// claims would make each anonymous one 80 bytes larger (boxed, `Rights` is one pointer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rights {
    All,
    Token(Box<Claims>),
}

impl Rights {
    pub fn can_subscribe(&self, room: &str) -> bool {
        matches!(self, Rights::All) || matches!(self, Rights::Token(c) if c.can_subscribe(room))
    }

    pub fn can_publish(&self, room: &str) -> bool {
        matches!(self, Rights::All) || matches!(self, Rights::Token(c) if c.can_publish(room))
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: String,
    exp: NumericDate,
    nbf: Option<NumericDate>,
    #[serde(default)]
    sub_rooms: Vec<String>,
    #[serde(default)]
    pub_rooms: Vec<String>,
}

/// A JWT NumericDate (RFC 7519 §2): seconds since the Unix epoch, an integer or not
/// (`1700000000.5`); kept as whole seconds, rounded down.
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            // Integers exactly (an f64 would round large ones).
            Int(u64),
            Float(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(NumericDate(n)),
            Raw::Float(f) => numeric_date(f)
                .map(NumericDate)
                .ok_or_else(|| serde::de::Error::custom("a date must be a number of seconds within 0..2^64")),
        }
    }
}

/// A fractional NumericDate as whole seconds, if it is within `0..2^64`.
pub fn numeric_date(f: f64) -> Option<u64> {
    (0.0..18_446_744_073_709_551_616.0).contains(&f).then(|| f.floor() as u64)
}

/// HS256 verifier. The keyed HMAC state is computed once and cloned per token, which skips
/// re-hashing the secret into the inner/outer pads on every handshake.
#[derive(Clone)]
pub struct Verifier {
    mac: HmacSha256,
}

impl Verifier {
    pub fn new(secret: &[u8]) -> Self {
        Verifier { mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length") }
    }

    /// Verifies `header.payload.signature` at time `now_unix` (seconds).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("expected header.payload.signature"));
        };
        let header: Header = decode_json(h)?;
        if header.alg != "HS256" {
            return Err(AuthError::BadAlgorithm(header.alg));
        }
        let sig = B64.decode(s).map_err(|_| AuthError::Malformed("signature is not base64url"))?;
        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[..h.len() + 1 + p.len()]);
        mac.verify_slice(&sig).map_err(|_| AuthError::BadSignature)?;
        let raw: RawClaims = decode_json(p)?;
        let (exp, nbf) = (raw.exp.0, raw.nbf.map(|n| n.0));
        if now_unix >= exp {
            return Err(AuthError::Expired);
        }
        if nbf.is_some_and(|nbf| now_unix < nbf) {
            return Err(AuthError::NotYetValid);
        }
        let globs = |v: Vec<String>| v.iter().map(|s| Glob::new(s)).collect();
        Ok(Claims { sub: raw.sub, exp, sub_rooms: globs(raw.sub_rooms), pub_rooms: globs(raw.pub_rooms) })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = B64.decode(part).map_err(|_| AuthError::Malformed("segment is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("segment is not the expected JSON"))
}

/// The server's authentication mode, chosen once from the config.
#[derive(Clone)]
pub enum Auth {
    /// No secret configured: every connection gets [`Rights::All`].
    Anonymous,
    Jwt(Verifier),
}

impl Auth {
    pub fn new(jwt_secret: Option<&str>) -> Self {
        jwt_secret.map_or(Auth::Anonymous, |s| Auth::Jwt(Verifier::new(s.as_bytes())))
    }

    /// Rights for a handshake presenting `token` (from `?token=` or `Authorization: Bearer`).
    pub fn authorize(&self, token: Option<&str>, now_unix: u64) -> Result<Rights, AuthError> {
        match self {
            Auth::Anonymous => Ok(Rights::All),
            Auth::Jwt(v) => {
                v.verify(token.ok_or(AuthError::MissingToken)?, now_unix).map(|c| Rights::Token(Box::new(c)))
            }
        }
    }
}

/// Signs `claims_json` as an HS256 JWT (for tests and the `shardcast token` subcommand).
/// Seconds since the Unix epoch, the clock `exp`/`nbf` are checked against (0 if the clock
/// is before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn sign(claims_json: &str, secret: &[u8]) -> String {
    let mut token = format!("{}.{}", B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#), B64.encode(claims_json));
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(token.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    token.push('.');
    token.push_str(&sig);
    token
}

/// The HTTP API key. Comparison hashes both sides first, so it takes the same time whatever
/// the length or the first differing byte of the presented key.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    pub fn new(key: &str) -> Self {
        ApiKey { digest: Sha256::digest(key.as_bytes()).into() }
    }

    pub fn check(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = self.digest.iter().zip(other).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn token(claims: &str) -> String {
        sign(claims, SECRET)
    }

    #[test]
    fn valid_token_and_rights() {
        let t = token(r#"{"sub":"u1","exp":1700000100,"sub_rooms":["fleet:*"],"pub_rooms":["vehicle:4?"]}"#);
        let c = Verifier::new(SECRET).verify(&t, NOW).unwrap();
        assert_eq!((c.sub.as_str(), c.exp), ("u1", 1_700_000_100));
        assert!(c.can_subscribe("fleet:berlin") && !c.can_subscribe("vehicle:42"));
        assert!(c.can_publish("vehicle:42") && !c.can_publish("vehicle:420"));
        let rights = Auth::new(Some("0123456789abcdef0123456789abcdef")).authorize(Some(&t), NOW).unwrap();
        assert!(rights.can_subscribe("fleet:x") && !rights.can_publish("fleet:x"));
        assert!(Auth::new(None).authorize(None, NOW).unwrap().can_publish("anything"));
        assert_eq!(Auth::new(Some("k")).authorize(None, NOW), Err(AuthError::MissingToken));
    }

    #[test]
    fn expiry_and_nbf() {
        let v = Verifier::new(SECRET);
        assert_eq!(v.verify(&token(r#"{"exp":1700000000}"#), NOW), Err(AuthError::Expired));
        assert_eq!(
            v.verify(&token(r#"{"exp":1800000000,"nbf":1700000001}"#), NOW),
            Err(AuthError::NotYetValid)
        );
        assert!(v.verify(&token(r#"{"exp":1800000000,"nbf":1700000000}"#), NOW).is_ok());
        // RFC 7519 NumericDates may have fractions.
        let c = v.verify(&token(r#"{"exp":1800000000.75,"nbf":1699999999.5}"#), NOW).unwrap();
        assert_eq!(c.exp, 1_800_000_000);
        assert!(matches!(v.verify(&token(r#"{"exp":-1}"#), NOW), Err(AuthError::Malformed(_))));
        assert!(matches!(v.verify(&token(r#"{"sub":"no-exp"}"#), NOW), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn bad_signature() {
        let t = token(r#"{"exp":1800000000}"#);
        assert_eq!(
            Verifier::new(b"another-secret-of-some-length!!").verify(&t, NOW),
            Err(AuthError::BadSignature)
        );
        // Tampered payload, original signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], B64.encode(r#"{"exp":1900000000}"#), parts[2]);
        assert_eq!(Verifier::new(SECRET).verify(&forged, NOW), Err(AuthError::BadSignature));
    }

    #[test]
    fn alg_none_and_others_refused() {
        let body = B64.encode(r#"{"exp":1800000000,"sub_rooms":["*"]}"#);
        for alg in ["none", "HS512", "RS256"] {
            let t = format!("{}.{body}.", B64.encode(format!(r#"{{"alg":"{alg}"}}"#)));
            assert_eq!(Verifier::new(SECRET).verify(&t, NOW), Err(AuthError::BadAlgorithm(alg.into())));
        }
    }

    #[test]
    fn malformed() {
        let v = Verifier::new(SECRET);
        for t in ["", "abc", "a.b", "a.b.c.d", "!!.e30.sig", "e30.e30.###", &"a".repeat(9000)] {
            assert!(matches!(v.verify(t, NOW), Err(AuthError::Malformed(_))), "{t:.20}");
        }
        let good = token(r#"{"exp":1800000000}"#);
        let padded = format!("{good}=");
        assert!(v.verify(&padded, NOW).is_err());
    }

    #[test]
    fn globs() {
        let m = |p: &str, t: &str| Glob::new(p).matches(t);
        assert!(m("*", "") && m("*", "a:b/c"));
        assert!(m("fleet:*", "fleet:") && m("fleet:*", "fleet:berlin/mitte"));
        assert!(!m("fleet:*", "fleets:x") && !m("fleet:*", "fleet"));
        assert!(m("vehicle:4?", "vehicle:42") && !m("vehicle:4?", "vehicle:4"));
        assert!(m("*:42", "vehicle:42") && m("a*b*c", "aXXbYYc") && !m("a*b*c", "aXXbYY"));
        assert!(m("exact", "exact") && !m("exact", "exactly") && !m("", "x") && m("", ""));
        assert!(!m("*a*a*a*a*a*b", &"a".repeat(100)));
    }

    #[test]
    fn api_key() {
        let k = ApiKey::new("local-dev-api-key-0123");
        assert!(k.check("local-dev-api-key-0123"));
        assert!(!k.check("local-dev-api-key-0124") && !k.check("") && !k.check("local"));
    }
}
