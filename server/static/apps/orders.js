// Orders, the operator's view: every open order (`orders:all`, keyed, snapshot then live) in a
// list and its courier on the city map; an order number opens the customer's page.
import { $, baseMap, cityGrid, CITY_VIEW, connect, el, noteGap, noteReset } from './common.js';

const client = connect();
const map = baseMap('map', CITY_VIEW, cityGrid);
const orders = new Map(); // id -> {o, row, marker}
const STATUS = { placed: '#81a1c1', preparing: '#b48ead', picked_up: '#ebcb8b', on_the_way: '#a3be8c', delivered: '#7b8394' };

function upsert(o) {
  let e = orders.get(o.id);
  if (!e) {
    const row = el('tr', { 'data-id': o.id });
    row.append(el('td', {}, el('a', { href: `/orders/${encodeURIComponent(o.id)}` }, o.id)));
    for (let k = 0; k < 4; k++) row.append(el('td'));
    const marker = L.circleMarker([o.lat, o.lon], { radius: 6, weight: 2, fillOpacity: 0.9 }).addTo(map);
    marker.bindTooltip(`order ${o.id}`);
    e = { row, marker };
    orders.set(o.id, e);
    $('list').prepend(row);
  }
  e.o = o;
  const c = STATUS[o.status] ?? '#a3be8c';
  [o.restaurant, o.courier || '—', o.status.replace(/_/g, ' '), o.status === 'delivered' ? '—' : `${Math.round(o.eta_s)} s`]
    .forEach((t, k) => (e.row.children[k + 1].textContent = t));
  e.row.children[3].style.color = c;
  e.marker.setLatLng([o.lat, o.lon]).setStyle({ color: c, fillColor: c });
}

client.subscribe('orders:all', {
  snapshot: true,
  onMessage: upsert,
  onReset(info) {
    for (const e of orders.values()) e.row.remove(), e.marker.remove();
    orders.clear();
    noteReset('orders:all', info);
  },
  onGap: (info) => noteGap('orders:all', info),
});

setInterval(() => {
  $('n-orders').textContent = [...orders.values()].filter((e) => e.o.status !== 'delivered').length;
}, 1000);

window.app = { client, map, orders };
