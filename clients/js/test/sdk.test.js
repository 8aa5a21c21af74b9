// Unit tests of the SDK (node --test clients/js/test/): a fake WebSocket stands in for the
// gateway, so these check the SDK's own logic: ref -> ack promises and errors, pacing under
// the gateway's limits, location coalescing, reconnection with jittered backoff, the trip
// snapshot replacing local state, refused upgrades, the error table against the schema,
// and the ops stream's decoding. The integration test (integration.test.js) uses the real
// stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

import { DriverClient, RiderClient, OpsCity, MeridianError, ERROR_CODES, decodeGeohash } from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

class FakeWS {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeWS.all.push(this);
  }
  send(text) {
    if (this.closed) throw new Error('closed');
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.drop(1000, 'bye');
  }
  // test side
  open() {
    this.onopen?.();
  }
  recv(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  drop(code = 1006, reason = '') {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.({ code, reason });
  }
}

const last = () => FakeWS.all[FakeWS.all.length - 1];
const tick = (ms) => new Promise((r) => setTimeout(r, ms));

async function connected(Cls, extra = {}) {
  FakeWS.all = [];
  const c = new Cls({ url: 'ws://gw', token: 'tok en', WebSocket: FakeWS, backoff: { baseMs: 20, maxMs: 80 }, resyncWindowMs: 60, ...extra });
  const p = c.connect();
  last().open();
  await p;
  return c;
}

test('endpoint and token go into the URL', async () => {
  const d = await connected(DriverClient);
  assert.equal(last().url, 'ws://gw/v1/driver?token=tok%20en');
  const r = await connected(RiderClient);
  assert.equal(last().url, 'ws://gw/v1/rider?token=tok%20en');
  d.close();
  r.close();
});

test('ref -> ack resolves; error with the ref rejects with a MeridianError', async () => {
  const d = await connected(DriverClient);
  const ws = last();
  const a = d.accept('o0-1');
  const msg = ws.sent.at(-1);
  assert.equal(msg.type, 'accept');
  assert.equal(msg.offer_id, 'o0-1');
  ws.recv({ type: 'ack', ref: msg.ref });
  assert.equal((await a).type, 'ack');
  const b = d.arrived('t0-x');
  const m2 = ws.sent.at(-1);
  ws.recv({ type: 'error', code: 'bad_request', message: 'trip_id: must be a trip id', field: 'trip_id', ref: m2.ref });
  await assert.rejects(b, (e) => e instanceof MeridianError && e.code === 'bad_request' && e.field === 'trip_id' && !e.retryable && /trip_id/.test(e.message));
  // an error without a ref is an event
  const seen = d.next('error');
  ws.recv({ type: 'error', code: 'rate_limited', message: 'slow down' });
  assert.equal((await seen).code, 'rate_limited');
  d.close();
});

test('nearby resolves with the drivers', async () => {
  const r = await connected(RiderClient);
  const p = r.nearby({ lat: 40.75, lon: -73.98, radius_m: 500 });
  const m = last().sent.at(-1);
  assert.deepEqual({ ...m, ref: undefined }, { type: 'nearby', lat: 40.75, lon: -73.98, radius_m: 500, ref: undefined });
  last().recv({ type: 'nearby', drivers: [{ lat: 40.751, lon: -73.981 }], ref: m.ref });
  assert.deepEqual(await p, [{ lat: 40.751, lon: -73.981 }]);
  r.close();
});

test('pacing: control messages go out at most at the burst, then at the rate', async () => {
  let now = 0;
  const r = await connected(RiderClient, { now: () => now });
  for (let i = 0; i < 10; i++) r.cancel(`req-${i}`).catch(() => {});
  assert.equal(last().sent.length, 4); // burst 5, paced to 4
  now += 1000; // 1.8 tokens
  r._drain();
  assert.equal(last().sent.length, 5);
  now += 10000;
  r._drain();
  assert.equal(last().sent.length, 9);
  r.close();
});

