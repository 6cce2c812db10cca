//! Room churn: one keep-alive HTTP/1.1 connection pipelining `POST /api/publish` of 1 KiB,
//! each to a room nobody used before, counting the answers by status. Every accepted publish
//! creates a room (with its history) on the server: this is the "invented rooms" attack.
//!
//! Bounded: at most `WINDOW` requests unanswered at once, at most `MAX_CONNECTIONS`
//! reconnects (a server may close the connection on a refusal).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{abort, would_block, AttackOpts, AttackReport};
use crate::http::{self, Parsed};
use crate::sys;

const WINDOW: u64 = 256;
const MAX_CONNECTIONS: u64 = 1000;

pub(super) fn run(
    o: &AttackOpts,
    until: Instant,
    stop: &AtomicBool,
    r: &mut AttackReport,
) -> std::io::Result<()> {
    let pad = "x".repeat(1024 - r#"{"pad":""}"#.len());
    let data = format!(r#"{{"pad":"{pad}"}}"#);
    let host = o.addr.to_string();
    let (mut next_room, mut created, mut answered) = (0u64, 0u64, 0u64);
    let (mut out, mut scratch, mut inbuf) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunk = vec![0u8; 64 * 1024];
    'conn: while Instant::now() < until && !stop.load(Relaxed) && r.connections < MAX_CONNECTIONS {
        let s = match sys::connect_with_rcvbuf(o.addr, None, Duration::from_secs(2)) {
            Ok(s) => s,
            Err(e) => {
                r.count("connect failed");
                r.notes.push(format!("connect failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        r.connections += 1;
        s.set_nonblocking(true)?;
        let mut outstanding = 0u64;
        out.clear();
        inbuf.clear();
        while Instant::now() < until && !stop.load(Relaxed) {
            while outstanding < WINDOW && out.len() < 256 * 1024 {
                let room = format!("churn:{}-{next_room}", o.run_id);
                next_room += 1;
                http::encode_publish(&mut out, &mut scratch, &host, &room, |v| {
                    v.extend_from_slice(data.as_bytes())
                });
                outstanding += 1;
                r.sent += 1;
            }
            let want = libc::POLLIN | if out.is_empty() { 0 } else { libc::POLLOUT };
            let ev = sys::poll1(s.as_raw_fd(), want, 10)?;
            if ev & libc::POLLOUT != 0 {
                match (&s).write(&out) {
                    Ok(n) => {
                        r.bytes_sent += n as u64;
                        out.drain(..n);
                    }
                    Err(e) if would_block(&e) => {}
                    Err(_) => {
                        r.count("connection lost");
                        abort(s);
                        continue 'conn;
                    }
                }
            }
            if ev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                match (&s).read(&mut chunk) {
                    Ok(0) => {
                        r.count("closed by the server");
                        abort(s);
                        continue 'conn;
                    }
                    Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
                    Err(e) if would_block(&e) => {}
                    Err(_) => {
                        r.count("connection lost");
                        abort(s);
                        continue 'conn;
                    }
                }
                let mut pos = 0;
                while let Parsed::Done(resp) = http::parse_response(&inbuf[pos..]) {
                    pos += resp.len;
                    outstanding = outstanding.saturating_sub(1);
                    answered += 1;
                    r.count(format!("http {}", resp.status));
                    if resp.status == 200 {
                        created += 1;
                    } else {
                        r.refusals += 1;
                    }
                }
                if let Parsed::Error(e) = http::parse_response(&inbuf[pos..]) {
                    r.notes.push(format!("unreadable response: {e}"));
                    abort(s);
                    continue 'conn;
                }
                inbuf.drain(..pos);
            }
        }
        abort(s);
        break;
    }
    r.replies_read = answered;
    r.rooms_created = Some(created);
    if r.sent > answered {
        r.notes.push(format!("{} requests unanswered when the attack stopped", r.sent - answered));
    }
    Ok(())
}
