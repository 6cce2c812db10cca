// Regenerates countries-110m.geojson from the npm packages world-atlas@2.0.2 (Natural Earth
// 110m, public domain; ISC) and topojson-client@3:
//   npm install world-atlas@2.0.2 topojson-client@3 && node convert.mjs > countries-110m.geojson
// Coordinates are rounded to 0.01° (plenty at world zoom; keeps the file small). Leaflet draws
// planar polygons, so rings crossing the antimeridian (Russia, Fiji) are unwrapped to run past
// ±180° instead of across the whole map, and Antarctica (a ring around the pole) is left out.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { feature } from 'topojson-client';

const require = createRequire(import.meta.url);
const topo = JSON.parse(readFileSync(require.resolve('world-atlas/countries-110m.json'), 'utf8'));
const geo = feature(topo, topo.objects.countries);
const round = (c) => (typeof c[0] === 'number' ? c.map((x) => Math.round(x * 100) / 100) : c.map(round));
const unwrap = (ring) => {
  for (let i = 1; i < ring.length; i++) {
    const d = ring[i][0] - ring[i - 1][0];
    if (Math.abs(d) > 180) ring[i][0] -= Math.sign(d) * 360;
  }
  return ring;
};
const rings = (g) => (g.type === 'Polygon' ? [g.coordinates] : g.coordinates);
geo.features = geo.features.filter((f) => f.properties.name !== 'Antarctica');
for (const f of geo.features) {
  f.properties = { name: f.properties.name };
  for (const polygon of rings(f.geometry)) polygon.forEach(unwrap);
  f.geometry.coordinates = round(f.geometry.coordinates);
}
process.stdout.write(JSON.stringify(geo));
