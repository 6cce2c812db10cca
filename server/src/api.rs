//! The small HTTP API: backend publishing (`POST /api/publish`, the `group_send` of a
//! Django view), room facts, health, Prometheus metrics and the web apps (`pages`).

use bytes::Bytes;
use shardcast_engine::EngineError;

use crate::http::{self, Conn, Request};
use crate::metrics::{self, RejectReason};
use crate::pages;
use crate::protocol::{self, Fields};
use crate::state::ShardCtx;

/// Answers one plain HTTP request with a complete response.
pub async fn respond(ctx: &ShardCtx, req: &Request, body: &[u8], conn: Conn) -> Vec<u8> {
    let path = req.path.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/health") => match &ctx.shared.cluster {
            None => http::json(200, br#"{"status":"ok"}"#, conn),
            // Cluster mode: the broker link too; publishes fail while it is down.
            Some(c) if c.connected() => http::json(200, br#"{"status":"ok","broker":"connected"}"#, conn),
            Some(_) => http::json(503, br#"{"status":"degraded","broker":"disconnected"}"#, conn),
        },
        ("GET", "/metrics") => {
            let mut text = metrics::render(&ctx.shared.metrics(&ctx.shard.stats_per_shard()));
            if let Some(c) = &ctx.shared.cluster {
                metrics::render_cluster(&mut text, c);
            }
            http::response(200, "text/plain; version=0.0.4", text.as_bytes(), conn)
        }
        ("GET", "/favicon.svg" | "/favicon.ico") => {
            http::response(200, pages::FAVICON_CONTENT_TYPE, pages::FAVICON_SVG.as_bytes(), conn)
        }
        ("GET", p) if pages::page(p).is_some() => {
            http::response(200, pages::HTML, pages::page(p).unwrap_or_default().as_bytes(), conn)
        }
        ("GET", p) if p.starts_with("/static/") => match pages::static_asset(&p["/static/".len()..]) {
            Some((content_type, body)) => http::response(200, content_type, body, conn),
            None => http::error_json(404, "not_found", &format!("no such file: {path}"), conn),
        },
        ("POST", "/api/publish") => publish(ctx, req, body, conn).await,
        ("GET", p) if p.starts_with("/api/rooms/") => room_info(ctx, &p["/api/rooms/".len()..], conn).await,
        (_, "/health" | "/metrics" | "/" | "/api/publish") => http::error_json(
            405,
            "method_not_allowed",
            &format!("{} is not allowed on {path}", req.method),
            conn,
        ),
        _ => http::error_json(404, "not_found", &format!("no such endpoint: {path}"), conn),
    }
}

async fn room_info(ctx: &ShardCtx, room: &str, conn: Conn) -> Vec<u8> {
    if let Err(e) = protocol::validate_room(room) {
        return http::error_json(400, e.code(), &e.to_string(), conn);
    }
    match ctx.shard.room_info(room).await {
        Ok(mut i) => {
            if let Some(c) = &ctx.shared.cluster {
                // The cluster-wide seq and epoch (this node may not receive the room).
                match c.info(room).await {
                    Ok(facts) => {
                        if let Some(r) = facts.last {
                            (i.seq, i.epoch) = (r.seq.max(i.seq), Some(r.epoch));
                        }
                        i.subscribers = facts.subscribers;
                    }
                    Err(e) => return http::error_json(503, e.code(), &e.to_string(), conn),
                }
            }
            // `null` when the room does not exist: asking creates nothing.
            let epoch = i.epoch.map_or("null".to_owned(), |e| format!(r#""{e}""#));
            let body = format!(
                r#"{{"room":"{room}","seq":{},"subscribers":{},"history":{},"epoch":{epoch}}}"#,
                i.seq, i.subscribers, i.history_len
            );
            http::json(200, body.as_bytes(), conn)
        }
        Err(e) => http::error_json(503, "unavailable", &e.to_string(), conn),
    }
}

/// Who may publish over HTTP: with an API key configured, whoever presents it (Bearer or
/// `X-Api-Key`); else, with JWT auth on, a token with the publish right; else anyone (an
/// open server on loopback).
fn authorized(ctx: &ShardCtx, req: &Request, room: &str) -> Result<(), (u16, &'static str, String)> {
    let shared = &ctx.shared;
    let presented = req.header("x-api-key").or_else(|| req.bearer_token());
    if let Some(key) = &shared.api_key {
        return match presented {
            Some(p) if key.check(p) => Ok(()),
            Some(_) => Err((401, "unauthorized", "wrong API key".into())),
            None => Err((401, "unauthorized", "missing API key (Authorization: Bearer or X-Api-Key)".into())),
        };
    }
    let rights = shared
        .auth
        .authorize(req.bearer_token(), crate::auth::now_unix())
        .map_err(|e| (401, "unauthorized", e.to_string()))?;
    if rights.can_publish(room) {
        Ok(())
    } else {
        Err((403, "forbidden", format!("no publish right on {room}")))
    }
}

async fn publish(ctx: &ShardCtx, req: &Request, body: &[u8], conn: Conn) -> Vec<u8> {
    let bad = |code: &str, msg: &str| http::error_json(400, code, msg, conn);
    if let Err(e) = crate::json::validate(body) {
        ctx.reject(RejectReason::BadRequest);
        let why = protocol::describe_json_error(&e, body.len());
        return bad("bad_json", &format!("body is not valid JSON: {why}"));
    }
    let (mut room, mut data): (Option<Option<String>>, _) = (None, None);
    for member in Fields::new(body) {
        let Ok((k, v)) = member else {
            return bad("bad_json", "body must be a JSON object {\"room\":..,\"data\":..}");
        };
        let (name, seen) = match &body[k] {
            // A JSON string, escapes decoded (`"tracker\/7"` is room `tracker/7`).
            b"\"room\"" => ("room", room.replace(serde_json::from_slice::<String>(&body[v]).ok()).is_some()),
            b"\"data\"" => ("data", data.replace(&body[v]).is_some()),
            _ => continue,
        };
        if seen {
            return bad("bad_json", &format!("duplicate field \"{name}\""));
        }
    }
    let Some(Some(room)) = room else { return bad("missing_field", "\"room\" (a string) is required") };
    let room = room.as_str();
    let Some(data) = data else { return bad("missing_field", "\"data\" is required") };
    if let Err(e) = protocol::validate_room(room) {
        return bad(e.code(), &e.to_string());
    }
    if let Err((status, code, msg)) = authorized(ctx, req, room) {
        ctx.reject(if status == 401 { RejectReason::Auth } else { RejectReason::Forbidden });
        return http::error_json(status, code, &msg, conn);
    }
    let key = ctx.shared.key_of(room, data);
    if let Some(c) = &ctx.shared.cluster {
        return match c.publish(room, Bytes::copy_from_slice(data), key).await {
            Ok(r) => {
                http::json(200, format!(r#"{{"seq":{},"epoch":"{}"}}"#, r.seq, r.epoch).as_bytes(), conn)
            }
            Err(e) => http::error_json(503, e.code(), &e.to_string(), conn),
        };
    }
    match ctx.shard.publish_wait(room, Bytes::copy_from_slice(data), key).await {
        Ok(r) => http::json(200, format!(r#"{{"seq":{},"epoch":"{}"}}"#, r.seq, r.epoch).as_bytes(), conn),
        Err(e @ EngineError::TooManyRooms(_)) => {
            http::error_json(503, "too_many_rooms", &e.to_string(), conn)
        }
        Err(e) => http::error_json(503, "unavailable", &e.to_string(), conn),
    }
}
