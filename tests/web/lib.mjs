// lib.mjs: what the browser and SDK integration tests share: the stack's addresses
// (.run/env, exported by scripts/test), tokens from meridianctl, a replay in the
// background (meridian-loadgen), and restarting the gateway by its PID file
// the way scripts/stack does (SIGTERM, wait, then `scripts/stack up` starts what is missing).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run under scripts/test, or source .run/env after scripts/stack up`);
  return v;
}

export const gatewayWs = () => env('MERIDIAN_GATEWAY_URL');
export const gatewayHttp = () => gatewayWs().replace(/^ws/, 'http');
export const bin = (name) => join(env('MERIDIAN_BIN_DIR'), name);

/** A token of role for sub, minted by meridianctl (MERIDIAN_JWT_SECRET from the env). */
export function token(role, sub) {
  return execFileSync(bin('meridianctl'), ['token', '--role', role, '--sub', sub], { encoding: 'utf8' }).trim();
}

export const runId = () => `w${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until fn() is truthy (polling), or throw what after timeoutMs. */
export async function until(fn, timeoutMs, what) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}


/** Start a replay in the background; resolves the child when it is started. */
export function replay({ drivers, durationS, speedup = 60, runTag, pingMaxHz = 1 }) {
  const args = ['replay', '--trips', join(root, 'data/trips/nyc-taxi-10k.csv'), '--drivers', String(drivers),
    '--duration', String(durationS), '--speedup', String(speedup), '--start', '18:00', '--url', gatewayWs(),
    '--ping-max-hz', String(pingMaxHz), '--drain', '10', '--run-id', runTag, '--quiet'];
  const child = spawn(bin('meridian-loadgen'), args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  child.done = new Promise((res) => child.on('exit', (code) => res({ code, out })));
  return child;
}

export const outDir = () => {
  const d = join(root, 'out', 'web');
  mkdirSync(d, { recursive: true });
  return d;
};

const runDir = () => process.env.MERIDIAN_RUN_DIR || join(root, '.run');

/** The gateway's PID from scripts/stack's PID file. */
export function gatewayPid() {
  return Number(readFileSync(join(runDir(), 'pid', 'svc-gateway'), 'utf8').trim());
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
};

/** Stop the gateway by its PID file (SIGTERM, as scripts/stack does) and start it again with
 * `scripts/stack up` (which starts only what is not running); resolves when /readyz says so. */
export async function restartGateway() {
  const pid = gatewayPid();
  process.kill(pid, 'SIGTERM');
  await until(() => !alive(pid), 15000, `gateway pid ${pid} to exit`);
  execFileSync(join(root, 'scripts/stack'), ['up'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  const newPid = gatewayPid();
  if (newPid === pid || !alive(newPid)) throw new Error('the gateway did not come back');
  return newPid;
}
