import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { Heartbeat } from './heartbeat.js';
import { ShardcastError } from './errors.js';
import { PACING, Subscription } from './room.js';
import { tokenExpired } from './token.js';

/**
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} State
 */

/** Close code and reason the server uses when a connection outlives its token (DESIGN §3). */
const TOKEN_EXPIRED = { code: 1008, reason: /token expired/i };
/** Close code this client uses when it gives up on a silent connection (4000–4999: private). */
const PING_TIMEOUT_CODE = 4000;

/**
 * A connection to a shardcast server's multiplexed endpoint (`/ws`) that survives drops.
 *
 * What it keeps across reconnects: every {@link Subscription} with its position (epoch +
 * last seq delivered), and requests not sent yet. On every (re)connect it re-subscribes each
 * room with `since` + `epoch`, so the application sees each message once, in order, and is
 * told explicitly when it cannot: a `gap` (history no longer holds some seqs) or a `reset`
 * (the room restarted under a new epoch).
 *
 * What it does not pretend: a `pub` whose reply was lost with the connection is rejected
 * with `disconnected` — it may or may not have been applied — rather than silently re-sent,
 * which could publish it twice.
 *
 * States, each announced by a `state` event (and an event of the state's own name):
 * `connecting` (an attempt is under way) → `open` → `reconnecting` (waiting `delay` ms
 * before the next attempt) → `connecting` → ... ; `closed` after {@link ShardcastClient#close}.
 */
export class ShardcastClient extends Emitter {
  #url;
  #WebSocket;
  #token;
  #refreshToken;
  #backoff;
  #resetAfter;
  #reconnect;
  #requestTimeout;

  /** @type {State} */
  #state = 'idle';
  /** @type {any} the current socket (a WebSocket-like object), or null */
  #ws = null;
  /** Increases per attempt, so callbacks of an abandoned attempt can tell they are stale. */
  #generation = 0;
  #stopped = true;
  #nextId = 1;
  #openedAt = 0;
  #needsRefresh = false;
  #lastError = '';
  #retryTimer = null;
  /** @type {Heartbeat} */
  #heartbeat;

  /** @type {Map<string, Subscription>} room → subscription, in subscription order */
  #rooms = new Map();
  /** @type {Map<number, object>} id → request awaiting its reply on the current socket */
  #inflight = new Map();
  /** @type {object[]} requests waiting for an open socket */
  #queue = [];

  /**
   * @param {string} url `ws://host:port` or `wss://…`; a URL without a path gets `/ws`
   *   (`http(s)://` is accepted and turned into `ws(s)://`)
   * @param {import('../index.js').ClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.#url = normalizeUrl(url);
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError(
        'no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package on Node 20)',
      );
    }
    this.#token = options.token ?? null;
    this.#refreshToken = options.refreshToken ?? null;
    const { resetAfter = 5_000, ...backoff } = options.backoff ?? {};
    this.#backoff = new Backoff(backoff);
    this.#resetAfter = resetAfter;
    this.#reconnect = options.reconnect ?? true;
    this.#requestTimeout = options.requestTimeout ?? 10_000;
    this.#heartbeat = new Heartbeat({
      interval: options.pingInterval ?? 25_000,
      timeout: options.pingTimeout ?? 10_000,
      sendPing: () => {
        const id = this.#nextId++;
        this.#inflight.set(id, { heartbeat: true });
        this.#send({ op: 'ping', id });
      },
      onDead: () => this.#drop(PING_TIMEOUT_CODE, 'ping timeout'),
    });
    // Started on the next microtask so that listeners added right after `new` see the first
    // `connecting`.
    if (options.autoConnect ?? true) queueMicrotask(() => this.#state === 'idle' && this.connect());
  }

  /** @returns {State} */
  get state() {
    return this.#state;
  }

  /** The token the next connection will present (after any refresh). */
  get token() {
    return this.#token;
  }

