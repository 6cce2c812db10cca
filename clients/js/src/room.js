import { Emitter } from './emitter.js';
import { ShardcastError } from './errors.js';

/**
 * One followed room: its handlers and its **position** — the epoch and the last `seq`
 * delivered to the application.
 *
 * The position is what makes reconnection lossless and duplicate-free: after a drop the
 * client re-subscribes with `since` = that seq and `epoch` = that epoch, and the server
 * replays exactly what came after it (DESIGN.md §3). Because messages of a room always
 * arrive in ascending `seq` (replay, snapshot and live alike), one number suffices, and any
 * message at or below it is a duplicate and is dropped.
 *
 * How the position starts:
 * - `since` given: that seq (and `epoch` if given) — the application says what it has.
 * - neither `since` nor `snapshot`: the room's seq in the server's `ok` — nothing older is
 *   coming, so a reconnect must not replay history the application never asked for.
 * - `snapshot` without `since`: unknown until the first message; the snapshot entries that
 *   follow the `ok` carry seqs at or below the `ok`'s, so taking the `ok`'s seq would drop
 *   them. If the connection drops before any message, the subscription is sent fresh again
 *   (a new snapshot), which is what the application still needs.
 *
 * Frames of a `sub` arrive as `ok`, `reset`?, `gap`?, replay, live. Messages of the room that
 * arrive while this subscription awaits its `ok` belong to an earlier subscription of the
 * same room on this connection and are ignored.
 *
 * **Tracking subscriptions** (a `bbox` viewport or pacing: `maxRate`, `minMoveM`) break the
 * one-number rule: pacing holds a key's message back to the end of its interval while other
 * keys' later seqs go out, and a pan (`view`) replays snapshot entries older than what was
 * shown. So such a subscription drops nothing by seq; its `seq` is the highest delivered. On
 * a reconnect it asks for its current box and pacing again, and:
 * - with `snapshot`: a fresh snapshot of the box (only `epoch` is sent, so a restarted room
 *   still produces a `reset`). `subscribed` says `resumed: false`: rebuild the view from what
 *   follows — the new connection's viewport knows nothing of what the old one showed, so keys
 *   that left while offline get no `leave`.
 * - without: `since` (the highest seq) + `epoch`, the usual replay inside the box; a message
 *   pacing held back when the connection dropped is lost (a newer one of its key follows).
 *
 * Events: `message (data, meta)`, `gap ({room, from, to})`, `reset ({room, epoch,
 * previousEpoch})`, `subscribed ({room, seq, epoch, resumed})`, `leave ({room, key})`,
 * `offline ({room, key, lastSeq})`, `presenceDiff ({room, count, joined, left})`,
 * `error (ShardcastError)`.
 */
export class Subscription extends Emitter {
  /** The room name. */
  room;
  /** Whether the snapshot (latest message per key) is asked for. */
  snapshot;
  /** Pacing, as given: `{maxRate?, minMoveM?, maxSilenceS?}` (absent = not asked for). */
  pacing;
  /** @type {number[] | null} the viewport `[w, s, e, n]`: the last one the server accepted */
  #bbox;
  /** @type {number | null} last seq delivered (or given as `since`) */
  #seq;
  /** @type {string | null} epoch the position belongs to */
  #epoch;
  #active = true;
  #awaitingOk = true;
  /** Whether the request in flight carried `since` (what `subscribed.resumed` reports). */
  #resuming = false;
  #confirmed = false;
  #duplicates = 0;
  /** @type {{resolve: Function, reject: Function} | null} */
  #ready;
  #detach;

  /**
   * @param {string} room
   * @param {object} options see `SubscribeOptions` in index.d.ts
   * @param {(sub: Subscription) => Promise<void>} detach asks the client to unsubscribe
   * @param {{resolve: Function, reject: Function}} ready settles the `subscribe()` promise
   */
  constructor(room, options, detach, ready) {
    super();
    this.room = room;
    this.snapshot = Boolean(options.snapshot);
    this.#bbox = options.bbox == null ? null : [...options.bbox];
    this.pacing = {};
    for (const name of Object.keys(PACING)) {
      if (options[name] != null) this.pacing[name] = options[name];
    }
    this.#seq = options.since ?? null;
    this.#epoch = options.epoch ?? null;
    this.#detach = detach;
    this.#ready = ready;
    if (options.onMessage) this.on('message', options.onMessage);
    if (options.onGap) this.on('gap', options.onGap);
    if (options.onReset) this.on('reset', options.onReset);
    if (options.onError) this.on('error', options.onError);
    if (options.onSubscribed) this.on('subscribed', options.onSubscribed);
    if (options.onLeave) this.on('leave', options.onLeave);
    if (options.onOffline) this.on('offline', options.onOffline);
    if (options.onPresenceDiff) this.on('presenceDiff', options.onPresenceDiff);
  }

  /** The viewport `[w, s, e, n]` the server filters by (the last accepted `view`), or null. */
  get bbox() {
    return this.#bbox === null ? null : [...this.#bbox];
  }

  /** Whether delivery is filtered or paced per key, so seqs may arrive out of order. */
  get tracking() {
    return this.#bbox !== null || Object.keys(this.pacing).length > 0;
  }

  /** The last `seq` delivered to the application (or given as `since`); `null` before any. */
  get seq() {
    return this.#seq;
  }

  /** The epoch the position belongs to; `null` until the server told it. */
  get epoch() {
    return this.#epoch;
  }

  /** False once unsubscribed, refused by the server, or replaced by a new `subscribe()`. */
  get active() {
    return this.#active;
  }

  /** Messages dropped because their seq was at or below the position (should stay 0). */
  get duplicates() {
    return this.#duplicates;
  }

