// Parts that need no server: the backoff schedule, reading a JWT's exp, the URL the client
// dials, and the client's frame handling against a scripted in-memory WebSocket (duplicate
// dropping, the resume request it sends, unknown notices).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Backoff, ShardcastClient, tokenExpired, tokenExpiry } from '../index.js';
import { mintToken, until } from './helpers.js';

describe('Backoff', () => {
  test('grows by the factor up to the cap, and starts over after reset', () => {
    const b = new Backoff({ initial: 100, max: 1000, factor: 2, jitter: 0 });
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.next()),
      [100, 200, 400, 800, 1000, 1000],
    );
    assert.equal(b.attempt, 6);
    b.reset();
    assert.equal(b.next(), 100);
  });

  test('jitter draws each delay from [base × (1 − jitter), base]', () => {
    const low = new Backoff({ initial: 1000, jitter: 0.5, random: () => 0.999999 });
    const high = new Backoff({ initial: 1000, jitter: 0.5, random: () => 0 });
    assert.equal(low.next(), 500);
    assert.equal(high.next(), 1000);
    const full = new Backoff({ initial: 1000, jitter: 1, random: () => 0.75 });
    assert.equal(full.next(), 250);
  });

  test('days offline neither overflow nor exceed the cap', () => {
    const b = new Backoff({ initial: 250, max: 30_000, jitter: 0 });
    for (let i = 0; i < 10_000; i++) b.next();
    assert.equal(b.next(), 30_000);
  });

  test('nonsense settings are refused', () => {
    assert.throws(() => new Backoff({ initial: 10, max: 5 }), RangeError);
    assert.throws(() => new Backoff({ jitter: 2 }), RangeError);
    assert.throws(() => new Backoff({ factor: 0.5 }), RangeError);
  });
});

describe('tokens', { timeout: 60_000 }, () => {
  test('exp is read from a JWT without verifying it', () => {
    const t = mintToken('k', { sub: 'ü-user', exp: 1_800_000_000 });
    assert.equal(tokenExpiry(t), 1_800_000_000);
    assert.equal(tokenExpiry('not-a-jwt'), null);
    assert.equal(tokenExpiry('a.b.c'), null);
    assert.equal(tokenExpiry(mintToken('k', { sub: 'no exp' })), null);
    assert.equal(tokenExpired(t, 1_800_000_000 * 1000), true, 'now >= exp is expired');
    assert.equal(tokenExpired(t, 1_799_999_999 * 1000), false);
    assert.equal(tokenExpired(t, 1_799_999_999 * 1000, 1000), true, 'within the margin');
    assert.equal(tokenExpired('opaque'), false);
  });
});

/**
 * An in-memory WebSocket: records what the client sends; the test plays the server by
 * calling `open()`, `receive(frame)` and `serverClose(code, reason)`.
 */
class FakeSocket {
  static instances = [];
  sent = [];
  readyState = 0;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;

  constructor(url) {
    this.url = url;
    FakeSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000, reason = '') {
    this.serverClose(code, reason);
  }

  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  static last() {
    return FakeSocket.instances.at(-1);
  }
}

function fakeClient(url = 'ws://example.test:8080', options = {}) {
  FakeSocket.instances = [];
  return new ShardcastClient(url, {
    WebSocket: FakeSocket,
    backoff: { initial: 10, max: 10, jitter: 0 },
    pingInterval: 0,
    ...options,
  });
}

