// ops_surge.test.mjs (integration, real stack; ctest test_ops_surge): the ops stream's `hot`
// cells carry the surge dispatch publishes in Redis (hot:surge:{shard}, schemas/redis.md):
//   1. a multiplier written into hot:surge:0 for a cell outside the service area (no driver
//      or request there, so dispatch never writes that field itself) reaches the stream as
//      [cell, 0, 0, 1.7] within a few seconds (the gateway reads the hot hashes every 2 s);
//   2. a field that is no multiplier above 1.0 ("abc", "0.5") is not shown;
//   3. once the field is deleted (dispatch deletes a cell back at 1.0), the cell leaves the
//      stream.
// It writes with redis-cli as the stack's admin user (MERIDIAN_REDIS_ADMIN_URL); the fields it
// writes are deleted at the end, also on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { connectOps } from '../../clients/js/src/index.js';
import { env, gatewayWs, runId, token, until } from './lib.mjs';

const KEY = 'hot:surge:0';
const CELL = 'dr5zzz'; // Long Island Sound: outside the service area
const BAD = ['dr5zzy', 'dr5zzx'];

const redis = (...args) => execFileSync('redis-cli', ['--no-auth-warning', '-u', env('MERIDIAN_REDIS_ADMIN_URL'), ...args],
  { encoding: 'utf8' }).trim();

test('the ops stream shows the published surge of a cell', { timeout: 60000 }, async () => {
  const frames = [];
  const ops = await connectOps({ url: gatewayWs(), token: token('ops', `${runId()}-surge`) });
  ops.on('hot', (m) => frames.push(m));
  const cellIn = (f) => f.cells.find((c) => c[0] === CELL);
  try {
    redis('HSET', KEY, CELL, '1.70', BAD[0], 'abc', BAD[1], '0.5');
    const shown = await until(() => frames.map(cellIn).find(Boolean), 15000,
      `${CELL} with its surge in a hot frame (frames: ${frames.length})`);
    assert.deepEqual(shown, [CELL, 0, 0, 1.7]);
    for (const f of frames) {
      for (const c of f.cells) {
        assert.ok(!BAD.includes(c[0]), `a field that is no surge multiplier is shown: ${JSON.stringify(c)}`);
        assert.ok(c[3] === null || c[3] > 1, `a surge slot is null or above 1: ${JSON.stringify(c)}`);
      }
    }
    redis('HDEL', KEY, CELL);
    const n = frames.length;
    await until(() => frames.length > n && !cellIn(frames.at(-1)), 15000, `${CELL} gone from the hot cells once deleted`);
  } finally {
    redis('HDEL', KEY, CELL, ...BAD);
    ops.close();
  }
});
