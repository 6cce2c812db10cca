// Vehicles: the demo fleet on a city map. `fleet:demo` as a viewport: only the vehicles inside
// the visible map (snapshot, then live), a `view` after each pan or zoom, a marker removed when
// its vehicle leaves the view; short trails, counters; clicking a vehicle follows its own room
// `vehicle:<id>`. The fleet size comes from a second, paced subscription of the whole room.
import { $, age, baseMap, cityGrid, CITY_VIEW, connect, noteGap, noteReset, viewBox } from './common.js';

const ROOM = 'fleet:demo';
const TRAIL = 10; // positions kept per vehicle
const COLORS = { moving: '#a3be8c', stopped: '#bf616a', followed: '#ebcb8b' };
const VIEW_DEBOUNCE_MS = 200; // a drag fires many moves; the server needs the last one
// The fleet overview needs every vehicle, not every move: one update per vehicle per 5 s.
const OVERVIEW_RATE = 0.2;

const client = connect();
const map = baseMap('map', CITY_VIEW, cityGrid);
const vehicles = new Map(); // id -> {v, marker, trail}: the vehicles in view
const fleet = new Set(); // every vehicle id of the room (the overview)
let followed = null; // {id, sub, last, count}
let updates = 0;
let views = 0; // `view`s the server accepted (for tests and the console)

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

/** The server says `id` left the view (it moved out, or a pan left it outside). */
function remove(id) {
  const e = vehicles.get(id);
  if (!e) return;
  e.marker.remove();
  e.trail.remove();
  vehicles.delete(id);
}

function clear() {
  for (const id of [...vehicles.keys()]) remove(id);
}

function counters() {
  let moving = 0;
  for (const e of vehicles.values()) if (e.v.status !== 'stopped') moving++;
  $('n-view').textContent = vehicles.size;
  $('n-total').textContent = Math.max(fleet.size, vehicles.size);
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

let confirmations = 0;
client.subscribe(ROOM, {
  snapshot: true,
  bbox: viewBox(map),
  onMessage: upsert,
  onLeave: ({ key }) => remove(key),
  onSubscribed() {
    // After a reconnect the viewport starts over with a fresh snapshot of the current box
    // (the client asks for it): vehicles that left while we were away get no `leave`.
    if (confirmations++ > 0) clear();
  },
  onReset(info) {
    // The room restarted: positions may be stale; the new incarnation's messages rebuild it.
    clear();
    noteReset(ROOM, info);
  },
  onGap: (info) => noteGap(ROOM, info),
});

// Each pan or zoom moves the viewport, once the map has been still for a moment. The reply
// is followed by a `leave` per vehicle now outside and the vehicles newly inside.
let viewTimer = null;
map.on('moveend', () => {
  clearTimeout(viewTimer);
  viewTimer = setTimeout(() => {
    client.view(ROOM, viewBox(map)).then(
      () => views++,
      (err) => console.warn('view:', err.code ?? '', err.message),
    );
  }, VIEW_DEBOUNCE_MS);
});

// The fleet size: the whole room on a second connection, paced down to a trickle.
const overview = connect({ badge: false });
overview.subscribe(ROOM, {
  snapshot: true,
  maxRate: OVERVIEW_RATE,
  onMessage: (v) => fleet.add(v.id),
  onReset: () => fleet.clear(),
});

setInterval(() => {
  counters();
  $('rate').textContent = updates;
  updates = 0;
  const v = followed && (followed.last ?? vehicles.get(followed.id)?.v);
  if (v) $('f-age').textContent = age(v.ts);
}, 1000);

// For tests and the console.
window.app = {
  client, overview, map, vehicles, fleet, follow, viewBox: () => viewBox(map),
  get followed() { return followed; },
  get views() { return views; },
};
