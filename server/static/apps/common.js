// Shared helpers of the app pages: the client connection and its state badge, reset notices,
// the base map (offline layers by default, OpenStreetMap tiles with ?tiles=osm), small DOM and
// formatting helpers. Leaflet is loaded as a classic script before the modules (global `L`).
import { ShardcastClient } from '/static/client/index.js';

export const params = new URLSearchParams(location.search);

/** Elements by id, or a new element: el('div', {class: 'x'}, 'text', child). */
export const $ = (id) => document.getElementById(id);
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/** "3 s ago" from a Unix-ms timestamp. */
export function age(ts) {
  const s = Math.max(0, Math.round((Date.now() - ts) / 1000));
  return s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ago`;
}

/**
 * The client, connected to this server's /ws (?token= passed on), with its state shown in
 * #conn (data-state for tests) unless `badge` is false (a page's second connection). The
 * client reconnects with backoff and resumes every room from its position (since + epoch)
 * by itself.
 */
export function connect({ badge: showBadge = true } = {}) {
  const url = location.origin.replace(/^http/, 'ws');
  const token = params.get('token') ?? undefined;
  const client = new ShardcastClient(url, { token });
  if (!showBadge) {
    client.on('error', (err) => console.warn('shardcast:', err.code ?? '', err.message));
    return client;
  }
  const badge = $('conn');
  const show = ({ state, delay }) => {
    badge.dataset.state = state;
    badge.textContent = state === 'reconnecting' ? `reconnecting in ${delay} ms` : state;
  };
  show({ state: client.state });
  client.on('state', show);
  client.on('error', (err) => console.warn('shardcast:', err.code ?? '', err.message));
  return client;
}

/** Marks a `reset` (the room restarted: server restart, room expired) in #notice. */
export function noteReset(room, { epoch }) {
  const n = $('notice');
  n.dataset.resets = String(Number(n.dataset.resets ?? 0) + 1);
  n.textContent = `reset at ${new Date().toLocaleTimeString()}: ${room} restarted (epoch ${epoch}), state rebuilt`;
  n.hidden = false;
}

/** Marks a `gap` (history ran out while away) in #notice. */
export function noteGap(room, { from, to }) {
  const n = $('notice');
  n.textContent = `missed ${room} updates ${from}..${to}; newest state follows`;
  n.hidden = false;
}

/**
 * A Leaflet map in `elId`. Base layer: `?tiles=osm` (OpenStreetMap) or `?tiles=<url template>`;
 * by default `offline(map)` draws one that needs no network. #tiles says which.
 */
export function baseMap(elId, view, offline) {
  const map = L.map(elId, { worldCopyJump: true, preferCanvas: true }).setView(view.center, view.zoom);
  if (view.bounds) map.fitBounds(view.bounds);
  const tiles = params.get('tiles');
  const note = $('tiles');
  if (tiles) {
    const url = tiles === 'osm' ? 'https://tile.openstreetmap.org/{z}/{x}/{y}.png' : tiles;
    L.tileLayer(url, {
      maxZoom: 19,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    }).addTo(map);
    if (note) note.textContent = 'map tiles: OpenStreetMap';
  } else {
    offline(map);
    if (note) note.innerHTML = 'offline map — add <code>?tiles=osm</code> for OpenStreetMap tiles';
  }
  return map;
}

/**
 * The map's visible area as a viewport for the server: `[west, south, east, north]` within
 * lon −180..180 and lat −90..90. A view wider than the world is the whole world. Otherwise
 * each edge is brought back into −180..180 (Leaflet's edges run past ±180 on a wrapped world
 * view); an east edge that lands west of the west edge means the view crosses the
 * antimeridian, which the server takes as such (w > e) — cutting the view at ±180 instead
 * would hide what lies just across the line.
 */
export function viewBox(map) {
  const b = map.getBounds();
  const clampLat = (lat) => Math.min(90, Math.max(-90, lat));
  const s = clampLat(b.getSouth());
  const n = clampLat(b.getNorth());
  if (b.getEast() - b.getWest() >= 360) return [-180, s, 180, n];
  const wrap = (lon) => ((((lon + 180) % 360) + 360) % 360) - 180; // → [-180, 180)
  const w = wrap(b.getWest());
  let e = wrap(b.getEast());
  if (e === -180) e = 180; // an east edge exactly on the line closes the box there
  return [w, s, e, n];
}

/** The demo's street grid (server/src/demo/vehicles.rs: LAT/LON box, 0.005° × 0.008° blocks). */
export const CITY = { lat: [52.45, 52.56], lon: [13.28, 13.48], latStep: 0.005, lonStep: 0.008 };
export function cityGrid(map) {
  map.getContainer().classList.add('offline-city');
  const style = { color: '#3b4252', weight: 2, interactive: false };
  const lines = [];
  for (let lat = CITY.lat[0]; lat <= CITY.lat[1] + 1e-9; lat += CITY.latStep) lines.push([[lat, CITY.lon[0]], [lat, CITY.lon[1]]]);
  for (let lon = CITY.lon[0]; lon <= CITY.lon[1] + 1e-9; lon += CITY.lonStep) lines.push([[CITY.lat[0], lon], [CITY.lat[1], lon]]);
  L.polyline(lines, style).addTo(map);
  L.rectangle([[CITY.lat[0], CITY.lon[0]], [CITY.lat[1], CITY.lon[1]]], { color: '#4c566a', weight: 1, fill: false, interactive: false }).addTo(map);
}
export const CITY_VIEW = { center: [52.505, 13.38], zoom: 12, bounds: [[CITY.lat[0], CITY.lon[0]], [CITY.lat[1], CITY.lon[1]]] };

/** World outlines (Natural Earth 110m from world-atlas, vendored as GeoJSON). */
export function worldOutlines(map) {
  map.getContainer().classList.add('offline-world');
  fetch('/static/vendor/world/countries-110m.geojson')
    .then((r) => r.json())
    .then((geo) => {
      L.geoJSON(geo, { interactive: false, style: { color: '#4c566a', weight: 1, fillColor: '#2e3440', fillOpacity: 1 } }).addTo(map).bringToBack();
      map.getContainer().dataset.outlines = String(geo.features.length);
    });
}
