#!/usr/bin/env node
// ops_stream.mjs: the ops stream's bandwidth and the ops page's frame time with N moving
// drivers (default 2,000), against the running stack (scripts/stack up; source .run/env).
//   node bench/ops_stream.mjs [--drivers 2000] [--seconds 30] [--out out/bench/ops_stream.json]
// A replay (meridian-loadgen, at most one location per driver per wall second: the drivers
// cruise the road graph) moves the drivers. The bench waits until the stream has them
// all, or until their count stops growing for 30 s (a loaded machine may not connect all
// of them: the figures then say how many there were). Then it measures for --seconds:
//   - bandwidth: an ops client (the SDK's connectOps) counts the bytes it receives. The
//     anchor, in the same run, is a plain stream: every driver's {"id","lat","lon","state"}
//     as JSON once per frame, at the page's refresh rate;
//   - frame time: the page at /ops/ in headless Chromium (software WebGL, tests/web/cdp.mjs)
//     records the intervals between animation frames. Two anchors, measured right before in
//     the same browser: the same page with no token (the map and its roads, no stream), idle
//     (MapLibre draws nothing while nothing changes), and the same again repainted at every
//     animation frame (triggerRepaint): what one frame of the map costs on this machine.
// Progress goes to stderr; the figures to stdout and --out (JSON).
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';

import { connectOps } from '../clients/js/src/index.js';
import { launchChromium } from '../tests/web/cdp.mjs';
import { gatewayHttp, gatewayWs, replay, runId, sleep, token, until } from '../tests/web/lib.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const drivers = Number(arg('drivers', 2000));
const seconds = Number(arg('seconds', 30));
const out = arg('out', 'out/bench/ops_stream.json');
if (!(drivers > 0) || !(seconds > 0)) {
  process.stderr.write('usage: node bench/ops_stream.mjs [--drivers N > 0] [--seconds S > 0] [--out FILE]\n');
  process.exit(2);
}
const t0 = Date.now();
const log = (s) => process.stderr.write(`ops_stream: ${((Date.now() - t0) / 1000).toFixed(0)} s: ${s}\n`);
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? +s[Math.min(s.length - 1, Math.floor(s.length * p))].toFixed(1) : null;
};
// the page can be too busy to answer a call in time: count that as "not yet"
const tolerant = (fn) => async () => {
  try {
    return await fn();
  } catch {
    return false;
  }
};

async function frameTimes(page, ms) {
  await page.evaluate('window.__ft = []; (function f(t0){ requestAnimationFrame((t) => { window.__ft.push(t - t0); f(t); }); })(performance.now())');
  await sleep(ms);
  const ft = await page.evaluate('window.__ft', undefined, 120000);
  return {
    frames: ft.length, fps: +(ft.length / (ms / 1000)).toFixed(2), p50_ms: pct(ft, 0.5), p95_ms: pct(ft, 0.95),
    p99_ms: pct(ft, 0.99), over_50ms: ft.filter((x) => x > 50).length,
  };
}

const load0 = loadavg()[0];
const browser = await launchChromium({ width: 1200, height: 750 });
let run = null;
let ops = null;
try {
  const page = await browser.newPage('ops page');
  // anchor for the frame time: the map with its roads, no stream
  await page.goto(`${gatewayHttp()}/ops/`);
  await until(tolerant(() => page.evaluate('!!(window.meridianOps && window.meridianOps.map && window.meridianOps.map.loaded() && window.meridianOps.map.getSource("roads").serialize().data.features.length)')),
    180000, 'the idle map with its roads');
  await sleep(3000);
  const idle = await frameTimes(page, 10000);
  log(`idle page (anchor): ${JSON.stringify(idle)}`);
  await page.evaluate('window.__repaint = true; (function f(){ if (!window.__repaint) return; window.meridianOps.map.triggerRepaint(); requestAnimationFrame(f); })()');
  const repaint = await frameTimes(page, 10000);
  await page.evaluate('window.__repaint = false');
  log(`page repainted every frame, no stream (anchor): ${JSON.stringify(repaint)}`);

  const tag = runId();
  log(`replay: ${drivers} drivers, at most one location a second each`);
  run = replay({ drivers, durationS: seconds + 600, runTag: tag, pingMaxHz: 1 });
  ops = await connectOps({ url: gatewayWs(), token: token('ops', `${tag}-bench`) });
  await page.goto(`${gatewayHttp()}/ops/?token=${token('ops', `${tag}-page`)}`, 180000);
  // all drivers, or a plateau: no growth for 30 s
  let best = 0, since = Date.now();
  await until(() => {
    const n = ops.city.drivers.size;
    if (n > best) {
      if (Math.floor(n / 200) > Math.floor(best / 200)) log(`${n} drivers in the stream`);
      best = n;
      since = Date.now();
    }
    return n >= drivers * 0.98 || Date.now() - since > 30000;
  }, 600000, `${drivers} drivers in the stream`);
  log(`${ops.city.drivers.size} drivers in the stream (of ${drivers}); waiting for the page`);
  await until(tolerant(async () => (await page.evaluate('window.meridianOps.counts().drivers')) >= ops.city.drivers.size * 0.9),
    180000, 'the page to draw them');
  log(`measuring for ${seconds} s`);

  const b0 = ops.city.bytes, f0 = ops.city.frames, m0 = Date.now();
  let plain = 0, lag = 0, lagFrames = 0, stats = 0;
  const locs = [];
  const offStats = ops.on('stats', (s) => {
    // the anchor: every driver as plain JSON once per frame
    plain += JSON.stringify([...ops.city.drivers.values()].map((d) => ({ id: d.id, lat: d.lat, lon: d.lon, state: d.state }))).length;
    lag = Math.max(lag, s.stream.lag_drivers);
    lagFrames += s.stream.lag_drivers > 0 ? 1 : 0;
    locs.push(s.totals.locations_per_s);
    stats++;
  });
  const busy = await frameTimes(page, seconds * 1000);
  const secs = (Date.now() - m0) / 1000;
  offStats();
  const streamBps = (ops.city.bytes - b0) / secs;
  const counts = await page.evaluate('window.meridianOps.counts()', undefined, 120000);
  const buildMs = await page.evaluate('window.meridianOps.state.buildMs', undefined, 120000);
  const result = {
    drivers_asked: drivers,
    drivers_in_stream: ops.city.drivers.size,
    locations_per_s_median: pct(locs, 0.5),
    seconds: Math.round(secs),
    load_average_1m: { start: +load0.toFixed(1), end: +loadavg()[0].toFixed(1) },
    stream: {
      bytes_per_s: Math.round(streamBps), frames: ops.city.frames - f0, stats_frames: stats,
      anchor_plain_json_bytes_per_s: Math.round(plain / secs), ratio_to_anchor: +(streamBps / (plain / secs)).toFixed(3),
      max_lag_drivers: lag, frames_sampling: lagFrames,
    },
    page: {
      with_stream: busy, anchor_idle: idle, anchor_repaint_every_frame: repaint,
      p50_ratio_to_idle: idle.p50_ms ? +(busy.p50_ms / idle.p50_ms).toFixed(2) : null,
      p50_ratio_to_repaint: repaint.p50_ms ? +(busy.p50_ms / repaint.p50_ms).toFixed(2) : null,
      rebuild_interval_ms: Math.round(buildMs), drivers_drawn: counts.drivers, shard_boxes: counts.shardBoxes, trips: counts.trips,
    },
  };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2));
} finally {
  if (ops) ops.close();
  await browser.close();
  if (run) {
    run.kill('SIGTERM');
    await run.done;
  }
}
