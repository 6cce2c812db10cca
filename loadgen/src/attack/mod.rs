//! Hostile clients: each one connection (or a bounded stream of them) doing one thing a broken
//! or malicious client does, for a fixed time, then stopping by itself (issue 7's table).
//!
//! Every attack is bounded: it ends at its deadline or when `stop` is set, opens at most a
//! fixed number of connections, and only ever talks to the loopback target it was given. The
//! attackers use blocking sockets with short timeouts (one connection at a time is all they
//! need) and run on their own thread, so a flood never delays the measuring crowd's loop.
//!
//! Modules: [`flood`] (pipelined frames, never reading), [`churn`] (HTTP publishes to ever new
//! rooms), [`zero_window`] (a subscriber that never reads), [`garbage`] (invalid input on
//! new connections).

mod churn;
mod flood;
mod garbage;
mod zero_window;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use garbage::{garbage_once, GarbageKind};

use crate::sim::Rng;
use crate::sys;
use crate::ws::{self, Handshake};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    PingFlood,
    CtrlPingFlood,
    PubFlood,
    RoomChurn,
    ZeroWindow,
    Garbage,
}

impl Attack {
    pub const ALL: [Attack; 6] = [
        Attack::PingFlood,
        Attack::CtrlPingFlood,
        Attack::PubFlood,
        Attack::RoomChurn,
        Attack::ZeroWindow,
        Attack::Garbage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::PingFlood => "ping-flood",
            Attack::CtrlPingFlood => "ctrl-ping-flood",
            Attack::PubFlood => "pub-flood",
            Attack::RoomChurn => "room-churn",
            Attack::ZeroWindow => "zero-window",
            Attack::Garbage => "garbage",
        }
    }

    pub fn parse(s: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.name() == s)
    }

    /// One line for tables and `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Attack::PingFlood => "pipelines {\"op\":\"ping\"} text frames on /ws, never reads",
            Attack::CtrlPingFlood => "sends WebSocket ping control frames on /ws, never reads",
            Attack::PubFlood => "sends {\"op\":\"pub\"} to abuse:x far over the rate limit, never reads",
            Attack::RoomChurn => "HTTP-publishes 1 KiB to a new room per request (keep-alive, pipelined)",
            Attack::ZeroWindow => "subscribes (victim room + a room it fills) and never reads",
            Attack::Garbage => "new connections sending invalid bytes / frames / UTF-8",
        }
    }
}

/// Where and how hard to attack.
#[derive(Debug, Clone)]
pub struct AttackOpts {
    pub addr: SocketAddr,
    /// The neighbours' room (the zero-window client subscribes to it).
    pub victim_room: String,
    /// Makes room names unique to this run (room-churn, zero-window's fill room).
    pub run_id: String,
    /// Garbage connections per second (at most).
    pub garbage_rate: u32,
    /// How long zero-window keeps watching for the server to release its socket after the
    /// attack period.
    pub zero_window_wait: Duration,
}

/// What an attacker did and saw. Counters an attack cannot observe stay 0 / `None`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackReport {
    pub attack: String,
    pub seconds: f64,
    pub connections: u64,
    pub bytes_sent: u64,
    /// Frames or requests written.
    pub sent: u64,
    /// Frames or responses read back.
    pub replies_read: u64,
    /// Refused by the server: non-200 HTTP, handshake refusals, error close codes.
    pub refusals: u64,
    /// Outcome counts by kind (`http 200`, `http 429`, `close 1002`, `eof`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// room-churn: rooms the server accepted a publish into (each one new).
    pub rooms_created: Option<u64>,
    /// zero-window: ms from the attack's start until the server no longer held the socket.
    pub released_after_ms: Option<u64>,
    /// zero-window: the close frame that arrived, if any (`1008 slow consumer`).
    pub close_frame: Option<String>,
    /// zero-window: most bytes the server's socket had queued toward us (/proc/net/tcp).
    pub server_unsent_max: Option<u64>,
    /// zero-window: how long after the attack's start it watched for the release.
    pub watched_ms: Option<u64>,
    /// Facts worth a line in the README.
    pub notes: Vec<String>,
    /// Why the attack stopped early, if it did.
    pub error: Option<String>,
}

impl AttackReport {
    pub fn count(&mut self, what: impl Into<String>) {
        *self.outcomes.entry(what.into()).or_insert(0) += 1;
    }
}

/// Runs `attack` for `duration` (zero-window: plus its release wait) and reports.
pub fn run(attack: Attack, o: &AttackOpts, duration: Duration, stop: &AtomicBool) -> AttackReport {
    let start = Instant::now();
    let until = start + duration;
    let mut r = AttackReport { attack: attack.name().into(), ..Default::default() };
    let res = match attack {
        Attack::PingFlood => flood::run(flood::Kind::TextPing, o, until, stop, &mut r),
        Attack::CtrlPingFlood => flood::run(flood::Kind::ControlPing, o, until, stop, &mut r),
        Attack::PubFlood => flood::run(flood::Kind::Pub, o, until, stop, &mut r),
        Attack::RoomChurn => churn::run(o, until, stop, &mut r),
        Attack::ZeroWindow => zero_window::run(o, start, until, stop, &mut r),
        Attack::Garbage => garbage::run(o, until, stop, &mut r),
    };
    if let Err(e) = res {
        r.error = Some(e.to_string());
    }
    r.seconds = start.elapsed().as_secs_f64();
    r
}

/// Receive buffer of the clients that never read: small, so their window closes at once and
/// everything the server answers piles up on the server's side.
pub(crate) const TINY_RCVBUF: usize = 4096;

/// Connects and completes a WebSocket upgrade to `path`; returns the stream (blocking, with
/// 2 s timeouts) and any bytes that followed the `101`.
pub fn ws_connect(
    addr: SocketAddr,
    path: &str,
    rcvbuf: Option<usize>,
    rng: &mut Rng,
) -> io::Result<(TcpStream, Vec<u8>)> {
    let s = sys::connect_with_rcvbuf(addr, rcvbuf, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let rest = upgrade(&s, addr, path, rng)?;
    Ok((s, rest))
}

/// Sends the upgrade request on `s` and reads the response head.
pub(crate) fn upgrade(mut s: &TcpStream, addr: SocketAddr, path: &str, rng: &mut Rng) -> io::Result<Vec<u8>> {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let url = ws::WsUrl { host: addr.ip().to_string(), port: addr.port(), path: path.into() };
    let (req, accept) = ws::handshake_request(&url, key);
    s.write_all(&req)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the upgrade"));
        }
        buf.extend_from_slice(&chunk[..n]);
        match ws::parse_handshake_response(&buf, &accept) {
            Handshake::Done(h) => return Ok(buf[h..].to_vec()),
            Handshake::Incomplete if buf.len() < 16 * 1024 => {}
            Handshake::Incomplete => return Err(io::Error::other("upgrade response head too large")),
            Handshake::Failed(why) => return Err(io::Error::other(why)),
        }
    }
}

/// Closes with RST: the server learns at once, and we leave no TIME_WAIT.
pub(crate) fn abort(s: TcpStream) {
    use std::os::fd::IntoRawFd;
    sys::close_abort(s.into_raw_fd());
}

/// A masked `sub` text frame.
pub(crate) fn sub_frame(out: &mut Vec<u8>, room: &str, rng: &mut Rng) {
    let mask = (rng.next_u64() as u32).to_ne_bytes();
    ws::encode_client_text_with(out, mask, |v| {
        let _ = write!(v, "{{\"op\":\"sub\",\"room\":\"{room}\"}}");
    });
}

pub(crate) fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}