  /**
   * Stops following the room. Resolves once the server confirmed (or at once when offline:
   * a closed connection follows nothing).
   * @returns {Promise<void>}
   */
  unsubscribe() {
    return this.#detach(this);
  }

  /**
   * The `sub` request that continues from the current position.
   * @param {number} id
   * @internal
   */
  _request(id) {
    const req = { op: 'sub', room: this.room, id };
    // A tracking snapshot starts over (see the class comment); `epoch` alone still tells
    // the server which incarnation of the room the view was built from.
    // (The first request honours a `since` the application gave.)
    const fresh = this.snapshot && this.tracking && this.#confirmed;
    this.#resuming = this.#seq !== null && !fresh;
    if (this.#resuming) req.since = this.#seq;
    if (this.#epoch !== null && (this.#resuming || fresh)) req.epoch = this.#epoch;
    if (this.snapshot) req.snapshot = true;
    if (this.#bbox !== null) req.bbox = this.#bbox;
    for (const [name, wire] of Object.entries(PACING)) {
      if (this.pacing[name] !== undefined) req[wire] = this.pacing[name];
    }
    this.#awaitingOk = true;
    return req;
  }

  /** The server accepted a `view`: later resubscriptions ask for this box. @internal */
  _moved(bbox) {
    this.#bbox = [...bbox];
  }

  /** The connection dropped: whatever was sent must be sent again. @internal */
  _disconnected() {
    this.#awaitingOk = true;
  }

  /**
   * `ok` for our `sub`.
   * @param {{seq: number, epoch: string}} ok
   * @internal
   */
  _ok(ok) {
    this.#awaitingOk = false;
    const resumed = this.#resuming;
    if (this.#seq === null && !this.snapshot) this.#seq = ok.seq;
    // An epoch other than ours is followed by a `reset` frame (the server guarantees it),
    // which moves the position; until then the position keeps its own epoch.
    if (this.#epoch === null) this.#epoch = ok.epoch;
    const info = { room: this.room, seq: ok.seq, epoch: ok.epoch, resumed };
    if (!this.#confirmed) {
      this.#confirmed = true;
      this.#ready.resolve(this);
      this.#ready = null;
    }
    this.emit('subscribed', info);
  }

  /**
   * An `error` for our `sub`: the room is not followed (any more).
   * @param {ShardcastError} err
   * @returns {boolean} whether the error rejected the `subscribe()` promise
   * @internal
   */
  _refused(err) {
    this.#active = false;
    this.#awaitingOk = false;
    if (this.#ready) {
      this.#ready.reject(err);
      this.#ready = null;
      return true;
    }
    this.emit('error', err);
    return false;
  }

  /**
   * Ends the subscription locally (unsubscribed or replaced); an unconfirmed `subscribe()`
   * rejects with `code`.
   * @internal
   */
  _end(code, message) {
    this.#active = false;
    if (this.#ready) {
      this.#ready.reject(new ShardcastError(code, message, { op: 'sub', room: this.room }));
      this.#ready = null;
    }
  }

  /**
   * A message of the room.
   * @returns {{room: string, seq: number, epoch: string | null, data: unknown} | null} what was
   *   delivered, or null when dropped
   * @internal
   */
  _message(seq, data) {
    if (!this.#active || this.#awaitingOk) return null;
    if (this.tracking) {
      // Out of order by design (pacing, pans): deliver, and remember the highest seq.
      if (this.#seq === null || seq > this.#seq) this.#seq = seq;
    } else if (this.#seq !== null && seq <= this.#seq) {
      this.#duplicates += 1;
      return null;
    } else {
      this.#seq = seq;
    }
    const meta = { room: this.room, seq, epoch: this.#epoch };
    this.emit('message', data, meta);
    return { ...meta, data };
  }

  /**
   * `gap`: seqs `from..=to` will not be delivered (history no longer holds them). The
   * position does not move: snapshot entries inside the gap may still follow.
   * @internal
   */
  _gap(from, to) {
    if (!this.#active || this.#awaitingOk) return null;
    const gap = { room: this.room, from, to };
    this.emit('gap', gap);
    return gap;
  }

  /**
   * `reset`: the room restarted (new epoch, seq from 1). The position starts over at 0 of
   * the new epoch: what follows is what `since: 0` gives there.
   * @internal
   */
  _reset(epoch) {
    if (!this.#active || this.#awaitingOk) return null;
    const reset = { room: this.room, epoch, previousEpoch: this.#epoch };
    this.#epoch = epoch;
    this.#seq = 0;
    this.emit('reset', reset);
    return reset;
  }

  /**
   * `leave`: `key` (as a string), shown by this viewport, moved outside it (or out of view
   * by a pan). Remove it from the view.
   * @internal
   */
  _leave(key) {
    if (!this.#active || this.#awaitingOk) return null;
    const leave = { room: this.room, key };
    this.emit('leave', leave);
    return leave;
  }

  /**
   * `offline`: `key` sent nothing for the namespace's `liveness_ttl`; `lastSeq` is its last
   * message. Its next message is the only sign it is back.
   * @internal
   */
  _offline(key, lastSeq) {
    if (!this.#active || this.#awaitingOk) return null;
    const offline = { room: this.room, key, lastSeq };
    this.emit('offline', offline);
    return offline;
  }

  /** `presence_diff`: who joined and left the room since the last diff. @internal */
  _presenceDiff(count, joined, left) {
    if (!this.#active) return null;
    const diff = { room: this.room, count, joined, left };
    this.emit('presenceDiff', diff);
    return diff;
  }
}

/** Pacing options: the client's name → the wire name (DESIGN §3, Tracking). */
export const PACING = { maxRate: 'max_rate', minMoveM: 'min_move_m', maxSilenceS: 'max_silence_s' };
