// sdk_ride.test.mjs (integration, real stack): a Node driver and a Node rider on the SDK
// (clients/js) complete a ride through the gateway, dispatch and trips; the gateway is
// restarted by its PID file mid-trip, both clients reconnect, take the gateway's trip
// snapshot as their state, and finish the ride. Also: an ops token and bad tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { connectDriver, connectRider, connectOps, MeridianError } from '../../clients/js/src/index.js';
import { gatewayWs, restartGateway, runId, token, until } from './lib.mjs';

const PICKUP = { lat: 40.7549, lon: -73.9840 }; // Times Square
const DROPOFF = { lat: 40.7484, lon: -73.9857 }; // Empire State Building
const opts = { backoff: { baseMs: 200, maxMs: 2000 }, resyncWindowMs: 3000 };

test('a driver and a rider complete a ride across a gateway restart', { timeout: 180000 }, async () => {
  const id = runId();
  const driver = await connectDriver({ url: gatewayWs(), token: token('driver', `${id}-drv`), ...opts });
  const rider = await connectRider({ url: gatewayWs(), token: token('rider', `${id}-rider`), ...opts });
  const events = { driver: [], rider: [] };
  driver.on('trip', (t) => events.driver.push(t.status));
  rider.on('trip', (t) => events.rider.push(t.status));
  driver.on('resync', (e) => events.driver.push(`resync:${e.trip && e.trip.status}`));
  rider.on('resync', (e) => events.rider.push(`resync:${e.trip && e.trip.status}`));
  // keep pinging at the pickup, as an app does (dispatch forgets silent drivers)
  await driver.location({ ...PICKUP, speed_mps: 0 }, { ack: true });
  await driver.status('available');
  const ping = setInterval(() => driver.location(PICKUP).catch(() => {}), 1000);
  try {
    const offer = driver.next('offer', () => true, 30000);
    const { request_id } = await rider.request({ pickup: PICKUP, dropoff: DROPOFF, request_id: `${id}-req` });
    const o = await offer;
    assert.equal(o.request_id, request_id);
    const matched = rider.next('matched', () => true, 30000);
    await driver.accept(o.offer_id);
    const m = await matched;
    assert.equal(m.driver_id, `${id}-drv`);
    const tripId = m.trip_id;
    await until(() => driver.trip && driver.trip.status === 'matched', 15000, 'the driver sees matched');
    await driver.arrived(tripId);
    await until(() => rider.trip && rider.trip.status === 'arrived', 15000, 'the rider sees arrived');

    // the gateway goes away mid-trip and comes back
    const closed = Promise.all([driver.next('close', () => true, 20000), rider.next('close', () => true, 20000)]);
    const resynced = Promise.all([driver.next('resync', () => true, 90000), rider.next('resync', () => true, 90000)]);
    await restartGateway();
    await closed;
    const [dr, rr] = await resynced;
    assert.equal(dr.trip && dr.trip.trip_id, tripId, `driver resync: ${JSON.stringify(dr)}`);
    assert.equal(rr.trip && rr.trip.trip_id, tripId, `rider resync: ${JSON.stringify(rr)}`);
    assert.equal(driver.trip.status, 'arrived');
    assert.equal(rider.trip.status, 'arrived');

    // and the ride finishes on the new gateway
    await driver.start(tripId);
    await until(() => rider.trip && rider.trip.status === 'started', 15000, 'the rider sees started');
    await driver.complete(tripId);
    await until(() => rider.trips.get(tripId)?.status === 'completed', 15000, 'the rider sees completed');
    await until(() => driver.trips.get(tripId)?.status === 'completed', 15000, 'the driver sees completed');
    assert.equal(rider.trip, null);
    assert.equal(driver.trip, null);
    // a step re-sent after it was applied (an app that lost the ack) is done already:
    // acked, not refused, and the trip stays completed
    await driver.complete(tripId);
    // a step of a trip that is not his is refused by dispatch: an error event with the ref
    const refused = driver.next('error', (e) => e.code === 'invalid_state', 15000);
    await driver.start(`${tripId}x`).catch(() => {});
    const e = await refused;
    assert.ok(e instanceof MeridianError && /invalid_state/.test(e.message));
    assert.equal(rider.trips.get(tripId)?.status, 'completed');
  } finally {
    clearInterval(ping);
    driver.close();
    rider.close();
  }
});

test('tokens: a rider token gets 403 on /v1/ops, a bad one 401, an ops token streams', { timeout: 60000 }, async () => {
  const id = runId();
  await assert.rejects(connectOps({ url: gatewayWs(), token: token('rider', `${id}-r`) }), (e) => e.status === 403 && e.code === 'forbidden');
  await assert.rejects(connectOps({ url: gatewayWs(), token: token('driver', `${id}-d`) }), (e) => e.status === 403);
  await assert.rejects(connectOps({ url: gatewayWs(), token: 'not.a.jwt' }), (e) => e.status === 401 && e.code === 'unauthorized');
  await assert.rejects(connectDriver({ url: gatewayWs(), token: token('ops', `${id}-o`) }), (e) => e.status === 403);
  const ops = await connectOps({ url: gatewayWs(), token: token('ops', `${id}-o`), periodMs: 500 });
  try {
    await until(() => ops.city.stats && ops.city.shards, 10000, 'stats and shards');
    assert.ok(ops.city.shards.epoch >= 1);
    assert.ok(ops.city.shards.ranges.length >= 1 && ops.city.shards.ranges.every((r) => r.cells.length > 0));
    const frames = ops.city.frames;
    await until(() => ops.city.frames >= frames + 3, 10000, 'frames every 500 ms');
    // the config message is checked like the rest of the protocol
    await assert.rejects(ops.config({ type: 'config', period_ms: 5 }), (e) => e.code === 'bad_request' && e.field === 'period_ms');
  } finally {
    ops.close();
  }
});
