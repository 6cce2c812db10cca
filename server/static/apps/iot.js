// IoT: one card per sensor (room `sensor`, keyed, snapshot then live) with its live value, a
// sparkline of recent readings (with its threshold drawn), battery, an alarm when the value is
// over its kind's threshold, and online/offline from the age of its last reading.
import { $, age, connect, el, noteGap, noteReset } from './common.js';

const OFFLINE_MS = 10000; // no reading for this long: offline
const POINTS = 40; // readings kept for the sparkline
// Alarm thresholds per kind; `?limit.<kind>=<value>` overrides one (e.g. ?limit.noise=70).
const LIMITS = { temperature: 20, humidity: 70, pm25: 15, noise: 60 };
for (const [k, v] of new URLSearchParams(location.search)) {
  if (k.startsWith('limit.') && Number.isFinite(Number(v))) LIMITS[k.slice(6)] = Number(v);
}
const client = connect();
const sensors = new Map(); // id -> {s, card, values}

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
  e.values.push(s.value);
  if (e.values.length > POINTS) e.values.shift();
  field(e.card, 'head').textContent = `${s.id} · ${s.kind}`;
  field(e.card, 'value').textContent = `${s.value} ${s.unit}`;
  spark(field(e.card, 'spark'), e.values, LIMITS[s.kind]);
  refresh(e);
}

function refresh(e) {
  const offline = Date.now() - e.s.ts > OFFLINE_MS;
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
  onReset(info) {
    for (const e of sensors.values()) e.card.remove();
    sensors.clear();
    noteReset('sensor', info);
  },
  onGap: (info) => noteGap('sensor', info),
});

setInterval(() => sensors.forEach(refresh), 1000);

window.app = { client, sensors, LIMITS };
