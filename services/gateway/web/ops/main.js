// The ops map (/ops/): MapLibre GL JS draws the road graph (GET /v1/ops/roads, from the
// gateway's snapshot), shard ranges as outlined geohash areas labelled with their shard,
// hot cells as a heat layer and trips as lines pickup -> drop-off; the drivers, by state,
// moving smoothly between the stream's frames, are a layer of their own on top
// (drivers_layer.js); the panel shows the live numbers and a small chart of request ->
// offer latency per shard. The stream is the SDK's connectOps (clients/js).
// window.meridianOps exposes counts for the browser test and the bench.
//
// What is redrawn when, so that 2,000 moving drivers stay smooth on a machine without a GPU
// (bench/ops_stream.mjs measures it):
//   - the drivers: at every animation frame while they glide or the camera moves, on their
//     own canvas, from typed arrays: the map does not repaint for them;
//   - shard ranges (one merged fill and outline per shard, shapes.js): only when the map's
//     epoch, ranges or moves change;
//   - trips (live ones only: an ended trip leaves the map) and hot cells: at most every
//     STATIC_MS, both in the same tick, so the map repaints once for both;
//   - the map itself: when one of those changes, or the camera moves.
import maplibregl from 'maplibre-gl';
import { OpsClient, decodeGeohash } from '../../../../clients/js/src/index.js';
import { DriversLayer } from './drivers_layer.js';
import { shardShapes } from './shapes.js';

const STATE_COLORS = { available: '#4caf50', offered: '#ffeb3b', pickup: '#ff9800', on_trip: '#2196f3', offline: '#757575' };
const TRIP_COLORS = { requested: '#b39ddb', offered: '#ffeb3b', matched: '#ff9800', arrived: '#ff5722', started: '#2196f3', completed: '#9e9e9e', cancelled: '#f44336', no_driver: '#f44336' };
const SHARD_COLORS = ['#e91e63', '#00bcd4', '#8bc34a', '#ff9800', '#9c27b0', '#3f51b5', '#cddc39', '#795548'];
const shardColor = (k) => SHARD_COLORS[k % SHARD_COLORS.length];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get('token') || sessionStorage.getItem('meridian-ops-token') || '';
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;

const STATIC_MS = 2000; // trips and hot cells reach the map at most this often
const ENDED_TRIPS = new Set(['completed', 'cancelled', 'no_driver']);

const state = {
  frameTimes: [], // ms between animation frames (last 600)
  history: new Map(), // shard -> [{t, p50, p99}]
  statsUpdates: 0,
  labels: [],
  shardsKey: '', // what the shard layer shows (epoch, ranges, moves): redrawn when it changes
  shardCells: 0,
  staticUpdates: { shards: 0, trips: 0, hot: 0 }, // setData calls on the map, by source
  periodMs: 1000, // the stream's frame period (hello)
};
window.meridianOps = { state, counts: () => ({}) };

function status(text, bad = false) {
  $('status').textContent = text;
  $('status').className = bad ? 'bad' : '';
}

if (!token) {
  $('login').hidden = false;
  status('not connected: no token', true);
}
$('go').onclick = () => {
  const t = $('token').value.trim();
  if (!t) return;
  sessionStorage.setItem('meridian-ops-token', t);
  location.search = '';
};

const map = new maplibregl.Map({
  container: 'map',
  style: { version: 8, sources: {}, layers: [{ id: 'bg', type: 'background', paint: { 'background-color': '#11151a' } }] },
  center: [-73.97, 40.78],
  zoom: 11.3,
  attributionControl: { customAttribution: 'roads © OpenStreetMap contributors' },
  fadeDuration: 0,
});
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
window.meridianOps.map = map;

const empty = () => ({ type: 'FeatureCollection', features: [] });

