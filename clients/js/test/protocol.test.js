// The ops of DESIGN.md §3 through the client, against the real server: sub/pub round trip
// with seq and epoch, snapshot, errors as rejected promises, gap notices, unsubscribe, ping.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ShardcastError } from '../index.js';
import { Collector, Server, TIMEOUT, client, range, sleep, until, waitState } from './helpers.js';

const EPOCH = /^[0-9A-Za-z]{10}$/;

describe('protocol', { timeout: 60_000 }, () => {
  let server;
  let config;
  const clients = [];
  const open = (opts) => {
    const c = client(server.url, opts);
    clients.push(c);
    return c;
  };

  before(async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(tmpdir(), 'shardcast-js-'));
    config = path.join(dir, 'shardcast.toml');
    // `tracked:*` keeps the latest message per `id` (snapshots); `short:*` keeps 5 messages.
    writeFileSync(
      config,
      '[namespaces.tracked]\nkey = "id"\nhistory_size = 100\n\n[namespaces.short]\nhistory_size = 5\n',
    );
    server = await Server.start(['--shards', '2', '--config', config]);
  });

  after(async () => {
    for (const c of clients) c.close();
    await server?.stop('SIGTERM');
  });

  test('subscribe and publish: ok carries seq and epoch, messages arrive in order', async () => {
    const sub = open();
    const pub = open();
    const got = new Collector();
    const s = await sub.subscribe('rt:alpha', got.handlers);
    assert.equal(s.room, 'rt:alpha');
    assert.equal(s.seq, 0, 'a fresh room: position = its last seq, 0');
    assert.match(s.epoch, EPOCH);

    const first = await pub.publish('rt:alpha', { x: 1 });
    assert.deepEqual(first, { room: 'rt:alpha', seq: 1, epoch: s.epoch });
    const second = await pub.publish('rt:alpha', [1, 2]);
    assert.equal(second.seq, 2);
    await pub.publish('rt:alpha', 'text');
    await got.waitCount(3);
    assert.deepEqual(got.events, [
      ['msg', 1, { x: 1 }],
      ['msg', 2, [1, 2]],
      ['msg', 3, 'text'],
    ]);
    assert.equal(s.seq, 3);
    assert.equal(s.duplicates, 0);
  });

  test('client-level message events carry room, seq, epoch and data', async () => {
    const c = open();
    const seen = [];
    c.on('message', (m) => seen.push(m));
    const s = await c.subscribe('rt:events');
    const { seq, epoch } = await c.publish('rt:events', { hello: 'world' });
    await until(() => seen.length === 1, 'the message');
    await sleep(50);
    assert.deepEqual(seen, [{ room: 'rt:events', seq, epoch, data: { hello: 'world' } }]);
    assert.equal(s.epoch, epoch);
  });

  test('a late subscriber starts at the room position: nothing older is replayed', async () => {
    const pub = open();
    for (let i = 1; i <= 4; i++) await pub.publish('rt:late', i);
    const c = open();
    const got = new Collector();
    const s = await c.subscribe('rt:late', got.handlers);
    assert.equal(s.seq, 4);
    await pub.publish('rt:late', 5);
    await got.waitCount(1);
    await sleep(100);
    assert.deepEqual(got.events, [['msg', 5, 5]]);
  });

  test('since replays what came after it', async () => {
    const pub = open();
    for (let i = 1; i <= 6; i++) await pub.publish('rt:since', { i });
    const c = open();
    const got = new Collector();
    await c.subscribe('rt:since', { since: 3, ...got.handlers });
    await got.waitCount(3);
    assert.deepEqual(got.seqs, [4, 5, 6]);
  });

  test('snapshot: the latest message per key first, then live', async () => {
    const pub = open();
    const room = 'tracked:berlin';
    const sent = [
      { id: 'a', v: 1 },
      { id: 'b', v: 1 },
      { id: 'a', v: 2 },
      { id: 'c', v: 1 },
      { id: 'b', v: 2 },
    ];
    for (const m of sent) await pub.publish(room, m);
    const map = open();
    const got = new Collector();
    const s = await map.subscribe(room, { snapshot: true, ...got.handlers });
    await got.waitCount(3);
    assert.deepEqual(got.events, [
      ['msg', 3, { id: 'a', v: 2 }],
      ['msg', 4, { id: 'c', v: 1 }],
      ['msg', 5, { id: 'b', v: 2 }],
    ]);
    await pub.publish(room, { id: 'd', v: 1 });
    await got.waitCount(4);
    assert.deepEqual(got.events[3], ['msg', 6, { id: 'd', v: 1 }]);
    assert.equal(s.seq, 6);
  });

  test('server errors reject the promise with their code and message', async () => {
    const c = open();
    const refused = async (promise, code) => {
      const err = await promise.then(
        () => assert.fail(`expected ${code}`),
        (e) => e,
      );
      assert.ok(err instanceof ShardcastError, String(err));
      assert.equal(err.code, code);
      assert.equal(typeof err.message, 'string');
      assert.ok(err.message.length > 0);
      return err;
    };
    const bad = await refused(c.subscribe('no spaces allowed'), 'bad_room');
    assert.equal(bad.op, 'sub');
    assert.equal(bad.room, 'no spaces allowed');
    assert.equal(c.subscriptions.length, 0, 'a refused room is not followed');
    await refused(c.subscribe('x'.repeat(201)), 'bad_room');
    await refused(c.publish('bad room', {}), 'bad_room');
    await refused(c.subscribe('rt:e', { epoch: 'e'.repeat(65), since: 1 }), 'bad_field');
    // Unsubscribing twice: the second is a no-op (the client no longer follows the room).
    const s = await c.subscribe('rt:once');
    await s.unsubscribe();
    await s.unsubscribe();
    // The connection stays usable after errors.
    assert.equal((await c.publish('rt:ok', 1)).seq, 1);
    assert.equal(c.state, 'open');
  });

  test('gap: seqs history no longer holds are announced, then the rest is replayed', async () => {
    const pub = open();
    for (let i = 1; i <= 20; i++) await pub.publish('short:hist', i);
    const c = open();
    const got = new Collector();
    const gaps = [];
    c.on('gap', (g) => gaps.push(g));
    await c.subscribe('short:hist', { since: 2, ...got.handlers });
    await got.waitCount(5);
    assert.deepEqual(got.events, [['gap', 3, 15], ...range(16, 20).map((i) => ['msg', i, i])]);
    assert.deepEqual(gaps, [{ room: 'short:hist', from: 3, to: 15 }]);
  });

  test('unsubscribe stops delivery; a new subscribe starts over', async () => {
    const pub = open();
    const c = open();
    const got = new Collector();
    const s = await c.subscribe('rt:unsub', got.handlers);
    await pub.publish('rt:unsub', 1);
    await got.waitCount(1);
    await s.unsubscribe();
    assert.equal(s.active, false);
    assert.deepEqual(c.subscriptions, []);
    await pub.publish('rt:unsub', 2);
    await sleep(200);
    assert.deepEqual(got.seqs, [1]);

    const again = new Collector();
    const s2 = await c.subscribe('rt:unsub', again.handlers);
    assert.equal(s2.seq, 2);
    await pub.publish('rt:unsub', 3);
    await again.waitCount(1);
    assert.deepEqual(again.seqs, [3]);
    assert.deepEqual(got.seqs, [1], 'the old subscription got nothing more');
  });

  test('subscribing again to a followed room replaces the subscription', async () => {
    const pub = open();
    const c = open();
    const first = new Collector();
    const second = new Collector();
    const s1 = await c.subscribe('rt:twice', first.handlers);
    for (let i = 1; i <= 3; i++) await pub.publish('rt:twice', i);
    await first.waitCount(3);
    const s2 = await c.subscribe('rt:twice', { since: 1, ...second.handlers });
    assert.equal(s1.active, false);
    assert.equal(s2.active, true);
    await second.waitCount(2);
    await pub.publish('rt:twice', 4);
    await second.waitCount(3);
    await sleep(100);
    assert.deepEqual(second.seqs, [2, 3, 4]);
    assert.deepEqual(first.seqs, [1, 2, 3]);
  });

  test('a publish made before the connection opens is sent once it does', async () => {
    const c = open();
    const result = c.publish('rt:early', { early: true });
    assert.notEqual(c.state, 'open');
    assert.equal((await result).seq, 1);
  });

  test('ping measures a round trip', async () => {
    const c = open();
    const rtt = await c.ping();
    assert.ok(rtt >= 0 && rtt < TIMEOUT, String(rtt));
  });

  test('close() while the handshake is under way', async () => {
    const c = open();
    await new Promise((resolve) => c.once('connecting', resolve));
    await sleep(0); // the socket exists now, still connecting
    c.close();
    await sleep(200);
    assert.equal(c.state, 'closed');
    c.connect();
    await waitState(c, 'open');
  });

  test('close() stops the client and rejects waiting requests with closed', async () => {
    const c = open();
    await waitState(c, 'open');
    const states = [];
    c.on('state', (e) => states.push(e.state));
    c.close();
    assert.equal(c.state, 'closed');
    const err = await c.publish('rt:closed', 1).then(
      () => null,
      (e) => e,
    );
    assert.equal(err?.code, 'closed', 'nothing will send it: rejected at once');
    assert.deepEqual(states, ['closed']);
  });
});

describe('limits', { timeout: 60_000 }, () => {
  let server;
  const clients = [];
  before(async () => {
    server = await Server.start(['--shards', '1', '--publish-rate', '1', '--publish-burst', '2', '--max-rooms-per-conn', '2']);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop('SIGTERM');
  });

  test('rate_limited and too_many_rooms reject with their codes; the connection stays', async () => {
    const c = client(server.url);
    clients.push(c);
    const results = await Promise.allSettled([1, 2, 3, 4].map((i) => c.publish('lim:r', i)));
    const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason.code);
    assert.ok(refused.length >= 1, JSON.stringify(results));
    assert.deepEqual([...new Set(refused)], ['rate_limited']);
    await c.subscribe('lim:a');
    await c.subscribe('lim:b');
    const err = await c.subscribe('lim:c').then(
      () => null,
      (e) => e,
    );
    assert.equal(err?.code, 'too_many_rooms');
    assert.deepEqual(
      c.subscriptions.map((s) => s.room),
      ['lim:a', 'lim:b'],
    );
    assert.equal(c.state, 'open');
  });
});
