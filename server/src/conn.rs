//! A freshly accepted connection: read the HTTP request head (within the handshake
//! timeout), then either upgrade to a WebSocket session ([`crate::ws`]) after origin, auth
//! and capacity checks, or serve plain HTTP ([`crate::api`]) with keep-alive.

use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Pass;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::http::{self, Conn, HttpError, Request};
use crate::metrics::RejectReason;
use crate::protocol;
use crate::state::ShardCtx;
use crate::ws::{self, Endpoint};

/// Largest HTTP request body accepted (an HTTP publish is one message).
fn max_body(ctx: &ShardCtx) -> usize {
    ctx.shared.config.max_frame + 1024
}

/// A connection that asked for a WebSocket and passed the header checks so far.
struct Upgrade {
    stream: TcpStream,
    req: Request,
    accept: String,
    early: Vec<u8>,
}

/// Serves one accepted connection until it closes.
///
/// Three boxed stages — plain HTTP, the upgrade handshake, the WebSocket session — each
/// freed before the next starts. This future lives as long as the connection and is as
/// large as its largest state, so it holds nothing but the current stage's box: an idle
/// WebSocket connection keeps only its session's state. `pass` (the shard's gate, which
/// shutdown waits on) is held until the connection ends.
pub fn serve(ctx: Rc<ShardCtx>, stream: TcpStream, pass: Pass) -> impl std::future::Future<Output = ()> {
    let http = Box::pin(http_stage(ctx.clone(), stream));
    async move {
        // Captured (moved in) and never moved out: dropped when this future ends or is dropped.
        let _ = &pass;
        // Each `match` consumes a stage's result inside its arm, so no result outlives it.
        let handshake = match http.await {
            Some(u) => Box::pin(handshake(ctx.clone(), u)),
            None => return,
        };
        let session = match handshake.await {
            Some(start) => Box::pin(ws::run(ctx.clone(), start)),
            None => return,
        };
        session.await;
    }
}

/// The plain-HTTP stage under a `--max-http-connections` slot; Some once the client asks
/// for a WebSocket and its headers pass.
async fn http_stage(ctx: Rc<ShardCtx>, stream: TcpStream) -> Option<Upgrade> {
    let Some(_slot) = HttpSlot::take(&ctx) else {
        ctx.reject(RejectReason::MaxHttpConnections);
        let resp = http::error_json(
            503,
            "too_many_connections",
            "server is at its HTTP connection limit",
            Conn::Close,
        );
        // Never wait on a client we are turning away: one non-blocking attempt.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        // SAFETY: a live slice and a socket we own.
        unsafe { libc::send(fd, resp.as_ptr().cast(), resp.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        return None;
    };
    http_phase(ctx.clone(), stream).await
}

/// A place under `--max-http-connections`, held for the connection's plain-HTTP phase.
struct HttpSlot<'a>(&'a ShardCtx);

impl<'a> HttpSlot<'a> {
    fn take(ctx: &'a ShardCtx) -> Option<Self> {
        let shared = &ctx.shared;
        if shared.http_connections.fetch_add(1, Relaxed) >= shared.config.max_http_connections {
            shared.http_connections.fetch_sub(1, Relaxed);
            return None;
        }
        ctx.counters().http_connections.fetch_add(1, Relaxed);
        Some(HttpSlot(ctx))
    }
}

impl Drop for HttpSlot<'_> {
    fn drop(&mut self) {
        self.0.shared.http_connections.fetch_sub(1, Relaxed);
        self.0.counters().http_connections.fetch_sub(1, Relaxed);
    }
}