map.on('load', async () => {
  map.addSource('roads', { type: 'geojson', data: empty() });
  map.addSource('shards', { type: 'geojson', data: empty() });
  map.addSource('hot', { type: 'geojson', data: empty() });
  map.addSource('trips', { type: 'geojson', data: empty() });
  // shards: per shard one fill (kind "fill") and one outline ("outline"); per move one
  // dashed outline ("moving")
  map.addLayer({ id: 'shard-fill', type: 'fill', source: 'shards', filter: ['==', ['get', 'kind'], 'fill'], paint: { 'fill-color': ['get', 'color'], 'fill-opacity': 0.07 } });
  map.addLayer({ id: 'roads', type: 'line', source: 'roads', paint: { 'line-color': '#3a4450', 'line-width': ['interpolate', ['linear'], ['zoom'], 11, 0.4, 15, 1.5] } });
  map.addLayer({ id: 'shard-line', type: 'line', source: 'shards', filter: ['==', ['get', 'kind'], 'outline'], paint: { 'line-color': ['get', 'color'], 'line-width': 1.2, 'line-opacity': 0.8 } });
  map.addLayer({
    id: 'shard-moving', type: 'line', source: 'shards', filter: ['==', ['get', 'kind'], 'moving'],
    paint: { 'line-color': '#ffffff', 'line-width': 2.5, 'line-dasharray': [2, 2] },
  });
  map.addLayer({
    id: 'hot', type: 'heatmap', source: 'hot',
    paint: {
      'heatmap-weight': ['interpolate', ['linear'], ['get', 'w'], 0, 0, 10, 1],
      'heatmap-radius': ['interpolate', ['linear'], ['zoom'], 11, 18, 15, 60],
      'heatmap-opacity': 0.55,
    },
  });
  map.addLayer({ id: 'trips', type: 'line', source: 'trips', paint: { 'line-color': ['get', 'color'], 'line-width': 1.6, 'line-opacity': 0.8 } });
  $('legend').innerHTML = Object.entries(STATE_COLORS).map(([s, c]) => `<span><i style="background:${c}"></i>${s}</span>`).join('');
  try {
    const r = await fetch('/v1/ops/roads');
    if (r.ok) map.getSource('roads').setData(await r.json());
  } catch (e) {
    console.warn('roads', e);
  }
  if (token) start();
});

function start() {
  const client = new OpsClient({ url: wsBase, token });
  window.meridianOps.client = client;
  const city = client.city;
  const drivers = new DriversLayer(map, city.states, STATE_COLORS);
  window.meridianOps.drivers = drivers;
  const dirty = { trips: false, hot: false };
  client.on('hello', (m) => {
    state.periodMs = m.period_ms;
    drivers.setStates(city.states);
    state.shardsKey = '';
    dirty.trips = dirty.hot = true;
  });
  client.on('drivers', () => drivers.touch());
  client.on('open', () => status('live'));
  client.on('close', (e) => status(`disconnected (${e.code}); reconnecting…`, true));
  client.on('error', (e) => {
    if (e.status === 401 || e.status === 403) status(`token refused: ${e.message}`, true);
  });
  client.on('shards', () => drawShards(city));
  client.on('hot', () => (dirty.hot = true));
  client.on('trips', () => (dirty.trips = true));
  client.on('stats', () => {
    state.statsUpdates++;
    drawPanel(city);
  });
  client.connect().catch((e) => status(`not connected: ${e.message}`, true));
  requestAnimationFrame((t) => animate(city, drivers, t, t));
  // trips and hot cells: batched, at most every STATIC_MS (each setData repaints the map)
  setInterval(() => {
    city.expire(Date.now());
    if (dirty.trips) drawTrips(city);
    if (dirty.hot) drawHot(city);
    dirty.trips = dirty.hot = false;
  }, STATIC_MS);
  const features = (id) => map.getSource(id)?.serialize().data.features || [];
  const kind = (k) => features('shards').filter((f) => f.properties.kind === k).length;
  window.meridianOps.counts = () => ({
    drivers: drivers.n, // in the drivers layer's arrays at its last draw
    driversRendered: drivers.drawn, // of those, inside the view
    shardOutlines: kind('outline'), // one per shard, in the map's source "shards"
    shardOutlinesRendered: map.queryRenderedFeatures({ layers: ['shard-line'] }).length,
    shardFills: kind('fill'),
    shardCells: state.shardCells, // the geohash cells they merge
    trips: featureCount('trips'),
    hot: featureCount('hot'),
    roads: featureCount('roads'),
    labels: state.labels.length,
    moves: state.moves || 0,
    movingOutlines: kind('moving'),
    statsUpdates: state.statsUpdates,
    cityDrivers: city.drivers.size,
    streamBytes: city.bytes,
    staticUpdates: { ...state.staticUpdates },
    driverDraws: drivers.draws,
  });
}

// Features held by a map source (its data as the map has it).
function featureCount(id) {
  const src = map.getSource(id);
  const data = src && src.serialize ? src.serialize().data : null;
  return data && data.features ? data.features.length : 0;
}

