//! Shared harness of the integration tests: start the real `shardcast` binary on port 0,
//! speak to it over real sockets (tungstenite for well-formed WebSocket traffic, raw TCP for
//! malformed frames and HTTP), and never block longer than a few seconds.
//!
//! Every test file includes this module with `mod common;`, so not every helper is used in
//! every file.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod nats;
pub mod netns;

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Default bound of every single wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A running server process, killed (by its own `Child` handle) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// `shardcast --listen 127.0.0.1:0 --no-demo <args>`.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--listen", "127.0.0.1:0", "--no-demo"];
        all.extend_from_slice(args);
        Server::start_raw(&all)
    }

    /// The binary with exactly these arguments (must include a `--listen` on port 0).
    pub fn start_raw(args: &[&str]) -> Server {
        Server::spawn(Command::new(env!("CARGO_BIN_EXE_shardcast")), args, true)
    }

    /// The binary inside network namespace `ns` (`ip netns exec`, which execs it: the child's
    /// PID is the server's), listening where `args` say (not necessarily loopback).
    pub fn start_in_netns(ns: &str, args: &[&str]) -> Server {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_shardcast")]);
        Server::spawn(cmd, args, false)
    }

    fn spawn(mut cmd: Command, args: &[&str], loopback: bool) -> Server {
        let mut child = cmd
            .args(args)
            .env_remove("SHARDCAST_CONFIG")
            .env_remove("SHARDCAST_JWT_SECRET")
            .env_remove("SHARDCAST_API_KEY")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shardcast");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut err = BufReader::new(child.stderr.take().unwrap());
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                while matches!(err.read_line(&mut line), Ok(n) if n > 0) {
                    let mut s = sink.lock().unwrap();
                    // Keep the tail only: a chatty server must not grow the test's memory.
                    if s.len() > 256 * 1024 {
                        let cut = s.len() - 128 * 1024;
                        let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                        s.drain(..cut);
                    }
                    s.push_str(&line);
                    line.clear();
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut first = true;
                loop {
                    line.clear();
                    match out.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if first => {
                            first = false;
                            let _ = tx.send(line.clone());
                        }
                        Ok(_) => {} // keep draining so the server never blocks on stdout
                    }
                }
            });
        }
        let mut server = Server { child: Some(child), addr: ([127, 0, 0, 1], 0).into(), port: 0, stderr };
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let status = server.child.as_mut().unwrap().try_wait().ok().flatten();
                panic!(
                    "server did not print `listening on ...` (exit status {status:?}); stderr:\n{}",
                    server.stderr()
                );
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"));
        let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
        if loopback {
            assert_eq!(addr.ip().to_string(), "127.0.0.1", "{line:?}");
        }
        assert_ne!(addr.port(), 0, "{line:?}");
        server.addr = addr;
        server.port = addr.port();
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// What the server wrote to stderr so far (tail).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on the pid of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A multiplexed `/ws` client.
    pub fn ws(&self) -> Ws {
        self.connect("/ws")
    }

    /// A client of `path_and_query` (`/ws`, `/ws/room`, `/ws?token=..`); panics on failure.
    pub fn connect(&self, path_and_query: &str) -> Ws {
        self.try_connect(path_and_query, &[])
            .unwrap_or_else(|e| panic!("connect {path_and_query}: {e}\nserver stderr:\n{}", self.stderr()))
    }

    /// A client with extra handshake headers; the handshake error (e.g. an HTTP 401) on failure.
    pub fn try_connect(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, HandshakeFailure> {
        let stream = TcpStream::connect(self.addr).expect("tcp connect");
        Ws::handshake(stream, &self.ws_url(path_and_query), headers)
    }

    /// One HTTP request on a fresh connection (`Connection: close`).
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http_request(self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        self.http("GET", path, &[], b"")
    }

    /// `POST /api/publish` with a JSON body.
    pub fn publish(&self, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.http("POST", "/api/publish", &h, body.as_bytes())
    }

    /// A raw TCP connection.
    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("tcp connect");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// A raw WebSocket connection after a successful handshake on `path`.
    pub fn raw_ws(&self, path: &str) -> RawWs {
        RawWs::connect(self, path, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- shardcast stderr (tail) ----\n{}", tail(&self.stderr(), 8000));
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut at = s.len() - n;
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

/// Why a WebSocket handshake failed.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The server answered with a non-101 HTTP response.
    Http {
        status: u16,
        body: Vec<u8>,
    },
    Other(String),
}

impl HandshakeFailure {
    pub fn status(&self) -> Option<u16> {
        match self {
            HandshakeFailure::Http { status, .. } => Some(*status),
            HandshakeFailure::Other(_) => None,
        }
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailure::Http { status, body } => {
                write!(f, "HTTP {status}: {}", String::from_utf8_lossy(body))
            }
            HandshakeFailure::Other(e) => f.write_str(e),
        }
    }
}

/// One frame as a client sees it, after tungstenite decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// Close code and reason (`None`: a close frame without a status).
    Close(Option<(u16, String)>),
}

