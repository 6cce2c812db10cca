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
 * Events: `message (data, meta)`, `gap ({room, from, to})`, `reset ({room, epoch,
 * previousEpoch})`, `subscribed ({room, seq, epoch, resumed})`, `error (ShardcastError)`.
 */
export class Subscription extends Emitter {
  /** The room name. */
  room;
  /** Whether the snapshot (latest message per key) is asked for. */
  snapshot;
  /** @type {number | null} last seq delivered (or given as `since`) */
  #seq;
  /** @type {string | null} epoch the position belongs to */
  #epoch;
  #active = true;
  #awaitingOk = true;
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
    this.#seq = options.since ?? null;
    this.#epoch = options.epoch ?? null;
    this.#detach = detach;
    this.#ready = ready;
    if (options.onMessage) this.on('message', options.onMessage);
    if (options.onGap) this.on('gap', options.onGap);
    if (options.onReset) this.on('reset', options.onReset);
    if (options.onError) this.on('error', options.onError);
    if (options.onSubscribed) this.on('subscribed', options.onSubscribed);
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
    if (this.#seq !== null) {
      req.since = this.#seq;
      if (this.#epoch !== null) req.epoch = this.#epoch;
    }
    if (this.snapshot) req.snapshot = true;
    this.#awaitingOk = true;
    return req;
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
    const resumed = this.#seq !== null;
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
    if (this.#seq !== null && seq <= this.#seq) {
      this.#duplicates += 1;
      return null;
    }
    this.#seq = seq;
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
}
