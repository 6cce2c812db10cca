/**
 * The one error type the client rejects with.
 *
 * Server errors keep the server's `code` (`forbidden`, `bad_room`, `rate_limited`, ...; see
 * DESIGN.md §3) and `message`. Conditions the client itself detects use codes of their own,
 * so application code can switch on `err.code` alone:
 * - `disconnected`: the connection dropped after the request was sent and before its reply;
 *   a `pub` may or may not have been applied.
 * - `timeout`: no reply within `requestTimeout` (a request never sent is never applied).
 * - `closed`: `client.close()` was called while the request waited.
 * - `unsubscribed`: `unsubscribe()` was called before the subscription was confirmed.
 */
export class ShardcastError extends Error {
  /**
   * @param {string} code machine-readable reason
   * @param {string} message human-readable text
   * @param {{op?: string, room?: string}} [context] the request it answers
   */
  constructor(code, message, context = {}) {
    super(message);
    this.name = 'ShardcastError';
    /** @type {string} */
    this.code = code;
    /** @type {string | undefined} */
    this.op = context.op;
    /** @type {string | undefined} */
    this.room = context.room;
  }
}
