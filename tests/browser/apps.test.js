// The web apps in headless Chromium against the real server and its demo publishers: each
// page loads without console errors, shows data within seconds, visibly updates; following a
// vehicle and a flight works; a server restart is survived (reconnect, reset shown).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, open, screenshot, sleep, startServer, stopServer } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

/** Publishes `data` into `room` over the HTTP API. */
async function publish(room, data) {
  const r = await fetch(`${server.url}/api/publish`, { method: 'POST', body: JSON.stringify({ room, data }) });
  assert.equal(r.status, 200, await r.text());
}

/** Waits until `fn` (run in the page) returns truthy; returns its value. */
async function until(page, fn, arg, timeout = 8000) {
  const handle = await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  return handle.jsonValue();
}

describe('index', () => {
  test('links every app', async () => {
    const { page, errors } = await open(browser.context, `${server.url}/`);
    const links = await page.$$eval('#apps a', (as) => as.map((a) => a.getAttribute('href')));
    for (const p of ['/vehicles', '/flights', '/traffic', '/orders', '/iot']) assert.ok(links.includes(p), p);
    await screenshot(page, 'index');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('vehicles', () => {
  test('shows the fleet on the offline city map, moving, and follows a vehicle', async () => {
    const { page, errors } = await open(browser.context, `${server.url}/vehicles`);
    await until(page, () => document.getElementById('conn').dataset.state === 'open');
    await until(page, () => Number(document.getElementById('n-total').textContent) >= 40);
    assert.ok(await page.$('#map.offline-city'), 'the offline street grid is the base layer');
    assert.match(await page.textContent('#tiles'), /offline map/);

    // Markers move: at least 5 within a few seconds (one demo tick a second).
    const before = await page.evaluate(() =>
      Object.fromEntries([...window.app.vehicles].map(([id, e]) => [id, e.marker.getLatLng().toString()])));
    await until(page, (was) => [...window.app.vehicles]
      .filter(([id, e]) => e.marker.getLatLng().toString() !== was[id]).length >= 5, before);
    // The whole city is in view at first: all 40 vehicles, moving or stopped.
    const moving = Number(await page.textContent('#n-moving'));
    const stopped = Number(await page.textContent('#n-stopped'));
    assert.equal(moving + stopped, 40);
    assert.equal(Number(await page.textContent('#n-view')), 40);

    // Click a vehicle on the map (the canvas marker at its on-screen point).
    const target = await page.evaluate(() => {
      const [id, e] = [...window.app.vehicles].find(([, e]) => e.v.status === 'moving') ?? [...window.app.vehicles][0];
      e.marker.bringToFront();
      const map = e.marker._map;
      map.setView(e.marker.getLatLng(), 15, { animate: false });
      const p = map.latLngToContainerPoint(e.marker.getLatLng());
      const box = map.getContainer().getBoundingClientRect();
      return { id, x: box.left + p.x, y: box.top + p.y };
    });
    await page.mouse.click(target.x, target.y);
    const followed = await until(page, () => window.app.followed?.id);
    assert.match(await page.textContent('#f-room'), new RegExp(`^vehicle:${followed}$`));
    await until(page, () => Number(document.getElementById('f-count').textContent) >= 2);
    assert.equal(await page.textContent('#f-id'), followed);
    assert.match(await page.textContent('#f-speed'), /km\/h$/);
    assert.match(await page.textContent('#f-age'), /s ago$/);
    await page.evaluate(() => window.app.map.fitBounds([[52.45, 13.28], [52.56, 13.48]], { animate: false }));
    await sleep(300);
    await screenshot(page, 'vehicles');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('flights', () => {
  test('shows the board and the world map, updates, and tracks a flight', async () => {
    const { page, errors } = await open(browser.context, `${server.url}/flights`);
    await until(page, () => document.getElementById('conn').dataset.state === 'open');
    await until(page, () => document.querySelectorAll('#board tr').length >= 10);
    const outlines = await until(page, () => Number(document.getElementById('map').dataset.outlines));
    assert.ok(outlines > 100, `world outlines drawn: ${outlines} countries`);
    // Rows change (progress, altitude, status) within a few seconds.
    const first = await page.$$eval('#board tr', (rows) => rows.map((r) => r.textContent));
    assert.match(first[0], /→/);
    await until(page, (was) => [...document.querySelectorAll('#board tr')]
      .filter((r, i) => r.textContent !== was[i]).length >= 3, first);

    await page.click('#board tr:nth-child(2)');
    const id = await until(page, () => window.app.tracked?.id);
    assert.equal(await page.textContent('#f-room'), `tracker/${id}`);
    assert.ok(await page.$(`#board tr.selected[data-id="${id}"]`));
    await until(page, () => Number(document.getElementById('f-count').textContent) >= 1);
    assert.match(await page.textContent('#f-alt'), /ft$/);
    await screenshot(page, 'flights');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('traffic', () => {
  test('lists live incidents and drops cleared or expired ones', async () => {
    const { page, errors } = await open(browser.context, `${server.url}/traffic`);
    await until(page, () => document.getElementById('conn').dataset.state === 'open');
    await until(page, () => document.querySelectorAll('#list tr').length >= 1);
    assert.ok(await page.$('#map.offline-city'));
    const live = await page.evaluate(() =>
      [...window.app.incidents.values()].every((e) => e.i.status !== 'cleared' && e.i.expires_at > Date.now()));
    assert.ok(live, 'only active, unexpired incidents are shown');
    const rows = await page.$$eval('#list tr', (rs) => rs.map((r) => r.textContent));
    assert.equal(rows.length, await page.evaluate(() => window.app.incidents.size));
    await screenshot(page, 'traffic');

    // An incident published by hand appears, then goes when cleared; another when it expires.
    const incident = (id, status, expiresIn) => publish('traffic', {
      id, kind: 'accident', severity: 'major', place: 'Test Street', lat: 52.5, lon: 13.4,
      message: 'test', status, expires_at: Date.now() + expiresIn, ts: Date.now(),
    });
    const shown = (id) => page.$(`#list tr[data-id="${id}"]`);
    await incident('inc-test-a', 'active', 60000);
    await incident('inc-test-b', 'active', 2500);
    await until(page, () => document.querySelector('#list tr[data-id="inc-test-a"]'));
    assert.ok(await shown('inc-test-b'));
    await incident('inc-test-a', 'cleared', 60000);
    await until(page, () => !document.querySelector('#list tr[data-id="inc-test-a"]'));
    await until(page, () => !document.querySelector('#list tr[data-id="inc-test-b"]'), undefined, 6000);
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('orders', () => {
  test('the operator list updates and an order page follows its order', async () => {
    const { page, errors } = await open(browser.context, `${server.url}/orders`);
    await until(page, () => document.getElementById('conn').dataset.state === 'open');
    await until(page, () => document.querySelectorAll('#list tr').length >= 2);
    const rows = () => page.$$eval('#list tr', (rs) => rs.map((r) => r.textContent).sort().join('\n'));
    const first = await rows();
    await until(page, (was) => [...document.querySelectorAll('#list tr')].map((r) => r.textContent).sort().join('\n') !== was, first);
    await screenshot(page, 'orders');
    // The order whose courier is on the way, else any that is not delivered.
    const id = await page.evaluate(() => {
      const open = [...window.app.orders.values()].map((e) => e.o).filter((o) => o.status !== 'delivered');
      return (open.find((o) => o.status === 'on_the_way') ?? open[0]).id;
    });
    await page.click(`#list tr[data-id="${id}"] a`);
    await page.waitForURL(`**/orders/${id}`);
    assert.equal(await page.textContent('#o-room'), `order-tracking/${id}`);
    await until(page, () => window.app.last !== null, undefined, 15000);
    await until(page, () => document.querySelectorAll('#steps span.done').length >= 1);
    assert.match(await page.textContent('#o-restaurant'), /\S/);
    await screenshot(page, 'order');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('iot', () => {
  test('sensor cards show live values with sparklines and online state', async () => {
    const { page, errors } = await open(browser.context, `${server.url}/iot`);
    await until(page, () => document.getElementById('conn').dataset.state === 'open');
    await until(page, () => document.querySelectorAll('.card').length >= 20);
    const first = await page.$$eval('.card [data-f="value"]', (vs) => vs.map((v) => v.textContent));
    await until(page, (was) => [...document.querySelectorAll('.card [data-f="value"]')]
      .filter((v, i) => v.textContent !== was[i]).length >= 3, first);
    assert.match(await page.textContent('.card [data-f="foot"]'), /online|offline/);
    const points = await page.evaluate(() => Math.max(...[...window.app.sensors.values()].map((e) => e.values.length)));
    assert.ok(points >= 2, 'sparklines have points');
    // A card is in alarm exactly when its (online) value is over its kind's threshold.
    const wrong = await page.evaluate(() => [...window.app.sensors.values()].filter((e) => {
      const over = !e.card.classList.contains('offline') && e.s.value > window.app.LIMITS[e.s.kind];
      return over !== e.card.classList.contains('alarm');
    }).length);
    assert.equal(wrong, 0, 'alarm state follows the thresholds');
    assert.match(await page.textContent('#alarms'), /^\d+ over threshold$/);
    await screenshot(page, 'iot');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('tiles', () => {
  test('?tiles=osm adds the OpenStreetMap tile layer (tiles answered locally here)', async () => {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const requested = [];
    const png = await (await fetch(`${server.url}/static/vendor/leaflet/images/layers.png`)).arrayBuffer();
    await page.route('https://tile.openstreetmap.org/**', (route) => {
      requested.push(route.request().url());
      return route.fulfill({ status: 200, contentType: 'image/png', body: Buffer.from(png) });
    });
    await page.goto(`${server.url}/vehicles?tiles=osm`);
    await until(page, () => document.querySelectorAll('.leaflet-tile-loaded').length > 0);
    assert.match(await page.textContent('#tiles'), /OpenStreetMap/);
    assert.ok(!(await page.$('#map.offline-city')), 'no offline grid with tiles');
    assert.match(requested[0], /^https:\/\/tile\.openstreetmap\.org\/\d+\/\d+\/\d+\.png$/);
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('restart', () => {
  test('pages reconnect to a restarted server and show the reset', async () => {
    const paths = ['/vehicles', '/flights', '/traffic', '/orders', '/iot'];
    const pages = await Promise.all(paths.map((p) => open(browser.context, `${server.url}${p}`)));
    for (const { page } of pages) {
      await until(page, () => document.getElementById('conn').dataset.state === 'open');
    }
    // Every page has received something, so it holds a position (epoch + seq) to resume from.
    for (const { page } of pages.slice(2)) {
      await until(page, () => [...window.app.client.subscriptions.values()].every((s) => s.seq !== null));
    }
    await until(pages[0].page, () => window.app.vehicles.size >= 40);
    await until(pages[1].page, () => window.app.flights.size >= 10);
    const addr = server.addr;
    await stopServer(server);
    for (const { page } of pages) {
      await until(page, () => document.getElementById('conn').dataset.state === 'reconnecting');
    }
    server = await startServer(addr);
    for (const { page } of pages) {
      await until(page, () => document.getElementById('conn').dataset.state === 'open', undefined, 20000);
      await until(page, () => Number(document.getElementById('notice').dataset.resets) >= 1);
      assert.match(await page.textContent('#notice'), /reset/);
    }
    await until(pages[0].page, () => window.app.vehicles.size >= 40);
    await until(pages[1].page, () => window.app.flights.size >= 10);
    await screenshot(pages[0].page, 'vehicles-after-restart');
    for (const { page, errors } of pages) {
      // While the server was down the browser logs each refused WebSocket connection.
      const other = errors.filter((e) => !/WebSocket connection to .* failed/.test(e));
      assert.deepEqual(other, []);
      await page.close();
    }
  });
});
