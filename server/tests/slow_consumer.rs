//! A subscriber that stops reading must never delay the others or grow memory without bound:
//! under `disconnect` it is closed with 1008 "slow consumer", under `drop` it later gets a
//! `gap` notice for what it missed. A healthy neighbour on the same room gets everything.

mod common;

use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const MSG_BYTES: usize = 16 * 1024;
/// Enough to overflow the slow client's kernel buffers (small SO_RCVBUF) plus the server's
/// socket send buffer (autotuned up to a few MiB) plus its 256 KiB outbox, several times.
const MESSAGES: u64 = 1200;
/// Publishes in flight at once (4 × 16 KiB, a quarter of the outbox budget).
const BATCH: u64 = 4;
/// How far the healthy subscriber may fall behind the publisher, in messages: with a batch
/// in flight, 12 × 16 KiB = 192 KiB, under its 256 KiB outbox wherever they sit. Without
/// this pacing "healthy" meant "faster than the publisher", which a CI core that
/// deschedules the reader thread for a while does not guarantee: the reader was then
/// closed as a slow consumer, correctly.
const LAG: u64 = 8;

/// A TCP connection with a tiny receive buffer, so a client that stops reading pushes back
/// on the server quickly.
fn small_buffer_stream(server: &Server) -> TcpStream {
    // SAFETY: plain socket syscalls on a descriptor we own; ownership moves into TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = server.port.to_be();
        addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let rc = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

fn slow_client(server: &Server, room: &str) -> Ws {
    let stream = small_buffer_stream(server);
    let mut ws = Ws::handshake(stream, &server.ws_url("/ws"), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws.sub(room, 1), 0);
    ws
}

fn payload(i: u64) -> String {
    format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(MSG_BYTES))
}

/// A healthy subscriber reading everything in a thread; returns the seqs it saw, and
/// publishes the last one it saw for the publisher's pacing.
fn healthy_reader(server: &Server, room: &str, until: u64) -> (thread::JoinHandle<Vec<u64>>, Arc<AtomicU64>) {
    let mut ws = server.ws();
    assert_eq!(ws.sub(room, 1), 0);
    let room = room.to_owned();
    let seen = Arc::new(AtomicU64::new(0));
    let progress = seen.clone();
    let handle = thread::spawn(move || {
        let mut seqs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seqs.last().copied() != Some(until) {
            assert!(Instant::now() < deadline, "healthy subscriber stuck at {:?}", seqs.last());
            let text = ws.recv_text_within(Duration::from_secs(10));
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v.get("op").is_none(), "healthy subscriber got a control frame: {text:.200}");
            let seq = v["seq"].as_u64().unwrap();
            assert_eq!(text, envelope(&room, seq, &payload(seq)));
            seqs.push(seq);
            progress.store(seq, Ordering::Release);
        }
        seqs
    });
    (handle, seen)
}