/// Plain HTTP requests (keep-alive) until the connection closes (None) or asks to upgrade.
///
/// Deadlines: the first request must start and its head arrive within the handshake timeout
/// (slowloris); a keep-alive connection may wait `idle_timeout` for its next request, which
/// then must be complete (head and body) within `request_timeout`. Responses are written
/// within `write_timeout`. Pipelined requests are answered one by one, yielding between them.
async fn http_phase(ctx: Rc<ShardCtx>, mut stream: TcpStream) -> Option<Upgrade> {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        let (req, head_len) = match read_request(&ctx, &mut stream, &mut buf, first).await {
            Ok(Some(h)) => h,
            Ok(None) => return None, // closed cleanly between requests
            Err(ReadError::Http(e)) => {
                let _ = write_within(&ctx, &mut stream, &e.to_response()).await;
                return None;
            }
            Err(ReadError::BodyTooLarge) => {
                let resp = http::error_json(413, "too_large", "request body too large", Conn::Close);
                let _ = write_within(&ctx, &mut stream, &resp).await;
                return None;
            }
            Err(ReadError::TimedOut) => {
                ctx.reject(if first { RejectReason::HandshakeTimeout } else { RejectReason::RequestTimeout });
                return None;
            }
            Err(ReadError::Closed) => return None,
        };
        first = false;
        match http::websocket_upgrade(&req) {
            Ok(Some(accept)) => {
                buf.drain(..head_len);
                buf.shrink_to_fit();
                return Some(Upgrade { stream, req, accept, early: buf });
            }
            Ok(None) => {}
            Err(e) => {
                ctx.reject(RejectReason::BadRequest);
                let _ = write_within(&ctx, &mut stream, &e.to_response()).await;
                return None;
            }
        }
        let body_len = req.content_length.unwrap_or(0);
        let keep = req.keep_alive() && !ctx.shard.is_stopping();
        let conn = if keep { Conn::KeepAlive } else { Conn::Close };
        let body = &buf[head_len..head_len + body_len];
        let resp = match publish_refusal(&ctx, &req, peer) {
            Some(refusal) => http::rate_limited(&refusal, conn),
            None => crate::api::respond(&ctx, &req, body, conn).await,
        };
        if !matches!(write_within(&ctx, &mut stream, &resp).await, Ok(())) || !keep {
            return None;
        }
        buf.drain(..head_len + body_len);
        // A client pipelining requests gets its share of the core, not all of it.
        glommio::yield_if_needed().await;
    }
}

/// Why no request could be read.
enum ReadError {
    /// Malformed or too large: answered with this error, then closed.
    Http(HttpError),
    /// Content-Length over the limit: answered 413, then closed.
    BodyTooLarge,
    /// A deadline passed (or the server is stopping).
    TimedOut,
    /// The peer closed or the socket failed mid-request.
    Closed,
}