// ---- layers ---------------------------------------------------------------------------

// The shard layer: redrawn only when what it shows changes (the epoch, the ranges' cells or
// the moves); labels are DOM markers, one per shard and one per move.
function drawShards(city) {
  const sh = city.shards;
  const moves = sh?.moves || [];
  const ranges = sh?.ranges || [];
  const key = JSON.stringify([sh?.epoch, ranges.map((r) => [r.shard, r.cells.length, r.cells[0], r.cells[r.cells.length - 1]]), moves]);
  if (key === state.shardsKey) return;
  state.shardsKey = key;
  for (const l of state.labels) l.remove();
  state.labels = [];
  const shapes = shardShapes(ranges, moves, decodeGeohash, shardColor);
  for (const { shard, at } of shapes.labels) {
    const el = document.createElement('div');
    el.className = 'shard-label';
    el.style.borderLeft = `4px solid ${shardColor(shard)}`;
    el.textContent = `shard ${shard}`;
    state.labels.push(new maplibregl.Marker({ element: el }).setLngLat(at).addTo(map));
  }
  // a move in progress: its cells outlined thick and dashed, a label at their middle
  moves.forEach((m, i) => {
    const el = document.createElement('div');
    el.className = 'shard-label move-label';
    el.textContent = `moving ${m.start || "''"}…${m.end}: shard ${m.from} → ${m.to}, epoch ${m.epoch} (${m.state})`;
    const at = shapes.moveAt[i] || (() => {
      const [a, b, c, d] = decodeGeohash(m.start || '0');
      return [(b + d) / 2, (a + c) / 2];
    })();
    state.labels.push(new maplibregl.Marker({ element: el }).setLngLat(at).addTo(map));
  });
  state.moves = moves.length;
  state.shardCells = shapes.cells;
  const tag = (k, fs) => fs.map((f) => ({ ...f, properties: { ...f.properties, kind: k } }));
  map.getSource('shards').setData({ type: 'FeatureCollection', features: [...tag('fill', shapes.fill), ...tag('outline', shapes.outline), ...tag('moving', shapes.moving)] });
  state.staticUpdates.shards++;
  $('status').dataset.epoch = sh?.epoch ?? '';
  $('moves').textContent = moves.map((m) => `moving ${m.start || "''"}…${m.end}: ${m.from} → ${m.to} (${m.state})`).join('\n');
}

function drawHot(city) {
  let surging = 0;
  let top = 1;
  const features = city.hot.map(([gh, supply, demand, surge]) => {
    const [a, b, c, d] = decodeGeohash(gh);
    // heat: demand against supply, or the cell's surge where that is hotter (a surge of 3,
    // dispatch's default cap, is the hottest: weight 10)
    const w = Math.max(demand / Math.max(1, supply) * 2 + demand * 0.2, surge ? (surge - 1) * 5 : 0);
    if (surge) {
      surging++;
      top = Math.max(top, surge);
    }
    return { type: 'Feature', properties: { w, supply, demand, surge: surge ?? 1 }, geometry: { type: 'Point', coordinates: [(b + d) / 2, (a + c) / 2] } };
  });
  map.getSource('hot').setData({ type: 'FeatureCollection', features });
  $('surge').textContent = surging ? `surge: ${surging} cell${surging > 1 ? 's' : ''}, up to ×${top.toFixed(2)}` : '';
  state.staticUpdates.hot++;
}

// Live trips only: an ended one leaves the map at once (the panel counts it).
function drawTrips(city) {
  const features = [];
  for (const t of city.trips.values()) {
    if (!t.pickup || !t.dropoff || ENDED_TRIPS.has(t.state)) continue;
    features.push({
      type: 'Feature',
      properties: { id: t.id, state: t.state, color: TRIP_COLORS[t.state] || '#fff' },
      geometry: { type: 'LineString', coordinates: [[t.pickup[1], t.pickup[0]], [t.dropoff[1], t.dropoff[0]]] },
    });
  }
  map.getSource('trips')?.setData({ type: 'FeatureCollection', features });
  state.staticUpdates.trips++;
}

// Every animation frame: the frame time, and the drivers layer (which draws only when the
// stream or the camera changed something, or drivers still glide to their new positions).
function animate(city, drivers, t, prev) {
  const dt = t - prev;
  if (dt > 0) {
    state.frameTimes.push(dt);
    if (state.frameTimes.length > 600) state.frameTimes.shift();
  }
  drivers.frame(city.drivers, Date.now(), state.periodMs);
  requestAnimationFrame((t2) => animate(city, drivers, t2, t));
}

