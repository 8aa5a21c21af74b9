// common.js: what both example pages share: the token (?token= or pasted), the map
// (MapLibre GL JS with the gateway's road graph; no tiles), a log line.
import maplibregl from 'maplibre-gl';

export const params = new URLSearchParams(location.search);
export const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;

/** The token of ?token= or the one pasted before; null (and the login box shown) if none. */
export function getToken(role) {
  const key = `meridian-${role}-token`;
  const t = params.get('token') || sessionStorage.getItem(key);
  if (t) return t;
  const box = document.getElementById('login');
  box.hidden = false;
  document.getElementById('go').onclick = () => {
    const v = document.getElementById('token').value.trim();
    if (v) {
      sessionStorage.setItem(key, v);
      location.reload();
    }
  };
  return null;
}

export function log(text) {
  const el = document.getElementById('log');
  const line = document.createElement('div');
  line.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  el.prepend(line);
}

export function makeMap() {
  // window.meridianMap: for the browser test, which clicks at positions (map.project)
  const map = new maplibregl.Map({
    container: 'map',
    style: { version: 8, sources: {}, layers: [{ id: 'bg', type: 'background', paint: { 'background-color': '#f4f1ea' } }] },
    center: [-73.98, 40.755],
    zoom: 13,
    attributionControl: { customAttribution: 'roads © OpenStreetMap contributors' },
  });
  map.on('load', async () => {
    map.addSource('roads', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    map.addLayer({ id: 'roads', type: 'line', source: 'roads', paint: { 'line-color': '#b8b2a6', 'line-width': 1 } });
    const r = await fetch('/v1/ops/roads').catch(() => null);
    if (r && r.ok) map.getSource('roads').setData(await r.json());
  });
  window.meridianMap = map;
  return map;
}

export function marker(map, color) {
  const el = document.createElement('div');
  el.style.cssText = `width:14px;height:14px;border-radius:50%;background:${color};border:2px solid #fff;box-shadow:0 0 2px #000`;
  return new maplibregl.Marker({ element: el });
}
