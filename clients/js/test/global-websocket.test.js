// The client on the runtime's global WebSocket (what browsers have), in a child process:
// Node 20 offers it only behind --experimental-websocket, later versions by default.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'global-websocket.js');

test('the global WebSocket (browser API): round trip, resume, heartbeat', async () => {
  const flags = typeof globalThis.WebSocket === 'function' ? [] : ['--experimental-websocket'];
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, '--no-warnings', fixture], {
    timeout: 25_000,
  }).catch((err) => assert.fail(`fixture failed: ${err.stderr || err.message}`));
  assert.equal(stdout.trim(), 'ok');
});
