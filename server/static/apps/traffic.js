// Traffic: live incidents (room `traffic`, keyed, snapshot then live) as a list and markers on
// the city map. An incident goes away when it is published `status:"cleared"` or once its
// `expires_at` (Unix ms) has passed.
import { $, baseMap, cityGrid, CITY_VIEW, connect, el, noteGap, noteReset } from './common.js';

const SEVERITY = { minor: '#ebcb8b', moderate: '#d08770', major: '#bf616a' };
const client = connect();
const map = baseMap('map', CITY_VIEW, cityGrid);
const incidents = new Map(); // id -> {i, row, marker}

function remove(id) {
  const e = incidents.get(id);
  if (!e) return;
  e.row.remove();
  e.marker.remove();
  incidents.delete(id);
  count();
}

const count = () => ($('n-incidents').textContent = incidents.size);

function upsert(i) {
  if (i.status === 'cleared' || i.expires_at <= Date.now()) return remove(i.id);
  let e = incidents.get(i.id);
  if (!e) {
    const marker = L.circleMarker([i.lat, i.lon], { radius: 8, weight: 2, fillOpacity: 0.8 }).addTo(map);
    const row = el('tr', { 'data-id': i.id, onclick: () => map.setView([i.lat, i.lon], 15) });
    for (let k = 0; k < 3; k++) row.append(el('td'));
    e = { marker, row };
    incidents.set(i.id, e);
    $('list').prepend(row);
    count();
  }
  e.i = i;
  const c = SEVERITY[i.severity] ?? '#ebcb8b';
  e.marker.setLatLng([i.lat, i.lon]).setStyle({ color: c, fillColor: c });
  e.marker.bindTooltip(`${i.kind} · ${i.place}<br>${i.message}`);
  [i.severity, i.kind, i.place].forEach((t, k) => (e.row.children[k].textContent = t));
  e.row.children[0].style.color = c;
  e.row.title = i.message;
}

client.subscribe('traffic', {
  snapshot: true,
  onMessage: upsert,
  onReset(info) {
    for (const id of [...incidents.keys()]) remove(id);
    noteReset('traffic', info);
  },
  onGap: (info) => noteGap('traffic', info),
});

setInterval(() => {
  for (const [id, e] of incidents) if (e.i.expires_at <= Date.now()) remove(id);
}, 1000);

window.app = { client, map, incidents };
