//! Floods on one `/ws` connection that never reads: pipelined `{"op":"ping"}` text frames,
//! WebSocket ping control frames, or `pub`s far over the rate limit, written as fast as the
//! socket accepts until the deadline.
//!
//! The receive buffer is tiny and never drained, so every reply the server makes (pong, ok,
//! `rate_limited` error) has nowhere to go but the server's own memory — unless the server
//! stops reading a client that does not read its replies, which is what issue 7 asks for.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{abort, would_block, ws_connect, AttackOpts, AttackReport, TINY_RCVBUF};
use crate::sim::Rng;
use crate::ws;

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    TextPing,
    ControlPing,
    Pub,
}

pub(super) fn run(
    kind: Kind,
    o: &AttackOpts,
    until: Instant,
    stop: &AtomicBool,
    r: &mut AttackReport,
) -> std::io::Result<()> {
    let mut rng = Rng::new(0xf100d ^ o.run_id.len() as u64);
    let (s, _) = ws_connect(o.addr, "/ws", Some(TINY_RCVBUF), &mut rng)?;
    r.connections = 1;
    s.set_write_timeout(Some(Duration::from_millis(50)))?;
    // ~64 KiB of equal-sized whole frames, each with its own mask, written over and over;
    // every write continues where the last one stopped, so the stream stays frame-aligned.
    let mut chunk = Vec::with_capacity(70 * 1024);
    let mut frames = 0u64;
    while chunk.len() < 64 * 1024 {
        let mask = (rng.next_u64() as u32).to_ne_bytes();
        match kind {
            Kind::TextPing => ws::encode_client_frame(&mut chunk, ws::OP_TEXT, br#"{"op":"ping"}"#, mask),
            Kind::ControlPing => ws::encode_client_frame(&mut chunk, ws::OP_PING, b"abuse-ping", mask),
            Kind::Pub => ws::encode_client_frame(
                &mut chunk,
                ws::OP_TEXT,
                br#"{"op":"pub","room":"abuse:x","data":{}}"#,
                mask,
            ),
        }
        frames += 1;
    }
    let frame_len = chunk.len() as u64 / frames;
    let (start, mut off, mut bytes) = (Instant::now(), 0usize, 0u64);
    while Instant::now() < until && !stop.load(Relaxed) {
        match (&s).write(&chunk[off..]) {
            Ok(n) => {
                bytes += n as u64;
                off = (off + n) % chunk.len();
            }
            Err(e) if would_block(&e) => {}
            Err(e) => {
                r.count("closed by the server");
                r.notes.push(format!(
                    "the server closed the attacker after {:.2} s ({e})",
                    start.elapsed().as_secs_f64()
                ));
                break;
            }
        }
    }
    r.bytes_sent = bytes;
    r.sent = bytes / frame_len;
    abort(s);
    Ok(())
}
