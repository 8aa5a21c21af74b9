#!/usr/bin/env node
// validate.mjs: strict offline schema validation of rendered manifests (see lib.mjs).
//   node k8s/validate/validate.mjs [--crds DIR] FILE...    (FILE '-' reads stdin)
// Prints each invalid object with its findings; the last line is the verdict. Exit 0 when
// every object is valid, 1 when any is not, 2 on bad usage or unreadable input.
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {loadCrds, parseStream, validateDocs} from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let crdDir = path.join(here, '..', 'crds');
const files = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--crds') crdDir = argv[++i];
  else if (argv[i] === '-h' || argv[i] === '--help') {
    console.log('usage: node k8s/validate/validate.mjs [--crds DIR] FILE...');
    process.exit(0);
  } else files.push(argv[i]);
}
if (!files.length || !crdDir) {
  console.error('usage: node k8s/validate/validate.mjs [--crds DIR] FILE...');
  process.exit(2);
}
let crds;
try {
  crds = loadCrds(crdDir);
} catch (e) {
  console.error(`validate: CRDs in ${crdDir}: ${e.message}`);
  process.exit(2);
}
let objects = 0, invalid = 0;
for (const f of files) {
  let docs;
  try {
    docs = parseStream(fs.readFileSync(f === '-' ? 0 : f, 'utf8'), f);
  } catch (e) {
    console.error(`validate: ${e.message}`);
    process.exit(2);
  }
  objects += docs.length;
  for (const {object, findings} of await validateDocs(docs, crds)) {
    invalid++;
    console.log(`${f}: ${object}`);
    for (const x of findings) console.log(`  ${x}`);
  }
}
console.log(`validate: ${objects - invalid} valid, ${invalid} invalid (${files.join(' ')}; CRDs: ${crds.size} kinds)`);
process.exit(invalid ? 1 : 0);
