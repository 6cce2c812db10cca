// IoT: one card per sensor (room `sensor`, keyed, snapshot then live) with its live value, a
// sparkline of recent readings (with its threshold drawn), battery, an alarm when the value is
// over its kind's threshold, and online/offline. Offline is the server's word: the `sensor`
// namespace has a `liveness_ttl`, so the server sends `offline` for a sensor that fell silent
// (and, to a new snapshot subscriber, for those silent already); its next reading is the sign
// it is back.
import { $, age, connect, el, noteGap, noteReset } from './common.js';

// A fallback for a server whose `sensor` namespace has no `liveness_ttl` (a config file can
// replace the built-in one): a reading this old is shown offline too. (A reconnect needs no
// fallback: the page resubscribes with `snapshot`, which brings the `offline` notices again.)
// Longer than the built-in 10 s ttl, so the server's notice decides where it has one.
const STALE_MS = 30000;
const POINTS = 40; // readings kept for the sparkline
// Alarm thresholds per kind; `?limit.<kind>=<value>` overrides one (e.g. ?limit.noise=70).
const LIMITS = { temperature: 20, humidity: 70, pm25: 15, noise: 60 };
for (const [k, v] of new URLSearchParams(location.search)) {
  if (k.startsWith('limit.') && Number.isFinite(Number(v))) LIMITS[k.slice(6)] = Number(v);
}
const client = connect();
const sensors = new Map(); // id -> {s, card, values, offline}

function card(id) {
  const c = el('div', { class: 'card', 'data-id': id },
    el('div', { class: 'muted', 'data-f': 'head' }),
    el('div', { class: 'value', 'data-f': 'value' }),
    el('canvas', { width: 180, height: 36, 'data-f': 'spark' }),
    el('div', { class: 'muted', 'data-f': 'foot' }));
  const list = $('cards');
  const next = [...list.children].find((n) => n.dataset.id > id);
  list.insertBefore(c, next ?? null);
  return c;
}

function spark(canvas, values, limit) {
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (values.length < 2) return;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  if (limit !== undefined && limit >= lo && limit <= hi) {
    const y = canvas.height - 2 - ((limit - lo) / span) * (canvas.height - 4);
    g.strokeStyle = '#ebcb8b';
    g.setLineDash([3, 3]);
    g.beginPath();
    g.moveTo(0, y);
    g.lineTo(canvas.width, y);
    g.stroke();
    g.setLineDash([]);
  }
  g.strokeStyle = '#88c0d0';
  g.lineWidth = 1.5;
  g.beginPath();
  values.forEach((v, i) => {
    const x = (i / (POINTS - 1)) * canvas.width;
    const y = canvas.height - 2 - ((v - lo) / span) * (canvas.height - 4);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
}

const field = (c, f) => c.querySelector(`[data-f="${f}"]`);

function upsert(s) {
  let e = sensors.get(s.id);
  if (!e) sensors.set(s.id, (e = { card: card(s.id), values: [] }));
  e.s = s;
  e.offline = false; // a reading: back online, if it was out
  e.values.push(s.value);
  if (e.values.length > POINTS) e.values.shift();
  field(e.card, 'head').textContent = `${s.id} · ${s.kind}`;
  field(e.card, 'value').textContent = `${s.value} ${s.unit}`;
  spark(field(e.card, 'spark'), e.values, LIMITS[s.kind]);
  refresh(e);
}

/** The server says sensor `key` sent nothing for the namespace's liveness ttl. */
function wentOffline({ key }) {
  const e = sensors.get(key);
  if (!e) return; // no reading of it seen: no card to mark
  e.offline = true;
  refresh(e);
}

function refresh(e) {
  const offline = e.offline || Date.now() - e.s.ts > STALE_MS;
  const limit = LIMITS[e.s.kind];
  const alarm = !offline && limit !== undefined && e.s.value > limit;
  e.card.classList.toggle('offline', offline);
  e.card.classList.toggle('alarm', alarm);
  const over = alarm ? ` · over ${limit} ${e.s.unit}` : '';
  field(e.card, 'foot').textContent = `${offline ? 'offline' : 'online'}${over} · battery ${e.s.battery} % · ${age(e.s.ts)}`;
  const n = [...sensors.values()].filter((x) => x.card.classList.contains('alarm')).length;
  const count = $('alarms');
  if (count) count.textContent = `${n} over threshold`;
}

client.subscribe('sensor', {
  snapshot: true,
  onMessage: upsert,
  onOffline: wentOffline,
  onReset(info) {
    for (const e of sensors.values()) e.card.remove();
    sensors.clear();
    noteReset('sensor', info);
  },
  onGap: (info) => noteGap('sensor', info),
});

setInterval(() => sensors.forEach(refresh), 1000);

window.app = { client, sensors, LIMITS };
