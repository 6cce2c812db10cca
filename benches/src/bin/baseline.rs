//! `baseline` — "the usual way" room-per-URL broadcast server, for comparison runs.
//!
//! tokio + tokio-tungstenite, one `tokio::sync::broadcast` channel per room kept in a
//! `HashMap` behind a `Mutex`. A client connecting to `ws://HOST:PORT/ws/<room>/` joins
//! `<room>` (trailing slash ignored, `/ws/tracker/42/` → `tracker/42`); every text frame it
//! sends is broadcast as is to every client of the room, itself included. A receiver that
//! falls more than the channel capacity behind skips messages (`RecvError::Lagged`) — that is
//! how such servers lose silently; we at least count it in a log line on stderr.
//!
//! ```text
//! baseline [--listen 127.0.0.1:8000] [--threads 1] [--capacity 1024]
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Message>>>>;

struct Opts {
    listen: SocketAddr,
    threads: usize,
    capacity: usize,
}

fn parse_args() -> Result<Opts> {
    let mut o = Opts { listen: "127.0.0.1:8000".parse()?, threads: 1, capacity: 1024 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => o.listen = val("--listen")?.parse().context("--listen ADDR:PORT")?,
            "--threads" => o.threads = val("--threads")?.parse().context("--threads N")?,
            "--capacity" => o.capacity = val("--capacity")?.parse().context("--capacity N")?,
            "-h" | "--help" => {
                println!(
                    "baseline: tokio + tokio-tungstenite room-per-URL broadcast server\n\n\
                     --listen ADDR    listen address (default 127.0.0.1:8000; port 0 = any)\n\
                     --threads N      tokio worker threads (default 1)\n\
                     --capacity N     broadcast channel capacity per room (default 1024)\n\n\
                     Connect to ws://ADDR/ws/<room>/; every text frame is broadcast to the room."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if o.threads == 0 || o.capacity == 0 {
        bail!("--threads and --capacity must be >= 1");
    }
    Ok(o)
}

/// `/ws/tracker/42/` → `tracker/42`; `None` if the path is not a room path.
fn room_of(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or("");
    let room = path.strip_prefix("/ws/")?.trim_end_matches('/');
    (!room.is_empty()).then(|| room.to_string())
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(o.threads).enable_all().build()?;
    rt.block_on(serve(o))
}

async fn serve(o: Opts) -> Result<()> {
    let listener = TcpListener::bind(o.listen).await.with_context(|| format!("bind {}", o.listen))?;
    println!("listening on {}", listener.local_addr()?);
    let rooms: Rooms = Arc::default();
    let lagged = Arc::new(AtomicU64::new(0));
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let (rooms, lagged, cap) = (rooms.clone(), lagged.clone(), o.capacity);
        tokio::spawn(async move {
            if let Err(e) = handle(sock, rooms, lagged, cap).await {
                eprintln!("connection: {e:#}");
            }
        });
    }
}

// tokio-tungstenite's handshake callback fixes the (large) `ErrorResponse` error type.
#[allow(clippy::result_large_err)]
async fn handle(sock: TcpStream, rooms: Rooms, lagged: Arc<AtomicU64>, cap: usize) -> Result<()> {
    let mut room = None;
    let ws = tokio_tungstenite::accept_hdr_async(sock, |req: &Request, resp: Response| {
        room = room_of(req.uri().path());
        if room.is_none() {
            let mut e = ErrorResponse::new(Some("use /ws/<room>/".into()));
            *e.status_mut() = StatusCode::NOT_FOUND;
            return Err(e);
        }
        Ok(resp)
    })
    .await?;
    let room = room.expect("checked in the callback");
    let (tx, mut rx) = {
        let mut map = rooms.lock().unwrap();
        let tx = map.entry(room.clone()).or_insert_with(|| broadcast::channel(cap).0);
        (tx.clone(), tx.subscribe())
    };
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(msg) => {
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let total = lagged.fetch_add(n, Ordering::Relaxed) + n;
                    eprintln!("lagged receiver skipped {n} messages (total skipped {total})");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(m @ Message::Text(_)) => {
                let _ = tx.send(m);
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {} // pings are answered by tungstenite; binary frames ignored
        }
    }
    writer.abort();
    drop(tx);
    let mut map = rooms.lock().unwrap();
    if map.get(&room).is_some_and(|t| t.receiver_count() == 0) {
        map.remove(&room);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::room_of;

    #[test]
    fn room_paths() {
        assert_eq!(room_of("/ws/tracker/42/").as_deref(), Some("tracker/42"));
        assert_eq!(room_of("/ws/fleet:city").as_deref(), Some("fleet:city"));
        assert_eq!(room_of("/ws/").as_deref(), None);
        assert_eq!(room_of("/other"), None);
    }
}