/// Reads one whole request (head and body) into `buf`. Ok(None): the peer closed before
/// sending anything.
async fn read_request(
    ctx: &ShardCtx,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    first: bool,
) -> Result<Option<(Request, usize)>, ReadError> {
    let cfg = &ctx.shared.config;
    // A new connection's first request: the handshake timeout, whole. A later request: the
    // idle timeout until its first byte (bytes already buffered count), then the request
    // timeout.
    let mut started = first || !buf.is_empty();
    let limit = match (first, started) {
        (true, _) => cfg.handshake_timeout,
        (false, true) => cfg.request_timeout,
        (false, false) => cfg.idle_timeout,
    };
    let mut deadline = Instant::now() + limit;
    let mut head: Option<(Request, usize)> = None;
    loop {
        if head.is_none() && !buf.is_empty() {
            head = http::parse_request(buf).map_err(ReadError::Http)?;
        }
        if let Some((req, head_len)) = &head {
            let body_len = req.content_length.unwrap_or(0);
            if body_len > max_body(ctx) {
                return Err(ReadError::BodyTooLarge);
            }
            if buf.len() >= head_len + body_len {
                return Ok(head);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // Heap, not stack: a future holds its locals for the connection's whole life.
        let mut chunk = vec![0u8; 8192];
        match with_timeout(left, stream.read(&mut chunk), ctx).await {
            None => return Err(ReadError::TimedOut),
            Some(Ok(0) | Err(_)) if buf.is_empty() => return Ok(None),
            Some(Ok(0) | Err(_)) => return Err(ReadError::Closed),
            Some(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        if !started {
            started = true;
            deadline = Instant::now() + cfg.request_timeout;
        }
    }
}

/// Writes a whole response within `write_timeout`; Err if the client does not take it.
async fn write_within(ctx: &ShardCtx, stream: &mut TcpStream, resp: &[u8]) -> Result<(), ()> {
    match with_timeout(ctx.shared.config.write_timeout, stream.write_all(resp), ctx).await {
        Some(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// The HTTP publish rate limit: Some(message) when this client (its API key or token, else
/// its IP address) is over `--http-publish-rate`.
fn publish_refusal(ctx: &ShardCtx, req: &Request, peer: Option<std::net::SocketAddr>) -> Option<String> {
    if req.method != "POST" || req.path.split('?').next() != Some("/api/publish") {
        return None;
    }
    let ip = match peer.map(|p| p.ip()) {
        Some(std::net::IpAddr::V4(a)) => a.to_ipv6_mapped().octets(),
        Some(std::net::IpAddr::V6(a)) => a.octets(),
        None => [0; 16],
    };
    let key = req.header("x-api-key").or_else(|| req.bearer_token()).map(str::as_bytes);
    if ctx.http_limits.borrow_mut().try_take(key.unwrap_or(&ip), Instant::now()) {
        return None;
    }
    ctx.reject(RejectReason::RateLimited);
    let c = &ctx.shared.config;
    Some(format!("over the HTTP publish rate of {}/s (burst {})", c.http_publish_rate, c.http_publish_burst))
}

/// Runs `fut` unless `limit` passes or the server starts shutting down first.
async fn with_timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
    ctx: &ShardCtx,
) -> Option<T> {
    let stop = ctx.shard.stopping();
    or(async { Some(fut.await) }, async {
        or(glommio::timer::sleep(limit), stop).await;
        None
    })
    .await
}

/// Checks an upgrade request and, if it passes, answers 101. The connection holds its
/// [`WsSlot`] from the checks until its session ends. None: refused (answered) or gone.
async fn handshake(ctx: Rc<ShardCtx>, u: Upgrade) -> Option<ws::Start> {
    let Upgrade { mut stream, req, accept, early } = u;
    let shared = ctx.shared.clone();
    let refuse = |status: u16, code: &str, msg: &str| http::error_json(status, code, msg, Conn::Close);
    let endpoint = match req.path.as_str() {
        "/ws" | "/ws/" => Ok(Endpoint::Mux),
        p if p.starts_with("/ws/") => protocol::room_from_path(p)
            .map(|r| Endpoint::Room(r.into_boxed_str()))
            .map_err(|e| (400, refuse(400, e.code(), &e.to_string()), RejectReason::BadRequest)),
        _ => Err((
            404,
            refuse(404, "not_found", "WebSocket endpoints are /ws and /ws/<room>"),
            RejectReason::BadRequest,
        )),
    };
    let checked = endpoint.and_then(|ep| {
        if !shared.config.origin_allowed(req.header("origin")) {
            return Err((403, refuse(403, "forbidden_origin", "Origin not allowed"), RejectReason::Origin));
        }
        let token = req.query_param("token").or_else(|| req.bearer_token());
        let rights = shared
            .auth
            .authorize(token, crate::auth::now_unix())
            .map_err(|e| (401, refuse(401, "unauthorized", &e.to_string()), RejectReason::Auth))?;
        if let Endpoint::Room(room) = &ep {
            if !rights.can_subscribe(room) || !shared.rules(room).client_subscribe {
                let msg = format!("no subscribe right on {room}");
                return Err((403, refuse(403, "forbidden", &msg), RejectReason::Forbidden));
            }
        }
        let Some(slot) = WsSlot::take(&ctx) else {
            let msg = "server is at its connection limit";
            return Err((503, refuse(503, "too_many_connections", msg), RejectReason::MaxConnections));
        };
        Ok((ep, rights, slot))
    });
    let (ep, rights, mut slot) = match checked {
        Ok(v) => v,
        Err((_, resp, reason)) => {
            ctx.reject(reason);
            let _ = stream.write_all(&resp).await;
            return None;
        }
    };
    drop(req);
    // A room-per-URL client whose room cannot be created (room limit) gets a plain 503
    // rather than an upgrade that the engine would close at once (1013 too_many_rooms).
    if let Endpoint::Room(room) = &ep {
        if !ctx.shard.room_info(room).await.is_ok_and(|i| i.admits) {
            ctx.reject(RejectReason::MaxRooms);
            let _ = stream.write_all(&refuse(503, "too_many_rooms", "the server is at its room limit")).await;
            return None;
        }
    }
    if stream.write_all(&http::switching_protocols(&accept)).await.is_err() {
        return None;
    }
    let socket = match ctx.readiness.adopt(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("cannot register the upgraded socket: {e}");
            return None;
        }
    };
    slot.open();
    Some(ws::Start { socket, early: early.into_boxed_slice(), endpoint: ep, rights, slot })
}

/// A place under `--max-connections`, held by a WebSocket connection from its upgrade
/// checks until its session ends; from its 101 on it also counts as open
/// (`connections_total`, `connections_current`). Dropping it gives both back.
pub struct WsSlot {
    ctx: Rc<ShardCtx>,
    open: bool,
}

impl WsSlot {
    fn take(ctx: &Rc<ShardCtx>) -> Option<Self> {
        let shared = &ctx.shared;
        if shared.connections.fetch_add(1, Relaxed) >= shared.config.max_connections {
            shared.connections.fetch_sub(1, Relaxed);
            return None;
        }
        Some(WsSlot { ctx: ctx.clone(), open: false })
    }

    fn open(&mut self) {
        let c = self.ctx.counters();
        c.connections_total.fetch_add(1, Relaxed);
        c.connections_current.fetch_add(1, Relaxed);
        self.open = true;
    }
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        self.ctx.shared.connections.fetch_sub(1, Relaxed);
        if self.open {
            self.ctx.counters().connections_current.fetch_sub(1, Relaxed);
        }
    }
}
