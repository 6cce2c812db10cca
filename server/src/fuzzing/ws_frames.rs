//! `ws_frames`: the inbound WebSocket path of a session — tungstenite's server-side
//! `WebSocketContext` with the session's own [`ws_config`], fed the client's bytes in
//! fuzzer-chosen pieces through the same kind of `Read`/`Write` adapter `ws.rs` uses.
//!
//! Input: one byte picks `max_frame` (128 B + 8 B steps, so the limit is reachable), one
//! byte the number of piece sizes (0–7; 0 = everything in one read), those sizes (1–256
//! bytes each, cycled), then the stream.
//!
//! tungstenite does not latch errors: after one, `read` goes on decoding the bytes that
//! follow. So the session must stop at the first error (it closes with a code), and the
//! harness decodes the same way; it asserts that nothing is returned after an error or
//! after a Close, that every message respects `max_frame`, that text is UTF-8, and that what
//! tungstenite writes back (pong, close replies) is unmasked, final control frames.

use std::io;
use tungstenite::error::Error as WsError;
use tungstenite::protocol::{Role, WebSocketContext};
use tungstenite::Message;

use super::Input;
use crate::wsconfig::{ws_config, Feed};

pub fn ws_frames(data: &[u8]) {
    let mut u = Input::new(data);
    let max_frame = 128 + 8 * u.byte() as usize;
    let sizes: Vec<usize> = (0..u.below(8)).map(|_| 1 + u.byte() as usize).collect();
    let mut stream = u.rest();
    let mut ws = WebSocketContext::new(Role::Server, Some(ws_config(max_frame)));
    let (mut failed, mut closed) = (None::<String>, false);
    for size in sizes.iter().copied().cycle().chain(std::iter::once(usize::MAX)) {
        if stream.is_empty() || failed.is_some() {
            break;
        }
        let (piece, rest) = stream.split_at(size.min(stream.len()));
        stream = rest;
        let mut feed = Feed { input: piece, output: Vec::new() };
        loop {
            match ws.read(&mut feed) {
                Ok(m) => {
                    assert!(failed.is_none() && !closed, "{m:?} after an error or a Close");
                    closed = matches!(m, Message::Close(_));
                    check_message(&m, max_frame);
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => break,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        check_replies(&feed.output);
    }
}

fn check_message(m: &Message, max_frame: usize) {
    match m {
        Message::Text(t) => {
            assert!(t.len() <= max_frame, "text of {} bytes > {max_frame}", t.len());
            assert!(std::str::from_utf8(t.as_bytes()).is_ok());
        }
        Message::Binary(b) => assert!(b.len() <= max_frame, "binary of {} bytes > {max_frame}", b.len()),
        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125, "control payload of {}", p.len()),
        Message::Close(c) => {
            if let Some(c) = c {
                // The session echoes this code in its own close frame: it must be one an
                // endpoint may send (RFC 6455 §7.4).
                let code = u16::from(c.code);
                let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
                assert!(sendable, "close code {code} may not be echoed");
                assert!(c.reason.len() <= 123);
            }
        }
        Message::Frame(_) => panic!("read never returns raw frames"),
    }
}

/// What tungstenite wrote: server frames are final and unmasked, and here only pongs and
/// close replies of at most 125 bytes.
fn check_replies(mut out: &[u8]) {
    while !out.is_empty() {
        assert!(out.len() >= 2, "truncated reply frame");
        let (b0, b1) = (out[0], out[1]);
        assert!(b0 & 0x80 != 0 && b0 & 0x70 == 0, "reply frame head {b0:#x}");
        assert!(matches!(b0 & 0x0F, 0x8 | 0xA), "reply opcode {:#x}", b0 & 0x0F);
        assert!(b1 & 0x80 == 0, "a server frame must not be masked");
        let len = (b1 & 0x7F) as usize;
        assert!(len <= 125 && out.len() >= 2 + len, "reply frame length {len}");
        out = &out[2 + len..];
    }
}
