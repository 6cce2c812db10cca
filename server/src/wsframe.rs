//! The inbound half of RFC 6455 for a server: client frames in, whole messages out,
//! sans-I/O (the session feeds it what it read; the `ws_frames` fuzz target feeds it
//! fuzzer-chosen pieces and checks it against tungstenite).
//!
//! Why not tungstenite's `WebSocketContext` any more: it keeps a 256-byte context and a
//! read buffer in every session for as long as the session lives, idle or not, and a buffer
//! grown for one large frame stays shared with that allocation. This decoder holds a few
//! dozen bytes between frames and no heap at all unless a frame or fragmented message is
//! incomplete; the buffer of a finished message leaves with the message.
//!
//! What it enforces (each a [`WsError`], which the session turns into a close code):
//! client frames masked, RSV bits zero, known opcodes, control frames final and ≤ 125
//! bytes, continuation only inside a fragmented message and no new data message inside
//! one, a 64-bit length with its top bit clear, frame and message sizes ≤ `max` (checked on
//! the header, before any payload is buffered), text valid UTF-8 (a fragmented text
//! message is checked as its fragments arrive, so an invalid prefix fails early), close
//! payloads of 0 or ≥ 2 bytes with a UTF-8 reason. A close code a peer may not send
//! (below 1000, 1004–1006, 1014–2999, 5000 and above) is reported as 1002, as
//! tungstenite does.
//!
//! Invariant: after an error or a Close the decoder yields nothing more.

use thiserror::Error;

/// A decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer's close: its code (None if the frame had no payload; 1002 for a code it
    /// may not send) and reason.
    Close(Option<(u16, String)>),
}

/// Why the input breaks the protocol; [`WsError::close_code`] is the code to close with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WsError {
    #[error("message of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: u64, max: usize },
    #[error("invalid UTF-8 in text frame")]
    Utf8,
    #[error("{0}")]
    Protocol(&'static str),
}

impl WsError {
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooLarge { .. } => 1009,
            WsError::Utf8 => 1007,
            WsError::Protocol(_) => 1002,
        }
    }
}

const OP_CONT: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;

/// The frame being read: its header is complete, its payload is not.
#[derive(Debug, Clone, Copy)]
struct Current {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes still to come.
    left: u64,
    /// Payload bytes seen so far, mod 4: the mask's phase.
    phase: u8,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Decoder {
    /// The limit, in 32 bits (a decoder per connection): larger limits are clamped to 4 GiB.
    max: u32,
    head: [u8; 14],
    head_len: u8,
    cur: Option<Current>,
    /// Opcode of the fragmented data message in progress (text or binary).
    message: Option<u8>,
    /// The data message being assembled (its fragments so far, unmasked).
    data: Vec<u8>,
    /// The control frame being read (control frames may arrive between fragments). Boxed,
    /// and made only while one is read: every session holds a decoder, and clients send
    /// few control frames (a pong per server ping); 8 bytes instead of an empty vector's 24.
    #[allow(clippy::box_collection)] // the box is the point: one pointer inline, not three words
    control: Option<Box<Vec<u8>>>,
    /// How many bytes of `data` (a fragmented text message) are known to be valid UTF-8.
    valid: u32,
    done: bool,
}

impl Decoder {
    /// A decoder accepting frames and messages of at most `max` payload bytes (at most
    /// 4 GiB − 1).
    pub fn new(max: usize) -> Self {
        Decoder {
            max: u32::try_from(max).unwrap_or(u32::MAX),
            head: [0; 14],
            head_len: 0,
            cur: None,
            message: None,
            data: Vec::new(),
            control: None,
            valid: 0,
            done: false,
        }
    }

    /// Decodes `input`, appending complete messages to `out`. Stops at the first Close
    /// (bytes after it are ignored) or error (then returned; messages before it are in
    /// `out`). After either, further input is ignored.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<WsMessage>) -> Result<(), WsError> {
        // A frame whose header is complete and payload empty finishes without more input.
        while (!input.is_empty() || self.cur.is_some_and(|c| c.left == 0)) && !self.done {
            let r = match self.cur {
                None => self.read_head(&mut input),
                Some(_) => self.read_payload(&mut input, out),
            };
            if let Err(e) = r {
                self.done = true;
                self.data = Vec::new();
                self.control = None;
                return Err(e);
            }
        }
        Ok(())
    }