test('locations: a newer position replaces an unsent one; seq counts up', async () => {
  let now = 0;
  const d = await connected(DriverClient, { now: () => now + 1 });
  for (let i = 0; i < 9; i++) d.location({ lat: 40.7 + i * 0.001, lon: -73.98 });
  assert.equal(last().sent.length, 9);
  const waiting = [d.location({ lat: 40.8, lon: -73.9 }), d.location({ lat: 40.81, lon: -73.9 })];
  assert.equal(last().sent.length, 9);
  assert.deepEqual(await waiting[0], { superseded: true });
  now += 1000;
  d._drain();
  const sent = last().sent.at(-1);
  assert.equal(sent.lat, 40.81);
  assert.equal(sent.seq, 11);
  assert.equal(sent.ref, undefined);
  d.close();
});

test('a drop rejects what waits with disconnected, reconnects with jittered backoff', async () => {
  const d = await connected(DriverClient, { random: () => 0.5 });
  const p = d.complete('t0-a');
  const delays = [];
  d.on('reconnecting', (e) => delays.push(e.delayMs));
  last().drop();
  await assert.rejects(p, (e) => e.code === 'disconnected' && e.retryable);
  assert.equal(delays[0], 15); // cap 20: [10, 20) at random 0.5
  await tick(30);
  assert.equal(FakeWS.all.length, 2);
  last().drop(); // the second attempt fails too: cap 40
  assert.equal(delays[1], 30);
  await tick(50);
  last().open();
  assert.equal(d.attempt, 0);
  d.close();
});

test('after a reconnection the trip snapshot replaces local state', async () => {
  const r = await connected(RiderClient);
  last().recv({ type: 'trip', trip_id: 't0-a', status: 'requested', seq: 1, ts: 1 });
  last().recv({ type: 'matched', trip_id: 't0-a', driver_id: 'drv-1', driver: { lat: 40.7, lon: -73.9 }, pickup_eta_s: 60 });
  assert.equal(r.trip.status, 'matched');
  last().drop();
  await tick(40);
  const resync = r.next('resync');
  last().open();
  // the snapshot: the trip went on while we were away (its seq may even repeat)
  last().recv({ type: 'trip', trip_id: 't0-a', status: 'started', seq: 5, ts: 9, driver_id: 'drv-1' });
  const e = await resync;
  assert.equal(e.trip.status, 'started');
  assert.equal(r.trip.status, 'started');
  assert.equal(r.trips.size, 1);
  // an older message after that is ignored
  const stale = r.next('stale');
  last().recv({ type: 'trip', trip_id: 't0-a', status: 'arrived', seq: 4, ts: 8 });
  await stale;
  assert.equal(r.trip.status, 'started');
  // no snapshot after another reconnection: the trip ended while away
  last().drop();
  await tick(40);
  const none = r.next('resync');
  last().open();
  assert.equal((await none).trip, null);
  assert.equal(r.trip, null);
  r.close();
});

test('offers are kept until answered or gone', async () => {
  const d = await connected(DriverClient);
  const offer = { type: 'offer', offer_id: 'o1-z', trip_id: 't1-z', pickup: { lat: 40.7, lon: -74 }, dropoff: { lat: 40.71, lon: -74 }, pickup_eta_s: 30, expires_at: 2 };
  const got = d.next('offer');
  last().recv(offer);
  assert.equal((await got).offer_id, 'o1-z');
  assert.ok(d.offers.has('o1-z'));
  last().recv({ type: 'trip', trip_id: 't1-z', status: 'offer_expired', seq: 3, ts: 3, offer_id: 'o1-z' });
  assert.ok(!d.offers.has('o1-z'));
  d.close();
});

test('a refused upgrade (401) is an error and stops reconnecting', async () => {
  FakeWS.all = [];
  class RefusingWS extends FakeWS {
    constructor(url) {
      super(url);
      this.handlers = {};
      setTimeout(() => this.handlers['unexpected-response']?.({}, { statusCode: 401 }), 1);
    }
    on(ev, fn) {
      this.handlers[ev] = fn;
    }
    terminate() {}
  }
  const d = new DriverClient({ url: 'ws://gw', token: 'bad', WebSocket: RefusingWS, backoff: { baseMs: 5 } });
  await assert.rejects(d.connect(), (e) => e.code === 'unauthorized' && e.status === 401);
  await tick(30);
  assert.equal(FakeWS.all.length, 1);
});

