//! `ws_frames`: the inbound WebSocket path of a session — the session's own decoder
//! ([`crate::wsframe::Decoder`]) fed the client's bytes in fuzzer-chosen pieces — checked
//! against tungstenite's server-side `WebSocketContext` as the reference.
//!
//! Input: one byte picks `max_frame` (128 B + 8 B steps, so the limit is reachable), one
//! byte the number of piece sizes (0–7; 0 = everything in one read), those sizes (1–256
//! bytes each, cycled), then the stream.
//!
//! Both stop at their first error or Close (the session closes there). Asserted: every
//! message respects `max_frame`, text is UTF-8, a close code is one an endpoint may echo;
//! the decoder's messages are a prefix of tungstenite's; if the decoder accepts the whole
//! stream, tungstenite accepts it too, with the same messages; if tungstenite fails, the
//! decoder fails too. (The decoder may fail earlier than tungstenite — on a header, before
//! the payload arrives.)

use std::io;
use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::{Role, WebSocketContext};
use tungstenite::Message;

use super::Input;
use crate::wsconfig::{ws_config, Feed};
use crate::wsframe::{Decoder, WsMessage};

pub fn ws_frames(data: &[u8]) {
    let mut u = Input::new(data);
    let max_frame = 128 + 8 * u.byte() as usize;
    let sizes: Vec<usize> = (0..u.below(8)).map(|_| 1 + u.byte() as usize).collect();
    let stream = u.rest();
    let (ours, our_err) = decode_ours(stream, &sizes, max_frame);
    let (theirs, their_err) = decode_tungstenite(stream, &sizes, max_frame);
    for m in &ours {
        check_message(m, max_frame);
    }
    assert!(
        ours.len() <= theirs.len() && ours[..] == theirs[..ours.len()],
        "ours {ours:?}\ntheirs {theirs:?}"
    );
    match (our_err, their_err) {
        (None, None) => assert_eq!(ours, theirs),
        (None, Some(e)) => panic!("tungstenite failed (close {e}) where the decoder did not: {ours:?}"),
        // The decoder may fail first (on a header, before the payload tungstenite waits
        // for), and with another code when a frame breaks two rules checked in another
        // order (an oversized unmasked frame: 1002 here, 1009 there).
        (Some(_), _) => {}
    }
}

/// The session's decoder over the pieces: its messages up to the first Close, and the
/// close code of its error, if any.
fn decode_ours(mut stream: &[u8], sizes: &[usize], max_frame: usize) -> (Vec<WsMessage>, Option<u16>) {
    let mut d = Decoder::new(max_frame);
    let mut out = Vec::new();
    for size in sizes.iter().copied().cycle().chain(std::iter::once(usize::MAX)) {
        if stream.is_empty() || d.is_done() {
            break;
        }
        let (piece, rest) = stream.split_at(size.min(stream.len()));
        stream = rest;
        if let Err(e) = d.feed(piece, &mut out) {
            return (out, Some(e.close_code()));
        }
    }
    (out, None)
}

/// The same with tungstenite; its messages converted, and what it writes back checked.
fn decode_tungstenite(mut stream: &[u8], sizes: &[usize], max_frame: usize) -> (Vec<WsMessage>, Option<u16>) {
    let mut ws = WebSocketContext::new(Role::Server, Some(ws_config(max_frame)));
    let mut out = Vec::new();
    for size in sizes.iter().copied().cycle().chain(std::iter::once(usize::MAX)) {
        if stream.is_empty() {
            break;
        }
        let (piece, rest) = stream.split_at(size.min(stream.len()));
        stream = rest;
        let mut feed = Feed { input: piece, output: Vec::new() };
        loop {
            match ws.read(&mut feed) {
                Ok(Message::Frame(_)) => panic!("read never returns raw frames"),
                Ok(m) => {
                    let close = matches!(m, Message::Close(_));
                    out.push(convert(m));
                    if close {
                        return (out, None);
                    }
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => break,
                Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => return (out, Some(1009)),
                Err(WsError::Utf8(_)) => return (out, Some(1007)),
                Err(_) => return (out, Some(1002)),
            }
        }
        check_replies(&feed.output);
    }
    (out, None)
}

fn convert(m: Message) -> WsMessage {
    match m {
        Message::Text(t) => WsMessage::Text(t.as_bytes().to_vec()),
        Message::Binary(b) => WsMessage::Binary(b.to_vec()),
        Message::Ping(p) => WsMessage::Ping(p.to_vec()),
        Message::Pong(p) => WsMessage::Pong(p.to_vec()),
        Message::Close(c) => WsMessage::Close(c.map(|c| (u16::from(c.code), c.reason.as_str().to_owned()))),
        Message::Frame(_) => unreachable!("filtered by the caller"),
    }
}

fn check_message(m: &WsMessage, max_frame: usize) {
    match m {
        WsMessage::Text(t) => {
            assert!(t.len() <= max_frame, "text of {} bytes > {max_frame}", t.len());
            assert!(std::str::from_utf8(t).is_ok());
        }
        WsMessage::Binary(b) => assert!(b.len() <= max_frame, "binary of {} bytes > {max_frame}", b.len()),
        WsMessage::Ping(p) | WsMessage::Pong(p) => assert!(p.len() <= 125, "control payload of {}", p.len()),
        WsMessage::Close(c) => {
            if let Some((code, reason)) = c {
                // The session echoes this code in its own close frame: it must be one an
                // endpoint may send (RFC 6455 §7.4).
                let sendable = matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999);
                assert!(sendable, "close code {code} may not be echoed");
                assert!(reason.len() <= 123);
            }
        }
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