/// A well-behaved tungstenite client with bounded reads.
pub struct Ws {
    pub ws: WebSocket<TcpStream>,
}

impl Ws {
    pub fn handshake(stream: TcpStream, url: &str, headers: &[(&str, &str)]) -> Result<Ws, HandshakeFailure> {
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut req = url.into_client_request().expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                tungstenite::http::HeaderValue::from_str(v).unwrap(),
            );
        }
        // The client must accept whatever the server may legally send.
        let cfg = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
        match tungstenite::client::client_with_config(req, stream, Some(cfg)) {
            Ok((ws, _resp)) => Ok(Ws { ws }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                Err(HandshakeFailure::Http {
                    status: resp.status().as_u16(),
                    body: resp.body().clone().unwrap_or_default(),
                })
            }
            Err(e) => Err(HandshakeFailure::Other(e.to_string())),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.ws.get_ref()
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).unwrap_or_else(|e| panic!("send {text:.200}: {e}"));
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.ws.send(Message::binary(data.to_vec())).expect("send binary");
    }

    /// Next frame within `timeout`: `Ok(None)` on timeout, `Err` when the connection ended
    /// without a close frame. Pings and pongs are skipped (tungstenite answers pings).
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.ws.get_mut().set_read_timeout(Some(left)).unwrap();
            match self.ws.read() {
                Ok(Message::Text(t)) => return Ok(Some(Frame::Text(t.as_str().to_owned()))),
                Ok(Message::Binary(b)) => return Ok(Some(Frame::Binary(b.to_vec()))),
                Ok(Message::Close(c)) => {
                    return Ok(Some(Frame::Close(
                        c.map(|c| (u16::from(c.code), c.reason.as_str().to_owned())),
                    )))
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The next text frame, as sent by the server (panics on anything else or timeout).
    pub fn recv_text(&mut self) -> String {
        self.recv_text_within(TIMEOUT)
    }

    pub fn recv_text_within(&mut self, timeout: Duration) -> String {
        match self.next_frame(timeout) {
            Ok(Some(Frame::Text(t))) => t,
            Ok(Some(other)) => panic!("expected a text frame, got {other:?}"),
            Ok(None) => panic!("no frame within {timeout:?}"),
            Err(e) => panic!("connection failed while waiting for a text frame: {e}"),
        }
    }

    /// The next text frame parsed as JSON.
    pub fn recv(&mut self) -> Value {
        let t = self.recv_text();
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("server sent invalid JSON {t:?}: {e}"))
    }

    /// Asserts that nothing but pings arrives for `dur`.
    pub fn expect_silence(&mut self, dur: Duration) {
        match self.next_frame(dur) {
            Ok(None) => {}
            other => panic!("expected no frame for {dur:?}, got {other:?}"),
        }
    }

    /// Reads until a close frame (skipping text/binary frames) and returns its code/reason.
    /// Panics if the connection ends without one or nothing comes within `timeout`.
    pub fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left) {
                Ok(Some(Frame::Close(Some(c)))) => return c,
                Ok(Some(Frame::Close(None))) => panic!("close frame without a status code"),
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no close frame within {timeout:?}"),
                Err(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
    }

    /// Sends `op` (a JSON text) and returns the next text frame, which must be its reply.
    pub fn request(&mut self, op: &str) -> String {
        self.send_text(op);
        self.recv_text()
    }

    /// Subscribes (with id) and asserts the exact `ok` reply; returns the room's last seq.
    pub fn sub(&mut self, room: &str, id: u64) -> u64 {
        self.sub_epoch(room, id).0
    }

    /// Subscribes (with id) and asserts the exact `ok` reply; returns the room's last seq
    /// and its epoch.
    pub fn sub_epoch(&mut self, room: &str, id: u64) -> (u64, String) {
        let reply = self.request(&format!(r#"{{"op":"sub","room":"{room}","id":{id}}}"#));
        let v: Value = serde_json::from_str(&reply).unwrap();
        let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("sub reply without seq: {reply}"));
        let (bare, epoch) = split_epoch(&reply);
        assert_eq!(bare, format!(r#"{{"op":"ok","id":{id},"room":"{room}","seq":{seq}}}"#));
        (seq, epoch)
    }

    /// Publishes `data` (raw JSON text) and returns the assigned seq from the exact `ok`.
    /// The next frame must be the reply: do not use on a connection subscribed to `room`.
    pub fn publish(&mut self, room: &str, data: &str, id: u64) -> u64 {
        let reply = self.request(&format!(r#"{{"op":"pub","room":"{room}","data":{data},"id":{id}}}"#));
        let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply:?}: {e}"));
        let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("pub reply without seq: {reply}"));
        assert_eq!(without_epoch(&reply), format!(r#"{{"op":"ok","id":{id},"room":"{room}","seq":{seq}}}"#));
        seq
    }

    /// JSON frames until one satisfies `pred` (returned), within `within` in all.
    pub fn recv_until(&mut self, within: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let end = std::time::Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "no matching frame within {within:?}");
            let v: Value = serde_json::from_str(&self.recv_text_within(left)).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }

    /// A ping round trip: proves the connection is alive and everything sent before is done.
    pub fn ping(&mut self, id: u64) {
        let reply = self.request(&format!(r#"{{"op":"ping","id":{id}}}"#));
        assert_eq!(reply, format!(r#"{{"op":"pong","id":{id}}}"#));
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.next_frame(Duration::from_millis(500));
    }
}

/// Splits a JSON object text whose last field is `"epoch":"<10 base62 characters>"` (the
/// `ok` replies to `sub`/`pub`, `POST /api/publish`, `GET /api/rooms/<room>`) into the text
/// without that field and the epoch. Panics if the field is not there, last, and well formed.
pub fn split_epoch(text: &str) -> (String, String) {
    let body = text.strip_suffix("\"}").unwrap_or_else(|| panic!("no epoch at the end of {text}"));
    let (head, epoch) = body.rsplit_once(",\"epoch\":\"").unwrap_or_else(|| panic!("no epoch in {text}"));
    assert!(epoch.len() == 10 && epoch.bytes().all(|b| b.is_ascii_alphanumeric()), "bad epoch in {text}");
    (format!("{head}}}"), epoch.to_owned())
}

/// `text` without its trailing `"epoch"` field (see [`split_epoch`]).
pub fn without_epoch(text: &str) -> String {
    split_epoch(text).0
}

/// An `ok` frame without its epoch; any other frame as it is (for tests that collect
/// several frames of different kinds).
pub fn ok_without_epoch(text: String) -> String {
    if text.starts_with(r#"{"op":"ok""#) && text.contains(r#","epoch":""#) {
        without_epoch(&text)
    } else {
        text
    }
}

/// The exact message envelope of DESIGN §3.
pub fn envelope(room: &str, seq: u64, data: &str) -> String {
    format!(r#"{{"room":"{room}","seq":{seq},"data":{data}}}"#)
}

/// Asserts that `text` is an error op with `code` (and `id` if given), checking the exact
/// byte layout of everything but the human message, which must be a non-empty string.
pub fn assert_error(text: &str, id: Option<&str>, code: &str) {
    let prefix = match id {
        Some(id) => format!(r#"{{"op":"error","id":{id},"code":"{code}","message":""#),
        None => format!(r#"{{"op":"error","code":"{code}","message":""#),
    };
    assert!(text.starts_with(&prefix), "expected an error starting {prefix:?}, got {text:?}");
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let obj = v.as_object().unwrap();
    let expected_keys = if id.is_some() { 4 } else { 3 };
    assert_eq!(obj.len(), expected_keys, "unexpected fields in {text}");
    assert!(!v["message"].as_str().unwrap().is_empty(), "empty message in {text}");
}

/// Unique names so tests in one process never share rooms by accident.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A fresh temporary directory (removed on drop).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "shardcast-test-{}-{}-{}",
            std::process::id(),
            unique(""),
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Writes `name` with `text` and returns its path as a string.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// HTTP over a raw socket
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("HTTP {} body is not JSON ({e}): {:?}", self.status, self.text()))
    }

    /// Asserts the `{"error":{"code":..,"message":..}}` shape with a 4xx status; returns the code.
    pub fn error_code(&self) -> String {
        assert!((400..500).contains(&self.status), "expected a 4xx, got {} {:?}", self.status, self.text());
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {v}"));
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "no error.message in {v}");
        code.to_owned()
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("tcp connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", addr.port());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).expect("write request");
    read_http_response(&mut s).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Reads one HTTP response (head + `Content-Length` body, or to EOF without one).
pub fn read_http_response(s: &mut TcpStream) -> Result<HttpResponse, String> {
    let mut buf = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if Instant::now() > deadline {
            return Err("timeout reading response head".into());
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("EOF before end of head; got {:?}", String::from_utf8_lossy(&buf))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    if !status_line.starts_with("HTTP/1.1 ") && !status_line.starts_with("HTTP/1.0 ") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    let cl = headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse::<usize>());
    match cl {
        Some(Ok(n)) => {
            while body.len() < n {
                let mut chunk = vec![0u8; n - body.len()];
                match s.read(&mut chunk) {
                    Ok(0) => return Err(format!("EOF after {} of {n} body bytes", body.len())),
                    Ok(k) => body.extend_from_slice(&chunk[..k]),
                    Err(e) => return Err(format!("read body: {e}")),
                }
            }
            if body.len() > n {
                return Err(format!("{} bytes after a {n}-byte body", body.len() - n));
            }
        }
        Some(Err(_)) => return Err("bad Content-Length".into()),
        None if status == 101 || status == 204 || status == 304 => {}
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    Ok(HttpResponse { status, headers, body })
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket frames
// ---------------------------------------------------------------------------------------

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Encodes one frame; `mask` = the client's masking key, `None` for an (illegal) unmasked one.
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// What a raw read produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    Frame {
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
    /// The server closed the TCP connection (EOF or reset).
    Eof(String),
    Timeout,
}

/// A WebSocket connection driven byte by byte, for inputs tungstenite would refuse to send.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

impl RawWs {
    pub fn connect(server: &Server, path: &str, headers: &[(&str, &str)]) -> RawWs {
        let mut stream = server.tcp();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n",
            server.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        // Read exactly the head, byte by byte, so no frame bytes are swallowed.
        let mut head = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while !head.ends_with(b"\r\n\r\n") {
            assert!(Instant::now() < deadline, "handshake timeout");
            let mut b = [0u8; 1];
            match stream.read(&mut b) {
                Ok(1) => head.push(b[0]),
                other => panic!("handshake read: {other:?}; got {:?}", String::from_utf8_lossy(&head)),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "no upgrade: {head:?}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}"))
                || head
                    .to_ascii_lowercase()
                    .contains(&format!("sec-websocket-accept: {}", ACCEPT.to_ascii_lowercase())),
            "{head:?}"
        );
        RawWs { stream, buf: Vec::new() }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // The server may already have closed: a write error is not the test's concern here.
        let _ = self.stream.write_all(bytes);
    }

    /// A well-formed masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_raw(&encode_frame(fin, opcode, payload, Some([0x12, 0x34, 0x56, 0x78])));
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, OP_TEXT, text.as_bytes());
    }

    /// Next frame from the server within `timeout`.
    pub fn read_event(&mut self, timeout: Duration) -> RawEvent {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return frame;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return RawEvent::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return RawEvent::Eof("EOF".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return RawEvent::Eof(e.to_string()),
            }
        }
    }

    /// Next text frame (skipping pings); panics otherwise.
    pub fn recv_text(&mut self) -> String {
        loop {
            match self.read_event(TIMEOUT) {
                RawEvent::Frame { opcode: OP_PING | OP_PONG, .. } => continue,
                RawEvent::Frame { fin: true, opcode: OP_TEXT, payload } => {
                    return String::from_utf8(payload).expect("utf-8")
                }
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until the server's close frame; returns its code and reason. Panics if the
    /// connection ends without one or on timeout.
    pub fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_event(left) {
                RawEvent::Frame { opcode: OP_CLOSE, payload, .. } => {
                    assert!(payload.len() >= 2, "close frame without a status code: {payload:?}");
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    let reason = String::from_utf8(payload[2..].to_vec()).expect("close reason is UTF-8");
                    return (code, reason);
                }
                RawEvent::Frame { .. } => continue,
                RawEvent::Eof(e) => panic!("connection ended without a close frame ({e})"),
                RawEvent::Timeout => panic!("no close frame within {timeout:?}"),
            }
        }
    }

    /// After a close frame: the server must end the TCP connection within `timeout`.
    pub fn expect_eof(&mut self, timeout: Duration) {
        // Answer the close as a polite client would, then wait for EOF.
        self.send_frame(true, OP_CLOSE, &[]);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_event(left) {
                RawEvent::Eof(_) => return,
                RawEvent::Frame { .. } => continue,
                RawEvent::Timeout => panic!("server kept the connection open for {timeout:?} after closing"),
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Parses one (unmasked, as the server must send) frame from the front of `buf`.
fn parse_server_frame(buf: &[u8]) -> Option<(RawEvent, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    assert_eq!(buf[0] & 0x70, 0, "server set RSV bits");
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let payload = buf[at..at + len].to_vec();
    at += len;
    Some((RawEvent::Frame { fin, opcode, payload }, at))
}

// ---------------------------------------------------------------------------------------
// The healthy neighbour of the bad-input and slow-consumer tests
// ---------------------------------------------------------------------------------------

/// A subscriber plus a publisher on one room, used to prove that something done to another
/// connection did not affect them.
pub struct Neighbour {
    pub room: String,
    pub sub: Ws,
    pub publisher: Ws,
    next: u64,
    id: u64,
}

impl Neighbour {
    pub fn new(server: &Server) -> Neighbour {
        let room = unique("neighbour:");
        let mut sub = server.ws();
        let last = sub.sub(&room, 1);
        assert_eq!(last, 0);
        let publisher = server.ws();
        let mut n = Neighbour { room, sub, publisher, next: 1, id: 100 };
        n.check();
        n
    }

    /// Publishes one message and asserts the subscriber gets exactly it, in sequence.
    pub fn check(&mut self) {
        self.id += 1;
        let data = format!(r#"{{"n":{},"note":"still healthy"}}"#, self.next);
        let seq = self.publisher.publish(&self.room, &data, self.id);
        assert_eq!(seq, self.next, "neighbour room seq");
        assert_eq!(self.sub.recv_text(), envelope(&self.room, seq, &data), "neighbour delivery");
        self.next += 1;
    }
}

/// Polls `GET /api/rooms/<room>` until it reports `n` subscribers (bounded): subscriptions on
/// other shards become visible asynchronously.
pub fn wait_subscribers(server: &Server, room: &str, n: u64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = server.get(&format!("/api/rooms/{room}"));
        if r.status == 200 && r.json()["subscribers"].as_u64() == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "room {room} never reached {n} subscribers: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
