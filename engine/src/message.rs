//! One published room message, encoded once and shared by every subscriber on every shard.

use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::config::Policy;
use crate::envelope;
use crate::frame;
use crate::track::Fix;

/// A sequenced room message. Built by the owner shard, then passed around as
/// `Arc<Message>`: fan-out to a subscriber is one reference-count increment and a queue
/// push; the frame bytes are never copied or re-encoded per subscriber.
#[derive(Debug)]
pub struct Message {
    /// The room, shared with the owner's room state.
    pub room: Arc<str>,
    /// Per-room sequence number, from 1, without gaps.
    pub seq: u64,
    /// Value of the namespace's key field, if the namespace has one and the data carried it.
    pub key: Option<Box<str>>,
    /// What an outbox does with this message when its subscriber is too slow.
    pub policy: Policy,
    /// When the owner sequenced it (history TTL).
    pub at: Instant,
    /// Position and status fingerprint, read once by the owner in tracking namespaces
    /// ([`crate::track`]); the default elsewhere.
    pub fix: Fix,
    /// The complete envelope frame `{"room":..,"seq":..,"data":..}` for `/ws` subscribers.
    pub frame: Bytes,
    /// Length of the published data, which `frame` ends with (followed by one `}`): a
    /// retained message holds its data bytes once, and no second handle on them.
    data_len: u32,
    /// A frame of just `data`, for room-per-URL subscribers; built by the first shard that
    /// needs it, then shared like `frame`.
    raw: OnceLock<Bytes>,
}

impl Message {
    /// Encodes the message once.
    pub fn new(
        room: Arc<str>,
        seq: u64,
        data: Bytes,
        key: Option<Box<str>>,
        policy: Policy,
        at: Instant,
    ) -> Self {
        let frame = envelope::message_frame(&room, seq, &data);
        // Frames are far below 4 GiB (the server caps messages at 16 MiB).
        let data_len = data.len() as u32;
        Message { room, seq, key, policy, at, fix: Fix::default(), frame, data_len, raw: OnceLock::new() }
    }

    /// The message with the position and status its owner read from it.
    pub fn with_fix(mut self, fix: Fix) -> Self {
        self.fix = fix;
        self
    }

    /// Bytes this message holds while a room retains it: the struct with its `Arc` header,
    /// the envelope frame (which also holds the data), the key, and the room-per-URL frame
    /// that may be built from it later — counted whether built or not, so a budget over these
    /// figures never under-counts.
    pub fn retained_bytes(&self) -> usize {
        std::mem::size_of::<Message>()
            + 2 * std::mem::size_of::<usize>()
            + self.frame.len()
            + frame::head_len(self.data_len as usize)
            + self.data_len as usize
            + self.key.as_ref().map_or(0, |k| k.len())
    }

    /// The data exactly as published (a view into the envelope frame).
    pub fn data(&self) -> &[u8] {
        let end = self.frame.len() - 1;
        &self.frame[end - self.data_len as usize..end]
    }

    /// The frame carrying exactly the published bytes, no envelope (room-per-URL mode).
    pub fn raw_frame(&self) -> &Bytes {
        self.raw.get_or_init(|| frame::text_frame(self.data()))
    }

    /// The frame for a subscriber of the given mode.
    #[inline]
    pub fn frame_for(&self, mode: DeliveryMode) -> &Bytes {
        match mode {
            DeliveryMode::Envelope => &self.frame,
            DeliveryMode::Raw => self.raw_frame(),
        }
    }
}

/// How a subscriber wants room messages framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// The DESIGN §3 envelope (`GET /ws`).
    Envelope,
    /// The exact published bytes (`GET /ws/<room>`, Django Channels style).
    Raw,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frame_is_built_once_and_shared() {
        let m =
            Message::new("r".into(), 1, Bytes::from_static(b"{\"a\":1}"), None, Policy::Drop, Instant::now());
        let a = m.raw_frame().as_ptr();
        let b = m.frame_for(DeliveryMode::Raw).as_ptr();
        assert_eq!(a, b);
        assert_eq!(&m.raw_frame()[2..], b"{\"a\":1}");
        assert!(m.frame.ends_with(b",\"data\":{\"a\":1}}"));
        assert_eq!(m.data(), b"{\"a\":1}");
        assert_eq!(m.data().as_ptr(), m.frame[m.frame.len() - 8..].as_ptr(), "data shares the frame");
        assert!(m.retained_bytes() > 2 * m.frame.len());
    }
}
