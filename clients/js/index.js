/**
 * shardcast-client: the JavaScript client of the shardcast broadcast server.
 *
 * - {@link ShardcastClient} (`src/client.js`): one connection to `/ws`, reconnect with
 *   backoff, resume, requests and their replies, token refresh, heartbeat.
 * - {@link Subscription} (`src/room.js`): one followed room and its position (epoch + last
 *   seq), the de-duplication and the gap/reset notices.
 * - {@link Backoff} (`src/backoff.js`): exponential delays with jitter and a cap.
 * - `Heartbeat` (`src/heartbeat.js`): pings after silence, drops a connection that died quietly.
 * - {@link ShardcastError} (`src/errors.js`): what every promise rejects with, `code` first.
 * - {@link tokenExpiry} (`src/token.js`): a JWT's `exp`, read without verifying.
 *
 * The wire protocol is DESIGN.md §3 of the shardcast repository.
 */
export { ShardcastClient } from './src/client.js';
export { Subscription } from './src/room.js';
export { Backoff } from './src/backoff.js';
export { ShardcastError } from './src/errors.js';
export { tokenExpiry, tokenExpired } from './src/token.js';
