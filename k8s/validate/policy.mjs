#!/usr/bin/env node
// policy.mjs: Meridian's policy checks of rendered manifests (see policy-lib.mjs).
//   node k8s/validate/policy.mjs [--no-secrets] FILE...    (FILE '-' reads stdin)
// --no-secrets: the set must contain no Secret at all (the base). Prints each finding; the last
// line is the verdict. Exit 0 when there is none, 1 when there are, 2 on bad usage or input.
import fs from 'node:fs';
import {parseStream} from './read.mjs';
import {checkPolicy} from './policy-lib.mjs';

const files = [];
let noSecrets = false;
for (const a of process.argv.slice(2)) {
  if (a === '--no-secrets') noSecrets = true;
  else files.push(a);
}
if (!files.length) {
  console.error('usage: node k8s/validate/policy.mjs [--no-secrets] FILE...');
  process.exit(2);
}
let total = 0;
for (const f of files) {
  let docs;
  try {
    docs = parseStream(fs.readFileSync(f === '-' ? 0 : f, 'utf8'), f);
  } catch (e) {
    console.error(`policy: ${e.message}`);
    process.exit(2);
  }
  const findings = checkPolicy(docs, {noSecrets});
  for (const x of findings) console.log(`${f}: ${x}`);
  total += findings.length;
  console.log(`policy: ${f}: ${docs.length} objects, ${findings.length} findings`);
}
process.exit(total ? 1 : 0);