/// Publishes `from..=to` in small pipelined batches (the publisher reads its `ok`s, so it is
/// never a slow consumer itself), each once the healthy subscriber has seen all but [`LAG`]
/// of what came before. A batch stays well under the outbox budget: a burst larger than the
/// budget, fanned out before the writer runs, overflows even a fast reader's outbox.
fn publish_range(publisher: &mut Ws, room: &str, from: u64, to: u64, healthy: &AtomicU64) {
    let mut i = from;
    while i <= to {
        let deadline = Instant::now() + Duration::from_secs(60);
        while healthy.load(Ordering::Acquire) + LAG + 1 < i {
            assert!(
                Instant::now() < deadline,
                "healthy subscriber stuck at {}",
                healthy.load(Ordering::Acquire)
            );
            thread::sleep(Duration::from_micros(200));
        }
        let end = (i + BATCH - 1).min(to);
        for k in i..=end {
            publisher.send_text(&format!(r#"{{"op":"pub","room":"{room}","data":{},"id":{k}}}"#, payload(k)));
        }
        for k in i..=end {
            assert_eq!(
                without_epoch(&publisher.recv_text()),
                format!(r#"{{"op":"ok","id":{k},"room":"{room}","seq":{k}}}"#)
            );
        }
        i = end + 1;
    }
}

fn start(policy: &str) -> Server {
    Server::start(&[
        "--shards",
        "2",
        "--policy",
        policy,
        "--max-frame",
        "64KiB",
        "--outbox-bytes",
        "256KiB",
        "--publish-rate",
        "100000",
        "--publish-burst",
        "100000",
        // The slow client stalls for the whole publish phase, which takes seconds on a busy
        // CI core; the write timeout (default 10 s) would then reset it before the policy
        // under test is seen. The timeout has its own tests.
        "--write-timeout",
        "120s",
    ])
}

#[test]
fn disconnect_policy_closes_a_stalled_subscriber_with_1008() {
    let server = start("disconnect");
    let room = "slow:disconnect";
    let mut slow = slow_client(&server, room);
    let (healthy, seen) = healthy_reader(&server, room, MESSAGES);
    let mut publisher = server.ws();
    publish_range(&mut publisher, room, 1, MESSAGES, &seen);
    assert_eq!(healthy.join().expect("healthy subscriber"), (1..=MESSAGES).collect::<Vec<_>>());

    // The stalled client now reads: whatever was already in flight, then the close.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = 0;
    let close = loop {
        assert!(Instant::now() < deadline, "no close for the slow consumer");
        match slow.next_frame(Duration::from_secs(5)) {
            Ok(Some(Frame::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("unexpected frame {t:.200}"));
                assert_eq!(seq, last + 1, "messages before the close are contiguous");
                last = seq;
            }
            Ok(Some(Frame::Close(c))) => break c,
            other => panic!("slow consumer: expected messages then a close, got {other:?}"),
        }
    };
    assert_eq!(close, Some((1008, "slow consumer".to_owned())));
    assert!(last < MESSAGES, "the slow consumer got everything: it was never slow");

    // The room and the server are fine afterwards.
    let mut again = server.ws();
    assert_eq!(again.sub(room, 1), MESSAGES);
    publisher.publish(room, &payload(MESSAGES + 1), 9999);
    assert_eq!(again.recv_text(), envelope(room, MESSAGES + 1, &payload(MESSAGES + 1)));
}

#[test]
fn drop_policy_skips_and_announces_a_gap() {
    let server = start("drop");
    let room = "slow:drop";
    let final_seq = MESSAGES + 3;
    let mut slow = slow_client(&server, room);
    let (healthy, seen) = healthy_reader(&server, room, final_seq);
    let mut publisher = server.ws();
    publish_range(&mut publisher, room, 1, MESSAGES, &seen);

    // The stalled client resumes reading; a few more messages are published meanwhile so any
    // pending gap notice has a reason to be flushed.
    let reader = thread::spawn(move || {
        let mut events: Vec<(u64, u64)> = Vec::new(); // (from, to): a message is (seq, seq)
        let mut gaps = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while events.last().map(|e| e.1) != Some(final_seq) {
            assert!(Instant::now() < deadline, "slow client stuck after {:?}", events.last());
            let text = slow.recv_text_within(Duration::from_secs(10));
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["op"] == "gap" {
                let (from, to) = (v["from"].as_u64().unwrap(), v["to"].as_u64().unwrap());
                assert_eq!(text, format!(r#"{{"op":"gap","room":"slow:drop","from":{from},"to":{to}}}"#));
                assert!(from <= to, "{text}");
                events.push((from, to));
                gaps += 1;
            } else {
                let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("unexpected frame {text:.200}"));
                assert_eq!(text, envelope("slow:drop", seq, &payload(seq)));
                events.push((seq, seq));
            }
        }
        (events, gaps)
    });
    thread::sleep(Duration::from_millis(300));
    publish_range(&mut publisher, room, MESSAGES + 1, final_seq, &seen);
    let (events, gaps) = reader.join().expect("slow client");
    assert_eq!(healthy.join().expect("healthy subscriber"), (1..=final_seq).collect::<Vec<_>>());

    // Messages and gaps together cover 1..=final exactly once, in order.
    let mut next = 1;
    for (from, to) in &events {
        assert_eq!(*from, next, "hole or overlap at {from}..={to}; events {events:?}");
        next = to + 1;
    }
    assert_eq!(next, final_seq + 1);
    assert!(gaps >= 1, "no gap notice: the slow client was never slow");
}
