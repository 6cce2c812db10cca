// Tokens against a server started with --jwt-secret: room rights as rejected promises, the
// refresh hook after close 1008 "token expired" (and the resume that follows), a token
// already expired before connecting, and a token the handshake refuses (401).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Collector, Server, client, mintToken, until, waitState } from './helpers.js';

const SECRET = 'js-client-test-secret-0123456789abcdef';
const nowS = () => Math.floor(Date.now() / 1000);
const token = (exp, rights = {}) =>
  mintToken(SECRET, {
    sub: 'tester',
    exp,
    sub_rooms: rights.sub ?? ['fleet:*'],
    pub_rooms: rights.pub ?? ['vehicle:*', 'fleet:*'],
  });

describe('auth', { timeout: 60_000 }, () => {
  let server;
  const clients = [];
  const open = (opts) => {
    const c = client(server.url, opts);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await Server.start(['--shards', '1', '--jwt-secret', SECRET]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop('SIGTERM');
  });

  test('rights: a room outside the token is refused with forbidden', async () => {
    const c = open({ token: token(nowS() + 3600, { sub: ['fleet:*'], pub: ['vehicle:*'] }) });
    const err = await c.subscribe('vehicle:42').then(
      () => null,
      (e) => e,
    );
    assert.equal(err?.code, 'forbidden');
    assert.match(err.message, /vehicle:42/);
    const perr = await c.publish('fleet:berlin', { id: 'v1' }).then(
      () => null,
      (e) => e,
    );
    assert.equal(perr?.code, 'forbidden');
    await c.subscribe('fleet:berlin');
    assert.equal((await c.publish('vehicle:42', { lat: 1 })).seq, 1);
  });

  test('close 1008 "token expired" calls the refresh hook, reconnects with the new token and resumes', async () => {
    const publisher = open({ token: token(nowS() + 3600) });
    const short = token(nowS() + 2);
    const fresh = token(nowS() + 3600);
    const calls = [];
    const c = open({
      token: short,
      refreshToken: async (info) => {
        calls.push(info);
        return fresh;
      },
    });
    const states = [];
    c.on('state', (e) => states.push(e));
    const got = new Collector();
    await c.subscribe('fleet:expiring', got.handlers);
    await publisher.publish('fleet:expiring', 1);
    await got.waitCount(1);

    await until(() => states.some((e) => e.state === 'reconnecting'), 'the expiry close', 5_000);
    const closed = states.find((e) => e.state === 'reconnecting');
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'token expired');
    assert.equal(closed.delay, 0, 'an expired token is no reason to wait');
    // Published while the client refreshes and reconnects: resumed, not lost.
    await publisher.publish('fleet:expiring', 2);
    await got.waitCount(2);
    assert.deepEqual(got.seqs, [1, 2]);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].reason, 'token expired');
    assert.equal(calls[0].token, short);
    assert.equal(c.token, fresh);
    assert.equal(c.state, 'open');
  });

  test('a token already expired is refreshed before connecting', async () => {
    let calls = 0;
    const c = open({
      token: token(nowS() - 10),
      refreshToken: () => {
        calls += 1;
        return token(nowS() + 3600);
      },
    });
    const states = [];
    c.on('state', (e) => states.push(e.state));
    await waitState(c, 'open');
    assert.equal(calls, 1);
    assert.deepEqual(states, ['connecting', 'open'], 'no refused handshake first');
  });

  test('a token refused at the handshake (401) is refreshed; without a hook the client retries', async () => {
    // Signed with another secret: the client cannot tell, the server answers 401.
    const wrong = mintToken('another-secret', { sub: 'x', exp: nowS() + 3600, sub_rooms: ['*'] });
    let calls = 0;
    const c = open({ token: wrong, refreshToken: () => (calls++, token(nowS() + 3600)) });
    const got = new Collector();
    const subscribed = c.subscribe('fleet:after401', got.handlers);
    await waitState(c, 'open');
    await subscribed;
    assert.equal(calls, 1);

    const stuck = open({ token: wrong });
    const seen = [];
    stuck.on('reconnecting', (e) => seen.push(e));
    await until(() => seen.length >= 2, 'two retries');
    assert.match(seen[0].reason, /401/);
    stuck.close();
  });

  test('a refresh hook that fails is reported and retried with backoff', async () => {
    let calls = 0;
    const c = open({
      token: token(nowS() - 10),
      refreshToken: async () => {
        calls += 1;
        if (calls === 1) throw new Error('auth service down');
        return token(nowS() + 3600);
      },
    });
    const errors = [];
    c.on('error', (e) => errors.push(e));
    await waitState(c, 'open');
    assert.equal(calls, 2);
    assert.equal(errors[0]?.message, 'auth service down');
  });
});
