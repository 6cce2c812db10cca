// Tracking subscriptions (DESIGN §3, "Tracking") through the client against the real server:
// viewports (bbox, leave, view = pan), pacing (max_rate), presence with diffs, liveness
// (offline), and a viewport that survives a dropped connection with its current box.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Server, TcpProxy, client, sleep, until, waitState } from './helpers.js';

// `fleet:*` carries positions, `sensor:*` goes offline after 1 s of silence, `lobby:*` reports
// presence (diffs at most every 200 ms).
const CONFIG = `
[namespaces.fleet]
key = "id"
geo = { lat = "lat", lon = "lon" }
history_size = 100

[namespaces.sensor]
key = "id"
liveness_ttl = "1s"
history_size = 100

[namespaces.lobby]
presence = true
presence_window = "200ms"
`;

/** A vehicle position message. */
const fix = (id, lat, lon, extra = {}) => ({ id, lat, lon, ...extra });

/** Records a subscription's messages and notices in arrival order. */
class Track {
  events = [];
  handlers = {
    onMessage: (data, meta) => this.events.push(['msg', data.id, meta.seq]),
    onLeave: (l) => this.events.push(['leave', l.key]),
    onOffline: (o) => this.events.push(['offline', o.key, o.lastSeq]),
  };

  ids() {
    return this.events.filter((e) => e[0] === 'msg').map((e) => e[1]);
  }

  leaves() {
    return this.events.filter((e) => e[0] === 'leave').map((e) => e[1]);
  }

  waitFor(pred, what) {
    return until(() => this.events.some(pred), `${what} (have ${JSON.stringify(this.events)})`);
  }
}

