// One order, the customer's view: follows `order-tracking/<id>` (with its history, so a page
// opened late still shows the latest state) from placed to delivered, the courier on the map.
import { $, age, baseMap, cityGrid, CITY_VIEW, connect, noteReset } from './common.js';

const id = decodeURIComponent(location.pathname.split('/').pop());
const room = `order-tracking/${id}`;
const STEPS = ['placed', 'preparing', 'picked_up', 'on_the_way', 'delivered'];
const client = connect();
const map = baseMap('map', CITY_VIEW, cityGrid);
const courier = L.circleMarker(CITY_VIEW.center, { radius: 8, color: '#a3be8c', fillOpacity: 0.9 });
const restaurant = L.circleMarker(CITY_VIEW.center, { radius: 6, color: '#b48ead', fillOpacity: 0.9 }).bindTooltip('restaurant');
const home = L.circleMarker(CITY_VIEW.center, { radius: 6, color: '#88c0d0', fillOpacity: 0.9 }).bindTooltip('you');
let last = null;
let updates = 0;

$('o-id').textContent = id;
$('o-room').textContent = room;

function show(o) {
  last = o;
  updates++;
  const step = STEPS.indexOf(o.status);
  for (const s of document.querySelectorAll('#steps span')) s.classList.toggle('done', STEPS.indexOf(s.dataset.step) <= step);
  $('o-status').textContent = o.status.replace(/_/g, ' ');
  $('o-restaurant').textContent = o.restaurant;
  $('o-courier').textContent = o.courier || '—';
  $('o-eta').textContent = o.status === 'delivered' ? 'delivered' : `${Math.round(o.eta_s)} s`;
  $('o-age').textContent = age(o.ts);
  restaurant.setLatLng([o.restaurant_lat, o.restaurant_lon]).addTo(map);
  home.setLatLng([o.dest_lat, o.dest_lon]).addTo(map);
  courier.setLatLng([o.lat, o.lon]).addTo(map).bindTooltip(o.courier || 'courier');
  if (updates === 1) map.fitBounds([[o.restaurant_lat, o.restaurant_lon], [o.dest_lat, o.dest_lon]], { padding: [60, 60], maxZoom: 15, animate: false });
}

client.subscribe(room, {
  since: 0, // the room's whole retained history, so the latest state shows at once
  onMessage: show,
  onReset: (info) => noteReset(room, info),
  // A gap here only means older steps aged out of history: the latest state still arrives.
});

setInterval(() => last && ($('o-age').textContent = age(last.ts)), 1000);

window.app = { client, map, get last() { return last; } };
