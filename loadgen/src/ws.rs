//! Minimal RFC 6455 client side: the upgrade handshake, masked frame encoding and a
//! zero-allocation parser for server frames.
//!
//! The parser works on whatever contiguous bytes the caller has read (the worker reads into one
//! 64 KiB buffer per thread) and returns borrowed frames plus how many bytes they used; an
//! incomplete frame at the end stays for the next read. Nothing here touches a socket, so the
//! unit tests drive it with byte literals.

use base64::Engine as _;
use sha1::Digest as _;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One server frame, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Result of trying to parse one frame at the start of `buf`.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<'a> {
    /// A whole frame and the number of bytes it took.
    Frame(Frame<'a>, usize),
    /// Need at least this many bytes in total (header + payload) before it can complete.
    Incomplete(usize),
    /// Protocol violation (masked server frame, reserved bits, oversized control frame).
    Error(&'static str),
}

/// Parses one (unmasked) server frame from the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Parse<'_> {
    if buf.len() < 2 {
        return Parse::Incomplete(2);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Parse::Error("reserved bits set");
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let masked = b1 & 0x80 != 0;
    let (len, mut hdr) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Parse::Incomplete(4);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4usize)
        }
        127 => {
            if buf.len() < 10 {
                return Parse::Incomplete(10);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10usize)
        }
        n => (n as u64, 2usize),
    };
    if opcode >= 0x8 && (len > 125 || !fin) {
        return Parse::Error("invalid control frame");
    }
    if len > (1 << 40) {
        return Parse::Error("frame too large");
    }
    let mut mask = None;
    if masked {
        // Servers must not mask, but tolerate it rather than abort a measurement.
        if buf.len() < hdr + 4 {
            return Parse::Incomplete(hdr + 4);
        }
        mask = Some([buf[hdr], buf[hdr + 1], buf[hdr + 2], buf[hdr + 3]]);
        hdr += 4;
    }
    if mask.is_some() {
        return Parse::Error("masked server frame");
    }
    let total = hdr + len as usize;
    if buf.len() < total {
        return Parse::Incomplete(total);
    }
    Parse::Frame(Frame { fin, opcode, payload: &buf[hdr..total] }, total)
}

/// Appends a masked client frame (FIN set) to `out`; no allocation beyond `out` growing.
pub fn encode_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | (opcode & 0x0F));
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Writes a masked text frame whose payload is produced in place by `fill` (which appends to
/// the vector). Avoids a temporary buffer: the header is patched once the length is known.
pub fn encode_client_text_with(out: &mut Vec<u8>, mask: [u8; 4], fill: impl FnOnce(&mut Vec<u8>)) {
    let frame_start = out.len();
    // Reserve the largest header we expect (16-bit length) + mask; fixed up below.
    out.extend_from_slice(&[0x81, 0x80 | 126, 0, 0]);
    out.extend_from_slice(&mask);
    let payload_start = out.len();
    fill(out);
    let n = out.len() - payload_start;
    for (i, b) in out[payload_start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    if n < 126 {
        // Shrink the header from 8 to 6 bytes.
        out[frame_start + 1] = 0x80 | n as u8;
        out.copy_within(frame_start + 4..frame_start + 8, frame_start + 2);
        out.copy_within(payload_start.., frame_start + 6);
        out.truncate(frame_start + 6 + n);
    } else if n <= u16::MAX as usize {
        out[frame_start + 2..frame_start + 4].copy_from_slice(&(n as u16).to_be_bytes());
    } else {
        // Rare: grow the header to 14 bytes.
        let payload: Vec<u8> = out[payload_start..].to_vec();
        out.truncate(frame_start);
        out.extend_from_slice(&[0x81, 0x80 | 127]);
        out.extend_from_slice(&(n as u64).to_be_bytes());
        out.extend_from_slice(&mask);
        out.extend_from_slice(&payload);
    }
}

/// A parsed `ws://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WsUrl {
    pub fn parse(url: &str) -> anyhow::Result<WsUrl> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow::anyhow!("{url:?}: only ws:// URLs are supported"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rfind(':') {
            Some(i) if !hostport.ends_with(']') => {
                let port = hostport[i + 1..].parse().map_err(|_| anyhow::anyhow!("{url:?}: bad port"))?;
                (&hostport[..i], port)
            }
            _ => (hostport, 80),
        };
        if host.is_empty() {
            anyhow::bail!("{url:?}: missing host");
        }
        Ok(WsUrl { host: host.trim_matches(['[', ']']).to_string(), port, path: path.to_string() })
    }
}

impl WsUrl {
    /// The address of a `ws://HOST:PORT[/…]` server that must be on this machine: the
    /// hostile clients of `abuse` and `soak` refuse anything but a loopback address.
    pub fn loopback_addr(url: &str) -> anyhow::Result<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        let u = WsUrl::parse(url)?;
        let addr = (u.host.as_str(), u.port)
            .to_socket_addrs()?
            .find(|a| a.is_ipv4())
            .ok_or_else(|| anyhow::anyhow!("{url:?}: no IPv4 address"))?;
        if !addr.ip().is_loopback() {
            anyhow::bail!("{url:?} is not a loopback address: abuse and soak only attack this machine");
        }
        Ok(addr)
    }
}

