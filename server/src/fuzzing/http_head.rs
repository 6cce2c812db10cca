//! `http_head`: request heads as a client (or an attacker) sends them, split the way a
//! socket may deliver them.
//!
//! Input: two bytes (little-endian) choose where the first read ends; the rest is the bytes
//! on the wire. The listener parses its buffer after every read, so a head must not depend
//! on how it was split: a complete head parsed from a prefix is the one parsed from the
//! whole, and a prefix rejected is a whole rejected.

use super::Input;
use crate::http::{parse_request, websocket_upgrade, HttpError, Request, MAX_HEAD};
use crate::protocol;

type Parsed = Result<Option<(Request, usize)>, HttpError>;

pub fn http_head(data: &[u8]) {
    let mut u = Input::new(data);
    let cut = u.u16() as usize;
    let buf = u.rest();
    let whole = parse_request(buf);
    check(buf, &whole);
    let cut = cut % (buf.len() + 1);
    let prefix = parse_request(&buf[..cut]);
    check(&buf[..cut], &prefix);
    match (&prefix, &whole) {
        (Ok(Some(p)), w) => assert_eq!(w, &Ok(Some(p.clone())), "a head complete after {cut} bytes changed"),
        (Err(e), Ok(w)) => panic!("the first {cut} bytes are refused ({e}) but all of them parse: {w:?}"),
        _ => {}
    }
    // Keep-alive: the next head starts after this one's body.
    let mut rest = buf;
    for _ in 0..8 {
        let Ok(Some((req, n))) = parse_request(rest) else { break };
        let Some(next) = rest.get(n + req.content_length.unwrap_or(0)..) else { break };
        rest = next;
        check(rest, &parse_request(rest));
    }
}

fn check(buf: &[u8], parsed: &Parsed) {
    match parsed {
        Ok(None) => assert!(buf.len() < MAX_HEAD, "{} bytes still incomplete", buf.len()),
        Err(e) => check_error(e),
        Ok(Some((req, n))) => {
            assert!(*n <= buf.len() && *n <= MAX_HEAD, "head length {n} of {}", buf.len());
            assert!(buf[..*n].ends_with(b"\n"), "a head ends with its empty line");
            assert_eq!(&parse_request(&buf[..*n]), parsed, "the head alone parses differently");
            check_request(req);
        }
    }
}

fn check_error(e: &HttpError) {
    let resp = e.to_response();
    let status = format!("HTTP/1.1 {} ", e.status());
    assert!(resp.starts_with(status.as_bytes()), "{e:?}: response {:?}", String::from_utf8_lossy(&resp));
    let text = String::from_utf8(resp).expect("responses are UTF-8");
    let (head, _) = text.split_once("\r\n\r\n").expect("a complete response head");
    assert!(head.contains("\r\nConnection: close"), "an error closes the connection");
}

fn check_request(req: &Request) {
    assert!(req.version <= 1);
    assert!(!req.path.contains('?'), "query left in the path {:?}", req.path);
    assert!(req.headers.len() <= 64);
    for (k, v) in &req.headers {
        assert!(!k.bytes().any(|b| b.is_ascii_uppercase()), "header name {k:?} not lower-cased");
        assert_eq!(v.trim(), v, "header value not trimmed");
        assert!(k != "transfer-encoding", "Transfer-Encoding must be refused");
    }
    if let Some(len) = req.content_length {
        assert!(req.headers.iter().any(|(k, v)| k == "content-length" && v.parse() == Ok(len)));
    }
    if let Some(t) = req.bearer_token() {
        assert!(!t.is_empty() && t.trim() == t);
    }
    let _ = (req.keep_alive(), req.query_param("token"));
    match websocket_upgrade(req) {
        Ok(None) => {}
        Err(e) => check_error(&e),
        Ok(Some(accept)) => {
            assert_eq!(req.method, "GET");
            assert_eq!(req.header("sec-websocket-version"), Some("13"));
            assert!(req.header("connection").is_some_and(|c| c.to_ascii_lowercase().contains("upgrade")));
            assert_eq!(accept.len(), 28, "base64 of a SHA-1: {accept:?}");
            assert!(!crate::http::switching_protocols(&accept).is_empty());
            // What `conn::upgrade` does with the path.
            if let Some(room) = req.path.strip_prefix("/ws/").filter(|r| !r.is_empty()) {
                if let Ok(r) = protocol::room_from_path(&req.path) {
                    assert!(protocol::validate_room(&r).is_ok() && room.starts_with(&r));
                }
            }
        }
    }
}