describe('tracking', { timeout: 60_000 }, () => {
  let server;
  const clients = [];
  const open = (url = server.url, opts = {}) => {
    const c = client(url, opts);
    clients.push(c);
    return c;
  };

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shardcast-js-tracking-'));
    const config = path.join(dir, 'shardcast.toml');
    writeFileSync(config, CONFIG);
    server = await Server.start(['--shards', '2', '--config', config]);
  });

  after(async () => {
    for (const c of clients) c.close();
    await server?.stop('SIGTERM');
  });

  test('a viewport gets what is inside and one leave when a shown key moves out', async () => {
    const pub = open();
    const got = new Track();
    const c = open();
    const clientLeaves = [];
    c.on('leave', (l) => clientLeaves.push(l));
    const sub = await c.subscribe('fleet:inside', { bbox: [13, 52, 14, 53], ...got.handlers });
    assert.deepEqual(sub.bbox, [13, 52, 14, 53]);
    assert.equal(sub.tracking, true);
    await pub.publish('fleet:inside', fix('v1', 52.5, 13.5)); // inside
    await pub.publish('fleet:inside', fix('v2', 50, 10)); // never inside: nothing, no leave
    await pub.publish('fleet:inside', fix('v1', 51.9, 13)); // out: leave
    await pub.publish('fleet:inside', fix('v1', 40, 0)); // still out: nothing
    await pub.publish('fleet:inside', fix('v1', 53, 14)); // back in at the north-east corner
    await got.waitFor((e) => e[0] === 'msg' && e[2] === 5, 'v1 back inside');
    await sleep(100);
    assert.deepEqual(got.events, [['msg', 'v1', 1], ['leave', 'v1'], ['msg', 'v1', 5]]);
    assert.deepEqual(clientLeaves, [{ room: 'fleet:inside', key: 'v1' }]);
  });

  test('view pans: ok, leaves, the entries newly inside (older seqs too), then the new box live', async () => {
    const pub = open();
    const room = 'fleet:pan';
    for (const [id, lon] of [['a', 10.2], ['b', 10.8], ['c', 11.5], ['d', 30]]) {
      await pub.publish(room, fix(id, 50.5, lon));
    }
    const got = new Track();
    const c = open();
    const sub = await c.subscribe(room, { bbox: [10, 50, 11, 51], snapshot: true, ...got.handlers });
    await until(() => got.ids().length === 2, 'the snapshot inside the box');
    assert.deepEqual(got.ids(), ['a', 'b']);
    // A live message raises the position above c's seq (3): c must still come on the pan.
    await pub.publish(room, fix('b', 50.5, 10.9));
    await until(() => got.ids().length === 3, 'b live');

    const moved = await c.view(room, [10.5, 50, 12, 51]);
    assert.deepEqual(moved, { room, bbox: [10.5, 50, 12, 51] });
    assert.deepEqual(sub.bbox, [10.5, 50, 12, 51]);
    await until(() => got.ids().includes('c'), `c newly inside (have ${JSON.stringify(got.events)})`);
    assert.deepEqual(got.events.slice(3), [['leave', 'a'], ['msg', 'c', 3]], 'b was shown already');
    assert.equal(sub.duplicates, 0);
    assert.equal(sub.seq, 5, 'the highest seq delivered');

    await pub.publish(room, fix('a', 50.5, 10.3)); // outside now
    await pub.publish(room, fix('c', 50.6, 11.6)); // inside
    await got.waitFor((e) => e[2] === 7, 'c live');
    await sleep(100);
    assert.deepEqual(got.ids().slice(4), ['c']);

    await assert.rejects(c.view('fleet:other', [0, 0, 1, 1]), { code: 'not_subscribed', op: 'view' });
    await c.subscribe('fleet:plain');
    await assert.rejects(c.view('fleet:plain', [0, 0, 1, 1]), { code: 'bad_op' });
    await assert.rejects(c.view(room, [0, 1, 1, 0]), { code: 'bad_field' });
    assert.deepEqual(sub.bbox, [10.5, 50, 12, 51], 'a refused view keeps the box');
  });

  test('options the namespace cannot serve are refused with bad_field', async () => {
    const c = open();
    await assert.rejects(c.subscribe('lobby:x', { bbox: [0, 0, 1, 1] }), { code: 'bad_field' });
    await assert.rejects(c.subscribe('sensor:x', { minMoveM: 5 }), { code: 'bad_field' });
    await assert.rejects(c.subscribe('fleet:x', { maxSilenceS: 5 }), { code: 'bad_field' });
    await assert.rejects(c.subscribe('fleet:x', { maxRate: '1' }), TypeError);
  });

  test('max_rate: per key at most r per second, the newest arrives; other keys are not held up', async () => {
    const pub = open();
    const room = 'sensor:rate';
    const got = new Track();
    const c = open();
    const sub = await c.subscribe(room, { maxRate: 2, ...got.handlers });
    assert.deepEqual(sub.pacing, { maxRate: 2 });
    let last = 0;
    for (let n = 0; n < 20; n++) {
      if (n > 0) await sleep(40);
      ({ seq: last } = await pub.publish(room, { id: 'k', n }));
    }
    // The first message of `b`: delivered at once, with a seq above k's held-back newest.
    const b = await pub.publish(room, { id: 'b', n: 0 });
    await got.waitFor((e) => e[1] === 'k' && e[2] === last, `k's newest, seq ${last}`);
    const k = got.events.filter((e) => e[1] === 'k').map((e) => e[2]);
    assert.ok(k.length >= 2 && k.length <= 5, `about 2/s over ~0.8 s: ${k}`);
    assert.ok(k.every((s, i) => i === 0 || s > k[i - 1]), `k in order: ${k}`);
    const order = got.events.map((e) => e[2]);
    assert.ok(order.indexOf(b.seq) < order.indexOf(last), `b (${b.seq}) overtook k's newest: ${order}`);
    assert.equal(sub.duplicates, 0);
  });

  test('presence answers who is there; diffs report joins and leaves', async () => {
    const room = 'lobby:hall';
    const diffs = [];
    const a = open();
    const clientDiffs = [];
    a.on('presenceDiff', (d) => clientDiffs.push(d));
    await a.subscribe(room, { onPresenceDiff: (d) => diffs.push(d) });
    const one = await a.presence(room);
    assert.equal(one.room, room);
    assert.equal(one.count, 1);
    assert.equal(one.members.length, 1);
    const [me] = one.members;
    assert.match(me, /^c\d+\.\d+$/, 'an open server names members by connection');

    const b = open();
    const bSub = await b.subscribe(room);
    const both = await a.presence(room);
    assert.equal(both.count, 2);
    assert.deepEqual(both.members, [...both.members].sort());
    const [other] = both.members.filter((m) => m !== me);
    await until(() => diffs.some((d) => d.joined.includes(other)), `a diff with ${other} joining`);
    const joinedDiff = diffs.find((d) => d.joined.includes(other));
    assert.equal(joinedDiff.count, 2);
    assert.deepEqual(joinedDiff.left, []);

    await bSub.unsubscribe();
    await until(() => diffs.some((d) => d.left.includes(other)), `a diff with ${other} leaving`);
    assert.equal(diffs.find((d) => d.left.includes(other)).count, 1);
    assert.deepEqual(clientDiffs, diffs, 'the client-wide event carries the same diffs');
    assert.deepEqual((await a.presence(room)).members, [me]);
    await assert.rejects(a.presence('fleet:nopresence'), { code: 'bad_op', op: 'presence' });
  });

  test('offline: a silent key is announced once; a snapshot subscriber learns it after the entries', async () => {
    const pub = open();
    const room = 'sensor:hall';
    const got = new Track();
    const c = open();
    const clientOffline = [];
    c.on('offline', (o) => clientOffline.push(o));
    await c.subscribe(room, got.handlers);
    const a = await pub.publish(room, { id: 'a', t: 20.5 });
    // `b` keeps reporting, `a` falls silent for more than the 1 s ttl.
    const start = Date.now();
    while (Date.now() - start < 2000) {
      await pub.publish(room, { id: 'b', t: Date.now() });
      await sleep(200);
    }
    await got.waitFor((e) => e[0] === 'offline', 'an offline notice');
    const offline = got.events.filter((e) => e[0] === 'offline');
    assert.deepEqual(offline, [['offline', 'a', a.seq]], 'a, once; b never');
    assert.deepEqual(clientOffline, [{ room, key: 'a', lastSeq: a.seq }]);

    const late = new Track();
    const l = open();
    await l.subscribe(room, { snapshot: true, ...late.handlers });
    await late.waitFor((e) => e[0] === 'offline' && e[1] === 'a', 'the offline notice after the snapshot');
    const pos = (pred) => late.events.findIndex(pred);
    assert.ok(
      pos((e) => e[0] === 'msg' && e[1] === 'a') < pos((e) => e[0] === 'offline' && e[1] === 'a'),
      JSON.stringify(late.events),
    );

    // `a` reports again: an ordinary message (no "online" notice).
    const back = await pub.publish(room, { id: 'a', t: 21 });
    await got.waitFor((e) => e[2] === back.seq, 'a back');
    // (b, silent since the loop ended, may be announced by now; a only once.)
    assert.equal(got.events.filter((e) => e[0] === 'offline' && e[1] === 'a').length, 1);
  });

  test('after a dropped connection a viewport resubscribes with its current box and pacing', async () => {
    const proxy = await TcpProxy.start(server.port);
    try {
      const pub = open();
      const room = 'fleet:reconnect';
      await pub.publish(room, fix('west', 50.5, 10.5));
      await pub.publish(room, fix('east', 50.5, 11.5));
      const got = new Track();
      const infos = [];
      const c = open(proxy.url);
      const sub = await c.subscribe(room, {
        bbox: [10, 50, 11, 51],
        snapshot: true,
        maxRate: 2,
        onSubscribed: (i) => infos.push(i),
        ...got.handlers,
      });
      await until(() => got.ids().length === 1, 'west from the snapshot');
      await c.view(room, [11, 50, 12, 51]);
      await until(() => got.ids().includes('east'), 'east after the pan');

      proxy.cut();
      await waitState(c, 'reconnecting');
      await waitState(c, 'open');
      await until(() => infos.length === 2, 'the resubscription confirmed');
      assert.equal(infos[1].resumed, false, 'a viewport snapshot starts over');
      // The fresh snapshot is of the panned box: east again, not west.
      await until(() => got.ids().length === 3, `the snapshot again (have ${JSON.stringify(got.events)})`);
      assert.deepEqual(got.ids(), ['west', 'east', 'east']);
      assert.deepEqual(sub.bbox, [11, 50, 12, 51]);

      // Still paced after the reconnect: a burst of 10 within ~0.4 s gives a few, the newest last.
      const mark = got.events.length;
      let last = 0;
      for (let n = 0; n < 10; n++) {
        ({ seq: last } = await pub.publish(room, fix('east', 50.5, 11.5 + n / 1000)));
        await sleep(40);
      }
      await pub.publish(room, fix('west', 50.5, 10.4)); // outside the current box
      await got.waitFor((e) => e[2] === last, 'the newest of the burst');
      await sleep(150);
      const burst = got.events.slice(mark).filter((e) => e[0] === 'msg');
      assert.ok(burst.length >= 1 && burst.length <= 3, `paced: ${JSON.stringify(burst)}`);
      assert.ok(burst.every((e) => e[1] === 'east'), 'nothing from outside the box');
    } finally {
      await proxy.close();
    }
  });
});
