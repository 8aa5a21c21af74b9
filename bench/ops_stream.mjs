#!/usr/bin/env node
// ops_stream.mjs: the ops stream's bandwidth and the ops page's frame time with N moving
// drivers (default 2,000), against the running stack (scripts/stack up; source .run/env).
//   node bench/ops_stream.mjs [--drivers 2000] [--seconds 30] [--baseline REF] [--rounds 2]
//                             [--feed] [--no-page] [--out out/bench/ops_stream.json]
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
//     With --baseline REF (a git commit, e.g. the page before a change), the page of REF
//     (its services/gateway/web/ops/main.js, index.html and ops.css, bundled with this
//     tree's SDK) is served beside the current one, under /ops/bench-baseline/ of the
//     stack's page directory (removed at the end), and both are measured with the stream,
//     alternately, --rounds times each (baseline, current, baseline, current, ...), each
//     block --seconds long, so that a change in the machine's load weighs on both alike.
//     A third anchor, after the blocks: the current page with its drivers canvas hidden,
//     drawing as usual but composited never: what the page's own work costs a frame.
//     Besides the frame times, each block counts how often the drivers moved on screen
//     (draws of the drivers per second: the old page rebuilt a GeoJSON source, the current
//     one draws its own layer).
// --feed moves the drivers with ops_feed instead of a replay: their positions go straight into
// Kafka's driver-locations (the gateway's ops consumer reads them as it reads its own), for more
// drivers than this machine can connect as apps (--drivers 20000). --no-page measures the
// stream only (no browser).
// Progress goes to stderr, with the whole result; --out gets the result as JSON; the last
// line of stdout is the benchmarks' usual line (bench/README.md): page frame p50/p95 of
// the current page, the baseline's and the two anchors, stream bytes/s and its anchor.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus as cpus_, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { build } from 'esbuild';

import { connectOps } from '../clients/js/src/index.js';
import { launchChromium } from '../tests/web/cdp.mjs';
import { env, gatewayHttp, gatewayWs, replay, root, runId, sleep, token, until } from '../tests/web/lib.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const drivers = Number(arg('drivers', 2000));
const seconds = Number(arg('seconds', 30));
const out = arg('out', 'out/bench/ops_stream.json');
const baseline = arg('baseline', '');
const rounds = Number(arg('rounds', 2));
const feed = process.argv.includes('--feed');
const noPage = process.argv.includes('--no-page');
if (!(drivers > 0) || !(seconds > 0) || !(rounds >= 1)) {
  process.stderr.write('usage: node bench/ops_stream.mjs [--drivers N > 0] [--seconds S > 0] [--baseline GIT-REF] [--rounds R >= 1] [--out FILE]\n');
  process.exit(2);
}
// where the gateway serves /ops/ from (as ops_io.c finds it)
const webDir = process.env.MERIDIAN_OPS_WEB_DIR || resolve(env('MERIDIAN_BIN_DIR'), '../ops-web');
const baselineDir = join(webDir, 'bench-baseline');

/** The page of git ref `ref`, bundled with this tree's SDK into baselineDir. */
async function buildBaseline(ref) {
  const show = (f) => execFileSync('git', ['show', `${ref}:services/gateway/web/ops/${f}`], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 });
  mkdirSync(baselineDir, { recursive: true });
  await build({
    stdin: { contents: show('main.js'), resolveDir: join(root, 'services/gateway/web/ops'), sourcefile: `${ref}:main.js` },
    bundle: true, format: 'iife', target: 'es2020', minify: true, logLevel: 'warning', outfile: join(baselineDir, 'ops.js'),
  });
  for (const f of ['index.html', 'ops.css']) writeFileSync(join(baselineDir, f), show(f));
  copyFileSync(join(root, 'node_modules/maplibre-gl/dist/maplibre-gl.css'), join(baselineDir, 'maplibre-gl.css'));
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

