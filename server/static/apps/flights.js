// Flights: a board of every flight (`flights:all`, snapshot then live) and a world map;
// clicking a row or a plane follows that flight's own room `tracker/<id>`.
import { $, age, baseMap, connect, el, noteGap, noteReset, worldOutlines } from './common.js';

const client = connect();
const map = baseMap('map', { center: [30, 10], zoom: 2 }, worldOutlines);
const flights = new Map(); // id -> {f, row, marker}
let tracked = null; // {id, sub, count}

const COLORS = { boarding: '#81a1c1', climbing: '#ebcb8b', cruising: '#a3be8c', descending: '#d08770', landed: '#7b8394' };

function cells(f) {
  return [f.callsign, `${f.from} → ${f.to}`, Math.round(f.alt_ft).toLocaleString('en'), Math.round(f.speed_kt), f.status, `${(f.progress * 100).toFixed(1)} %`];
}

function upsert(f) {
  let e = flights.get(f.id);
  if (!e) {
    const row = el('tr', { 'data-id': f.id, onclick: () => track(f.id) });
    for (let i = 0; i < 6; i++) row.append(el('td'));
    const marker = L.circleMarker([f.lat, f.lon], { radius: 5, weight: 1, fillOpacity: 0.9 }).addTo(map);
    marker.bindTooltip(f.callsign);
    marker.on('click', () => track(f.id));
    e = { row, marker };
    flights.set(f.id, e);
    insertSorted(row, f.callsign);
    $('n-flights').textContent = flights.size;
  }
  e.f = f;
  cells(f).forEach((text, i) => (e.row.children[i].textContent = text));
  const c = tracked?.id === f.id ? '#ffffff' : COLORS[f.status] ?? '#a3be8c';
  e.marker.setLatLng([f.lat, f.lon]).setStyle({ color: c, fillColor: c });
}

function insertSorted(row, callsign) {
  const board = $('board');
  const next = [...board.children].find((r) => flights.get(r.dataset.id)?.f?.callsign > callsign);
  board.insertBefore(row, next ?? null);
}

function showTracked(f) {
  $('f-id').textContent = `${f.callsign} (${f.from} → ${f.to})`;
  $('f-pos').textContent = `${f.lat.toFixed(2)}, ${f.lon.toFixed(2)}`;
  $('f-alt').textContent = `${Math.round(f.alt_ft).toLocaleString('en')} ft`;
  $('f-speed').textContent = `${Math.round(f.speed_kt)} kt`;
  $('f-heading').textContent = `${f.heading}°`;
  $('f-progress').textContent = `${Math.round(f.progress * 100)} %`;
  $('f-age').textContent = age(f.ts);
}

async function track(id) {
  if (tracked?.id === id) return;
  const prev = tracked;
  const mine = (tracked = { id, count: 0, sub: null, last: flights.get(id)?.f });
  for (const [fid, e] of flights) e.row.classList.toggle('selected', fid === id);
  if (prev?.sub) prev.sub.unsubscribe().catch(() => {});
  const room = `tracker/${id}`;
  $('f-room').textContent = room;
  $('f-count').textContent = '0';
  if (mine.last) showTracked(mine.last), map.panTo([mine.last.lat, mine.last.lon]);
  mine.sub = await client.subscribe(room, {
    onMessage(f) {
      if (tracked !== mine) return;
      mine.last = f;
      $('f-count').textContent = ++mine.count;
      showTracked(f);
    },
    onReset: (info) => noteReset(room, info),
  });
  if (tracked !== mine) mine.sub.unsubscribe().catch(() => {});
}

client.subscribe('flights:all', {
  snapshot: true,
  onMessage: upsert,
  onReset(info) {
    for (const e of flights.values()) e.row.remove(), e.marker.remove();
    flights.clear();
    noteReset('flights:all', info);
  },
  onGap: (info) => noteGap('flights:all', info),
});

setInterval(() => {
  if (tracked?.last) $('f-age').textContent = age(tracked.last.ts);
}, 1000);

window.app = { client, map, flights, track, get tracked() { return tracked; } };
