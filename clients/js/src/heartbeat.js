/**
 * Noticing a connection that died without a close.
 *
 * A NAT that forgot the connection, a laptop that slept, a proxy that stalled: the socket
 * stays "open" and nothing arrives. The server notices through its own pings, but a browser
 * `WebSocket` cannot send pings, and waiting for TCP to give up takes minutes. So after
 * `interval` ms without any frame the client sends a `ping` op; when still nothing arrives
 * within `timeout` ms the connection is declared dead (`onDead`) and the client replaces it.
 * Any frame counts as a sign of life, so a busy connection never pings.
 */
export class Heartbeat {
  #interval;
  #timeout;
  #sendPing;
  #onDead;
  #timer = null;
  #lastFrameAt = 0;
  /** When the unanswered ping went out, or null. */
  #pingSentAt = null;

  /**
   * @param {object} options
   * @param {number} options.interval ms of silence before a ping; 0 disables
   * @param {number} options.timeout ms to wait for any frame after the ping
   * @param {() => void} options.sendPing sends a `ping` op
   * @param {() => void} options.onDead the connection is to be dropped
   */
  constructor({ interval, timeout, sendPing, onDead }) {
    this.#interval = interval;
    this.#timeout = timeout;
    this.#sendPing = sendPing;
    this.#onDead = onDead;
  }

  /** Starts watching a freshly opened connection. */
  start() {
    this.stop();
    if (!(this.#interval > 0)) return;
    this.#lastFrameAt = now();
    // Checked at a quarter of the shorter period: a dead connection is noticed within
    // interval + timeout × 1.25 at worst, for a few timer wake-ups per interval.
    const tick = Math.max(50, Math.min(this.#interval, this.#timeout) / 4);
    this.#timer = setInterval(() => this.#check(), tick);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#pingSentAt = null;
  }

  /** A frame arrived: the connection is alive. */
  seen() {
    this.#lastFrameAt = now();
    this.#pingSentAt = null;
  }

  #check() {
    const t = now();
    if (this.#pingSentAt !== null) {
      if (t - this.#pingSentAt >= this.#timeout) {
        this.stop();
        this.#onDead();
      }
    } else if (t - this.#lastFrameAt >= this.#interval) {
      this.#pingSentAt = t;
      this.#sendPing();
    }
  }
}

function now() {
  return globalThis.performance?.now() ?? Date.now();
}
