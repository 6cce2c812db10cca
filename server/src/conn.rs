//! A freshly accepted connection: read the HTTP request head (within the handshake
//! timeout), then either upgrade to a WebSocket session ([`crate::ws`]) after origin, auth
//! and capacity checks, or serve plain HTTP ([`crate::api`]) with keep-alive.

use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

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
/// The HTTP phase and the WebSocket session are separate boxed futures: this task lives as
/// long as the connection, and a future is as large as its largest state, so keeping the
/// short-lived HTTP state out of the long-lived session keeps idle connections small.
pub async fn serve(ctx: Rc<ShardCtx>, stream: TcpStream) {
    if let Some(u) = Box::pin(http_phase(ctx.clone(), stream)).await {
        Box::pin(upgrade(ctx, u.stream, u.req, u.accept, u.early)).await;
    }
}

/// Plain HTTP requests (keep-alive) until the connection closes (None) or asks to upgrade.
async fn http_phase(ctx: Rc<ShardCtx>, mut stream: TcpStream) -> Option<Upgrade> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut first = true;
    loop {
        // The first head must arrive within the handshake timeout (slowloris); later ones on
        // a keep-alive connection within the idle timeout.
        let cfg = &ctx.shared.config;
        let limit = if first { cfg.handshake_timeout } else { cfg.idle_timeout };
        let head = match with_timeout(limit, read_head(&mut stream, &mut buf), &ctx).await {
            Some(Ok(Some(h))) => h,
            Some(Ok(None)) => return None, // closed cleanly between requests
            Some(Err(e)) => {
                let _ = stream.write_all(&e.to_response()).await;
                return None;
            }
            None => {
                if first {
                    ctx.reject(RejectReason::HandshakeTimeout);
                }
                return None;
            }
        };
        first = false;
        let (req, head_len) = head;
        match http::websocket_upgrade(&req) {
            Ok(Some(accept)) => {
                buf.drain(..head_len);
                buf.shrink_to_fit();
                return Some(Upgrade { stream, req, accept, early: buf });
            }
            Ok(None) => {}
            Err(e) => {
                ctx.reject(RejectReason::BadRequest);
                let _ = stream.write_all(&e.to_response()).await;
                return None;
            }
        }
        let body_len = req.content_length.unwrap_or(0);
        if body_len > max_body(&ctx) {
            let resp = http::error_json(413, "too_large", "request body too large", Conn::Close);
            let _ = stream.write_all(&resp).await;
            return None;
        }
        while buf.len() < head_len + body_len {
            // Heap, not stack: a future holds its locals for the connection's whole life.
            let mut chunk = vec![0u8; 8192];
            match with_timeout(cfg.idle_timeout, stream.read(&mut chunk), &ctx).await {
                Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
        let keep = req.keep_alive() && !ctx.shard.is_stopping();
        let conn = if keep { Conn::KeepAlive } else { Conn::Close };
        let resp = crate::api::respond(&ctx, &req, &buf[head_len..head_len + body_len], conn).await;
        if stream.write_all(&resp).await.is_err() || !keep {
            return None;
        }
        buf.drain(..head_len + body_len);
    }
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

/// Reads until a complete request head is buffered. Ok(None): the peer closed before
/// sending anything.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<(Request, usize)>, HttpError> {
    loop {
        if !buf.is_empty() {
            if let Some(h) = http::parse_request(buf)? {
                return Ok(Some(h));
            }
        }
        let mut chunk = vec![0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => {
                return Err(HttpError::Malformed("connection closed inside the request head".into()))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Checks an upgrade request and, if it passes, answers 101 and runs the session.
async fn upgrade(ctx: Rc<ShardCtx>, mut stream: TcpStream, req: Request, accept: String, early: Vec<u8>) {
    let shared = ctx.shared.clone();
    let refuse = |status: u16, code: &str, msg: &str| http::error_json(status, code, msg, Conn::Close);
    let endpoint = match req.path.as_str() {
        "/ws" | "/ws/" => Ok(Endpoint::Mux),
        p if p.starts_with("/ws/") => protocol::room_from_path(p)
            .map(Endpoint::Room)
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
            if !rights.can_subscribe(room) {
                let msg = format!("no subscribe right on {room}");
                return Err((403, refuse(403, "forbidden", &msg), RejectReason::Forbidden));
            }
        }
        if shared.connections.fetch_add(1, Relaxed) >= shared.config.max_connections {
            shared.connections.fetch_sub(1, Relaxed);
            let msg = "server is at its connection limit";
            return Err((503, refuse(503, "too_many_connections", msg), RejectReason::MaxConnections));
        }
        Ok((ep, rights))
    });
    let (ep, rights) = match checked {
        Ok(v) => v,
        Err((_, resp, reason)) => {
            ctx.reject(reason);
            let _ = stream.write_all(&resp).await;
            return;
        }
    };
    // A room-per-URL client whose room cannot be created (room limit) gets a plain 503
    // rather than an upgrade that the engine would close at once (1013 too_many_rooms).
    if let Endpoint::Room(room) = &ep {
        if !ctx.shard.room_info(room).await.is_ok_and(|i| i.admits) {
            shared.connections.fetch_sub(1, Relaxed);
            ctx.reject(RejectReason::MaxRooms);
            let _ = stream.write_all(&refuse(503, "too_many_rooms", "the server is at its room limit")).await;
            return;
        }
    }
    let c = ctx.counters();
    c.connections_total.fetch_add(1, Relaxed);
    c.connections_current.fetch_add(1, Relaxed);
    if stream.write_all(&http::switching_protocols(&accept)).await.is_ok() {
        ws::run(ctx.clone(), stream, early, ep, rights).await;
    }
    c.connections_current.fetch_sub(1, Relaxed);
    shared.connections.fetch_sub(1, Relaxed);
}
