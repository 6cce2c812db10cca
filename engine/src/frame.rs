//! Server-to-client WebSocket frame encoding (RFC 6455 §5.2), done once per message.
//!
//! Frames the server sends are never masked, so a frame is just a 2/4/10-byte header followed
//! by the payload. [`fmt_head`] writes that header (the fastwebsockets `Frame::fmt_head` idea);
//! [`text_frame`] builds header + payload into one [`Bytes`] that every subscriber then shares by
//! reference count. Nothing here touches a socket.

use bytes::{BufMut, Bytes, BytesMut};

/// Largest header a server frame can need: 2 bytes + 8-byte extended length.
pub const MAX_HEAD: usize = 10;

/// Opcode of a text frame (RFC 6455 §5.2).
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;

/// Writes the header of a final, unmasked frame with `opcode` and `len` payload bytes into
/// `out` and returns how many bytes it wrote (2, 4 or 10).
#[inline]
pub fn fmt_head(out: &mut [u8; MAX_HEAD], opcode: u8, len: usize) -> usize {
    out[0] = 0x80 | (opcode & 0x0F);
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len < 65536 {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Length of the header [`fmt_head`] writes for a payload of `len` bytes.
#[inline]
pub fn head_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len < 65536 {
        4
    } else {
        10
    }
}

/// Builds a complete frame from payload pieces written back to back, with a single
/// allocation sized exactly: the pieces are how an envelope is assembled without an
/// intermediate `String`.
pub fn frame_from_parts(opcode: u8, parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut head = [0u8; MAX_HEAD];
    let n = fmt_head(&mut head, opcode, len);
    let mut buf = BytesMut::with_capacity(n + len);
    buf.put_slice(&head[..n]);
    for p in parts {
        buf.put_slice(p);
    }
    buf.freeze()
}

/// A complete text frame carrying `payload`.
pub fn text_frame(payload: &[u8]) -> Bytes {
    frame_from_parts(OP_TEXT, &[payload])
}

/// A close frame with a status code and a reason. The reason is truncated so the control
/// frame stays within the 125-byte limit of RFC 6455 §5.5.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut r = reason.as_bytes();
    if r.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        r = &r[..end];
    }
    frame_from_parts(OP_CLOSE, &[&code.to_be_bytes(), r])
}

/// A pong frame echoing a ping's payload (at most 125 bytes, per RFC 6455 §5.5).
pub fn pong_frame(payload: &[u8]) -> Bytes {
    frame_from_parts(OP_PONG, &[&payload[..payload.len().min(125)]])
}

/// A ping frame; the server sends these to detect dead peers.
pub fn ping_frame(payload: &[u8]) -> Bytes {
    frame_from_parts(OP_PING, &[&payload[..payload.len().min(125)]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tungstenite::protocol::{Role, WebSocketConfig};
    use tungstenite::{Message, WebSocket};

    /// Decodes `frame` with tungstenite acting as a client, the way a real peer would.
    fn decode(frame: &[u8]) -> Message {
        let mut cfg = WebSocketConfig::default();
        cfg.max_message_size = Some(4 << 20);
        cfg.max_frame_size = Some(4 << 20);
        let mut ws = WebSocket::from_raw_socket(Cursor::new(frame.to_vec()), Role::Client, Some(cfg));
        ws.read().expect("tungstenite decodes our frame")
    }

    #[test]
    fn headers_for_each_length_form() {
        let mut h = [0u8; MAX_HEAD];
        assert_eq!(fmt_head(&mut h, OP_TEXT, 0), 2);
        assert_eq!(&h[..2], &[0x81, 0]);
        assert_eq!(fmt_head(&mut h, OP_TEXT, 125), 2);
        assert_eq!(&h[..2], &[0x81, 125]);
        assert_eq!(fmt_head(&mut h, OP_TEXT, 126), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0, 126]);
        assert_eq!(fmt_head(&mut h, OP_TEXT, 65535), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0xff, 0xff]);
        assert_eq!(fmt_head(&mut h, OP_TEXT, 65536), 10);
        assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for len in [0, 125, 126, 65535, 65536, 1 << 20] {
            assert_eq!(head_len(len), fmt_head(&mut h, OP_TEXT, len));
        }
    }

    #[test]
    fn tungstenite_decodes_every_size() {
        for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
            let payload: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let frame = text_frame(payload.as_bytes());
            assert_eq!(frame.len(), head_len(len) + len);
            match decode(&frame) {
                Message::Text(t) => assert_eq!(t.as_str(), payload, "len {len}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn close_frame_decodes_with_code_and_reason() {
        let f = close_frame(1008, "slow consumer");
        match decode(&f) {
            Message::Close(Some(c)) => {
                assert_eq!(u16::from(c.code), 1008);
                assert_eq!(c.reason.as_str(), "slow consumer");
            }
            other => panic!("unexpected {other:?}"),
        }
        let long = "é".repeat(100);
        assert!(close_frame(1000, &long).len() <= 2 + 125);
    }

    #[test]
    fn pong_and_ping_are_control_frames() {
        assert_eq!(&pong_frame(b"x")[..], &[0x8A, 1, b'x']);
        assert_eq!(&ping_frame(b"")[..], &[0x89, 0]);
    }
}
