/**
 * Reconnect delays: exponential growth, a cap, and jitter.
 *
 * Why jitter: when a server restarts, every client notices at the same moment; without
 * randomness they would all come back in synchronized waves (a thundering herd) exactly when
 * the new process is busiest. Each delay is drawn from `[base × (1 − jitter), base]`, where
 * `base = min(max, initial × factor^attempt)`: `jitter = 0` keeps the plain exponential
 * schedule, `jitter = 1` is "full jitter" (anywhere between 0 and the base).
 *
 * Why a cap: a client that was offline for an hour should still retry every few seconds,
 * not once an hour.
 */
export class Backoff {
  #initial;
  #max;
  #factor;
  #jitter;
  #random;
  #attempt = 0;

  /**
   * @param {object} [options]
   * @param {number} [options.initial=250] first delay in ms (before jitter)
   * @param {number} [options.max=30000] largest delay in ms
   * @param {number} [options.factor=2] growth per attempt
   * @param {number} [options.jitter=0.5] fraction of each delay that is randomized, 0..1
   * @param {() => number} [options.random=Math.random] source of randomness in [0, 1) (tests pin it)
   */
  constructor({ initial = 250, max = 30_000, factor = 2, jitter = 0.5, random = Math.random } = {}) {
    if (!(initial >= 0) || !(max >= initial) || !(factor >= 1) || !(jitter >= 0 && jitter <= 1)) {
      throw new RangeError(
        `bad backoff: need 0 <= initial <= max, factor >= 1, 0 <= jitter <= 1 (got initial ${initial}, max ${max}, factor ${factor}, jitter ${jitter})`,
      );
    }
    this.#initial = initial;
    this.#max = max;
    this.#factor = factor;
    this.#jitter = jitter;
    this.#random = random;
  }

  /** Failed attempts since the last {@link Backoff#reset}. */
  get attempt() {
    return this.#attempt;
  }

  /**
   * The delay before the next attempt, in whole milliseconds; counts one attempt.
   * @returns {number}
   */
  next() {
    // Exponent capped so that factor^attempt cannot overflow to Infinity after days offline.
    const base = Math.min(this.#max, this.#initial * this.#factor ** Math.min(this.#attempt, 64));
    this.#attempt += 1;
    return Math.round(base * (1 - this.#jitter * this.#random()));
  }

  /** Starts the schedule over (after a connection proved stable). */
  reset() {
    this.#attempt = 0;
  }
}
