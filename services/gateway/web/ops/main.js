// The ops map (/ops/): MapLibre GL JS draws the road graph (GET /v1/ops/roads, from the
// gateway's snapshot), shard ranges as outlined geohash boxes labelled with their shard,
// hot cells as a heat layer, trips as lines pickup -> drop-off, and drivers by state,
// moving smoothly between the stream's frames; the panel shows the live numbers and a
// small chart of request -> offer latency per shard. The stream is the SDK's connectOps
// (clients/js). window.meridianOps exposes counts for the browser test.
import maplibregl from 'maplibre-gl';
import { OpsClient, decodeGeohash } from '../../../../clients/js/src/index.js';

const STATE_COLORS = { available: '#4caf50', offered: '#ffeb3b', pickup: '#ff9800', on_trip: '#2196f3', offline: '#757575' };
const TRIP_COLORS = { requested: '#b39ddb', offered: '#ffeb3b', matched: '#ff9800', arrived: '#ff5722', started: '#2196f3', completed: '#9e9e9e', cancelled: '#f44336', no_driver: '#f44336' };
const SHARD_COLORS = ['#e91e63', '#00bcd4', '#8bc34a', '#ff9800', '#9c27b0', '#3f51b5', '#cddc39', '#795548'];
const shardColor = (k) => SHARD_COLORS[k % SHARD_COLORS.length];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get('token') || sessionStorage.getItem('meridian-ops-token') || '';
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;

const state = {
  frameTimes: [], // ms between animation frames (last 600)
  renders: 0, // rebuilds of the drivers source
  buildMs: 50, // the interval between rebuilds now (adapts to the frame time)
  history: new Map(), // shard -> [{t, p50, p99}]
  statsUpdates: 0,
  labels: [],
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
  map.addSource('drivers', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'shard-fill', type: 'fill', source: 'shards', paint: { 'fill-color': ['get', 'color'], 'fill-opacity': 0.07 } });
  map.addLayer({ id: 'roads', type: 'line', source: 'roads', paint: { 'line-color': '#3a4450', 'line-width': ['interpolate', ['linear'], ['zoom'], 11, 0.4, 15, 1.5] } });
  map.addLayer({ id: 'shard-line', type: 'line', source: 'shards', paint: { 'line-color': ['get', 'color'], 'line-width': 1, 'line-opacity': 0.6 } });
  map.addLayer({
    id: 'shard-moving', type: 'line', source: 'shards', filter: ['==', ['get', 'moving'], true],
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
  map.addLayer({
    id: 'drivers', type: 'circle', source: 'drivers',
    paint: {
      'circle-color': ['match', ['get', 's'], ...Object.entries(STATE_COLORS).flat(), '#fff'],
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 11, 2, 15, 5],
    },
  });
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
  client.on('open', () => status('live'));
  client.on('close', (e) => status(`disconnected (${e.code}); reconnecting…`, true));
  client.on('error', (e) => {
    if (e.status === 401 || e.status === 403) status(`token refused: ${e.message}`, true);
  });
  client.on('shards', () => drawShards(city));
  client.on('hot', () => drawHot(city));
  client.on('trips', () => drawTrips(city));
  client.on('stats', () => {
    state.statsUpdates++;
    drawPanel(city);
  });
  client.connect().catch((e) => status(`not connected: ${e.message}`, true));
  requestAnimationFrame((t) => animate(city, t, t));
  setInterval(() => {
    city.expire(Date.now());
    drawTrips(city);
  }, 1000);
  window.meridianOps.counts = () => ({
    drivers: featureCount('drivers'),
    driversRendered: map.queryRenderedFeatures({ layers: ['drivers'] }).length,
    shardBoxes: featureCount('shards'),
    shardBoxesRendered: map.queryRenderedFeatures({ layers: ['shard-line'] }).length,
    trips: featureCount('trips'),
    hot: featureCount('hot'),
    roads: featureCount('roads'),
    labels: state.labels.length,
    moves: state.moves || 0,
    movingBoxes: (map.getSource('shards')?.serialize().data.features || []).filter((f) => f.properties.moving).length,
    statsUpdates: state.statsUpdates,
    cityDrivers: city.drivers.size,
    streamBytes: city.bytes,
  });
}

// Features held by a map source (its data as the map has it).
function featureCount(id) {
  const src = map.getSource(id);
  const data = src && src.serialize ? src.serialize().data : null;
  return data && data.features ? data.features.length : 0;
}

// ---- layers ---------------------------------------------------------------------------

function boxFeature(gh, props) {
  const [a, b, c, d] = decodeGeohash(gh);
  return { type: 'Feature', properties: props, geometry: { type: 'Polygon', coordinates: [[[b, a], [d, a], [d, c], [b, c], [b, a]]] } };
}

