// Tracking in the web apps (issue 11), headless Chromium against the real server: the Vehicles
// page is a viewport (only vehicles in view; a `view` on each pan, markers outside removed,
// boxes in range even on a wrapped world view), and the IoT page shows the server's liveness
// (`offline`, live and after a snapshot, then online again at the next reading).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, open, screenshot, sleep, startServer, stopServer } from './harness.js';

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** Waits until `fn` (run in the page) returns truthy; returns its value. */
async function until(page, fn, arg, timeout = 8000) {
  const handle = await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  return handle.jsonValue();
}

/** The JSON frames the page sends over its WebSockets, with `op` = `op`. */
function sentFrames(page, op) {
  const frames = [];
  page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => {
    try {
      const f = JSON.parse(payload);
      if (f.op === op) frames.push(f);
    } catch {
      // not JSON: not ours
    }
  }));
  return frames;
}

describe('vehicles viewport', () => {
  let server;
  before(async () => {
    server = await startServer(); // the demo fleet
  });
  after(async () => {
    if (server) await stopServer(server);
  });

  test('only vehicles in view; panning sends a view and removes the markers outside', async () => {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    const subs = sentFrames(page, 'sub');
    const views = sentFrames(page, 'view');
    await page.goto(`${server.url}/vehicles`, { waitUntil: 'load' });
    await until(page, () => document.getElementById('conn').dataset.state === 'open');
    // The whole city is in view at first: the whole fleet, counted by the paced overview too.
    await until(page, () => window.app.vehicles.size >= 40);
    await until(page, () => Number(document.getElementById('n-total').textContent) >= 40);
    const fleetSub = subs.find((f) => f.room === 'fleet:demo' && f.bbox);
    assert.ok(fleetSub, `a viewport subscription: ${JSON.stringify(subs)}`);
    assert.equal(fleetSub.snapshot, true);
    assert.ok(subs.some((f) => f.room === 'fleet:demo' && !f.bbox && f.max_rate > 0), 'the paced overview');

    // Zoom into the south-west of the city: a `view` with the visible box; what is outside goes.
    await page.evaluate(() => window.app.map.setView([52.48, 13.32], 14, { animate: false }));
    await until(page, () => window.app.views >= 1);
    const box = await page.evaluate(() => window.app.viewBox());
    assert.deepEqual(views.at(-1).bbox, box, 'the view sent is the visible area');
    assert.equal(views.at(-1).room, 'fleet:demo');
    // Markers are only ever inside the box: a vehicle that moves out is a `leave`, not a move.
    const inside = ([w, s, e, n]) => [...window.app.vehicles.values()].every(({ v }) =>
      v.lon >= w && v.lon <= e && v.lat >= s && v.lat <= n);
    await until(page, inside, box);
    const zoomed = await page.evaluate(() => window.app.vehicles.size);
    assert.ok(zoomed < 40, `fewer vehicles in view: ${zoomed}`);
    for (let i = 0; i < 3; i++) {
      await sleep(1000); // the demo moves every vehicle once a second
      assert.ok(await page.evaluate(inside, box), 'still only vehicles inside the box');
    }
    assert.equal(Number(await page.textContent('#n-view')), await page.evaluate(() => window.app.vehicles.size));
    assert.ok(Number(await page.textContent('#n-total')) >= 40, 'the fleet count stays');
    await screenshot(page, 'vehicles-viewport');

    // Back out to the whole city: the vehicles newly inside come back (older seqs included).
    await page.evaluate(() => window.app.map.setView([52.505, 13.38], 12, { animate: false }));
    await until(page, () => window.app.views >= 2);
    await until(page, () => window.app.vehicles.size >= 40);

    // A wrapped world view: boxes stay in range (whole world, or across the antimeridian).
    await page.evaluate(() => window.app.map.setView([0, 180], 1, { animate: false }));
    await until(page, () => window.app.views >= 3);
    await page.evaluate(() => window.app.map.setView([10, 179], 3, { animate: false }));
    await until(page, () => window.app.views >= 4);
    assert.equal(views.length, 4, 'one view per settled move');
    for (const { bbox: [w, s, e, n] } of views) {
      for (const lon of [w, e]) assert.ok(lon >= -180 && lon <= 180, `lon in range: ${[w, s, e, n]}`);
      for (const lat of [s, n]) assert.ok(lat >= -90 && lat <= 90, `lat in range: ${[w, s, e, n]}`);
    }
    const world = views.at(-2).bbox;
    assert.deepEqual([world[0], world[2]], [-180, 180], `a view wider than the world: ${world}`);
    const across = views.at(-1).bbox;
    assert.ok(across[0] > across[2], `a view across the antimeridian has w > e: ${across}`);
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('iot liveness', () => {
  let server;
  let dir;
  before(async () => {
    // `sensor` with a 1 s ttl and no demo: the test is the only publisher.
    dir = mkdtempSync(join(tmpdir(), 'shardcast-browser-'));
    const config = join(dir, 'shardcast.toml');
    writeFileSync(config, '[namespaces.sensor]\nkey = "id"\nliveness_ttl = "1s"\nhistory_size = 100\n');
    server = await startServer('127.0.0.1:0', ['--config', config, '--no-demo']);
  });
  after(async () => {
    if (server) await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  const reading = (id, value) => ({
    id, kind: 'temperature', unit: '°C', value, battery: 90, ts: Date.now(),
  });
  async function publish(data) {
    const r = await fetch(`${server.url}/api/publish`, {
      method: 'POST', body: JSON.stringify({ room: 'sensor', data }),
    });
    assert.equal(r.status, 200, await r.text());
  }
  const offline = (page, id) => page.evaluate((id) => {
    const c = document.querySelector(`.card[data-id="${id}"]`);
    return c && c.classList.contains('offline') && /^offline/.test(c.querySelector('[data-f="foot"]').textContent);
  }, id);

  test('a silent sensor shows offline (live and after a snapshot), online at its next reading', async () => {
    await publish(reading('t-quiet', 18));
    await publish(reading('t-busy', 19));
    const { page, errors } = await open(browser.context, `${server.url}/iot`);
    await until(page, () => document.querySelectorAll('.card').length === 2);
    assert.equal(await offline(page, 't-quiet'), false, 'a fresh reading: online');
    // t-busy keeps reporting; t-quiet falls silent past the 1 s ttl. Its reading's `ts` is
    // seconds old at most, far from the page's own 30 s staleness guess: only the server's
    // `offline` can mark it.
    const talking = new Set(['t-busy']);
    const busy = setInterval(() => {
      for (const id of talking) publish(reading(id, 19.5)).catch(() => {});
    }, 250);
    try {
      await until(page, (id) => document.querySelector(`.card[data-id="${id}"]`).classList.contains('offline'),
        't-quiet', 5000);
      assert.ok(await offline(page, 't-quiet'));
      assert.equal(await offline(page, 't-busy'), false);

      // A page opened now gets the snapshot, then the server's `offline` for t-quiet.
      const late = await open(browser.context, `${server.url}/iot`);
      await until(late.page, () => document.querySelectorAll('.card').length === 2);
      await until(late.page, (id) => document.querySelector(`.card[data-id="${id}"]`).classList.contains('offline'),
        't-quiet', 3000);
      assert.equal(await offline(late.page, 't-busy'), false);
      await screenshot(late.page, 'iot-offline');

      // Its next reading brings it back on both pages (and it keeps reporting from then on).
      await publish(reading('t-quiet', 18.5));
      talking.add('t-quiet');
      for (const p of [page, late.page]) {
        await until(p, (id) => !document.querySelector(`.card[data-id="${id}"]`).classList.contains('offline'),
          't-quiet', 3000);
        assert.match(await p.textContent('.card[data-id="t-quiet"] [data-f="foot"]'), /^online/);
      }
      assert.deepEqual(late.errors, []);
      await late.page.close();
    } finally {
      clearInterval(busy);
    }
    assert.deepEqual(errors, []);
    await page.close();
  });
});
