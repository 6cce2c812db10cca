//! A WebSocket session after the handshake: inbound frames decoded by
//! [`crate::wsframe::Decoder`], ops dispatched to the engine, outbound frames written by
//! [`crate::writer`].
//!
//! The decoder keeps the protocol state (masking, fragmentation, control frames, UTF-8,
//! limits) apart from I/O: we read the socket into the shard's shared buffer and hand those
//! bytes to it; pings are answered through the outbox. Server→client data is the engine's
//! once-encoded frames.
//!
//! One task runs two futures, the writer and the reader; pings and idle timeouts come from
//! one task per shard ([`crate::keepalive`]), not a timer per connection. The session ends
//! when the writer has sent everything including a close frame, or the socket fails. Every bad input gets an explicit answer: an `error` op, or a close code + reason.

use bytes::Bytes;
use futures_lite::future::{or, pending, poll_fn};
use shardcast_engine::pace::PaceRule;
use shardcast_engine::shard::{ViewRefused, ViewSpec, MAX_FILTERED, PAN_RATE};
use shardcast_engine::{envelope, Ack, Reply, SubOptions, Subscriber};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use crate::auth::Rights;
use crate::metrics::RejectReason;
use crate::protocol::{self, ClientOp};
use crate::ratelimit::TokenBucket;
use crate::readiness::Socket;
use crate::state::ShardCtx;
use crate::writer;
use crate::wsframe::{Decoder, WsError, WsMessage};

/// Which endpoint the client connected to.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `GET /ws`: the multiplexed JSON protocol.
    Mux,
    /// `GET /ws/<room>`: joined to one room; frames in and out are the raw payloads.
    Room(Box<str>),
}

/// A session's state apart from its futures: one allocation, owned by the session's future.
/// The shard's sweeps reach a session's connection through the engine's map of subscribers,
/// which also keeps the time its client last sent anything ([`Subscriber::heard_from`]).
pub struct Session {
    pub sub: Rc<Subscriber>,
    ctx: Rc<ShardCtx>,
    endpoint: Endpoint,
    rights: Rights,
    /// The publish rate limit, made at the first publish: most clients never publish, and
    /// a bucket made then is in the state one made at the upgrade would be (full).
    /// A `Cell`, taken and put back around each use: a `RefCell`'s borrow flag would cost
    /// the session's allocation a size class.
    bucket: Cell<Option<Box<TokenBucket>>>,
    /// The bytes that arrived with the handshake, until the reader takes them. Here, and
    /// boxed twice (one thin pointer, which fits the session's allocation as it was), rather
    /// than moved from the session future into its reader and on into the read loop: each
    /// of those three futures kept 16 bytes of storage for it for the connection's life.
    early: Cell<Option<Box<Box<[u8]>>>>,
}

/// A session's start: the socket that was answered 101 (registered with the shard's epoll
/// instance, `crate::readiness`), the bytes that arrived with the handshake, the endpoint
/// and the client's rights.
pub struct Start {
    pub socket: Socket,
    pub early: Box<[u8]>,
    pub endpoint: Endpoint,
    pub rights: Rights,
    /// Its place under the connection limit, given back when the session ends.
    pub slot: crate::conn::WsSlot,
}