/// Builds the HTTP upgrade request; returns it with the expected `Sec-WebSocket-Accept`.
pub fn handshake_request(url: &WsUrl, key_bytes: [u8; 16]) -> (Vec<u8>, String) {
    let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: shardcast-loadgen\r\n\r\n",
        url.path, url.host, url.port, key
    );
    (req.into_bytes(), accept_key(&key))
}

/// `base64(sha1(key + GUID))`, RFC 6455 §4.2.2.
pub fn accept_key(key: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Outcome of parsing the handshake response.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Upgraded; the response header took this many bytes (frames may follow).
    Done(usize),
    Incomplete,
    Failed(String),
}

pub fn parse_handshake_response(buf: &[u8], expected_accept: &str) -> Handshake {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Partial) => Handshake::Incomplete,
        Err(e) => Handshake::Failed(format!("bad HTTP response: {e}")),
        Ok(httparse::Status::Complete(n)) => {
            let code = resp.code.unwrap_or(0);
            if code != 101 {
                return Handshake::Failed(format!(
                    "HTTP {} {} (expected 101 Switching Protocols)",
                    code,
                    resp.reason.unwrap_or("")
                ));
            }
            let accept = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                .map(|h| h.value);
            if accept != Some(expected_accept.as_bytes()) {
                return Handshake::Failed("bad Sec-WebSocket-Accept".into());
            }
            Handshake::Done(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(p: Parse<'_>) -> (Frame<'_>, usize) {
        match p {
            Parse::Frame(f, n) => (f, n),
            other => panic!("expected frame, got {other:?}"),
        }
    }

    #[test]
    fn small_text_frame() {
        let buf = b"\x81\x05hello\x81\x02hi";
        let (f, n) = frame(parse_frame(buf));
        assert_eq!((f.fin, f.opcode, f.payload, n), (true, OP_TEXT, &b"hello"[..], 7));
        let (f, n) = frame(parse_frame(&buf[7..]));
        assert_eq!((f.payload, n), (&b"hi"[..], 4));
    }

    #[test]
    fn split_frames_report_incomplete() {
        let buf = b"\x81\x05hello";
        for cut in 0..buf.len() {
            match parse_frame(&buf[..cut]) {
                Parse::Incomplete(need) => assert!(need > cut && need <= buf.len()),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(matches!(parse_frame(buf), Parse::Frame(_, 7)));
    }

    #[test]
    fn extended_16_bit_length() {
        let mut buf = vec![0x81, 126, 0x01, 0x00]; // 256 bytes
        buf.extend(std::iter::repeat_n(b'a', 256));
        assert_eq!(parse_frame(&buf[..3]), Parse::Incomplete(4));
        assert_eq!(parse_frame(&buf[..100]), Parse::Incomplete(260));
        let (f, n) = frame(parse_frame(&buf));
        assert_eq!((f.payload.len(), n), (256, 260));
    }

    #[test]
    fn extended_64_bit_length() {
        let mut buf = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]; // 65536 bytes
        buf.extend(std::iter::repeat_n(7u8, 65536));
        assert_eq!(parse_frame(&buf[..9]), Parse::Incomplete(10));
        assert_eq!(parse_frame(&buf[..10]), Parse::Incomplete(65546));
        let (f, n) = frame(parse_frame(&buf));
        assert_eq!((f.opcode, f.payload.len(), n), (OP_BINARY, 65536, 65546));
    }

    #[test]
    fn control_frames_and_errors() {
        let (f, _) = frame(parse_frame(b"\x89\x02ab"));
        assert_eq!((f.opcode, f.payload), (OP_PING, &b"ab"[..]));
        let (f, _) = frame(parse_frame(b"\x88\x02\x03\xe8"));
        assert_eq!(f.opcode, OP_CLOSE);
        assert!(matches!(parse_frame(b"\x09\x00"), Parse::Error(_))); // fragmented control
        assert!(matches!(parse_frame(b"\xc1\x00"), Parse::Error(_))); // RSV1
        assert!(matches!(parse_frame(b"\x81\x81abcdx"), Parse::Error(_))); // masked
        let (f, _) = frame(parse_frame(b"\x01\x02ab"));
        assert!(!f.fin);
    }

    #[test]
    fn masked_client_frame_encode() {
        // RFC 6455 §5.7: masked "Hello".
        let mut out = Vec::new();
        encode_client_frame(&mut out, OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(out, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
        let mut out2 = Vec::new();
        encode_client_text_with(&mut out2, [0x37, 0xfa, 0x21, 0x3d], |v| v.extend_from_slice(b"Hello"));
        assert_eq!(out2, out);
    }

    #[test]
    fn masked_encode_lengths() {
        for n in [0usize, 125, 126, 300, 65535, 65536] {
            let payload = vec![b'x'; n];
            let mut a = Vec::new();
            encode_client_frame(&mut a, OP_TEXT, &payload, [1, 2, 3, 4]);
            let mut b = vec![9u8]; // existing content must be kept
            encode_client_text_with(&mut b, [1, 2, 3, 4], |v| v.extend_from_slice(&payload));
            assert_eq!(&b[1..], &a[..], "n={n}");
            let hdr = match n {
                0..=125 => 6,
                126..=65535 => 8,
                _ => 14,
            };
            assert_eq!(a.len(), hdr + n);
            // Unmask and compare.
            let un: Vec<u8> = a[hdr..].iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i & 3]).collect();
            assert_eq!(un, payload);
        }
    }

    #[test]
    fn handshake() {
        // RFC 6455 §1.3 example key.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let url = WsUrl::parse("ws://127.0.0.1:8000/ws/room/1/").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("127.0.0.1", 8000, "/ws/room/1/"));
        let (req, accept) = handshake_request(&url, [0; 16]);
        assert!(req.starts_with(b"GET /ws/room/1/ HTTP/1.1\r\n"));
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n\x01\x00"
        );
        let n = resp.len() - 2;
        assert_eq!(parse_handshake_response(&resp.as_bytes()[..20], &accept), Handshake::Incomplete);
        assert_eq!(parse_handshake_response(resp.as_bytes(), &accept), Handshake::Done(n));
        assert!(matches!(
            parse_handshake_response(b"HTTP/1.1 404 Not Found\r\n\r\n", &accept),
            Handshake::Failed(_)
        ));
        assert!(WsUrl::parse("http://x").is_err());
        assert_eq!(WsUrl::loopback_addr("ws://127.0.0.1:9/ws").unwrap().port(), 9);
        assert!(WsUrl::loopback_addr("ws://10.1.2.3:9").is_err());
        assert_eq!(WsUrl::parse("ws://localhost/ws").unwrap().port, 80);
    }
}
