//! HTTP/1.1 client pieces for backend publishing (`POST /api/publish`) over keep-alive,
//! pipelined connections: request encoding and an incremental response splitter.
//!
//! Pipelining keeps the publisher open-loop: requests go out on schedule whatever the server
//! does, and responses come back in request order (HTTP/1.1 §9.3.2), so a FIFO of what was
//! sent is enough to know which request each response answers.

use std::io::Write as _;

/// Appends `POST /api/publish` with body `{"room":<room>,"data":<data>}`; `data` must append
/// one JSON value. `scratch` is reused for the body so the length is known before the head.
pub fn encode_publish(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    host: &str,
    room: &str,
    data: impl FnOnce(&mut Vec<u8>),
) {
    scratch.clear();
    let _ = write!(scratch, "{{\"room\":\"{room}\",\"data\":");
    data(scratch);
    scratch.push(b'}');
    let _ = write!(
        out,
        "POST /api/publish HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        scratch.len()
    );
    out.extend_from_slice(scratch);
}

/// One complete response at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
    /// Bytes the whole response took.
    pub len: usize,
    /// The server said `Connection: close`: nothing more will come on this connection.
    pub close: bool,
}

/// Result of looking for one response at the start of `buf`.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    Done(Response<'a>),
    Incomplete,
    /// Not a response this client can frame (bad head, or no `Content-Length`).
    Error(String),
}

/// Splits one response off the start of `buf`. Only `Content-Length` framing is supported,
/// which is all shardcast sends; anything else is an error rather than a guess.
pub fn parse_response(buf: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Partial) => return Parsed::Incomplete,
        Ok(httparse::Status::Complete(n)) => n,
        Err(e) => return Parsed::Error(format!("bad HTTP response: {e}")),
    };
    let mut length = None;
    let mut close = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let Some(length) = length else {
        return Parsed::Error("HTTP response without Content-Length".into());
    };
    if buf.len() < head + length {
        return Parsed::Incomplete;
    }
    Parsed::Done(Response {
        status: resp.code.unwrap_or(0),
        body: &buf[head..head + length],
        len: head + length,
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_request() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        encode_publish(&mut out, &mut scratch, "127.0.0.1:8080", "a:b", |v| {
            v.extend_from_slice(b"{\"x\":1}")
        });
        let text = String::from_utf8(out).unwrap();
        let body = r#"{"room":"a:b","data":{"x":1}}"#;
        assert!(text.starts_with("POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"), "{text}");
        assert!(text.contains(&format!("Content-Length: {}\r\n\r\n", body.len())), "{text}");
        assert!(text.ends_with(body));
    }

    #[test]
    fn pipelined_responses() {
        let one =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"seq\":1}";
        let two = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let mut buf = one.to_vec();
        buf.extend_from_slice(two);
        let Parsed::Done(r) = parse_response(&buf) else { panic!() };
        assert_eq!((r.status, r.body, r.len, r.close), (200, &b"{\"seq\":1}"[..], one.len(), false));
        let Parsed::Done(r) = parse_response(&buf[one.len()..]) else { panic!() };
        assert_eq!((r.status, r.close), (429, true));
        for cut in 0..one.len() {
            assert_eq!(parse_response(&one[..cut]), Parsed::Incomplete, "cut {cut}");
        }
        assert!(matches!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n"), Parsed::Error(_)));
        assert!(matches!(parse_response(b"garbage\r\n\r\n"), Parsed::Error(_)));
    }
}