/// Registers the session and returns the future that runs it to its end.
///
/// Set-up is synchronous and the future captures only what the session keeps: an idle
/// connection holds this future for its whole life, and an `async fn` would also keep
/// storage for its arguments beside the locals they are moved into.
pub fn run(ctx: Rc<ShardCtx>, start: Start) -> impl std::future::Future<Output = ()> {
    let Start { socket, early, endpoint, rights, slot } = start;
    let mode = match endpoint {
        Endpoint::Mux => shardcast_engine::DeliveryMode::Envelope,
        Endpoint::Room(_) => shardcast_engine::DeliveryMode::Raw,
    };
    let sub = ctx.shard.new_subscriber(mode);
    if let Some(exp) = expiry(&rights) {
        ctx.expiries.borrow_mut().insert((exp, sub.id()));
    }
    let s = Rc::new(Session {
        sub,
        bucket: Cell::new(None),
        early: Cell::new((!early.is_empty()).then(|| Box::new(early))),
        ctx: ctx.clone(),
        endpoint,
        rights,
    });
    // Everything below that is kept across an await is held by every idle session: the
    // block captures the session, its socket and its slot, and derives the rest when
    // needed.
    async move {
        // `s.ctx` and `s.sub` are spelled out, not bound to locals: a reference kept
        // across the await below would be 16 bytes more in every idle session's future.
        if let Endpoint::Room(room) = &s.endpoint {
            // Boxed, like the removal below: a future is as large as its largest state,
            // and this one-off state would otherwise be held by every idle session.
            Box::pin(s.join_url_room(room)).await;
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        s.sub.set_direct(writer::direct(fd));
        // Shutdown and idle timeouts end a session through its outbox (a close frame), so
        // the session itself waits on nothing but its socket and its outbox. Both futures go
        // in bare, the writer's error handled here: a block around either would keep
        // references of its own for the session's life.
        if let Err(e) = or(writer::run(&socket, &s.sub, &s.ctx), s.read_loop(&socket)).await {
            if e.kind() == io::ErrorKind::TimedOut {
                s.ctx.reject(RejectReason::WriteTimeout);
                tracing::debug!(conn = s.sub.id(), "socket accepted nothing in time: resetting it");
                writer::reset_on_close(std::os::fd::AsRawFd::as_raw_fd(&socket));
            } else {
                tracing::debug!(conn = s.sub.id(), "write failed: {e}");
            }
        }
        // Before the socket closes: its fd number may soon belong to another connection.
        s.sub.clear_direct();
        if let Some(exp) = expiry(&s.rights) {
            s.ctx.expiries.borrow_mut().remove(&(exp, s.sub.id()));
        }
        Box::pin(s.ctx.shard.remove_subscriber(&s.sub)).await;
        drop(socket);
        drop(slot);
    }
}

/// When a session's token expires (unix seconds), if it has one.
fn expiry(rights: &Rights) -> Option<u64> {
    match rights {
        Rights::Token(c) => Some(c.exp),
        Rights::All => None,
    }
}

/// What one read produced: complete messages, and the close the input asked for (it broke
/// the protocol or sent a Close).
struct Input {
    msgs: Vec<WsMessage>,
    end: Option<(u16, String)>,
}

impl Session {
    /// Joins the room a room-per-URL session names (after asking the cluster for it, when
    /// there is one); closes the session if the cluster refuses.
    async fn join_url_room(&self, room: &str) {
        let mut opts = SubOptions::default();
        if let Some(cluster) = &self.ctx.shared.cluster {
            let keyed = self.ctx.shared.rules(room).key.is_some();
            match cluster.interest(room, keyed).await {
                Ok(epoch) => opts.room_epoch = Some(epoch),
                Err(e) => {
                    tracing::debug!(room, "room-per-URL session refused: {e}");
                    self.sub.close(1013, e.code(), false);
                }
            }
        }
        if !self.sub.is_closed() {
            self.ctx.shard.subscribe_with(&self.sub, room, opts, Ack::Silent).await;
        }
    }

    /// Reads until the client goes away, breaks the protocol, or the server stops, and then
    /// never resolves: it has closed the outbox, and the writer it runs beside finishes the
    /// session (on shutdown the server closes every session after draining the engine).
    /// Never resolving is how it joins the writer under `or` with no block around it, which
    /// would keep references of its own for the session's life.
    ///
    /// Every idle session holds this future, so what it keeps across a read is only the
    /// decoder: it is no `async fn` (which would keep its arguments twice); each read's
    /// messages are handled in a boxed future that owns them; and no local that lives
    /// across an await is ever borrowed (the compiler keeps a borrowed local's storage
    /// until its scope ends, even once it has been moved out).
    fn read_loop<'a, T: 'a>(&'a self, socket: &'a Socket) -> impl Future<Output = T> + 'a {
        let mut ws = Decoder::new(self.ctx.shared.config.max_frame);
        async move {
            'read: {
                // Boxed at once: only the box (one pointer) is held while it runs, and only in
                // this statement's scope (a `let` would keep its slot for the loop's life). The
                // early bytes are dropped within the block: an idle session keeps no buffer.
                if let Some(handled) = {
                    let early = self.early.take();
                    early.and_then(|e| self.decode(&mut ws, &e)).map(|i| Box::pin(self.take(i)))
                } {
                    if !handled.await {
                        break 'read;
                    }
                }
                loop {
                    if self.sub.is_closed() {
                        break 'read;
                    }
                    // The read gate: a client that does not read its replies is not read either.
                    if !self.sub.may_read() {
                        self.ctx.reject(RejectReason::ReadPaused);
                        poll_fn(|cx| self.sub.poll_room_to_read(cx)).await;
                        if self.sub.is_closed() {
                            break 'read;
                        }
                    }
                    let read = poll_fn(|cx| {
                        let mut buf = self.ctx.read_buf.borrow_mut();
                        match socket.poll_read(cx, &mut buf) {
                            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(None),
                            Poll::Ready(Ok(n)) => Poll::Ready(Some(self.decode(&mut ws, &buf[..n]))),
                            Poll::Pending => Poll::Pending,
                        }
                    });
                    let Some(input) = read.await else {
                        // Peer closed the socket or it failed: nothing more can be sent.
                        self.sub.close(1000, "", true);
                        break 'read;
                    };
                    if self.ctx.shard.is_stopping() {
                        // Shutting down: accept no more input; the shard closes us after draining.
                        break 'read;
                    }
                    if let Some(handled) = input.map(|i| Box::pin(self.take(i))) {
                        if !handled.await {
                            break 'read;
                        }
                    }
                }
            }
            pending().await
        }
    }

    /// Handles one read's messages, then its close if it asked for one (false: the reader
    /// is done, the outbox closed).
    async fn take(&self, input: Input) -> bool {
        let Input { msgs, end } = input;
        if let Some((code, reason)) = self.handle_all(msgs, end).await {
            self.sub.close(code, &reason, false);
            return false;
        }
        true
    }

    /// Handles the messages of one read in order; returns `end`, or the close a message
    /// asked for if `end` is None (the rest of the batch is then skipped).
    async fn handle_all(
        &self,
        msgs: Vec<WsMessage>,
        mut end: Option<(u16, String)>,
    ) -> Option<(u16, String)> {
        for (i, m) in msgs.into_iter().enumerate() {
            {
                // A burst of inbound messages fans out corked: one write per subscriber.
                let _cork = (i > 0).then(|| self.ctx.shard.cork());
                if let Some(close) = self.handle(m).await {
                    end = end.or(Some(close));
                    break;
                }
            }
            // One read can hold thousands of tiny messages: give the core back when the
            // scheduler wants it (uncorked, so others' fan-out is not held back).
            glommio::yield_if_needed().await;
        }
        end
    }

    /// Feeds bytes to the decoder, collecting complete messages, and the close code and
    /// reason if the input breaks the protocol; None if that is nothing (an incomplete
    /// frame).
    fn decode(&self, ws: &mut Decoder, input: &[u8]) -> Option<Input> {
        if !input.is_empty() {
            self.sub.heard_from();
        }
        let mut msgs = Vec::new();
        let end = ws.feed(input, &mut msgs).err().map(|e| {
            if let WsError::TooLarge { .. } = e {
                self.ctx.reject(RejectReason::TooLarge);
            }
            (e.close_code(), e.to_string())
        });
        (!msgs.is_empty() || end.is_some()).then_some(Input { msgs, end })
    }

    /// Handles one message; returns a close (code, reason) if the session must end.
    async fn handle(&self, m: WsMessage) -> Option<(u16, String)> {
        match m {
            WsMessage::Text(t) => {
                match &self.endpoint {
                    Endpoint::Mux => self.handle_op(t).await,
                    Endpoint::Room(room) => self.handle_room_text(room, Bytes::from(t)).await,
                }
                None
            }
            WsMessage::Binary(_) => Some((1003, "binary frames are not supported; send JSON text".into())),
            WsMessage::Close(c) => Some((c.map_or(1000, |(code, _)| code), String::new())),
            WsMessage::Ping(p) => {
                self.sub.push_ctrl(shardcast_engine::frame::pong_frame(&p));
                None
            }
            WsMessage::Pong(_) => None,
        }
    }

    fn error(&self, id: Option<&str>, code: &str, message: &str) {
        self.sub.push_ctrl(envelope::error_frame(id, code, message));
    }

    async fn handle_op(&self, mut text: Vec<u8>) {
        let op = match protocol::parse_client_op(&mut text) {
            Ok(op) => op,
            Err(e) => {
                self.ctx.reject(RejectReason::BadRequest);
                return self.error(e.error_id(), e.code(), &e.to_string());
            }
        };
        let shard = &self.ctx.shard;
        match op {
            ClientOp::Ping { id } => self.sub.push_ctrl(envelope::pong_op_frame(id.as_deref())),
            ClientOp::View { room, bbox, id } => {
                let err = match shard.view(&self.sub, &room, bbox, id.clone()).await {
                    Ok(()) => return,
                    Err(ViewRefused::NotSubscribed) => {
                        ("not_subscribed", format!("not subscribed to {room}"))
                    }
                    Err(ViewRefused::RateLimited) => {
                        self.ctx.reject(RejectReason::RateLimited);
                        ("rate_limited", format!("over {PAN_RATE} pans per second of {room}; pan less often"))
                    }
                    Err(ViewRefused::NoViewport) => (
                        "bad_op",
                        format!("{room} is followed without a bbox; subscribe again with one to pan"),
                    ),
                };
                self.error(id.as_deref(), err.0, &err.1);
            }
            ClientOp::Presence { room, id } => {
                if !self.may_subscribe(&room, id.as_deref()) {
                    return;
                }
                if !self.ctx.shared.rules(&room).presence {
                    let ns = protocol::namespace(&room);
                    let msg = format!("presence is not enabled for namespace {ns:?}");
                    return self.error(id.as_deref(), "bad_op", &msg);
                }
                shard.presence(&self.sub, &room, id).await;
            }
            ClientOp::Sub { room, since, snapshot, epoch, id, track } => {
                if !self.may_subscribe(&room, id.as_deref()) {
                    return;
                }
                let view = match track.map(|t| self.view_spec(&room, &t)).transpose() {
                    Ok(v) => v.map(Box::new),
                    Err(msg) => {
                        self.ctx.reject(RejectReason::BadRequest);
                        return self.error(id.as_deref(), "bad_field", &msg);
                    }
                };
                if view.is_some() && !self.sub.follows(&room) && shard.filtered_of(&self.sub) >= MAX_FILTERED
                {
                    self.ctx.reject(RejectReason::MaxRooms);
                    let msg = format!(
                        "a connection may hold at most {MAX_FILTERED} filtered (bbox, max_rate, min_move_m) subscriptions"
                    );
                    return self.error(id.as_deref(), "too_many_rooms", &msg);
                }
                let max = self.ctx.shared.config.max_rooms_per_conn;
                if !self.sub.follows(&room) && self.sub.room_count() >= max {
                    self.ctx.reject(RejectReason::MaxRooms);
                    let msg = format!("a connection may follow at most {max} rooms");
                    return self.error(id.as_deref(), "too_many_rooms", &msg);
                }
                let member = self.member();
                let mut opts = SubOptions { since, epoch, snapshot, room_epoch: None, member, view };
                if let Some(cluster) = &self.ctx.shared.cluster {
                    // The node's broker subscription is in place before the `ok`.
                    let keyed = self.ctx.shared.rules(&room).key.is_some();
                    match cluster.interest(&room, keyed).await {
                        Ok(epoch) => opts.room_epoch = Some(epoch),
                        Err(e) => return self.error(id.as_deref(), e.code(), &e.to_string()),
                    }
                }
                shard.subscribe_with(&self.sub, &room, opts, Ack::Ok(id)).await;
            }
            ClientOp::Unsub { room, id } => {
                if shard.unsubscribe(&self.sub, &room).await {
                    self.sub.push_ctrl(envelope::ok_frame(id.as_deref(), Some(&room), None));
                } else {
                    self.error(id.as_deref(), "not_subscribed", &format!("not subscribed to {room}"));
                }
            }
            ClientOp::Pub { room, data, id } => {
                if !self.may_publish(&room, id.as_deref()) {
                    return;
                }
                if let Some(cluster) = &self.ctx.shared.cluster {
                    let key = self.ctx.shared.key_of(&room, &data);
                    let frame = match cluster.publish(&room, Bytes::from(data), key).await {
                        Ok(r) => envelope::ok_epoch_frame(id.as_deref(), &room, r.seq, r.epoch),
                        Err(e) => envelope::error_frame(id.as_deref(), e.code(), &e.to_string()),
                    };
                    return self.sub.push_ctrl(frame);
                }
                {
                    let key = self.ctx.shared.key_of(&room, &data);
                    let reply = Reply::Conn { conn: self.sub.id(), id };
                    shard.publish(&room, Bytes::from(data), key, reply).await;
                }
            }
        }
    }

    async fn handle_room_text(&self, room: &str, data: Bytes) {
        if let Err(e) = crate::json::validate(&data) {
            self.ctx.reject(RejectReason::BadRequest);
            let why = protocol::describe_json_error(&e, data.len());
            return self.error(None, "bad_json", &format!("frame is not valid JSON: {why}"));
        }
        if !self.may_publish(room, None) {
            return;
        }
        if let Err(e) = self.ctx.publish_unacked(room, data).await {
            self.error(None, e.code(), &e.to_string());
        }
    }

    /// A `sub`'s tracking options as the engine's filter, or why they do not apply here.
    fn view_spec(&self, room: &str, t: &protocol::TrackOpts) -> Result<ViewSpec, String> {
        let rules = self.ctx.shared.rules(room);
        let ns = protocol::namespace(room);
        let geo_field = if t.bbox.is_some() { Some("bbox") } else { t.min_move_m.map(|_| "min_move_m") };
        if let Some(field) = geo_field.filter(|_| !rules.geo) {
            return Err(format!("field \"{field}\" needs positions: namespace {ns:?} has no geo fields"));
        }
        let paced = t.max_rate.is_some() || t.min_move_m.is_some() || t.max_silence_s.is_some();
        if paced && rules.key.is_none() {
            return Err(format!("pacing is per key: namespace {ns:?} has no key field"));
        }
        let pace =
            PaceRule::from_wire(t.max_rate, t.min_move_m, t.max_silence_s).map_err(|e| e.to_string())?;
        Ok(ViewSpec { bbox: t.bbox, pace })
    }

    /// Who this connection is for presence: its token's `sub` (at most 128 bytes); else,
    /// in cluster mode, `<node-id>/c<shard>.<connection>` (connection ids repeat across
    /// nodes); else nothing (the engine names it `c<shard>.<connection>`).
    fn member(&self) -> Option<Box<str>> {
        match &self.rights {
            Rights::Token(c) if !c.sub.is_empty() => {
                let mut end = c.sub.len().min(128);
                while !c.sub.is_char_boundary(end) {
                    end -= 1;
                }
                Some(c.sub[..end].into())
            }
            _ => {
                let node = self.ctx.shared.cluster.as_ref()?.node_id();
                Some(format!("{node}/c{}.{}", self.ctx.shard.id(), self.sub.id()).into())
            }
        }
    }

    fn may_subscribe(&self, room: &str, id: Option<&str>) -> bool {
        if !self.rights.can_subscribe(room) || !self.ctx.shared.rules(room).client_subscribe {
            self.ctx.reject(RejectReason::Forbidden);
            self.error(id, "forbidden", &format!("no subscribe right on {room}"));
            return false;
        }
        true
    }

    fn may_publish(&self, room: &str, id: Option<&str>) -> bool {
        if !self.rights.can_publish(room) || !self.ctx.shared.rules(room).client_publish {
            self.ctx.reject(RejectReason::Forbidden);
            self.error(id, "forbidden", &format!("no publish right on {room}"));
            return false;
        }
        let c = &self.ctx.shared.config;
        let mut bucket =
            self.bucket.take().unwrap_or_else(|| Box::new(TokenBucket::new(c.publish_rate, c.publish_burst)));
        let allowed = bucket.try_take(Instant::now());
        self.bucket.set(Some(bucket));
        if !allowed {
            self.ctx.reject(RejectReason::RateLimited);
            let msg = format!("over the publish rate of {}/s (burst {})", c.publish_rate, c.publish_burst);
            self.error(id, "rate_limited", &msg);
            return false;
        }
        true
    }
}
