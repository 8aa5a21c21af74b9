// ops_page.test.mjs (integration, real stack, headless Chromium; ctest test_web_pages):
//   1. the ops map at /ops/ without a token says so; with an ops token, during a short
//      replay, it draws the road graph, shard ranges (one merged outline and one label per
//      shard) and trip lines, features counted in the map's sources, the outlines also found
//      among the rendered features; and the drivers, counted in their own layer (which is
//      not a map source: drivers_layer.js), inside the view, and as painted pixels of that
//      layer's canvas; its numbers update (stats frames arrive, the panel changes,
//      requests/s > 0, a row per shard); no page error. Screenshot out/web/ops-map.png.
//   2. the SDK's example pages (/ops/try/) do one ride: the driver page goes available at
//      the pickup; on the rider page the test clicks the map at the pickup and at the
//      drop-off (map.project of the coordinates); the driver page's buttons accept, arrived,
//      start, complete; the rider page sees matched, started, completed, and its hint
//      follows (on the way to the pickup, to the drop-off, arrived). Screenshots
//      out/web/try-rider.png and out/web/try-driver.png.
// Bounded: each wait has its own deadline and says what it waited for; all deadlines are
// multiplied by MERIDIAN_WEB_TIMEOUT_SCALE (default 1; they are already generous for a
// loaded 2-core machine). The browser is closed and the replay stopped whatever happens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { launchChromium, scale } from './cdp.mjs';
import { gatewayHttp, outDir, replay, runId, sleep, token, until } from './lib.mjs';

const REPLAY_DRIVERS = 300;
const REPLAY_S = 420; // longer than the test needs: a loaded machine slows the browser; stopped at the end
const t0 = Date.now();
const progress = (s) => process.stderr.write(`ops_page: ${((Date.now() - t0) / 1000).toFixed(1)} s: ${s}\n`);
// Poll fn until truthy. A call that fails (a page too busy to answer within its own
// deadline, on a loaded machine) counts as "not yet"; the last failure is in the message.
const wait = async (fn, ms, what) => {
  let last = null;
  const v = await until(async () => {
    try {
      return await fn();
    } catch (e) {
      last = e;
      return false;
    }
  }, scale(ms), what).catch((e) => {
    throw new Error(`${e.message}${last ? ` (last error: ${last.message})` : ''}`);
  });
  progress(what);
  return v;
};

test('the ops map, live during a replay', { timeout: scale(480000) }, async () => {
  const browser = await launchChromium({ width: 1200, height: 750 });
  let run = null;
  try {
    const page = await browser.newPage('ops page');

    // no token: the page says so
    await page.goto(`${gatewayHttp()}/ops/`);
    await wait(() => page.evaluate('!document.getElementById("login").hidden'), 90000, 'the login box without a token');
    assert.match(await page.evaluate('document.getElementById("login-why").textContent'), /No token/);
    assert.match(await page.evaluate('document.getElementById("status").textContent'), /no token/);

    // an ops token, during a replay: the city, live
    run = replay({ drivers: REPLAY_DRIVERS, durationS: REPLAY_S, runTag: runId() });
    await page.goto(`${gatewayHttp()}/ops/?token=${token('ops', `${runId()}-ops`)}`);
    const counts = () => page.evaluate('window.meridianOps.counts()');
    await wait(async () => (await counts()).roads > 0, 90000, 'the road graph in the map (source "roads")');
    await wait(async () => (await counts()).shardOutlines > 0, 90000, 'shard outlines in the map (source "shards")');
    await wait(async () => (await counts()).drivers >= REPLAY_DRIVERS / 3, 90000,
      `at least ${REPLAY_DRIVERS / 3} of the replay's ${REPLAY_DRIVERS} drivers in the drivers layer`);
    {
      // one merged outline and fill per shard, not one box per geohash cell
      const c = await counts();
      const nShards = await page.evaluate('new Set(window.meridianOps.client.city.shards.ranges.map((r) => r.shard)).size');
      assert.equal(c.shardOutlines, nShards, `one outline per shard: ${JSON.stringify(c)}`);
      assert.equal(c.shardFills, nShards, `one fill per shard: ${JSON.stringify(c)}`);
      assert.ok(c.shardCells > nShards, `the outlines merge the ranges' cells: ${JSON.stringify(c)}`);
    }
    // numbers update
    const text = (sel) => page.evaluate(`document.querySelector(${JSON.stringify(sel)}).textContent`);
    const panel1 = await text('#totals');
    const c1 = await counts();
    await wait(async () => (await counts()).statsUpdates >= c1.statsUpdates + 3, 90000, 'three more stats frames');
    await wait(async () => (await text('#totals')) !== panel1, 90000, 'the panel to change');
    await wait(async () => Number(await text('#n-rps')) > 0, 90000, 'requests/s > 0 in the panel');
    await wait(() => page.evaluate('document.querySelectorAll("#shards tr").length >= 1 + new Set(window.meridianOps.client.city.shards.ranges.map((r) => r.shard)).size'),
      90000, 'a row per shard in the panel');
    await wait(async () => (await counts()).trips > 0, 90000, 'trip lines in the map (source "trips")');
    // drawn, not only held: the outlines are among the rendered features, the drivers inside
    // the view and painted on their layer's canvas (at least a pixel each, on average)
    await wait(async () => {
      const c = await counts();
      return c.driversRendered > 0 && c.shardOutlinesRendered > 0;
    }, 90000, 'drivers inside the view and shard outlines rendered (queryRenderedFeatures)');
    await wait(async () => {
      const c = await counts();
      const px = await page.evaluate('window.meridianOps.drivers.paintedPixels()');
      return px >= c.driversRendered;
    }, 90000, 'the drivers painted on their layer (pixels of its canvas)');
    const shards = await page.evaluate('window.meridianOps.client.city.shards.ranges.map((r) => r.shard)');
    const labels = await page.evaluate('[...document.querySelectorAll(".shard-label")].map((e) => e.textContent)');
    for (const k of new Set(shards)) assert.ok(labels.includes(`shard ${k}`), `a label for shard ${k}: ${labels}`);

    await wait(async () => (await text('#status')) === 'live', 90000, 'the status "live"');
    await sleep(1500); // drivers glide to their positions before the picture
    const shot = await page.screenshot(join(outDir(), 'ops-map.png'));
    const c2 = await counts();
    const frame = await page.evaluate(() => {
      const a = [...window.meridianOps.state.frameTimes].sort((x, y) => x - y);
      return { n: a.length, p50_ms: a[Math.floor(a.length / 2)], p95_ms: a[Math.floor(a.length * 0.95)] };
    });
    console.log(`ops page: ${JSON.stringify(c2)}; frame time ${JSON.stringify(frame)}; screenshot ${shot}`);
    assert.deepEqual(page.errors, [], 'no error in the page');
  } finally {
    await browser.close();
    if (run) {
      run.kill('SIGTERM');
      await run.done;
    }
  }
});

