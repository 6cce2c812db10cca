//! HTTP/1.1 request heads and responses, without I/O.
//!
//! The listener reads bytes, calls [`parse_request`] until it returns a head, then either
//! upgrades to WebSocket ([`websocket_upgrade`]) or serves the small HTTP API. Heads are capped
//! at 16 KiB and 64 headers: a client that never finishes its head must not make us buffer
//! without bound (the handshake timeout covers the slow-drip case).

/// Largest accepted request head (request line + headers).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than 16 KiB or more than 64 headers")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
    #[error("unsupported WebSocket version; use 13")]
    UnsupportedVersion,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::TooLarge => 431,
            HttpError::Malformed(_) | HttpError::BadHandshake(_) => 400,
            HttpError::UnsupportedVersion => 426,
        }
    }

    /// The complete error response to send before closing the connection.
    pub fn to_response(&self) -> Vec<u8> {
        let code = match self {
            HttpError::TooLarge => "too_large",
            HttpError::Malformed(_) => "bad_request",
            HttpError::BadHandshake(_) => "bad_handshake",
            HttpError::UnsupportedVersion => "unsupported_version",
        };
        let mut resp = error_json(self.status(), code, &self.to_string(), Conn::Close);
        if let HttpError::UnsupportedVersion = self {
            // RFC 6455 §4.4: tell the client which version we speak.
            let at = resp.windows(2).position(|w| w == b"\r\n").expect("status line") + 2;
            resp.splice(at..at, b"Sec-WebSocket-Version: 13\r\n".iter().copied());
        }
        resp
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path without the query string, as sent (not percent-decoded).
    pub path: String,
    /// Query parameters, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// Headers with lowercase names, in order.
    pub headers: Vec<(String, String)>,
    pub content_length: Option<usize>,
    /// HTTP minor version: 0 or 1.
    pub version: u8,
}

impl Request {
    /// First header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer_token(&self) -> Option<&str> {
        let v = self.header("authorization")?.trim();
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }

    /// HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0 closes unless asked.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("");
        if self.version == 0 {
            has_token(conn, "keep-alive")
        } else {
            !has_token(conn, "close")
        }
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Parses a request head. `Ok(None)`: incomplete, read more. On success also returns the
/// head's length; a body (if any) starts there.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooLarge),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let target = req.path.unwrap_or("/");
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    let query = qs
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_owned()))
        .collect();
    let mut content_length = None;
    for (k, v) in &headers {
        if k == "content-length" {
            let n = v.parse().map_err(|_| HttpError::Malformed("bad Content-Length".into()))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::Malformed("conflicting Content-Length".into()));
            }
            content_length = Some(n);
        } else if k == "transfer-encoding" {
            // Request smuggling guard: we never read chunked bodies, so refuse them.
            return Err(HttpError::Malformed("Transfer-Encoding is not supported".into()));
        }
    }
    let request = Request {
        method: req.method.unwrap_or("").to_owned(),
        path: path.to_owned(),
        query,
        headers,
        content_length,
        version: req.version.unwrap_or(1),
    };
    Ok(Some((request, len)))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: &u8| (*c as char).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        let pair = (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex));
        match (b[i], pair) {
            (b'%', (Some(h), Some(l))) => {
                out.push(h * 16 + l);
                i += 2;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a WebSocket upgrade request. `Ok(None)`: not an upgrade attempt (no `Upgrade:
/// websocket`), serve it as plain HTTP. `Ok(Some(accept))`: the `Sec-WebSocket-Accept` value.
pub fn websocket_upgrade(req: &Request) -> Result<Option<String>, HttpError> {
    if !req.header("upgrade").is_some_and(|u| has_token(u, "websocket")) {
        return Ok(None);
    }
    if req.method != "GET" {
        return Err(HttpError::BadHandshake("method must be GET"));
    }
    if !req.header("connection").is_some_and(|c| has_token(c, "upgrade")) {
        return Err(HttpError::BadHandshake("Connection header must contain upgrade"));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(HttpError::UnsupportedVersion);
    }
    use base64::Engine;
    let key = req.header("sec-websocket-key").ok_or(HttpError::BadHandshake("missing Sec-WebSocket-Key"))?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(k) if k.len() == 16 => {}
        _ => return Err(HttpError::BadHandshake("Sec-WebSocket-Key must be 16 bytes, base64")),
    }
    Ok(Some(tungstenite::handshake::derive_accept_key(key.as_bytes())))
}

/// Whether the connection stays open after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    KeepAlive,
    Close,
}

pub fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

pub fn response(status: u16, content_type: &str, body: &[u8], conn: Conn) -> Vec<u8> {
    response_with(status, content_type, "", body, conn)
}