    /// True once a Close or an error ended the stream.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn read_head(&mut self, input: &mut &[u8]) -> Result<(), WsError> {
        // Take bytes one by one until the header is complete: it is at most 14 bytes.
        while self.cur.is_none() {
            let need = self.head_need();
            if (self.head_len as usize) < need {
                let Some((&b, rest)) = input.split_first() else { return Ok(()) };
                *input = rest;
                self.head[self.head_len as usize] = b;
                self.head_len += 1;
                if self.head_len == 2 {
                    self.check_first_two()?;
                }
                continue;
            }
            self.start_frame()?;
        }
        Ok(())
    }

    /// Header bytes needed, as far as the bytes so far tell.
    fn head_need(&self) -> usize {
        if self.head_len < 2 {
            return 2;
        }
        let ext = match self.head[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + 4
    }

    fn check_first_two(&self) -> Result<(), WsError> {
        let (b0, b1) = (self.head[0], self.head[1]);
        let opcode = b0 & 0x0F;
        if !matches!(opcode, OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
            return Err(WsError::Protocol("unknown opcode"));
        }
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol("reserved bits are non-zero"));
        }
        if b1 & 0x80 == 0 {
            return Err(WsError::Protocol("received an unmasked frame from client"));
        }
        if opcode >= OP_CLOSE {
            if b0 & 0x80 == 0 {
                return Err(WsError::Protocol("fragmented control frame"));
            }
            if b1 & 0x7F > 125 {
                return Err(WsError::Protocol("control frame too big (payload must be 125 bytes or less)"));
            }
        }
        Ok(())
    }

    fn start_frame(&mut self) -> Result<(), WsError> {
        let h = &self.head;
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0F);
        let (len, at) = match h[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let len = u64::from_be_bytes(h[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(WsError::Protocol("frame length has its most significant bit set"));
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        self.head_len = 0;
        if opcode < OP_CLOSE {
            match (opcode, self.message) {
                (OP_CONT, None) => return Err(WsError::Protocol("continue frame but nothing to continue")),
                (OP_TEXT | OP_BINARY, Some(_)) => {
                    return Err(WsError::Protocol("expected a continue frame inside a fragmented message"))
                }
                _ => {}
            }
            let total = self.data.len() as u64 + len;
            if len > u64::from(self.max) || total > u64::from(self.max) {
                return Err(WsError::TooLarge { size: total, max: self.max as usize });
            }
            if opcode != OP_CONT {
                self.message = Some(opcode);
            }
            // No reservation for the announced length: a client that announces a large
            // frame and trickles it in holds memory for what it sent, not what it promised.
        } else {
            self.control.get_or_insert_with(Box::default).reserve(len as usize);
        }
        self.cur = Some(Current { opcode, fin, mask, left: len, phase: 0 });
        Ok(())
    }

    fn read_payload(&mut self, input: &mut &[u8], out: &mut Vec<WsMessage>) -> Result<(), WsError> {
        let mut c = self.cur.expect("a frame in progress");
        let n = (input.len() as u64).min(c.left) as usize;
        let (chunk, rest) = input.split_at(n);
        *input = rest;
        let buf = if c.opcode >= OP_CLOSE {
            &mut **self.control.get_or_insert_with(Box::default)
        } else {
            &mut self.data
        };
        let start = buf.len();
        buf.extend_from_slice(chunk);
        let phase = c.phase as usize;
        let mask: [u8; 4] = std::array::from_fn(|i| c.mask[(phase + i) % 4]);
        for (i, b) in buf[start..].iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
        c.phase = ((phase + n) % 4) as u8;
        c.left -= n as u64;
        self.cur = Some(c);
        if c.opcode == OP_CONT || c.opcode == OP_TEXT {
            self.check_text_prefix(c.fin && c.left == 0)?;
        }
        if c.left == 0 {
            self.cur = None;
            self.finish_frame(c, out)?;
        }
        Ok(())
    }

    /// Validates the new bytes of a text message; an incomplete character at the end is
    /// fine until the message is final.
    fn check_text_prefix(&mut self, last: bool) -> Result<(), WsError> {
        if self.message != Some(OP_TEXT) {
            return Ok(());
        }
        // `valid` ≤ the data's length ≤ `max`, which fits 32 bits.
        match std::str::from_utf8(&self.data[self.valid as usize..]) {
            Ok(_) => self.valid = self.data.len() as u32,
            Err(e) if e.error_len().is_none() && !last => self.valid += e.valid_up_to() as u32,
            Err(_) => return Err(WsError::Utf8),
        }
        Ok(())
    }

    fn finish_frame(&mut self, c: Current, out: &mut Vec<WsMessage>) -> Result<(), WsError> {
        let control = self.control.take().map(|b| *b).unwrap_or_default();
        match c.opcode {
            OP_PING => out.push(WsMessage::Ping(control)),
            OP_PONG => out.push(WsMessage::Pong(control)),
            OP_CLOSE => {
                out.push(WsMessage::Close(parse_close(&control)?));
                self.done = true;
                self.data = Vec::new();
            }
            _ if c.fin => {
                let data = std::mem::take(&mut self.data);
                self.valid = 0;
                match self.message.take() {
                    Some(OP_TEXT) => out.push(WsMessage::Text(data)),
                    _ => out.push(WsMessage::Binary(data)),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A close frame's payload: nothing, or a code and a UTF-8 reason.
fn parse_close(p: &[u8]) -> Result<Option<(u16, String)>, WsError> {
    match p.len() {
        0 => Ok(None),
        1 => Err(WsError::Protocol("invalid close sequence")),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            let reason = std::str::from_utf8(&p[2..]).map_err(|_| WsError::Utf8)?;
            if close_code_allowed(code) {
                Ok(Some((code, reason.to_owned())))
            } else {
                Ok(Some((1002, "Protocol violation".to_owned())))
            }
        }
    }
}

/// Codes a peer may send in a close frame (RFC 6455 §7.4).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

#[cfg(test)]
mod tests;
