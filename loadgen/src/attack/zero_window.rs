//! Zero window: a `/ws` client with a tiny receive buffer subscribes to the victim room and
//! to a room of its own, then never reads. During the attack period a second connection fills
//! that room with 16 KiB HTTP publishes (`FILL_RATE` per second, ~3 MB/s) so the client's
//! outbox overflows within about a second and the server's slow-consumer policy has to act,
//! as in issue 7 (the victim room alone at 50 msgs/s would take minutes).
//!
//! Then it watches the server's side of the socket in /proc/net/tcp every 100 ms until the
//! server no longer holds it (the entry is gone, or orphaned: inode 0 after the server closed
//! its fd) or `zero_window_wait` after the attack period passes. Finally it reads whatever
//! arrived (at most `READ_BUDGET`) to see how the server ended it: a close frame, EOF or RST.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{abort, sub_frame, would_block, ws_connect, AttackOpts, AttackReport, TINY_RCVBUF};
use crate::http::{self, Parsed};
use crate::sim::Rng;
use crate::sys;
use crate::ws::{self, Parse};

/// Fill publishes per second during the attack period.
const FILL_RATE: f64 = 200.0;
const FILL_BYTES: usize = 16 * 1024;
/// Most time spent reading what the server sent, once watching is over (less when the
/// release wait is shorter, so quick test runs stay quick).
const READ_BUDGET: Duration = Duration::from_secs(3);

