// ops_moves.test.mjs (integration, real stack; ctest test_ops_moves): the ops stream shows
// the shard moves of `meridianctl shards` (docs/shards.md) in its `shards` frames' `moves`:
//   1. a real `meridianctl shards move` of a range from shard 0 to shard 1: the move appears
//      (range, from, to, the epoch it made) and the map that follows has the range on 1;
//   2. a run left by a killed CLI (a shard_runs row 'running' whose lock is free, written as
//      the CLI writes it) shows as "interrupted"; with the CLI's advisory lock held by a live
//      session and the step's epoch not yet in the map, as "switching"; once the run is
//      closed as failed, "failed", then no move at all;
//   3. the range is moved back to shard 0, so the map is the one the stack started with.
// psql (PostgreSQL's client, there with the stack) writes the synthetic run.
// It writes as the database owner (MERIDIAN_PG_ADMIN_DSN): the services' role may only read shard_runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';

import { connectOps } from '../../clients/js/src/index.js';
import { bin, env, gatewayWs, runId, token, until } from './lib.mjs';

const RANGE = { start: 'dr70', end: 'dr72' }; // inside shard 0's range of the stack's map
const LOCK_KEY = '7311822012'; // meridianctl shards' advisory lock (tools/meridianctl/shards.c)
const SYNTHETIC = 'test_ops_moves: a run left by a killed CLI';

const psql = (sql) => execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', (process.env.MERIDIAN_PG_ADMIN_DSN || env('MERIDIAN_PG_DSN')), '-c', sql],
  { encoding: 'utf8' }).trim();
const shardsMove = (to) => new Promise((resolve) => {
  execFile(bin('meridianctl'), ['shards', 'move', '--range', `${RANGE.start}:${RANGE.end}`, '--to', String(to)],
    { env: process.env }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr }));
});
const ownerOf = (frame, gh) => frame.ranges.find((r) => r.start <= gh && (r.end === '~' || gh < r.end))?.shard;

test('the ops stream shows shard moves', { timeout: 180000 }, async () => {
  // the stack's map: the range on shard 0 (an earlier failed run may have left it elsewhere)
  const frames = [];
  const ops = await connectOps({ url: gatewayWs(), token: token('ops', `${runId()}-moves`) });
  ops.on('shards', (m) => frames.push(m));
  const latest = () => frames.at(-1);
  let holder = null;
  let failed = true;
  const sawMove = (pred, what, ms = 20000) => until(() => frames.some((f) => f.moves.some(pred)), ms, what);
  try {
    await until(() => latest(), 15000, 'a first shards frame');
    psql(`UPDATE shard_runs SET state = 'failed', message = 'closed by test_ops_moves', updated_at = now() WHERE command = '${SYNTHETIC}' AND state = 'running'`);
    if (ownerOf(latest(), RANGE.start) !== 0) {
      const back = await shardsMove(0);
      assert.equal(back.code, 0, back.out);
    }
    await until(() => ownerOf(latest(), RANGE.start) === 0 && latest().moves.length === 0, 30000, `${RANGE.start} on shard 0 and no move`);
    const e0 = latest().epoch;

    // 1. a real move
    const mv = await shardsMove(1);
    assert.equal(mv.code, 0, `meridianctl shards move: ${mv.out}`);
    await sawMove((m) => m.start === RANGE.start && m.end === RANGE.end && m.from === 0 && m.to === 1 && m.epoch === e0 + 1,
      `the move ${RANGE.start}:${RANGE.end} 0 -> 1 at epoch ${e0 + 1} in a shards frame (frames: ${JSON.stringify(frames.map((f) => [f.epoch, f.moves]))})`);
    await until(() => latest().epoch === e0 + 1 && ownerOf(latest(), RANGE.start) === 1, 15000, `epoch ${e0 + 1} with ${RANGE.start} on shard 1`);
    await until(() => latest().moves.length === 0, 20000, 'the move gone from the stream once done (shown 5 s after)');

    // 2. a run left by a killed CLI: interrupted; with the lock held: switching; closed: failed
    const e1 = latest().epoch;
    const step = JSON.stringify({ start: RANGE.start, end: RANGE.end, from: 1, to: 0, epoch: e1 + 1 });
    psql(`INSERT INTO shard_runs (command, steps, state, step, host, pid) VALUES ('${SYNTHETIC}', 1, 'running', '${step}'::jsonb, 'test', 1)`);
    const isOurs = (m) => m.start === RANGE.start && m.from === 1 && m.to === 0 && m.epoch === e1 + 1;
    await sawMove((m) => isOurs(m) && m.state === 'interrupted', 'the step shown "interrupted" (its CLI gone)');
    // a session holding the lock for 6 s stands for the live CLI (the server ends the sleep,
    // not the client: killing psql would leave the lock held until then)
    holder = spawn('psql', ['-X', '-q', '-At', env('MERIDIAN_PG_DSN'), '-c', `SELECT pg_advisory_lock(${LOCK_KEY}); SELECT pg_sleep(6)`],
      { stdio: 'ignore' });
    holder.done = new Promise((r) => holder.on('exit', r));
    await sawMove((m) => isOurs(m) && m.state === 'switching', `the step shown "switching" (a live CLI, epoch ${e1 + 1} not in the map yet)`);
    await holder.done;
    psql(`UPDATE shard_runs SET state = 'failed', message = 'closed by test_ops_moves', updated_at = now() WHERE command = '${SYNTHETIC}' AND state = 'running'`);
    await sawMove((m) => isOurs(m) && m.state === 'failed', 'the step shown "failed" once the run is closed');
    await until(() => latest().moves.length === 0, 20000, 'no move once the failed run is 5 s old');
    assert.equal(latest().epoch, e1, 'the synthetic run changed no map');
    failed = false;
  } finally {
    if (holder) await holder.done;
    psql(`UPDATE shard_runs SET state = 'failed', message = 'closed by test_ops_moves', updated_at = now() WHERE command = '${SYNTHETIC}' AND state = 'running'`);
    // 3. the range back on shard 0
    const back = await shardsMove(0);
    ops.close();
    // (after a failure above, that failure is the one reported)
    if (!failed) assert.equal(back.code, 0, `moving ${RANGE.start}:${RANGE.end} back to shard 0: ${back.out}`);
  }
});