test('the example pages do one ride', { timeout: scale(360000) }, async () => {
  const browser = await launchChromium({ width: 1200, height: 750 });
  const id = runId();
  const PICKUP = { lat: 40.7614, lon: -73.9776 }; // Rockefeller Center
  const DROPOFF = { lat: 40.7484, lon: -73.9857 }; // Empire State Building
  try {
    const driver = await browser.newPage('driver page');
    const rider = await browser.newPage('rider page');
    const log = (p) => p.evaluate('document.getElementById("log").textContent');
    await driver.goto(`${gatewayHttp()}/ops/try/driver.html?token=${token('driver', `${id}-drv`)}&lat=${PICKUP.lat}&lon=${PICKUP.lon}`);
    await wait(async () => (await log(driver)).includes('available'), 60000, 'the driver page available');
    await rider.goto(`${gatewayHttp()}/ops/try/rider.html?token=${token('rider', `${id}-rider`)}`);
    await wait(() => rider.evaluate('!!(window.meridianExample.rider && window.meridianMap.loaded())'), 60000, 'the rider page connected and its map loaded');
    await wait(() => rider.evaluate('(window.meridianMap.getSource("roads")?.serialize().data.features || []).length > 0'), 60000, 'the road graph on the rider page');

    await rider.evaluate((q) => {
      window.meridianMap.jumpTo({ center: [q.lon, q.lat], zoom: 13 });
    }, PICKUP);
    await wait(() => rider.evaluate('window.meridianMap.loaded()'), 60000, 'the rider map idle after the jump');
    const clickAt = async (p) => {
      const xy = await rider.evaluate((q) => {
        const pt = window.meridianMap.project([q.lon, q.lat]);
        return { x: pt.x, y: pt.y };
      }, p);
      await rider.click(xy.x, xy.y);
    };
    await clickAt(PICKUP);
    await wait(async () => /drop-off/.test(await rider.evaluate('document.getElementById("hint").textContent')), 60000, 'the pickup taken ("now click the drop-off")');
    await clickAt(DROPOFF);
    await wait(async () => /request \S+ acked/.test(await log(rider)), 60000, 'the request acked on the rider page');

    const step = async (name, timeoutMs = 60000) => {
      await wait(() => driver.evaluate((n) => !document.getElementById(n).disabled, name), timeoutMs,
        `the driver's "${name}" button enabled`);
      await driver.clickSelector(`#${name}`);
      await wait(async () => (await log(driver)).includes(`${name} acked`), 60000, `${name} acked on the driver page`);
    };
    const riderSees = (status) => wait(() => rider.evaluate((s) => !!window.meridianExample.rider &&
      [...window.meridianExample.rider.trips.values()].some((t) => t.status === s), status), 60000, `the rider page sees ${status}`);
    const hint = (re, what) => wait(async () => re.test(await rider.evaluate('document.getElementById("hint").textContent')), 60000, `the rider's hint: ${what}`);
    await step('accept', 90000);
    await riderSees('matched');
    await hint(/on the way to the pickup/, 'a driver on the way to the pickup');
    await step('arrived');
    await riderSees('arrived');
    await hint(/at the pickup/, 'the driver at the pickup');
    await step('start');
    await riderSees('started');
    await hint(/on the way to the drop-off/, 'on the way to the drop-off');
    await sleep(500);
    await rider.screenshot(join(outDir(), 'try-rider.png'));
    await driver.screenshot(join(outDir(), 'try-driver.png'));
    await step('complete');
    await riderSees('completed');
    await hint(/^arrived/, 'arrived');
    assert.deepEqual([...driver.errors, ...rider.errors], [], 'no error in the pages');
  } finally {
    await browser.close();
  }
});