pub(super) fn run(
    o: &AttackOpts,
    start: Instant,
    until: Instant,
    stop: &AtomicBool,
    r: &mut AttackReport,
) -> std::io::Result<()> {
    let mut rng = Rng::new(0x2e70 ^ o.run_id.len() as u64);
    let (s, _) = ws_connect(o.addr, "/ws", Some(TINY_RCVBUF), &mut rng)?;
    r.connections = 1;
    let fill_room = format!("abuse:zw-{}", o.run_id);
    let mut subs = Vec::new();
    sub_frame(&mut subs, &o.victim_room, &mut rng);
    sub_frame(&mut subs, &fill_room, &mut rng);
    (&s).write_all(&subs)?;
    r.sent = 2;
    r.bytes_sent = subs.len() as u64;
    let (SocketAddr::V4(server), SocketAddr::V4(me)) = (o.addr, s.local_addr()?) else {
        return Err(std::io::Error::other("zero-window needs an IPv4 target"));
    };

    let mut filler = Filler::connect(o, &fill_room)?;
    r.connections += 1;
    let watch_until = until + o.zero_window_wait;
    let mut next_probe = Instant::now();
    let mut released = None;
    let mut last_state = None;
    let mut unsent_max = 0u64;
    loop {
        let now = Instant::now();
        if stop.load(Relaxed) || now >= watch_until {
            break;
        }
        if now < until {
            filler.tick(start, now, r);
        } else {
            filler.close(r);
        }
        if now >= next_probe {
            next_probe += Duration::from_millis(100);
            match sys::tcp_entry(server, me) {
                None => {
                    released = Some((now, "the server's socket is gone".to_string()));
                    break;
                }
                Some(e) => {
                    unsent_max = unsent_max.max(e.tx_queue);
                    last_state = Some(e);
                    if e.inode == 0 {
                        released = Some((
                            now,
                            format!("closed by the server (TCP state {:#x}, still flushing)", e.state),
                        ));
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    filler.close(r);
    r.server_unsent_max = Some(unsent_max);
    r.watched_ms = Some(start.elapsed().as_millis() as u64);
    match released {
        Some((at, how)) => {
            r.released_after_ms = Some(at.duration_since(start).as_millis() as u64);
            r.notes.push(how);
        }
        None => {
            let state = last_state.map_or("unknown".into(), |e| {
                format!("TCP state {:#x}, {} bytes unsent, inode {}", e.state, e.tx_queue, e.inode)
            });
            r.notes.push(format!(
                "still held by the server {:.1} s after the attack started ({state})",
                start.elapsed().as_secs_f64()
            ));
        }
    }
    read_what_arrived(s, READ_BUDGET.min(o.zero_window_wait.max(Duration::from_millis(500))), r);
    Ok(())
}

/// Reads until EOF / RST / the budget, parsing frames: messages, gap notices, a close frame.
fn read_what_arrived(s: std::net::TcpStream, budget: Duration, r: &mut AttackReport) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + budget;
    let (mut buf, mut chunk, mut read) = (Vec::new(), vec![0u8; 256 * 1024], 0u64);
    let end = loop {
        if Instant::now() >= deadline {
            break format!("still open after reading for {:.1} s", budget.as_secs_f64());
        }
        match (&s).read(&mut chunk) {
            Ok(0) => break "EOF".into(),
            Ok(n) => {
                read += n as u64;
                buf.extend_from_slice(&chunk[..n]);
                let mut pos = 0;
                while let Parse::Frame(f, used) = ws::parse_frame(&buf[pos..]) {
                    pos += used;
                    r.replies_read += 1;
                    match f.opcode {
                        ws::OP_CLOSE => {
                            r.close_frame = Some(match f.payload {
                                [a, b, reason @ ..] => {
                                    format!(
                                        "{} {}",
                                        u16::from_be_bytes([*a, *b]),
                                        String::from_utf8_lossy(reason)
                                    )
                                }
                                _ => "(no code)".into(),
                            });
                        }
                        ws::OP_TEXT if f.payload.starts_with(br#"{"op":"gap""#) => {
                            r.count("gap notices read")
                        }
                        ws::OP_TEXT if f.payload.starts_with(br#"{"op":"ok""#) => r.count("ok replies read"),
                        ws::OP_TEXT if f.payload.starts_with(br#"{"room""#) => r.count("messages read"),
                        _ => r.count("other frames read"),
                    }
                }
                buf.drain(..pos);
            }
            Err(e) if would_block(&e) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "RST".into(),
            Err(e) => break format!("read error: {e}"),
        }
    };
    r.notes.push(format!("reading afterwards: {read} bytes, then {end}"));
    r.count(format!("ended: {end}"));
    abort(s);
}

/// The second connection: pipelined 16 KiB publishes into the zero-window client's own room.
struct Filler {
    s: Option<std::net::TcpStream>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    inbuf: Vec<u8>,
    data: String,
    host: String,
    room: String,
    sent: u64,
}

impl Filler {
    fn connect(o: &AttackOpts, room: &str) -> std::io::Result<Filler> {
        let s = sys::connect_with_rcvbuf(o.addr, None, Duration::from_secs(2))?;
        s.set_nonblocking(true)?;
        let pad = "z".repeat(FILL_BYTES - r#"{"fill":""}"#.len());
        Ok(Filler {
            s: Some(s),
            out: Vec::new(),
            scratch: Vec::new(),
            inbuf: Vec::new(),
            data: format!(r#"{{"fill":"{pad}"}}"#),
            host: o.addr.to_string(),
            room: room.to_string(),
            sent: 0,
        })
    }

    /// Queues the publishes due by now (bounded backlog), writes, and reads answers.
    fn tick(&mut self, start: Instant, now: Instant, r: &mut AttackReport) {
        let Some(s) = &self.s else { return };
        let due = (now.duration_since(start).as_secs_f64() * FILL_RATE) as u64;
        while self.sent < due && self.out.len() < 1 << 20 {
            let data = self.data.as_bytes();
            http::encode_publish(&mut self.out, &mut self.scratch, &self.host, &self.room, |v| {
                v.extend_from_slice(data)
            });
            self.sent += 1;
        }
        let ev = sys::poll1(s.as_raw_fd(), libc::POLLIN | libc::POLLOUT, 0).unwrap_or(0);
        if ev & libc::POLLOUT != 0 && !self.out.is_empty() {
            if let Ok(n) = (&*s).write(&self.out) {
                self.out.drain(..n);
            }
        }
        if ev & libc::POLLIN != 0 {
            let mut chunk = [0u8; 16 * 1024];
            if let Ok(n) = (&*s).read(&mut chunk) {
                self.inbuf.extend_from_slice(&chunk[..n]);
            }
            let mut pos = 0;
            while let Parsed::Done(resp) = http::parse_response(&self.inbuf[pos..]) {
                pos += resp.len;
                r.count(format!("fill http {}", resp.status));
            }
            self.inbuf.drain(..pos);
        }
    }

    fn close(&mut self, r: &mut AttackReport) {
        if let Some(s) = self.s.take() {
            r.notes.push(format!(
                "filled abuse:zw-… with {} publishes of {} KiB over HTTP during the attack period",
                self.sent,
                FILL_BYTES / 1024
            ));
            abort(s);
        }
    }
}
