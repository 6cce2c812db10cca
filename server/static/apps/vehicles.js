// Vehicles: the demo fleet on a city map. `fleet:demo` with snapshot (every vehicle's latest
// position, then live), short trails, counters; clicking a vehicle follows its own room
// `vehicle:<id>`.
import { $, age, baseMap, cityGrid, CITY_VIEW, connect, noteGap, noteReset } from './common.js';

const TRAIL = 10; // positions kept per vehicle
const COLORS = { moving: '#a3be8c', stopped: '#bf616a', followed: '#ebcb8b' };

const client = connect();
const map = baseMap('map', CITY_VIEW, cityGrid);
const vehicles = new Map(); // id -> {v, marker, trail}
let followed = null; // {id, sub, last, count}
let updates = 0;

function color(id, v) {
  return followed?.id === id ? COLORS.followed : COLORS[v.status] ?? COLORS.moving;
}

function upsert(v) {
  updates++;
  let e = vehicles.get(v.id);
  const pos = [v.lat, v.lon];
  if (!e) {
    const marker = L.circleMarker(pos, { radius: 6, weight: 2, fillOpacity: 0.9 }).addTo(map);
    marker.bindTooltip(v.id);
    marker.on('click', () => follow(v.id));
    const trail = L.polyline([], { weight: 4, opacity: 0.6, interactive: false }).addTo(map);
    e = { marker, trail, points: [] };
    vehicles.set(v.id, e);
  }
  e.v = v;
  e.marker.setLatLng(pos);
  const c = color(v.id, v);
  e.marker.setStyle({ color: c, fillColor: c });
  e.points.push(pos);
  if (e.points.length > TRAIL) e.points.shift();
  e.trail.setLatLngs(e.points).setStyle({ color: c });
  if (followed?.id === v.id && !followed.last) showFollowed(v);
}

function clear() {
  for (const e of vehicles.values()) e.marker.remove(), e.trail.remove();
  vehicles.clear();
}

function counters() {
  let moving = 0;
  for (const e of vehicles.values()) if (e.v.status !== 'stopped') moving++;
  $('n-total').textContent = vehicles.size;
  $('n-moving').textContent = moving;
  $('n-stopped').textContent = vehicles.size - moving;
}

function showFollowed(v) {
  $('f-id').textContent = v.id;
  $('f-status').textContent = v.status;
  $('f-speed').textContent = `${v.speed.toFixed(1)} km/h`;
  $('f-heading').textContent = `${v.heading}°`;
  $('f-route').textContent = v.route;
  $('f-age').textContent = age(v.ts);
}

async function follow(id) {
  if (followed?.id === id) return;
  await unfollow();
  const room = `vehicle:${id}`;
  followed = { id, last: null, count: 0, sub: null };
  const mine = followed;
  $('f-room').textContent = room;
  $('unfollow').hidden = false;
  if (vehicles.has(id)) showFollowed(vehicles.get(id).v);
  refreshColors();
  mine.sub = await client.subscribe(room, {
    onMessage(v) {
      if (followed !== mine) return;
      mine.last = v;
      mine.count++;
      $('f-count').textContent = mine.count;
      showFollowed(v);
      if (!map.getBounds().pad(-0.1).contains([v.lat, v.lon])) map.panTo([v.lat, v.lon]);
    },
    onReset: (info) => noteReset(room, info),
  });
  if (followed !== mine) mine.sub.unsubscribe();
}

async function unfollow() {
  const f = followed;
  followed = null;
  $('f-room').textContent = 'none';
  $('f-count').textContent = '0';
  $('unfollow').hidden = true;
  refreshColors();
  if (f?.sub) await f.sub.unsubscribe().catch(() => {});
}

function refreshColors() {
  for (const [id, e] of vehicles) {
    const c = color(id, e.v);
    e.marker.setStyle({ color: c, fillColor: c });
    e.trail.setStyle({ color: c });
  }
}

$('unfollow').addEventListener('click', () => unfollow());

client.subscribe('fleet:demo', {
  snapshot: true,
  onMessage: upsert,
  onReset(info) {
    // The room restarted: positions may be stale; the new incarnation's messages rebuild it.
    clear();
    noteReset('fleet:demo', info);
  },
  onGap: (info) => noteGap('fleet:demo', info),
});

setInterval(() => {
  counters();
  $('rate').textContent = updates;
  updates = 0;
  const v = followed && (followed.last ?? vehicles.get(followed.id)?.v);
  if (v) $('f-age').textContent = age(v.ts);
}, 1000);

// For tests and the console.
window.app = { client, map, vehicles, follow, get followed() { return followed; } };
