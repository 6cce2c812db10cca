// Reconnection against the real server behind a TCP proxy the tests control: resume with
// since + epoch after a dropped connection (no loss, no duplicate), a gap when history ran
// out meanwhile, a reset when the server restarted (new epoch), backoff while the server is
// unreachable, in-flight and queued requests, and the heartbeat noticing a silent peer.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { Collector, Server, TcpProxy, client, range, sleep, until, waitState } from './helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'shardcast-js-'));
const config = path.join(dir, 'shardcast.toml');
writeFileSync(
  config,
  '[namespaces.short]\nhistory_size = 5\n\n[namespaces.map]\nkey = "id"\nhistory_size = 5\n',
);
const ARGS = ['--shards', '1', '--config', config];

describe('reconnect', { timeout: 60_000 }, () => {
  const cleanup = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  after(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  /** A server, a proxy in front of it, and a direct publisher. */
  async function setup(args = ARGS) {
    const server = await Server.start(args);
    const proxy = await TcpProxy.start(server.port);
    const publisher = client(server.url);
    const env = { server, proxy, publisher };
    cleanup.push(async () => {
      env.publisher.close(); // tests may have replaced it
      await proxy.close();
      await env.server.stop();
    });
    return env;
  }

  function track(c) {
    cleanup.push(() => c.close());
    const states = [];
    c.on('state', (e) => states.push(e));
    return states;
  }

  test('a dropped connection resumes with since + epoch: nothing lost, nothing twice', async () => {
    const { proxy, publisher } = await setup();
    const c = client(proxy.url);
    const states = track(c);
    const got = new Collector();
    const subscribed = [];
    const s = await c.subscribe('resume:truck', { ...got.handlers, onSubscribed: (i) => subscribed.push(i) });
    for (let i = 1; i <= 3; i++) await publisher.publish('resume:truck', { i });
    await got.waitCount(3);
    const epoch = s.epoch;

    proxy.refusing = true; // keep it offline while the room moves on
    proxy.cut();
    await waitState(c, 'reconnecting');
    for (let i = 4; i <= 8; i++) await publisher.publish('resume:truck', { i });
    proxy.refusing = false;
    await got.waitCount(8);
    await publisher.publish('resume:truck', { i: 9 });
    await got.waitCount(9);
    await sleep(100);

    assert.deepEqual(got.seqs, range(1, 9));
    assert.deepEqual(
      got.events.map((e) => e[2].i),
      range(1, 9),
    );
    assert.equal(s.epoch, epoch, 'same server: same epoch, no reset');
    assert.equal(s.duplicates, 0);
    assert.equal(subscribed.length, 2);
    assert.equal(subscribed[1].resumed, true);
    assert.equal(subscribed[1].epoch, epoch);
    const names = states.map((e) => e.state);
    assert.deepEqual(names.slice(0, 2), ['connecting', 'open']);
    assert.ok(names.includes('reconnecting'), names.join());
    assert.equal(names.at(-1), 'open');
    const drop = states.find((e) => e.state === 'reconnecting');
    assert.equal(drop.code, 1006, 'a cut connection closes abnormally');
  });

  test('history that ran out while offline is announced as a gap, then the rest follows', async () => {
    const { proxy, publisher } = await setup();
    const c = client(proxy.url);
    track(c);
    const got = new Collector();
    await c.subscribe('short:bus', got.handlers);
    await publisher.publish('short:bus', 1);
    await got.waitCount(1);
    proxy.refusing = true;
    proxy.cut();
    await waitState(c, 'reconnecting');
    for (let i = 2; i <= 20; i++) await publisher.publish('short:bus', i);
    proxy.refusing = false;
    await got.waitCount(6);
    assert.deepEqual(got.events, [
      ['msg', 1, 1],
      ['gap', 2, 15],
      ...range(16, 20).map((i) => ['msg', i, i]),
    ]);
  });

  test('a map with a snapshot resumes through a gap: every vehicle ends at its latest position', async () => {
    const { proxy, publisher } = await setup();
    const room = 'map:berlin';
    const latest = new Map();
    const pub = async (id, n) => {
      const { seq } = await publisher.publish(room, { id, n });
      latest.set(id, { id, n });
      return seq;
    };
    for (const id of ['a', 'b', 'c']) await pub(id, 0);
    const c = client(proxy.url);
    track(c);
    const got = new Collector();
    const shown = new Map();
    const s = await c.subscribe(room, {
      snapshot: true,
      ...got.handlers,
      onMessage: (v, meta) => {
        got.handlers.onMessage(v, meta);
        shown.set(v.id, v);
      },
    });
    await got.waitCount(3);
    proxy.refusing = true;
    proxy.cut();
    await waitState(c, 'reconnecting');
    // 12 updates while away: history (5) keeps the last five; vehicles d and b moved
    // earlier than that, so only the snapshot still knows their positions.
    await pub('d', 1);
    await pub('b', 1);
    let last = 0;
    for (let n = 1; n <= 10; n++) last = await pub(n % 2 ? 'a' : 'c', n);
    proxy.refusing = false;
    await until(() => s.seq === last, `seq ${last} (have ${JSON.stringify(got.events)})`);
    const gap = got.events.find((e) => e[0] === 'gap');
    assert.deepEqual(gap, ['gap', 4, last - 5], 'the seqs history no longer holds');
    assert.deepEqual(shown, latest, 'every vehicle at its latest position');
    const seqs = got.seqs;
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'ascending');
    assert.equal(new Set(seqs).size, seqs.length, 'no duplicate');
    assert.equal(s.duplicates, 0);
  });

  test('a restarted server (new epoch) is announced as a reset, then its messages follow', async () => {
    const env = await setup();
    const { proxy } = env;
    const c = client(proxy.url);
    const states = track(c);
    const got = new Collector();
    const resets = [];
    c.on('reset', (r) => resets.push(r));
    const s = await c.subscribe('restart:van', got.handlers);
    for (let i = 1; i <= 3; i++) await env.publisher.publish('restart:van', i);
    await got.waitCount(3);
    const oldEpoch = s.epoch;

    // Graceful stop: clients get close 1001 "going away". Hold the client off until the
    // new server has the room under a new epoch with two messages.
    proxy.refusing = true;
    await env.server.stop('SIGTERM');
    await waitState(c, 'reconnecting');
    env.server = await Server.start(ARGS);
    proxy.target = env.server.port;
    env.publisher.close();
    env.publisher = client(env.server.url);
    const p2 = env.publisher;
    cleanup.push(() => p2.close());
    const a = await p2.publish('restart:van', 'new-1');
    await p2.publish('restart:van', 'new-2');
    assert.notEqual(a.epoch, oldEpoch);
    proxy.refusing = false;

    await got.waitCount(5);
    assert.deepEqual(got.events, [
      ['msg', 1, 1],
      ['msg', 2, 2],
      ['msg', 3, 3],
      ['reset', a.epoch, oldEpoch],
      ['msg', 1, 'new-1'],
      ['msg', 2, 'new-2'],
    ]);
    assert.deepEqual(resets, [{ room: 'restart:van', epoch: a.epoch, previousEpoch: oldEpoch }]);
    assert.equal(s.epoch, a.epoch);
    assert.equal(s.seq, 2);
    const goingAway = states.find((e) => e.state === 'reconnecting');
    assert.equal(goingAway.code, 1001, JSON.stringify(goingAway));

    // Live in the new epoch, and a kill (no close frame) is survived the same way.
    await p2.publish('restart:van', 'new-3');
    await got.waitCount(6);
    assert.deepEqual(got.events.at(-1), ['msg', 3, 'new-3']);
  });

  test('a server killed and started again on the same port: reset, then live', async () => {
    let server = await Server.start(ARGS);
    const port = server.port;
    cleanup.push(() => server.stop());
    const c = client(server.url);
    track(c);
    const got = new Collector();
    const s = await c.subscribe('sameport:r', got.handlers);
    await c.publish('sameport:r', 'old');
    await got.waitCount(1);
    const before = s.epoch;
    await server.stop('SIGKILL');
    server = await Server.start(ARGS, port);
    await until(() => got.events.some((e) => e[0] === 'reset'), 'the reset');
    assert.notEqual(s.epoch, before);
    // The client itself publishes into the new incarnation and receives it.
    assert.deepEqual(await c.publish('sameport:r', 'new'), { room: 'sameport:r', seq: 1, epoch: s.epoch });
    await got.waitCount(2);
    assert.deepEqual(got.events, [
      ['msg', 1, 'old'],
      ['reset', s.epoch, before],
      ['msg', 1, 'new'],
    ]);
  });

  test('a killed server: the client keeps retrying with growing delays, then resumes', async () => {
    const env = await setup();
    const { proxy } = env;
    const c = client(proxy.url, { backoff: { initial: 100, max: 400, factor: 2, jitter: 0 } });
    const states = track(c);
    const got = new Collector();
    const s = await c.subscribe('backoff:r', got.handlers);
    await env.publisher.publish('backoff:r', 'before');
    await got.waitCount(1);
    const before = s.epoch;

    await env.server.stop('SIGKILL');
    proxy.refusing = true;
    await until(() => states.filter((e) => e.state === 'reconnecting').length >= 5, 'five retries', 10_000);
    const delays = states.filter((e) => e.state === 'reconnecting').map((e) => e.delay);
    assert.deepEqual(delays.slice(0, 5), [100, 200, 400, 400, 400], 'exponential, capped');
    // The attempts were really spaced out.
    const connecting = states.filter((e) => e.state === 'connecting').length;
    assert.ok(connecting <= 7, `${connecting} attempts`);

    env.server = await Server.start(ARGS);
    proxy.target = env.server.port;
    proxy.refusing = false;
    await until(() => got.events.some((e) => e[0] === 'reset'), 'the reset');
    assert.notEqual(s.epoch, before);
    env.publisher.close();
    env.publisher = client(env.server.url);
    await env.publisher.publish('backoff:r', 'after');
    await got.waitCount(2);
    assert.deepEqual(got.events.at(-1), ['msg', 1, 'after']);
    assert.equal(c.state, 'open');
  });

  test('a publish in flight when the connection drops rejects with disconnected', async () => {
    const { proxy } = await setup();
    const c = client(proxy.url);
    track(c);
    await waitState(c, 'open');
    proxy.stall(); // the request goes out, no reply comes back
    const pending = c.publish('flight:r', 1);
    await sleep(100);
    proxy.cut();
    const err = await pending.then(
      () => null,
      (e) => e,
    );
    assert.equal(err?.code, 'disconnected');
    assert.equal(err.op, 'pub');
    assert.equal(err.room, 'flight:r');
    // And a publish made while reconnecting goes out once the connection is back.
    const queued = c.publish('flight:r', 2);
    const { seq } = await queued;
    assert.ok(seq >= 1);
  });

  test('a silent connection is noticed by the heartbeat and replaced', async () => {
    const { proxy, publisher } = await setup();
    const c = client(proxy.url, { pingInterval: 200, pingTimeout: 200 });
    const states = track(c);
    const got = new Collector();
    await c.subscribe('silent:r', got.handlers);
    await publisher.publish('silent:r', 1);
    await got.waitCount(1);
    proxy.stall();
    await publisher.publish('silent:r', 2);
    await until(() => states.some((e) => e.state === 'reconnecting'), 'the ping timeout', 3_000);
    const drop = states.find((e) => e.state === 'reconnecting');
    assert.equal(drop.code, 4000);
    assert.equal(drop.reason, 'ping timeout');
    await got.waitCount(2);
    assert.deepEqual(got.seqs, [1, 2]);
  });

  test('close() during reconnecting stops retrying; connect() resumes the subscriptions', async () => {
    const { proxy, publisher } = await setup();
    const c = client(proxy.url);
    const states = track(c);
    const got = new Collector();
    await c.subscribe('pause:r', got.handlers);
    await publisher.publish('pause:r', 1);
    await got.waitCount(1);
    c.close();
    assert.equal(c.state, 'closed');
    const attempts = proxy.accepted;
    await publisher.publish('pause:r', 2);
    await sleep(300);
    assert.equal(proxy.accepted, attempts, 'no attempt while closed');
    c.connect();
    await got.waitCount(2);
    assert.deepEqual(got.seqs, [1, 2]);
    assert.deepEqual(
      states.map((e) => e.state),
      ['connecting', 'open', 'closed', 'connecting', 'open'],
    );
  });
});