/// [`response`] with `extra` header lines (each ending in CRLF).
fn response_with(status: u16, content_type: &str, extra: &str, body: &[u8], conn: Conn) -> Vec<u8> {
    let conn = if conn == Conn::KeepAlive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {conn}\r\nCache-Control: no-store\r\n{extra}\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn json(status: u16, body: &[u8], conn: Conn) -> Vec<u8> {
    response(status, "application/json", body, conn)
}

/// `{"error":{"code":..,"message":..}}` — the same error shape as the WebSocket `error` op.
pub fn error_json(status: u16, code: &str, message: &str, conn: Conn) -> Vec<u8> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    json(status, body.to_string().as_bytes(), conn)
}

/// 429 `rate_limited` with `Retry-After: 1`: the token bucket refills continuously, so a
/// second is always enough for at least one more request.
pub fn rate_limited(message: &str, conn: Conn) -> Vec<u8> {
    let body = serde_json::json!({ "error": { "code": "rate_limited", "message": message } });
    response_with(429, "application/json", "Retry-After: 1\r\n", body.to_string().as_bytes(), conn)
}

pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /ws?token=a%2Eb+c&room=fleet%3Ademo HTTP/1.1\r\nHost: x\r\n\
        Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nrest";

    fn req(b: &[u8]) -> Request {
        parse_request(b).unwrap().unwrap().0
    }

    #[test]
    fn parses_head_and_query() {
        let (r, n) = parse_request(UPGRADE).unwrap().unwrap();
        assert_eq!(&UPGRADE[n..], b"rest");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/ws"));
        assert_eq!(r.query_param("token"), Some("a.b c"));
        assert_eq!(r.query_param("room"), Some("fleet:demo"));
        assert_eq!(r.header("SEC-WEBSOCKET-VERSION"), Some("13"));
        assert!(r.headers.iter().all(|(k, _)| k.chars().all(|c| !c.is_ascii_uppercase())));
        assert!(r.keep_alive());
    }

    #[test]
    fn incomplete_and_split_heads() {
        for cut in [0, 1, 10, UPGRADE.len() - 8] {
            assert_eq!(parse_request(&UPGRADE[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn limits_and_garbage() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse_request(&big), Err(HttpError::TooLarge));
        let many: String = (0..70).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_request(many.as_bytes()), Err(HttpError::TooLarge));
        assert!(matches!(parse_request(b"\x00\x01 / HTTP/1.1\r\n\r\n"), Err(HttpError::Malformed(_))));
        let te = b"POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_request(te), Err(HttpError::Malformed(_))));
        let cl = req(b"POST /api/publish HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(cl.content_length, Some(12));
        assert!(parse_request(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn bearer_and_keep_alive() {
        let r = req(b"GET / HTTP/1.0\r\nAuthorization: Bearer  abc.def \r\n\r\n");
        assert_eq!(r.bearer_token(), Some("abc.def"));
        assert!(!r.keep_alive());
        let r = req(b"GET / HTTP/1.1\r\nAuthorization: Basic eDp5\r\nConnection: close\r\n\r\n");
        assert_eq!(r.bearer_token(), None);
        assert!(!r.keep_alive());
    }

    #[test]
    fn websocket_handshake() {
        // RFC 6455 §1.3 sample key and accept value.
        let accept = websocket_upgrade(&req(UPGRADE)).unwrap().unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            switching_protocols(&accept),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert_eq!(websocket_upgrade(&req(b"GET / HTTP/1.1\r\n\r\n")), Ok(None));
        let with = |from: &str, to: &str| {
            let s = String::from_utf8_lossy(UPGRADE).replace(from, to);
            websocket_upgrade(&req(s.as_bytes()))
        };
        assert_eq!(with("Version: 13", "Version: 8"), Err(HttpError::UnsupportedVersion));
        assert!(matches!(with("GET", "POST"), Err(HttpError::BadHandshake(_))));
        assert!(matches!(with("keep-alive, Upgrade", "keep-alive"), Err(HttpError::BadHandshake(_))));
        assert!(matches!(with("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), Err(HttpError::BadHandshake(_))));
        let resp = HttpError::UnsupportedVersion.to_response();
        assert!(resp.starts_with(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn responses() {
        assert_eq!(
            response(200, "text/plain", b"hi", Conn::KeepAlive),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
              Connection: keep-alive\r\nCache-Control: no-store\r\n\r\nhi"
        );
        let e = error_json(403, "forbidden", "no \"publish\" right", Conn::Close);
        let text = String::from_utf8(e).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n") && text.contains("Connection: close\r\n"));
        assert!(text.ends_with(r#"{"error":{"code":"forbidden","message":"no \"publish\" right"}}"#));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%3a%3A+c"), "a b:: c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%BC"), "ü");
    }
}
