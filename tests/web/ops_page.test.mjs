// ops_page.test.mjs (integration, real stack, headless Chromium): the ops map at /ops/
// during a short replay draws drivers, shard boxes, trips and the road graph (features
// counted in the map's sources, and rendered), its numbers update, and without a token it
// says so; then the SDK's example pages (/ops/try/) do one ride: the rider clicks the map
// for the pickup and the drop-off, the driver accepts, arrives, starts and completes.
// Screenshots go to out/web/ (git-ignored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { gatewayHttp, launchChromium, outDir, replay, runId, sleep, token, until } from './lib.mjs';

test('the ops map, live during a replay', { timeout: 240000 }, async () => {
  const browser = await launchChromium();
  const run = replay({ drivers: 300, durationS: 40, runTag: runId() });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));

    // no token: the page says so
    await page.goto(`${gatewayHttp()}/ops/`, { waitUntil: 'load' });
    await until(() => page.$eval('#login', (el) => !el.hidden), 10000, 'the login box');
    assert.match(await page.$eval('#login-why', (el) => el.textContent), /No token/);
    assert.match(await page.$eval('#status', (el) => el.textContent), /no token/);

    // an ops token: the city, live
    await page.goto(`${gatewayHttp()}/ops/?token=${token('ops', `${runId()}-ops`)}`, { waitUntil: 'load' });
    const counts = () => page.evaluate(() => window.meridianOps.counts());
    await until(async () => (await counts()).roads > 0, 30000, 'roads in the map');
    await until(async () => (await counts()).shardBoxes > 0, 30000, 'shard boxes');
    await until(async () => (await counts()).drivers >= 100, 60000, 'at least 100 drivers drawn');
    await until(async () => (await counts()).trips > 0, 60000, 'trip lines');
    const c1 = await counts();
    assert.ok(c1.driversRendered > 0, `drivers rendered: ${JSON.stringify(c1)}`);
    assert.ok(c1.shardBoxesRendered > 0, `shard boxes rendered: ${JSON.stringify(c1)}`);
    assert.ok(c1.labels >= 2, 'a label per shard');
    const labels = await page.$$eval('.shard-label', (els) => els.map((e) => e.textContent));
    assert.ok(labels.includes('shard 0') && labels.includes('shard 1'), `labels: ${labels}`);
    // numbers update
    const panel1 = await page.$eval('#totals', (el) => el.textContent);
    await until(async () => (await counts()).statsUpdates >= c1.statsUpdates + 3, 15000, 'three more stats frames');
    await until(async () => (await page.$eval('#totals', (el) => el.textContent)) !== panel1, 15000, 'the panel to change');
    const rps = await page.$eval('#n-rps', (el) => Number(el.textContent));
    assert.ok(rps > 0, `requests/s shown: ${rps}`);
    await until(() => page.evaluate(() => document.querySelectorAll('#shards tr').length >= 3), 5000, 'a row per shard');
    await page.screenshot({ path: join(outDir(), 'ops-map.png') });
    const frame = await page.evaluate(() => {
      const a = [...window.meridianOps.state.frameTimes].sort((x, y) => x - y);
      return { n: a.length, p50: a[Math.floor(a.length / 2)], p95: a[Math.floor(a.length * 0.95)] };
    });
    console.log(`ops page: ${JSON.stringify(await counts())}, frame time ${JSON.stringify(frame)}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    const { code, out } = await run.done;
    assert.equal(code, 0, out);
  }
});

test('the example pages do one ride', { timeout: 180000 }, async () => {
  const browser = await launchChromium();
  const id = runId();
  const PICKUP = { lat: 40.7614, lon: -73.9776 };
  const DROPOFF = { lat: 40.7484, lon: -73.9857 };
  try {
    const driver = await browser.newPage();
    const rider = await browser.newPage();
    const errors = [];
    for (const p of [driver, rider]) p.on('pageerror', (e) => errors.push(String(e)));
    await driver.goto(`${gatewayHttp()}/ops/try/driver.html?token=${token('driver', `${id}-drv`)}&lat=${PICKUP.lat}&lon=${PICKUP.lon}`);
    await until(() => driver.evaluate(() => document.getElementById('log').textContent.includes('available')), 20000, 'the driver available');
    await rider.goto(`${gatewayHttp()}/ops/try/rider.html?token=${token('rider', `${id}-rider`)}`);
    await until(() => rider.evaluate(() => window.meridianExample.rider && window.meridianMap.loaded()), 20000, 'the rider page ready');
    const click = async (p) => {
      const xy = await rider.evaluate((q) => window.meridianMap.project([q.lon, q.lat]), p);
      await rider.mouse.click(xy.x, xy.y);
      await sleep(300);
    };
    await rider.evaluate((q) => window.meridianMap.jumpTo({ center: [q.lon, q.lat], zoom: 13 }), PICKUP);
    await sleep(500);
    await click(PICKUP);
    await click(DROPOFF);
    await until(() => rider.evaluate(() => document.getElementById('log').textContent.includes('acked')), 20000, 'the request acked');
    const step = async (name) => {
      await until(() => driver.$eval(`#${name}`, (b) => !b.disabled), 30000, `${name} enabled`);
      await driver.click(`#${name}`);
      await until(() => driver.evaluate((n) => document.getElementById('log').textContent.includes(`${n} acked`), name), 15000, `${name} acked`);
    };
    await step('accept');
    await until(() => rider.evaluate(() => window.meridianExample.trip && window.meridianExample.trip.status === 'matched'), 20000, 'the rider matched');
    await step('arrived');
    await step('start');
    await until(() => rider.evaluate(() => window.meridianExample.trip && window.meridianExample.trip.status === 'started'), 20000, 'the rider sees started');
    await rider.screenshot({ path: join(outDir(), 'try-rider.png') });
    await driver.screenshot({ path: join(outDir(), 'try-driver.png') });
    await step('complete');
    await until(() => rider.evaluate(() => [...window.meridianExample.rider.trips.values()].some((t) => t.status === 'completed')), 20000, 'the rider sees completed');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
