//! Garbage: a storm of short connections, each sending one kind of invalid input (random
//! bytes instead of HTTP, or after a good upgrade: random bytes, an unmasked frame, invalid
//! UTF-8, reserved bits, an absurd length, a binary frame, a reserved opcode), reading the
//! server's answer for at most 200 ms, then closing with RST.
//!
//! Sequential and rate-capped (`garbage_rate` per second), so the number of connections is
//! bounded by rate × duration and at most one is open at a time. A slow server lowers the
//! achieved rate; the report says what was achieved.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{abort, upgrade, would_block, AttackOpts, AttackReport};
use crate::sim::Rng;
use crate::sys;
use crate::ws::{self, Parse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GarbageKind {
    RandomBytes,
    RandomAfterUpgrade,
    UnmaskedFrame,
    InvalidUtf8,
    ReservedBits,
    HugeLength,
    BinaryFrame,
    BadOpcode,
}

impl GarbageKind {
    pub const ALL: [GarbageKind; 8] = [
        GarbageKind::RandomBytes,
        GarbageKind::RandomAfterUpgrade,
        GarbageKind::UnmaskedFrame,
        GarbageKind::InvalidUtf8,
        GarbageKind::ReservedBits,
        GarbageKind::HugeLength,
        GarbageKind::BinaryFrame,
        GarbageKind::BadOpcode,
    ];

    /// The bytes to send (after the upgrade, except for `RandomBytes`).
    fn bytes(self, rng: &mut Rng) -> Vec<u8> {
        let mask = (rng.next_u64() as u32).to_ne_bytes();
        let mut v = Vec::new();
        match self {
            GarbageKind::RandomBytes | GarbageKind::RandomAfterUpgrade => {
                v.extend((0..64).flat_map(|_| rng.next_u64().to_le_bytes()));
                if self == GarbageKind::RandomBytes {
                    v.extend_from_slice(b"\r\n\r\n"); // so the server has a "head" to refuse
                }
            }
            GarbageKind::UnmaskedFrame => v.extend_from_slice(b"\x81\x05hello"),
            GarbageKind::InvalidUtf8 => {
                ws::encode_client_frame(&mut v, ws::OP_TEXT, b"\xff\xfe\xc3\x28", mask)
            }
            GarbageKind::ReservedBits => {
                ws::encode_client_frame(&mut v, ws::OP_TEXT, b"hi", mask);
                v[0] |= 0x40;
            }
            GarbageKind::HugeLength => {
                v.extend_from_slice(&[0x81, 0x80 | 127]);
                v.extend_from_slice(&(1u64 << 62).to_be_bytes());
                v.extend_from_slice(&mask);
            }
            GarbageKind::BinaryFrame => ws::encode_client_frame(&mut v, ws::OP_BINARY, b"bin", mask),
            GarbageKind::BadOpcode => ws::encode_client_frame(&mut v, 0x3, b"op3", mask),
        }
        v
    }
}

/// How one garbage connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarbageOutcome {
    pub upgraded: bool,
    pub bytes_sent: u64,
    pub replies: u64,
    /// `http 400`, `close 1002`, `EOF`, `RST`, `no answer in 200 ms`, `connect failed`, ...
    pub ended: String,
    /// The server refused explicitly (HTTP ≥ 400 or a close code other than 1000).
    pub refused: bool,
}

/// One connection sending one kind of garbage.
pub fn garbage_once(addr: SocketAddr, kind: GarbageKind, rng: &mut Rng) -> GarbageOutcome {
    let mut o =
        GarbageOutcome { upgraded: false, bytes_sent: 0, replies: 0, ended: String::new(), refused: false };
    let s = match sys::connect_with_rcvbuf(addr, None, Duration::from_millis(500)) {
        Ok(s) => s,
        Err(e) => {
            o.ended = format!("connect failed ({})", e.kind());
            return o;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    if kind != GarbageKind::RandomBytes {
        if let Err(e) = upgrade(&s, addr, "/ws", rng) {
            o.ended = format!("upgrade failed ({})", e.kind());
            abort(s);
            return o;
        }
        o.upgraded = true;
    }
    let bytes = kind.bytes(rng);
    if (&s).write_all(&bytes).is_ok() {
        o.bytes_sent = bytes.len() as u64;
    }
    o.ended = read_answer(&s, kind == GarbageKind::RandomBytes, &mut o);
    abort(s);
    o
}

/// Reads for at most 200 ms: an HTTP status (before the upgrade) or frames up to a close.
fn read_answer(s: &std::net::TcpStream, http: bool, o: &mut GarbageOutcome) -> String {
    let deadline = Instant::now() + Duration::from_millis(200);
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    while Instant::now() < deadline && buf.len() < 64 * 1024 {
        match (&*s).read(&mut chunk) {
            Ok(0) => return "EOF".into(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return "RST".into(),
            Err(e) if would_block(&e) => break,
            Err(e) => return format!("read error ({})", e.kind()),
        }
        if http {
            if let Some(code) = buf.get(9..12).and_then(|c| std::str::from_utf8(c).ok()?.parse::<u16>().ok())
            {
                o.replies += 1;
                o.refused = code >= 400;
                return format!("http {code}");
            }
            continue;
        }
        let mut pos = 0;
        while let Parse::Frame(f, used) = ws::parse_frame(&buf[pos..]) {
            pos += used;
            o.replies += 1;
            if f.opcode == ws::OP_CLOSE {
                let code = f.payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                o.refused = code != Some(1000);
                return code.map_or("close (no code)".into(), |c| format!("close {c}"));
            }
        }
        buf.drain(..pos);
    }
    "no answer in 200 ms".into()
}

pub(super) fn run(
    o: &AttackOpts,
    until: Instant,
    stop: &AtomicBool,
    r: &mut AttackReport,
) -> std::io::Result<()> {
    let mut rng = Rng::new(0x9a4ba9e ^ o.run_id.len() as u64);
    let interval = Duration::from_secs_f64(1.0 / o.garbage_rate.max(1) as f64);
    let (start, mut next, mut n) = (Instant::now(), Instant::now(), 0usize);
    while Instant::now() < until && !stop.load(Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(until.saturating_duration_since(now)));
            continue;
        }
        next += interval;
        if next < now {
            next = now; // fell behind (slow server): no catch-up burst
        }
        let kind = GarbageKind::ALL[n % GarbageKind::ALL.len()];
        n += 1;
        let g = garbage_once(o.addr, kind, &mut rng);
        r.connections += 1;
        r.sent += 1;
        r.bytes_sent += g.bytes_sent;
        r.replies_read += g.replies;
        r.refusals += g.refused as u64;
        r.count(g.ended);
    }
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    r.notes.push(format!(
        "{} garbage connections in {secs:.1} s = {:.0}/s (cap {}/s)",
        r.connections,
        r.connections as f64 / secs,
        o.garbage_rate
    ));
    Ok(())
}
