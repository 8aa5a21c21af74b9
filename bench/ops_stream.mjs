#!/usr/bin/env node
// ops_stream.mjs: the ops stream's bandwidth and the ops page's frame time with N moving
// drivers (default 2,000), against the running stack (scripts/stack up; source .run/env).
//   node bench/ops_stream.mjs [--drivers 2000] [--seconds 30] [--out out/bench/ops_stream.json]
// A replay (meridian-loadgen, one location per driver per second) moves the drivers; once
// they are all on the map, for --seconds:
//   - bandwidth: an ops client (the SDK's connectOps) counts the bytes it receives; the
//     anchor, in the same run, is what a plain stream would send: every driver's
//     {"id","lat","lon","state"} as JSON once per frame (the page's refresh rate);
//   - frame time: the page at /ops/ in headless Chromium (software GL, --disable-gpu)
//     records requestAnimationFrame intervals; the anchor is the same page with the stream
//     paused (no ops token: the map and roads only), measured right before.
// Progress goes to stderr; the figures to stdout and --out.
import { mkdirSync, writeFileSync } from 'node:fs';
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
const log = (s) => process.stderr.write(`ops_stream: ${s}\n`);
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : null;
};

async function frameTimes(page, ms) {
  await page.evaluate('window.__ft = []; (function f(t0){ requestAnimationFrame((t) => { window.__ft.push(t - t0); f(t); }); })(performance.now())');
  await sleep(ms);
  const ft = await page.evaluate('window.__ft');
  return { frames: ft.length, fps: ft.length / (ms / 1000), p50_ms: pct(ft, 0.5), p95_ms: pct(ft, 0.95), p99_ms: pct(ft, 0.99), over_50ms: ft.filter((x) => x > 50).length };
}

const browser = await launchChromium();
const page = await browser.newPage();
// anchor for the frame time: the map with its roads, no stream
await page.goto(`${gatewayHttp()}/ops/`);
await until(() => page.evaluate('window.meridianOps && window.meridianOps.map && window.meridianOps.map.loaded()'), 30000, 'the map');
await sleep(3000);
const idle = await frameTimes(page, 10000);
log(`idle page: ${JSON.stringify(idle)}`);

const tag = runId();
log(`replay: ${drivers} drivers, one location a second each`);
const run = replay({ drivers, durationS: seconds + 60, runTag: tag, pingMaxHz: 1 });
const ops = await connectOps({ url: gatewayWs(), token: token('ops', `${tag}-bench`) });
await page.goto(`${gatewayHttp()}/ops/?token=${token('ops', `${tag}-page`)}`);
await until(() => ops.city.drivers.size >= drivers * 0.95, 120000, `${drivers} drivers on the map`);
await until(async () => (await page.evaluate('window.meridianOps.counts().drivers')) >= drivers * 0.95, 60000, 'the page has them');
log(`${ops.city.drivers.size} drivers on the map; measuring for ${seconds} s`);

const b0 = ops.city.bytes, f0 = ops.city.frames, t0 = Date.now();
let plain = 0, lag = 0, lagFrames = 0, moving = 0;
const offStats = ops.on('stats', (s) => {
  // the anchor: every driver as plain JSON once per frame
  plain += JSON.stringify([...ops.city.drivers.values()].map((d) => ({ id: d.id, lat: d.lat, lon: d.lon, state: d.state }))).length;
  lag = Math.max(lag, s.stream.lag_drivers);
  lagFrames += s.stream.lag_drivers > 0 ? 1 : 0;
  moving = s.totals.locations_per_s;
});
const busy = await frameTimes(page, seconds * 1000);
const secs = (Date.now() - t0) / 1000;
offStats();
const streamBps = (ops.city.bytes - b0) / secs;
const frames = ops.city.frames - f0;
const counts = await page.evaluate('window.meridianOps.counts()');
const result = {
  drivers_on_map: ops.city.drivers.size,
  locations_per_s: moving,
  seconds: Math.round(secs),
  stream: { bytes_per_s: Math.round(streamBps), frames, plain_json_bytes_per_s: Math.round(plain / secs), ratio_to_plain: +(streamBps / (plain / secs)).toFixed(3), max_lag_drivers: lag, frames_sampling: lagFrames },
  page: { with_stream: busy, idle_anchor: idle, drivers_drawn: counts.drivers, shard_boxes: counts.shardBoxes, trips: counts.trips },
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2));
ops.close();
await browser.close();
run.kill('SIGTERM');
await run.done;