// how often the page has drawn its drivers so far: the old page's rebuilds of its drivers
// source (state.renders), the current page's draws of its drivers layer
const DRAWS = '(window.meridianOps.drivers ? window.meridianOps.drivers.draws : (window.meridianOps.state.renders || 0))';

// CPU time (user + system, ms) of a process and all its descendants, from /proc: the
// browser's processes (renderer, GPU process with SwiftShader, ...). Unlike the intervals
// between frames, the CPU a page burns does not grow with what else loads the machine.
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);
function treeCpuMs(root) {
  const kids = new Map();
  const cpu = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let st;
    try {
      st = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // gone
    }
    const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    const pid = Number(d), ppid = Number(f[1]);
    cpu.set(pid, (Number(f[11]) + Number(f[12])) * TICK_MS); // utime, stime
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(pid);
  }
  let total = 0;
  const todo = [root];
  while (todo.length) {
    const p = todo.pop();
    total += cpu.get(p) || 0;
    todo.push(...(kids.get(p) || []));
  }
  return total;
}

/** ops_feed in the background, like replay(): .kill(), .done (its JSON line and stderr). */
function feedDrivers(n, seconds) {
  const child = spawn(join(env('MERIDIAN_BIN_DIR'), 'ops_feed'), ['--drivers', String(n), '--seconds', String(seconds), '--prefix', `feed${runId()}`],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let outText = '', errText = '';
  child.stdout.on('data', (d) => (outText += d));
  child.stderr.on('data', (d) => (errText = (errText + d).slice(-4000)));
  child.done = new Promise((res) => child.on('exit', (code) => res({ code, out: outText, err: errText })));
  return child;
}

async function frameTimes(page, ms) {
  // the CPU window encloses the frames' window: from before the first call to after the last
  const c0 = treeCpuMs(browser.pid), w0 = Date.now();
  await page.evaluate(`window.__ft = []; window.__d0 = ${DRAWS}; (function f(t0){ requestAnimationFrame((t) => { window.__ft.push(t - t0); f(t); }); })(performance.now())`, undefined, 120000);
  await sleep(ms);
  const { ft, draws } = await page.evaluate(`({ ft: window.__ft, draws: ${DRAWS} - window.__d0 })`, undefined, 120000);
  const cpuMs = treeCpuMs(browser.pid) - c0, wallS = (Date.now() - w0) / 1000;
  ms = Math.max(ms, ft.reduce((a, b) => a + b, 0)); // a busy page answers late: its frames span more
  return {
    browser_cpu_ms_per_s: Math.round(cpuMs / wallS), browser_cpu_ms_per_frame: ft.length ? Math.round(cpuMs / ft.length) : null,
    frames: ft.length, fps: +(ft.length / (ms / 1000)).toFixed(2), p50_ms: pct(ft, 0.5), p95_ms: pct(ft, 0.95),
    p99_ms: pct(ft, 0.99), max_ms: pct(ft, 1), over_50ms: ft.filter((x) => x > 50).length,
    driver_draws_per_s: +(draws / (ms / 1000)).toFixed(2),
  };
}

const load0 = loadavg()[0];
if (baseline) {
  await buildBaseline(baseline);
  log(`baseline page of ${baseline} in ${baselineDir}`);
}
const browser = noPage ? null : await launchChromium({ width: 1200, height: 750 });
let run = null;
let ops = null;
try {
  const page = browser ? await browser.newPage('ops page') : null;
  let idle = null, repaint = null;
  if (page) {
  // anchor for the frame time: the map with its roads, no stream
  await page.goto(`${gatewayHttp()}/ops/`);
  await until(tolerant(() => page.evaluate('!!(window.meridianOps && window.meridianOps.map && window.meridianOps.map.loaded() && window.meridianOps.map.getSource("roads").serialize().data.features.length)')),
    180000, 'the idle map with its roads');
  await sleep(3000);
  idle = await frameTimes(page, 10000);
  log(`idle page (anchor): ${JSON.stringify(idle)}`);
  await page.evaluate('window.__repaint = true; (function f(){ if (!window.__repaint) return; window.meridianOps.map.triggerRepaint(); requestAnimationFrame(f); })()');
  repaint = await frameTimes(page, 10000);
  await page.evaluate('window.__repaint = false');
  log(`page repainted every frame, no stream (anchor): ${JSON.stringify(repaint)}`);
  }

  const tag = runId();
  const runS = rounds * (page ? (baseline ? 2 : 1) * (seconds + 180) : seconds) + 900;
  ops = await connectOps({ url: gatewayWs(), token: token('ops', `${tag}-bench`) });
  if (feed) {
    log(`ops_feed: ${drivers} drivers into driver-locations, one position a second each`);
    run = feedDrivers(drivers, runS);
  } else {
    log(`replay: ${drivers} drivers, at most one location a second each`);
    run = replay({ drivers, durationS: runS, runTag: tag, pingMaxHz: 1 });
  }
  if (page) await page.goto(`${gatewayHttp()}/ops/?token=${token('ops', `${tag}-page`)}`, 180000);
  // all drivers, or a plateau: no growth for 30 s
  let best = 0, since = Date.now();
  await until(() => {
    const n = ops.city.drivers.size;
    if (n > best) {
      if (Math.floor(n / 200) > Math.floor(best / 200)) log(`${n} drivers in the stream`);
      best = n;
      since = Date.now();
    }
    return n >= drivers * 0.98 || (n > 0 && Date.now() - since > 30000); // none yet: keep waiting
  }, 600000, `${drivers} drivers in the stream`);
  log(`${ops.city.drivers.size} drivers in the stream (of ${drivers})`);

  // the pages to measure, alternately: [name, path]
  const pages = [['current', '/ops/']];
  if (baseline) pages.unshift([`baseline ${baseline}`, '/ops/bench-baseline/']);
  const blocks = [];
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
  if (!page) {
    log(`the stream only: measuring for ${rounds * seconds} s`);
    await sleep(rounds * seconds * 1000);
  }
  for (let r = 0; r < rounds && page; r++) {
    for (const [name, path] of pages) {
      await page.goto(`${gatewayHttp()}${path}?token=${token('ops', `${tag}-page`)}`, 180000);
      await until(tolerant(async () => (await page.evaluate('window.meridianOps.counts().drivers')) >= ops.city.drivers.size * 0.9),
        180000, `${name}: the page to draw the drivers`);
      await sleep(5000); // the first trips, hot cells and shard ranges
      const l0 = loadavg()[0];
      log(`${name}, round ${r + 1}: measuring for ${seconds} s`);
      const ft = await frameTimes(page, seconds * 1000);
      const counts = await page.evaluate('window.meridianOps.counts()', undefined, 120000);
      const block = {
        page: name, round: r + 1, ...ft, load_average_1m: [+l0.toFixed(1), +loadavg()[0].toFixed(1)],
        drivers_drawn: counts.drivers, trips_drawn: counts.trips, shard_features: counts.shardOutlines ?? counts.shardBoxes,
      };
      log(JSON.stringify(block));
      blocks.push(block);
    }
  }
  // the third anchor: the current page doing all its work (the drivers projected and drawn
  // at every frame they glide), with its drivers canvas hidden, so that nothing it draws is
  // composited: what the page's own work costs a frame, without the compositor's share
  let uncomposited = null;
  if (page) {
    await page.goto(`${gatewayHttp()}/ops/?token=${token('ops', `${tag}-page`)}`, 180000);
    await until(tolerant(async () => (await page.evaluate('window.meridianOps.counts().drivers')) >= ops.city.drivers.size * 0.9),
      180000, 'the page to draw the drivers (uncomposited anchor)');
    await sleep(5000);
    await page.evaluate("window.meridianOps.drivers.canvas.style.display = 'none'");
    log(`current page, drivers canvas hidden (anchor): measuring for ${seconds} s`);
    uncomposited = await frameTimes(page, seconds * 1000);
    log(`current page, drivers drawn but not composited (anchor): ${JSON.stringify(uncomposited)}`);
  }
  const secs = (Date.now() - m0) / 1000;
  offStats();
  const streamBps = (ops.city.bytes - b0) / secs;
  const summary = (name) => {
    const bs = blocks.filter((b) => b.page === name);
    const med = (k) => pct(bs.map((b) => b[k]), 0.5);
    return {
      blocks: bs.length, p50_ms: med('p50_ms'), p95_ms: med('p95_ms'), fps: med('fps'), driver_draws_per_s: med('driver_draws_per_s'),
      browser_cpu_ms_per_s: med('browser_cpu_ms_per_s'), browser_cpu_ms_per_frame: med('browser_cpu_ms_per_frame'),
    };
  };
  const current = page ? summary('current') : null;
  const before = page && baseline ? summary(pages[0][0]) : null;
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
    page: page && {
      current, baseline: before, baseline_ref: baseline || null, blocks,
      anchor_idle: idle, anchor_repaint_every_frame: repaint, anchor_uncomposited: uncomposited,
      p50_ratio_baseline_to_current: before && current.p50_ms ? +(before.p50_ms / current.p50_ms).toFixed(2) : null,
      p50_ratio_to_idle: idle.p50_ms ? +(current.p50_ms / idle.p50_ms).toFixed(2) : null,
      p50_ratio_to_repaint: repaint.p50_ms ? +(current.p50_ms / repaint.p50_ms).toFixed(2) : null,
    },
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2));
  process.stderr.write(`${JSON.stringify(result, null, 2)}\n`);
  // the contract line (bench/README.md): one JSON object, the last line of stdout
  const row = (workload, impl, unit, median, p95, n) => ({ workload, impl, unit, median, p95, n });
  const rows = [
    row(`stream_${drivers}_drivers`, 'meridian', 'B/s', result.stream.bytes_per_s, null, 1),
    row(`stream_${drivers}_drivers`, 'plain-json', 'B/s', result.stream.anchor_plain_json_bytes_per_s, null, 1),
  ];
  if (page) {
    rows.push(row(`page_frame_${drivers}_drivers`, 'meridian', 'ms', current.p50_ms, current.p95_ms, current.blocks));
    rows.push(row(`page_frame_${drivers}_drivers`, 'idle-map', 'ms', idle.p50_ms, idle.p95_ms, 1));
    rows.push(row(`page_frame_${drivers}_drivers`, 'repaint-map', 'ms', repaint.p50_ms, repaint.p95_ms, 1));
    rows.push(row(`page_cpu_per_frame_${drivers}_drivers`, 'meridian', 'ms', current.browser_cpu_ms_per_frame, null, current.blocks));
    rows.push(row(`page_cpu_per_frame_${drivers}_drivers`, 'repaint-map', 'ms', repaint.browser_cpu_ms_per_frame, null, 1));
    rows.push(row(`page_frame_${drivers}_drivers`, 'uncomposited', 'ms', uncomposited.p50_ms, uncomposited.p95_ms, 1));
  }
  if (before) {
    rows.push(row(`page_frame_${drivers}_drivers`, `page-${baseline}`, 'ms', before.p50_ms, before.p95_ms, before.blocks));
    rows.push(row(`page_cpu_per_frame_${drivers}_drivers`, `page-${baseline}`, 'ms', before.browser_cpu_ms_per_frame, null, before.blocks));
  }
  const cpus = cpus_();
  console.log(JSON.stringify({ bench: 'ops_stream', machine: `${cpus.length} x ${cpus[0]?.model || '?'}, load ${result.load_average_1m.start}-${result.load_average_1m.end}`, rows }));
} finally {
  if (ops) ops.close();
  if (browser) await browser.close();
  if (baseline) rmSync(baselineDir, { recursive: true, force: true });
  if (run) {
    run.kill('SIGTERM');
    const r = await run.done;
    if (feed) log(`ops_feed: ${r.out.trim()} ${r.err.trim().split('\n').slice(-2).join(' | ')}`);
  }
}