// A cell is in a moving range when its geohash is in [start, end) (range keys compare as
// strings, like the shard map's own lookup; '' and '~' are the world's ends).
const inRange = (gh, m) => m.start <= gh && (m.end === '~' || gh < m.end);

function drawShards(city) {
  const features = [];
  for (const l of state.labels) l.remove();
  state.labels = [];
  const moves = city.shards?.moves || [];
  for (const r of city.shards?.ranges || []) {
    let latSum = 0, lonSum = 0;
    for (const gh of r.cells) {
      const moving = moves.some((m) => inRange(gh, m));
      features.push(boxFeature(gh, { shard: r.shard, color: shardColor(r.shard), geohash: gh, moving }));
      const [a, b, c, d] = decodeGeohash(gh);
      latSum += (a + c) / 2;
      lonSum += (b + d) / 2;
    }
    if (r.cells.length) {
      const el = document.createElement('div');
      el.className = 'shard-label';
      el.style.borderLeft = `4px solid ${shardColor(r.shard)}`;
      el.textContent = `shard ${r.shard}`;
      state.labels.push(new maplibregl.Marker({ element: el }).setLngLat([lonSum / r.cells.length, latSum / r.cells.length]).addTo(map));
    }
  }
  // a move in progress: its cells outlined thick and dashed, a label at their middle
  for (const m of moves) {
    const cells = features.filter((f) => inRange(f.properties.geohash, m));
    const el = document.createElement('div');
    el.className = 'shard-label move-label';
    el.textContent = `moving ${m.start || "''"}…${m.end}: shard ${m.from} → ${m.to}, epoch ${m.epoch} (${m.state})`;
    let lat = 0, lon = 0;
    for (const f of cells) {
      const [a, b, c, d] = decodeGeohash(f.properties.geohash);
      lat += (a + c) / 2;
      lon += (b + d) / 2;
    }
    const at = cells.length ? [lon / cells.length, lat / cells.length] : (() => {
      const [a, b, c, d] = decodeGeohash(m.start || '0');
      return [(b + d) / 2, (a + c) / 2];
    })();
    state.labels.push(new maplibregl.Marker({ element: el }).setLngLat(at).addTo(map));
  }
  state.moves = moves.length;
  map.getSource('shards').setData({ type: 'FeatureCollection', features });
  $('status').dataset.epoch = city.shards?.epoch ?? '';
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
}

function drawTrips(city) {
  const features = [];
  for (const t of city.trips.values()) {
    if (!t.pickup || !t.dropoff) continue;
    features.push({
      type: 'Feature',
      properties: { id: t.id, state: t.state, color: TRIP_COLORS[t.state] || '#fff' },
      geometry: { type: 'LineString', coordinates: [[t.pickup[1], t.pickup[0]], [t.dropoff[1], t.dropoff[0]]] },
    });
  }
  map.getSource('trips')?.setData({ type: 'FeatureCollection', features });
}

// Drivers glide from their previous position to the new one over one stream period; the
// source is rebuilt at most every 50 ms (20 Hz), the map itself renders at the screen's rate.
// A machine that cannot keep up (software WebGL, a loaded CPU: each rebuild costs a render)
// rebuilds less often: every 4 frame times (median of the last 30), up to once a second, so
// the page stays responsive and the drivers still move at every stream frame.
let lastBuild = 0;
const BUILD_MIN_MS = 50;
const BUILD_MAX_MS = 1000;
function buildInterval() {
  const n = state.frameTimes.length;
  if (n < 10) return BUILD_MIN_MS;
  const recent = state.frameTimes.slice(-30).sort((a, b) => a - b);
  return Math.min(BUILD_MAX_MS, Math.max(BUILD_MIN_MS, 4 * recent[recent.length >> 1]));
}
function animate(city, t, prev) {
  const dt = t - prev;
  if (dt > 0) {
    state.frameTimes.push(dt);
    if (state.frameTimes.length > 600) state.frameTimes.shift();
  }
  state.buildMs = buildInterval();
  if (t - lastBuild >= state.buildMs) {
    lastBuild = t;
    const now = Date.now();
    const period = 1000;
    const features = new Array(city.drivers.size);
    let i = 0;
    for (const d of city.drivers.values()) {
      const k = Math.min(1, (now - d.movedAt) / period);
      features[i++] = {
        type: 'Feature',
        properties: { s: d.state },
        geometry: { type: 'Point', coordinates: [d.prevLon + (d.lon - d.prevLon) * k, d.prevLat + (d.lat - d.prevLat) * k] },
      };
    }
    map.getSource('drivers')?.setData({ type: 'FeatureCollection', features });
    state.renders++;
  }
  requestAnimationFrame((t2) => animate(city, t2, t));
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
