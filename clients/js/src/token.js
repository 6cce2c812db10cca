/**
 * Reading (not verifying) a JWT's `exp`, so the client can refresh a token that is already
 * expired *before* connecting.
 *
 * Why: the server refuses an expired token at the handshake with HTTP 401, and a browser's
 * `WebSocket` reports that only as a bare close 1006 — indistinguishable from a network
 * failure. Checking `exp` locally turns "reconnect forever with a dead token" into one call
 * of the refresh hook. The signature is the server's business; a token that is not a JWT is
 * simply used as it is.
 */

/**
 * The `exp` claim (seconds since the Unix epoch) of a JWT, or `null` if `token` is not a
 * JWT or has no numeric `exp`.
 * @param {string} token
 * @returns {number | null}
 */
export function tokenExpiry(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(decodeBase64Url(parts[1]));
    return typeof claims?.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}

/**
 * Whether `token` is a JWT whose `exp` is at or before `nowMs` + `marginMs`.
 * The server treats `now >= exp` as expired, hence `<=`.
 * @param {string} token
 * @param {number} [nowMs]
 * @param {number} [marginMs]
 */
export function tokenExpired(token, nowMs = Date.now(), marginMs = 0) {
  const exp = tokenExpiry(token);
  return exp !== null && exp * 1000 <= nowMs + marginMs;
}

/** base64url → UTF-8 text with `atob` (present in browsers and Node ≥ 16). */
function decodeBase64Url(segment) {
  const b64 = segment.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}