describe('client against a scripted socket', () => {
  test('the URL gets /ws and the token; http(s) becomes ws(s)', async () => {
    const c = fakeClient('https://example.test', { token: 'abc.def.ghi' });
    await until(() => FakeSocket.last(), 'a socket');
    assert.equal(FakeSocket.last().url, 'wss://example.test/ws?token=abc.def.ghi');
    c.close();
    const d = fakeClient('ws://h:1/ws/?x=1');
    await until(() => FakeSocket.last(), 'a socket');
    assert.equal(FakeSocket.last().url, 'ws://h:1/ws/?x=1');
    d.close();
    assert.throws(() => new ShardcastClient('ftp://x', { WebSocket: FakeSocket }), TypeError);
    const saved = globalThis.WebSocket;
    globalThis.WebSocket = undefined;
    try {
      assert.throws(() => new ShardcastClient('ws://x'), /WebSocket/);
    } finally {
      globalThis.WebSocket = saved;
    }
  });

  test('duplicates are dropped; the resume request carries since and epoch', async () => {
    const c = fakeClient();
    await until(() => FakeSocket.last(), 'a socket');
    const ws = FakeSocket.last();
    const seqs = [];
    const subscribed = c.subscribe('r:1', { onMessage: (_, m) => seqs.push(m.seq) });
    // Messages of a room are ignored until its ok (they belong to an older subscription).
    ws.open();
    assert.deepEqual(ws.sent, [{ op: 'sub', room: 'r:1', id: 1 }]);
    ws.receive({ room: 'r:1', seq: 7, data: null });
    ws.receive({ op: 'ok', id: 1, room: 'r:1', seq: 4, epoch: 'AAAAAAAAAA' });
    const sub = await subscribed;
    assert.equal(sub.seq, 4);
    for (const seq of [5, 6, 6, 5, 7]) ws.receive({ room: 'r:1', seq, data: seq });
    assert.deepEqual(seqs, [5, 6, 7]);
    assert.equal(sub.duplicates, 2);
    // Unknown notices and rooms are ignored.
    ws.receive({ op: 'future-notice', room: 'r:1' });
    ws.receive({ room: 'other', seq: 1, data: 1 });

    ws.serverClose(1006);
    assert.equal(c.state, 'reconnecting');
    await until(() => FakeSocket.instances.length === 2, 'a second socket');
    const ws2 = FakeSocket.last();
    ws2.open();
    assert.deepEqual(ws2.sent, [{ op: 'sub', room: 'r:1', id: 2, since: 7, epoch: 'AAAAAAAAAA' }]);
    // The server answers with a reset: the position starts over in the new epoch.
    ws2.receive({ op: 'ok', id: 2, room: 'r:1', seq: 1, epoch: 'BBBBBBBBBB' });
    ws2.receive({ op: 'reset', room: 'r:1', epoch: 'BBBBBBBBBB' });
    ws2.receive({ room: 'r:1', seq: 1, data: 1 });
    assert.deepEqual(seqs, [5, 6, 7, 1]);
    assert.equal(sub.epoch, 'BBBBBBBBBB');
    c.close();
  });

  test('a snapshot subscription that received nothing is sent fresh again', async () => {
    const c = fakeClient();
    await until(() => FakeSocket.last(), 'a socket');
    const ws = FakeSocket.last();
    ws.open();
    const p = c.subscribe('fleet:x', { snapshot: true });
    ws.receive({ op: 'ok', id: 1, room: 'fleet:x', seq: 9, epoch: 'AAAAAAAAAA' });
    await p;
    ws.serverClose(1001, 'going away');
    await until(() => FakeSocket.instances.length === 2, 'a second socket');
    FakeSocket.last().open();
    assert.deepEqual(FakeSocket.last().sent, [{ op: 'sub', room: 'fleet:x', id: 2, snapshot: true }]);
    c.close();
  });

  test('a viewport delivers out-of-order seqs and resubscribes with its last accepted box and pacing', async () => {
    const c = fakeClient();
    await until(() => FakeSocket.last(), 'a socket');
    const ws = FakeSocket.last();
    ws.open();
    const seqs = [];
    const leaves = [];
    const p = c.subscribe('fleet:x', {
      snapshot: true,
      bbox: [13, 52, 14, 53],
      maxRate: 2,
      minMoveM: 10,
      maxSilenceS: 30,
      onMessage: (_, m) => seqs.push(m.seq),
      onLeave: (l) => leaves.push(l.key),
    });
    assert.deepEqual(ws.sent, [{
      op: 'sub', room: 'fleet:x', id: 1, snapshot: true, bbox: [13, 52, 14, 53],
      max_rate: 2, min_move_m: 10, max_silence_s: 30,
    }]);
    ws.receive({ op: 'ok', id: 1, room: 'fleet:x', seq: 9, epoch: 'AAAAAAAAAA' });
    const sub = await p;
    assert.equal(sub.tracking, true);
    for (const seq of [8, 9]) ws.receive({ room: 'fleet:x', seq, data: seq });
    // A pan: ok, a leave, then an older snapshot entry newly inside — delivered, not a duplicate.
    const moved = c.view('fleet:x', [13.5, 52, 14.5, 53]);
    assert.deepEqual(ws.sent[1], { op: 'view', room: 'fleet:x', bbox: [13.5, 52, 14.5, 53], id: 2 });
    ws.receive({ op: 'ok', id: 2, room: 'fleet:x' });
    ws.receive({ op: 'leave', room: 'fleet:x', key: 'v1' });
    ws.receive({ room: 'fleet:x', seq: 3, data: 3 });
    assert.deepEqual(await moved, { room: 'fleet:x', bbox: [13.5, 52, 14.5, 53] });
    assert.deepEqual(seqs, [8, 9, 3]);
    assert.deepEqual(leaves, ['v1']);
    assert.equal(sub.seq, 9, 'the highest seq delivered');
    assert.equal(sub.duplicates, 0);
    assert.deepEqual(sub.bbox, [13.5, 52, 14.5, 53]);
    // A refused view leaves the box as it was.
    const refused = c.view('fleet:x', [0, 1, 1, 0]);
    ws.receive({ op: 'error', id: 3, code: 'bad_field', message: 'bbox: south above north' });
    await assert.rejects(refused, { code: 'bad_field', op: 'view', room: 'fleet:x' });
    assert.deepEqual(sub.bbox, [13.5, 52, 14.5, 53]);
    await assert.rejects(c.view('fleet:x', [1, 2, 3]), TypeError);
    await assert.rejects(c.subscribe('fleet:y', { bbox: [0, 0, 1, NaN] }), TypeError);

    ws.serverClose(1006);
    await until(() => FakeSocket.instances.length === 2, 'a second socket');
    const ws2 = FakeSocket.last();
    ws2.open();
    // A fresh snapshot of the current box (epoch only: a restarted room still shows a reset).
    assert.deepEqual(ws2.sent, [{
      op: 'sub', room: 'fleet:x', id: 4, epoch: 'AAAAAAAAAA', snapshot: true, bbox: [13.5, 52, 14.5, 53],
      max_rate: 2, min_move_m: 10, max_silence_s: 30,
    }]);
    const info = new Promise((resolve) => sub.once('subscribed', resolve));
    ws2.receive({ op: 'ok', id: 4, room: 'fleet:x', seq: 12, epoch: 'AAAAAAAAAA' });
    assert.equal((await info).resumed, false);
    ws2.receive({ room: 'fleet:x', seq: 5, data: 5 });
    assert.deepEqual(seqs, [8, 9, 3, 5]);
    c.close();
  });

  test('a paced subscription without snapshot resumes from its highest seq', async () => {
    const c = fakeClient();
    await until(() => FakeSocket.last(), 'a socket');
    const ws = FakeSocket.last();
    ws.open();
    const p = c.subscribe('sensor:x', { maxRate: 1 });
    ws.receive({ op: 'ok', id: 1, room: 'sensor:x', seq: 2, epoch: 'AAAAAAAAAA' });
    await p;
    for (const seq of [4, 3]) ws.receive({ room: 'sensor:x', seq, data: seq });
    ws.serverClose(1006);
    await until(() => FakeSocket.instances.length === 2, 'a second socket');
    FakeSocket.last().open();
    assert.deepEqual(FakeSocket.last().sent, [
      { op: 'sub', room: 'sensor:x', id: 2, since: 4, epoch: 'AAAAAAAAAA', max_rate: 1 },
    ]);
    c.close();
  });

  test('a refused resubscription is announced on the subscription and the client', async () => {
    const c = fakeClient();
    await until(() => FakeSocket.last(), 'a socket');
    FakeSocket.last().open();
    const p = c.subscribe('fleet:y');
    FakeSocket.last().receive({ op: 'ok', id: 1, room: 'fleet:y', seq: 0, epoch: 'AAAAAAAAAA' });
    const sub = await p;
    const errors = [];
    sub.on('error', (e) => errors.push(['sub', e.code]));
    c.on('error', (e) => errors.push(['client', e.code, e.room]));
    FakeSocket.last().serverClose(1006);
    await until(() => FakeSocket.instances.length === 2, 'a second socket');
    FakeSocket.last().open();
    FakeSocket.last().receive({ op: 'error', id: 2, code: 'forbidden', message: 'no subscribe right on fleet:y' });
    assert.deepEqual(errors, [
      ['sub', 'forbidden'],
      ['client', 'forbidden', 'fleet:y'],
    ]);
    assert.equal(sub.active, false);
    assert.deepEqual(c.subscriptions, []);
    c.close();
  });

  test('close 1008 for another reason than token expiry backs off and keeps the token', async () => {
    let refreshed = 0;
    const c = fakeClient(undefined, { token: 'opaque', refreshToken: () => (refreshed++, 'new') });
    await until(() => FakeSocket.last(), 'a socket');
    FakeSocket.last().open();
    const drops = [];
    c.on('reconnecting', (e) => drops.push(e));
    FakeSocket.last().serverClose(1008, 'slow consumer');
    assert.deepEqual(
      drops.map((d) => [d.code, d.reason, d.delay]),
      [[1008, 'slow consumer', 10]],
    );
    await until(() => FakeSocket.instances.length === 2, 'a second socket');
    assert.equal(refreshed, 0);
    assert.match(FakeSocket.last().url, /token=opaque$/);
    FakeSocket.last().open();
    FakeSocket.last().serverClose(1008, 'token expired');
    assert.equal(drops[1].delay, 0, 'token expiry: at once');
    await until(() => FakeSocket.instances.length === 3, 'a third socket');
    assert.equal(refreshed, 1);
    assert.match(FakeSocket.last().url, /token=new$/);
    c.close();
  });

  test('a request with no reply rejects with timeout', async () => {
    const c = fakeClient(undefined, { requestTimeout: 50 });
    await until(() => FakeSocket.last(), 'a socket');
    FakeSocket.last().open();
    const err = await c.publish('r:t', 1).then(
      () => null,
      (e) => e,
    );
    assert.equal(err?.code, 'timeout');
    // A late reply is ignored.
    FakeSocket.last().receive({ op: 'ok', id: 1, room: 'r:t', seq: 1, epoch: 'AAAAAAAAAA' });
    c.close();
  });

  test('a listener that throws does not stop delivery', async () => {
    const c = fakeClient();
    await until(() => FakeSocket.last(), 'a socket');
    const ws = FakeSocket.last();
    ws.open();
    const seqs = [];
    const p = c.subscribe('r:throw', {
      onMessage: (_, m) => {
        seqs.push(m.seq);
        if (m.seq === 1) throw new Error('app bug');
      },
    });
    ws.receive({ op: 'ok', id: 1, room: 'r:throw', seq: 0, epoch: 'AAAAAAAAAA' });
    const sub = await p;
    const errors = [];
    sub.on('error', (e) => errors.push(e.message));
    ws.receive({ room: 'r:throw', seq: 1, data: 1 });
    ws.receive({ room: 'r:throw', seq: 2, data: 2 });
    assert.deepEqual(seqs, [1, 2]);
    assert.deepEqual(errors, ['app bug'], 'reported to the error listeners');
    assert.equal(sub.seq, 2);
    c.close();
  });
});