test('close() rejects what is queued and stops', async () => {
  let now = 0;
  const r = await connected(RiderClient, { now: () => now });
  const ps = [];
  for (let i = 0; i < 6; i++) ps.push(r.cancel(`x${i}`));
  r.close();
  const res = await Promise.allSettled(ps);
  assert.ok(res.every((x) => x.status === 'rejected' && x.reason.code === 'closed'));
  await assert.rejects(r.cancel('y'), (e) => e.code === 'closed');
});

test('bad options are refused at once', () => {
  assert.throws(() => new DriverClient({ token: 't' }), /url is required/);
  assert.throws(() => new RiderClient({ url: 'ws://x' }), /token is required/);
});

test('every error code of the schema has a clear entry', () => {
  const schema = JSON.parse(readFileSync(join(root, 'schemas/ws/server/error.json'), 'utf8'));
  for (const code of schema.properties.code.enum) {
    assert.ok(ERROR_CODES[code], `no entry for ${code}`);
    const e = new MeridianError(code, 'x');
    assert.match(e.message, new RegExp(`^${code}: x; `));
    assert.ok(e.message.length > code.length + 20);
  }
  assert.match(new MeridianError('brand_new').message, /does not know/);
});

test('ops stream: drivers added, moved by delta triples, deleted; trips; stats', () => {
  const c = new OpsCity();
  c.apply({ type: 'hello', ts: 1, period_ms: 1000, budget_bps: 150000, e5: 100000, states: ['available', 'offered', 'pickup', 'on_trip', 'offline'], bounds: [40.68, -74.05, 40.89, -73.9] });
  c.apply({ type: 'drivers', ts: 1, add: [[3, 'drv-a', 4075000, -7398000, 0], [7, 'drv-b', 4080000, -7395000, 3]] });
  c.apply({ type: 'drivers', ts: 2, n: 2, move: [3, 12, -9, 4, -1, 1] });
  assert.deepEqual([c.drivers.get(3).lat, c.drivers.get(3).lon], [40.75012, -73.98009]);
  assert.deepEqual([c.drivers.get(7).lat, c.drivers.get(7).lon], [40.79999, -73.94999]);
  assert.equal(c.drivers.get(7).state, 'on_trip');
  assert.deepEqual(c.countByState(), { available: 1, on_trip: 1 });
  c.apply({ type: 'drivers', ts: 3, del: [3] });
  assert.equal(c.drivers.size, 1);
  assert.throws(() => c.apply({ type: 'drivers', ts: 3, move: [3, 1, 1] }), /never added/);
  assert.throws(() => c.apply({ type: 'drivers', ts: 3, move: [7, 1] }), /triples/);
  c.apply({ type: 'trips', ts: 3, trips: [{ id: 't0-a', state: 'matched', shard: 0, seq: 3, pickup: [40.7, -74], dropoff: [40.71, -74] }] });
  c.apply({ type: 'trips', ts: 4, trips: [{ id: 't0-a', state: 'completed', shard: 0, seq: 6 }] });
  assert.equal(c.trips.get('t0-a').state, 'completed');
  c.expire(Date.now() + 10000);
  assert.equal(c.trips.size, 0);
  c.apply({ type: 'hello', ts: 5, period_ms: 1000, budget_bps: 1, e5: 100000, states: c.states, bounds: [0, 0, 1, 1] });
  assert.equal(c.drivers.size, 0);
});

test('geohash decode', () => {
  const [a, b, cc, d] = decodeGeohash('dr5ru');
  assert.ok(a < 40.75 && cc > 40.74 && b < -73.98 && d > -73.99);
  assert.throws(() => decodeGeohash('dr5a'), /bad character/);
});
