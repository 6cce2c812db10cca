/**
 * A minimal event emitter shared by the client and its subscriptions.
 *
 * Why not `EventTarget`: listeners here receive plain arguments (`(data, meta)`), not `Event`
 * objects, and `on()` returns its own remover, which keeps application code short
 * (`const off = client.on('state', fn)`). Why not Node's `events`: the library must run in
 * browsers without a bundler and without runtime dependencies.
 *
 * A listener that throws must not break the client's protocol handling (a frame half
 * handled would corrupt the room's position), so the remaining listeners still run and the
 * exception goes to this emitter's `error` listeners — or, when it has none (or an `error`
 * listener itself threw), is rethrown on a microtask: the host's usual unhandled-error path.
 */
export class Emitter {
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();

  /**
   * Adds `listener` for `event`.
   * @param {string} event
   * @param {Function} listener
   * @returns {() => void} removes the listener
   */
  on(event, listener) {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * Adds a listener that runs at most once.
   * @param {string} event
   * @param {Function} listener
   * @returns {() => void} removes the listener
   */
  once(event, listener) {
    const off = this.on(event, (...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  /**
   * Removes `listener` (or every listener of `event` when none is given).
   * @param {string} event
   * @param {Function} [listener]
   */
  off(event, listener) {
    if (listener === undefined) this.#listeners.delete(event);
    else this.#listeners.get(event)?.delete(listener);
  }

  /**
   * Calls the listeners of `event` in the order they were added.
   * @param {string} event
   * @param {...unknown} args
   * @returns {boolean} whether any listener ran
   */
  emit(event, ...args) {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return false;
    // A copy: a listener may add or remove listeners while we iterate.
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        if (event !== 'error' && this.listenerCount('error') > 0) {
          this.emit('error', err);
        } else {
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    }
    return true;
  }

  /**
   * How many listeners `event` has.
   * @param {string} event
   */
  listenerCount(event) {
    return this.#listeners.get(event)?.size ?? 0;
  }
}
