/**
 * Test harness: the real `shardcast` binary on a free loopback port, a TCP proxy the tests
 * can cut or refuse (to drop connections without stopping the server), HS256 tokens minted
 * with node:crypto, and small waiting helpers that never wait forever.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

import { ShardcastClient } from '../index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The server binary: `$SHARDCAST_BIN`, else `target/debug/shardcast` of the repository. */
export const SERVER_BIN = path.resolve(repoRoot, process.env.SHARDCAST_BIN ?? 'target/debug/shardcast');

/** Bound of every single wait in these tests. */
export const TIMEOUT = 5_000;

/**
 * A running server process. Started with `--listen 127.0.0.1:0 --no-demo` plus `args`; its
 * first stdout line is `listening on ADDR`. Stopped by its own PID.
 */
export class Server {
  /** @type {import('node:child_process').ChildProcess} */
  child;
  port = 0;
  stderr = '';

  /**
   * @param {string[]} [args] more flags
   * @param {number} [port] 0: a free port
   */
  static async start(args = [], port = 0) {
    const server = new Server();
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SHARDCAST_')));
    server.child = spawn(SERVER_BIN, ['--listen', `127.0.0.1:${port}`, '--no-demo', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.child.stderr.setEncoding('utf8');
    server.child.stderr.on('data', (chunk) => {
      server.stderr = (server.stderr + chunk).slice(-64 * 1024);
    });
    const lines = createInterface({ input: server.child.stdout });
    const first = await withTimeout(
      new Promise((resolve, reject) => {
        lines.once('line', resolve);
        server.child.once('error', reject);
        server.child.once('exit', (code) =>
          reject(new Error(`server exited (${code}) before listening: ${server.stderr}`)),
        );
      }),
      20_000,
      'server did not print its address',
    );
    // Keep draining stdout so the server never blocks on a full pipe.
    lines.on('line', () => {});
    const m = /^listening on 127\.0\.0\.1:(\d+)$/.exec(first.trim());
    if (!m) throw new Error(`unexpected first stdout line ${JSON.stringify(first)}`);
    server.port = Number(m[1]);
    return server;
  }

  get pid() {
    return this.child.pid;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Kills the process (SIGKILL by default: a crash, no close frames) and waits for its exit. */
  async stop(signal = 'SIGKILL') {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    process.kill(this.child.pid, signal);
    await withTimeout(exited, 10_000, `server ${this.child.pid} did not exit`);
  }
}

/**
 * A TCP forwarder from a fixed loopback port to a server port, so a test can drop every
 * connection (`cut`), refuse new ones (`refusing = true`), or point the same address at a
 * new server process (`target`), the way a load balancer in front of a restarted server
 * would look to a client.
 */
export class TcpProxy {
  /** @type {net.Server} */
  server;
  port = 0;
  target;
  refusing = false;
  accepted = 0;
  /** @type {Set<net.Socket>} */
  #sockets = new Set();
  /** @type {Set<[net.Socket, net.Socket]>} forwarding pairs */
  #pairs = new Set();

  static async start(targetPort) {
    const proxy = new TcpProxy();
    proxy.target = targetPort;
    proxy.server = net.createServer((client) => proxy.#accept(client));
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    proxy.port = proxy.server.address().port;
    return proxy;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  #accept(client) {
    this.accepted += 1;
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    this.#pairs.add([client, upstream]);
    client.on('close', () => this.#pairs.forEach((p) => p[0] === client && this.#pairs.delete(p)));
  }

  /**
   * Stops forwarding on every open connection while keeping it open: a peer gone silent (a
   * dead NAT entry), which only a timeout can detect. New connections are forwarded.
   */
  stall() {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    this.#pairs.clear();
  }

  /** Destroys every open connection at once (a network failure: no close frames). */
  cut() {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** An HS256 JWT over `claims`, the way `server/src/auth.rs` verifies it. */
export function mintToken(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${sig}`;
}

/** A client on Node's `ws`, with fast reconnects unless told otherwise. */
export function client(url, options = {}) {
  return new ShardcastClient(url, {
    WebSocket,
    backoff: { initial: 50, max: 500, jitter: 0.2 },
    ...options,
  });
}

/** Resolves when `client` is in `state` (now or later). */
export function waitState(c, state, ms = TIMEOUT) {
  if (c.state === state) return Promise.resolve();
  return withTimeout(
    new Promise((resolve) => {
      const off = c.on('state', (ev) => {
        if (ev.state === state) {
          off();
          resolve(ev);
        }
      });
    }),
    ms,
    `client did not reach state ${state} (is ${c.state})`,
  );
}

/** Polls `predicate` until it is true. */
export async function until(predicate, what, ms = TIMEOUT) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** `promise`, or a rejection after `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Records a subscription's events in arrival order, e.g. `['msg', 3, {...}]`, `['gap', 3, 15]`,
 * `['reset', epoch]`; pass `collector.handlers` to `subscribe()`.
 */
export class Collector {
  events = [];
  handlers = {
    onMessage: (data, meta) => this.events.push(['msg', meta.seq, data]),
    onGap: (g) => this.events.push(['gap', g.from, g.to]),
    onReset: (r) => this.events.push(['reset', r.epoch, r.previousEpoch]),
  };

  get seqs() {
    return this.events.filter((e) => e[0] === 'msg').map((e) => e[1]);
  }

  get messages() {
    return this.events.filter((e) => e[0] === 'msg');
  }

  waitCount(n, ms = TIMEOUT) {
    return until(() => this.messages.length >= n, `${n} messages (have ${JSON.stringify(this.events)})`, ms);
  }
}

/** `[from, ..., to]`. */
export function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