// ---- panel ------------------------------------------------------------------------------

const fmt = (x, d = 1) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));

function drawPanel(city) {
  const s = city.stats;
  if (!s) return;
  const tot = s.totals;
  const by = tot.by_state;
  $('totals').innerHTML = `
    <tr><td>drivers</td><td id="n-drivers">${tot.drivers}</td></tr>
    ${Object.keys(STATE_COLORS).map((k) => `<tr><td>&nbsp;&nbsp;<i style="display:inline-block;width:8px;height:8px;border-radius:50%;background:${STATE_COLORS[k]}"></i> ${k}</td><td>${by[k]}</td></tr>`).join('')}
    <tr><td>live trips</td><td id="n-trips">${tot.trips}</td></tr>
    <tr><td>requests/s</td><td id="n-rps">${fmt(tot.requests_per_s, 2)}</td></tr>
    <tr><td>matched/s</td><td>${fmt(tot.matched_per_s, 2)}</td></tr>
    <tr><td>locations/s</td><td>${fmt(tot.locations_per_s, 0)}</td></tr>
    <tr><td>stream</td><td id="n-bps">${fmt(s.stream.bytes_per_s / 1024, 1)} KiB/s${s.stream.lag_drivers ? ` (sampling, ${s.stream.lag_drivers} behind)` : ''}</td></tr>
    <tr><td>frame time p95</td><td id="n-frame">${fmt(p95(state.frameTimes), 1)} ms</td></tr>`;
  $('shards').innerHTML = `<tr><th>shard</th><th>req/s</th><th>match</th><th>p50</th><th>p99 ms</th><th>drv</th></tr>` +
    s.shards.map((k) => `<tr><td><i style="display:inline-block;width:8px;height:8px;background:${shardColor(k.shard)}"></i> ${k.shard}</td><td>${fmt(k.requests_per_s, 2)}</td><td>${k.match_rate === null ? '–' : `${fmt(k.match_rate * 100, 0)}%`}</td><td>${fmt(k.offer_p50_ms, 0)}</td><td>${fmt(k.offer_p99_ms, 0)}</td><td>${k.drivers}</td></tr>`).join('');
  for (const k of s.shards) {
    if (!state.history.has(k.shard)) state.history.set(k.shard, []);
    const h = state.history.get(k.shard);
    h.push({ t: s.ts, p50: k.offer_p50_ms, p99: k.offer_p99_ms });
    while (h.length && s.ts - h[0].t > 120000) h.shift();
  }
  drawChart();
}

function p95(xs) {
  if (!xs.length) return null;
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(a.length * 0.95))];
}

// request -> offer p50 (thin) and p99 (thick) per shard over the last two minutes
function drawChart() {
  const cv = $('chart');
  const g = cv.getContext('2d');
  const W = cv.width, H = cv.height, pad = 18;
  g.clearRect(0, 0, W, H);
  let max = 10;
  for (const h of state.history.values()) for (const p of h) if (p.p99 !== null) max = Math.max(max, p.p99);
  max = Math.ceil(max / 10) * 10;
  g.fillStyle = '#9aa7b4';
  g.font = '10px system-ui';
  g.fillText(`request → offer, ms (max ${max})`, 4, 10);
  g.strokeStyle = '#2a323c';
  g.beginPath();
  g.moveTo(pad, H - pad);
  g.lineTo(W - 4, H - pad);
  g.stroke();
  const now = Date.now();
  const x = (t) => pad + ((t - (now - 120000)) / 120000) * (W - pad - 4);
  const y = (v) => H - pad - (v / max) * (H - pad - 14);
  for (const [shard, h] of state.history) {
    for (const [key, width] of [['p50', 1], ['p99', 2]]) {
      g.strokeStyle = shardColor(shard);
      g.lineWidth = width;
      g.beginPath();
      let on = false;
      for (const p of h) {
        if (p[key] === null) {
          on = false;
          continue;
        }
        if (on) g.lineTo(x(p.t), y(p[key]));
        else g.moveTo(x(p.t), y(p[key]));
        on = true;
      }
      g.stroke();
    }
  }
  g.lineWidth = 1;
  g.fillText('-2 min', pad, H - 4);
  g.fillText('now', W - 24, H - 4);
}