  /** The followed rooms. */
  get subscriptions() {
    return [...this.#rooms.values()];
  }

  /**
   * Starts connecting (again, after {@link ShardcastClient#close}). Subscriptions kept from
   * before resume from their positions.
   */
  connect() {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#backoff.reset();
    this.#attempt();
  }

  /**
   * Closes the connection and stops reconnecting. Subscriptions are kept (a later
   * {@link ShardcastClient#connect} resumes them); requests still waiting reject with `closed`.
   * @param {number} [code=1000]
   * @param {string} [reason]
   */
  close(code = 1000, reason = '') {
    this.#stopped = true;
    this.#generation += 1;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const ws = this.#ws;
    this.#teardown('closed', `client closed${reason ? `: ${reason}` : ''}`);
    if (ws) {
      detach(ws);
      try {
        ws.close(code, reason);
      } catch {
        // Already closing or closed.
      }
    }
    this.#failQueue();
    this.#setState('closed', { code, reason });
  }

  /** Rejects the requests that were waiting for a connection that will not come. */
  #failQueue() {
    for (const req of this.#queue.splice(0)) {
      this.#settle(req, new ShardcastError('closed', 'client closed', req.context));
    }
  }

  /**
   * Follows `room`. Resolves with the {@link Subscription} once the server confirmed it;
   * rejects with the server's error (`forbidden`, `bad_room`, `too_many_rooms`, ...). While
   * offline the subscription waits for the connection (no timeout: it is kept until
   * confirmed, refused or unsubscribed). Subscribing to a room already followed replaces that
   * subscription (the old one ends), as the server does.
   *
   * Pass handlers in `options` (`onMessage`, `onGap`, `onReset`): replayed and snapshot
   * messages can arrive in the same turn as the confirmation, before code after `await` runs.
   *
   * Tracking (DESIGN §3): `bbox` (a viewport: only messages inside, a `leave` when a shown
   * key moves out; move it with {@link ShardcastClient#view}), `maxRate`, `minMoveM`,
   * `maxSilenceS` (pacing per key), sent as `bbox`, `max_rate`, `min_move_m`,
   * `max_silence_s`; `onLeave`, `onOffline`, `onPresenceDiff` for the room's notices. The
   * server checks them against the namespace (`bad_field`, `too_many_rooms`).
   *
   * @param {string} room
   * @param {import('../index.js').SubscribeOptions} [options]
   * @returns {Promise<Subscription>}
   */
  subscribe(room, options = {}) {
    if (typeof room !== 'string' || room.length === 0) {
      return Promise.reject(new TypeError('room must be a non-empty string'));
    }
    if (options.since != null && !(Number.isSafeInteger(options.since) && options.since >= 0)) {
      return Promise.reject(new TypeError('since must be a non-negative integer'));
    }
    if (options.bbox != null && !isBbox(options.bbox)) {
      return Promise.reject(new TypeError('bbox must be [west, south, east, north]: four finite numbers'));
    }
    for (const name of Object.keys(PACING)) {
      if (options[name] != null && !Number.isFinite(options[name])) {
        return Promise.reject(new TypeError(`${name} must be a finite number`));
      }
    }
    let ready;
    const promise = new Promise((resolve, reject) => (ready = { resolve, reject }));
    const sub = new Subscription(room, options, (s) => this.#unsubscribe(s), ready);
    const old = this.#rooms.get(room);
    if (old) {
      this.#rooms.delete(room); // re-inserted below: subscription order = resubscribe order
      old._end('unsubscribed', `replaced by a new subscription of ${room}`);
    }
    this.#rooms.set(room, sub);
    if (this.#state === 'open') this.#sendSub(sub);
    return promise;
  }

  /**
   * Publishes `data` (any JSON value) to `room`. Resolves with the `seq` and `epoch` the
   * server assigned. While (re)connecting the request waits for the connection up to
   * `requestTimeout`; after `close()` it rejects with `closed` at once.
   * @param {string} room
   * @param {unknown} data
   * @returns {Promise<{room: string, seq: number, epoch: string}>}
   */
  publish(room, data) {
    if (data === undefined) return Promise.reject(new TypeError('data must be a JSON value, not undefined'));
    return this.#request({ op: 'pub', room, data }, (reply) => ({
      room: reply.room,
      seq: reply.seq,
      epoch: reply.epoch,
    }));
  }

  /**
   * Moves the viewport of `room` (subscribed with a `bbox`) to `bbox` = `[west, south, east,
   * north]`. Resolves with `{room, bbox}` once the server confirmed; from then on the
   * subscription gets a `leave` per shown key now outside, the snapshot entries newly inside
   * (as ordinary messages), and live messages inside the new box. Rejects with the server's
   * code: `not_subscribed` (room not followed), `bad_op` (followed without a box),
   * `bad_field` (a malformed box). Later resubscriptions (after a reconnect) ask for the box
   * of the last `view` that succeeded. While offline it waits like `publish` does.
   * @param {string} room
   * @param {number[]} bbox
   * @returns {Promise<{room: string, bbox: number[]}>}
   */
  view(room, bbox) {
    if (!isBbox(bbox)) {
      return Promise.reject(new TypeError('bbox must be [west, south, east, north]: four finite numbers'));
    }
    const box = [...bbox];
    // The subscription it moves: a later subscribe() of the room is a new one, with its own box.
    const sub = this.#rooms.get(room);
    return this.#request({ op: 'view', room, bbox: box }, () => {
      if (sub && this.#rooms.get(room) === sub) sub._moved(box);
      return { room, bbox: box };
    });
  }

  /**
   * Who follows `room` (a namespace with `presence = true`; needs the subscribe right).
   * Resolves with `{room, count, members}`: `count` subscriptions on this server node,
   * `members` the distinct member names, sorted — `undefined` when there are more than the
   * namespace's `presence_members`. Rejects with `bad_op` where presence is not enabled.
   * @param {string} room
   * @returns {Promise<{room: string, count: number, members: string[] | undefined}>}
   */
  presence(room) {
    return this.#request({ op: 'presence', room }, (reply) => ({
      room: reply.room,
      count: reply.count,
      members: reply.members,
    }));
  }

  /**
   * Round trip to the server. Resolves with the time it took in milliseconds.
   * @returns {Promise<number>}
   */
  ping() {
    const started = now();
    return this.#request({ op: 'ping' }, () => now() - started);
  }

  // --- requests ---------------------------------------------------------------------------

  /**
   * Sends `frame` (with a fresh id) now or when the socket opens; settles with `map(reply)`
   * or the error reply. The timeout runs from the call, so a request never waits longer
   * than `requestTimeout` in total.
   */
  #request(frame, map) {
    return new Promise((resolve, reject) => {
      const req = { frame, map, resolve, reject, context: { op: frame.op, room: frame.room }, timer: null };
      req.timer = setTimeout(() => {
        const queued = this.#queue.indexOf(req);
        if (queued >= 0) this.#queue.splice(queued, 1);
        else this.#inflight.delete(req.frame.id);
        reject(new ShardcastError('timeout', `no reply to ${frame.op} within ${this.#requestTimeout} ms`, req.context));
      }, this.#requestTimeout);
      if (this.#state === 'open') this.#sendRequest(req);
      else if (this.#state === 'closed') this.#settle(req, new ShardcastError('closed', 'client closed', req.context));
      else this.#queue.push(req);
    });
  }

  #sendRequest(req) {
    req.frame.id = this.#nextId++;
    this.#inflight.set(req.frame.id, req);
    this.#send(req.frame);
  }

  #sendSub(sub) {
    const id = this.#nextId++;
    this.#inflight.set(id, { sub });
    this.#send(sub._request(id));
  }

  #settle(req, err, reply) {
    clearTimeout(req.timer);
    if (err) req.reject(err);
    else req.resolve(req.map(reply));
  }

  /** The subscription's own `unsubscribe()`. */
  #unsubscribe(sub) {
    if (this.#rooms.get(sub.room) !== sub) {
      // Already replaced, refused or unsubscribed: nothing is followed on its behalf.
      sub._end('unsubscribed', `unsubscribed from ${sub.room}`);
      return Promise.resolve();
    }
    this.#rooms.delete(sub.room);
    sub._end('unsubscribed', `unsubscribed from ${sub.room}`);
    if (this.#state !== 'open') return Promise.resolve();
    return this.#request({ op: 'unsub', room: sub.room }, () => undefined).catch((err) => {
      // A connection that dropped meanwhile follows nothing any more: that is success.
      if (err.code === 'disconnected' || err.code === 'closed') return undefined;
      throw err;
    });
  }

  #send(frame) {
    try {
      this.#ws.send(JSON.stringify(frame));
    } catch (err) {
      // The socket is closing; its close event does the cleanup.
      this.#lastError = String(err?.message ?? err);
    }
  }

  // --- connection -------------------------------------------------------------------------

  async #attempt() {
    const generation = ++this.#generation;
    this.#setState('connecting', { attempt: this.#backoff.attempt });
    let token;
    try {
      token = await this.#currentToken();
    } catch (err) {
      if (generation !== this.#generation) return;
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      this.#scheduleRetry({ code: 0, reason: 'token refresh failed' });
      return;
    }
    if (generation !== this.#generation) return; // closed (or restarted) meanwhile
    let ws;
    try {
      ws = new this.#WebSocket(withToken(this.#url, token));
    } catch (err) {
      this.emit('error', err);
      this.#scheduleRetry({ code: 0, reason: String(err?.message ?? err) });
      return;
    }
    this.#ws = ws;
    this.#lastError = '';
    this.#openedAt = 0;
    ws.onopen = () => ws === this.#ws && this.#onOpen();
    ws.onmessage = (ev) => ws === this.#ws && this.#onFrame(ev.data);
    ws.onerror = (ev) => {
      if (ws === this.#ws) this.#lastError = String(ev?.message ?? ev?.error?.message ?? '');
    };
    ws.onclose = (ev) => ws === this.#ws && this.#onClose(ev.code, ev.reason ?? '');
  }

  /**
   * The token for the next handshake: refreshed first when the server said it expired, or
   * when it is a JWT whose `exp` has passed (the handshake would be refused with 401).
   */
  async #currentToken() {
    const stale = this.#token !== null && tokenExpired(this.#token, Date.now(), 1_000);
    if (this.#refreshToken && (this.#needsRefresh || stale)) {
      const reason = this.#needsRefresh ? 'token expired' : 'token expired before connecting';
      const fresh = await this.#refreshToken({ reason, token: this.#token });
      if (typeof fresh !== 'string' || fresh.length === 0) {
        throw new TypeError('refreshToken must resolve to a non-empty string');
      }
      this.#token = fresh;
      this.#needsRefresh = false;
      this.emit('token', fresh);
    }
    return this.#token;
  }

  #onOpen() {
    this.#openedAt = now();
    this.#setState('open', {});
    // Rooms first, in the order they were subscribed, then whatever waited to be sent.
    for (const sub of this.#rooms.values()) this.#sendSub(sub);
    for (const req of this.#queue.splice(0)) this.#sendRequest(req);
    this.#heartbeat.start();
  }

  #onClose(code, reason) {
    const opened = this.#openedAt !== 0;
    const stableFor = opened ? now() - this.#openedAt : 0;
    this.#teardown('disconnected', `connection closed (${code}${reason ? ` ${reason}` : ''})`);
    if (this.#stopped) return;
    if (!this.#reconnect) {
      this.#stopped = true;
      this.#failQueue();
      this.#setState('closed', { code, reason });
      return;
    }
    if (stableFor >= this.#resetAfter) this.#backoff.reset();
    const tokenExpiredClose = code === TOKEN_EXPIRED.code && TOKEN_EXPIRED.reason.test(reason);
    // A refused handshake: browsers do not say why; Node's `ws` says "Unexpected server
    // response: 401". Only a refresh can help with a token refused as expired or invalid.
    const unauthorized = !opened && /\b401\b/.test(this.#lastError);
    if ((tokenExpiredClose || unauthorized) && this.#refreshToken) {
      this.#needsRefresh = true;
      // The first retry after a token expiry is immediate: nothing is wrong with the server.
      if (tokenExpiredClose) {
        this.#scheduleRetry({ code, reason, delay: 0 });
        return;
      }
    }
    this.#scheduleRetry({ code, reason: reason || this.#lastError });
  }

  /** Forgets the socket and fails what was in flight on it. */
  #teardown(code, message) {
    this.#ws = null;
    this.#openedAt = 0;
    this.#heartbeat.stop();
    const inflight = [...this.#inflight.values()];
    this.#inflight.clear();
    for (const entry of inflight) {
      // Subscriptions are sent again on the next connection; heartbeats are not requests.
      if (entry.sub || entry.heartbeat) continue;
      this.#settle(entry, new ShardcastError(code, message, entry.context));
    }
    for (const sub of this.#rooms.values()) sub._disconnected();
  }

  #scheduleRetry({ code, reason, delay = this.#backoff.next() }) {
    if (this.#stopped) return;
    this.#setState('reconnecting', { attempt: this.#backoff.attempt, delay, code, reason });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#stopped) this.#attempt();
    }, delay);
  }

  /**
   * Drops the current socket without waiting for a closing handshake (a silent peer would
   * never answer it) and handles it as a close with `code`.
   */
  #drop(code, reason) {
    const ws = this.#ws;
    if (!ws) return;
    detach(ws);
    try {
      if (typeof ws.terminate === 'function') ws.terminate();
      else ws.close(code, reason);
    } catch {
      // Already closed.
    }
    this.#onClose(code, reason);
  }

  #setState(state, info) {
    if (this.#state === state && state !== 'reconnecting' && state !== 'connecting') return;
    this.#state = state;
    const event = { state, ...info };
    this.emit('state', event);
    this.emit(state, event);
  }

  // --- inbound ----------------------------------------------------------------------------

  #onFrame(raw) {
    this.#heartbeat.seen();
    let frame;
    try {
      frame = JSON.parse(typeof raw === 'string' ? raw : new TextDecoder().decode(raw));
    } catch {
      this.emit('error', new ShardcastError('bad_frame', 'the server sent a frame that is not JSON'));
      return;
    }
    if (frame === null || typeof frame !== 'object') return;
    switch (frame.op) {
      case undefined:
        return this.#onMessage(frame);
      case 'ok':
      case 'pong':
        return this.#onReply(frame, null);
      case 'presence':
        // The answer to a `presence` request (it echoes our id).
        return this.#onReply(frame, null);
      case 'error':
        return this.#onReply(
          frame,
          new ShardcastError(String(frame.code), String(frame.message ?? frame.code)),
        );
      case 'gap': {
        const gap = this.#rooms.get(frame.room)?._gap(frame.from, frame.to);
        if (gap) this.emit('gap', gap);
        return;
      }
      case 'reset': {
        const reset = this.#rooms.get(frame.room)?._reset(frame.epoch);
        if (reset) this.emit('reset', reset);
        return;
      }
      case 'leave': {
        const leave = this.#rooms.get(frame.room)?._leave(String(frame.key));
        if (leave) this.emit('leave', leave);
        return;
      }
      case 'offline': {
        const offline = this.#rooms.get(frame.room)?._offline(String(frame.key), frame.last_seq);
        if (offline) this.emit('offline', offline);
        return;
      }
      case 'presence_diff': {
        const diff = this.#rooms
          .get(frame.room)
          ?._presenceDiff(frame.count, frame.joined ?? [], frame.left ?? []);
        if (diff) this.emit('presenceDiff', diff);
        return;
      }
      default:
        // Newer servers may add notices; ignoring them keeps old clients working.
        return;
    }
  }

  #onMessage(frame) {
    if (typeof frame.room !== 'string' || typeof frame.seq !== 'number') return;
    const delivered = this.#rooms.get(frame.room)?._message(frame.seq, frame.data);
    if (delivered) this.emit('message', delivered);
  }

  #onReply(frame, err) {
    const entry = frame.id === undefined ? undefined : this.#inflight.get(frame.id);
    if (!entry) {
      // An error without a request of ours (it cannot name one): tell the application.
      if (err) this.emit('error', err);
      return;
    }
    this.#inflight.delete(frame.id);
    if (entry.heartbeat) return;
    if (entry.sub) {
      const sub = entry.sub;
      if (this.#rooms.get(sub.room) !== sub) return; // replaced or unsubscribed meanwhile
      if (err) {
        this.#rooms.delete(sub.room);
        err.op = 'sub';
        err.room = sub.room;
        // The first refusal rejects `subscribe()`; a later one (on a resubscribe, e.g. after a
        // token refresh that lost the right) can only be announced.
        if (!sub._refused(err)) this.emit('error', err);
      } else {
        sub._ok(frame);
      }
      return;
    }
    if (err) {
      err.op = entry.context.op;
      err.room = entry.context.room;
    }
    this.#settle(entry, err, frame);
  }
}

/**
 * Removes our handlers from a socket we no longer follow. The error handler stays a no-op:
 * Node's `ws` emits `error` when a socket still connecting is closed, and an `error` event
 * without a listener would throw out of the process.
 */
function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
}

/** `[west, south, east, north]`: four finite numbers (the server checks the ranges). */
function isBbox(bbox) {
  return Array.isArray(bbox) && bbox.length === 4 && bbox.every(Number.isFinite);
}

function now() {
  return globalThis.performance?.now() ?? Date.now();
}

function normalizeUrl(url) {
  const u = new URL(String(url));
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new TypeError(`unsupported URL scheme ${u.protocol} (want ws:, wss:, http: or https:)`);
  }
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/ws';
  return u.toString();
}

function withToken(url, token) {
  if (token === null || token === undefined) return url;
  const u = new URL(url);
  u.searchParams.set('token', token);
  return u.toString();
}
