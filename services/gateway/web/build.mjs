#!/usr/bin/env node
// build.mjs: the static files the gateway serves under /ops/ (the ops map) and /ops/try/
// (the SDK's example rider and driver pages), bundled by esbuild from the npm packages
// pinned in package-lock.json (MapLibre GL JS) and the SDK in clients/js. Nothing is
// fetched at run time: no CDN, no tile server.
//   node services/gateway/web/build.mjs OUT_DIR      (CMake runs it into build/<preset>/ops-web)
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const out = resolve(process.argv[2] || join(root, 'build/ops-web'));
const examples = join(root, 'clients/js/examples');
mkdirSync(join(out, 'try'), { recursive: true });

const common = { bundle: true, format: 'iife', target: 'es2020', minify: true, sourcemap: false, logLevel: 'warning', external: ['ws'], legalComments: 'linked' };
await build({ ...common, entryPoints: [join(here, 'ops/main.js')], outfile: join(out, 'ops.js') });
for (const page of ['rider', 'driver']) {
  await build({ ...common, entryPoints: [join(examples, `${page}.js`)], outfile: join(out, 'try', `${page}.js`) });
}
copyFileSync(join(root, 'node_modules/maplibre-gl/dist/maplibre-gl.css'), join(out, 'maplibre-gl.css'));
copyFileSync(join(root, 'node_modules/maplibre-gl/dist/maplibre-gl.css'), join(out, 'try', 'maplibre-gl.css'));
for (const f of readdirSync(join(here, 'ops'))) if (!f.endsWith('.js')) copyFileSync(join(here, 'ops', f), join(out, f));
for (const f of readdirSync(examples)) if (!f.endsWith('.js')) copyFileSync(join(examples, f), join(out, 'try', f));
console.error(`build.mjs: wrote ${out}`);
