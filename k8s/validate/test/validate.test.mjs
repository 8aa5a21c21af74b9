// The validator and the policy checks must fail on what a cluster (or an SRE) would refuse:
// each broken manifest set under test/broken/ is checked and every planted defect must be
// reported by name; a well-formed set of the same kinds passes. Run by scripts/test
// (`node --test k8s/validate/test/`).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {loadCrds, parseStream, validateDocs} from '../lib.mjs';
import {checkPolicy} from '../policy-lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const crds = loadCrds(path.join(here, '..', '..', 'crds'));
const read = (f) => parseStream(fs.readFileSync(path.join(here, 'broken', f), 'utf8'), f);

/** findings of the object whose description contains `what`, joined into one string */
async function findingsOf(file, what) {
  const bad = await validateDocs(read(file), crds);
  const hit = bad.find((b) => b.object.includes(what));
  assert.ok(hit, `${file}: ${what} was not reported as invalid (reported: ${bad.map((b) => b.object).join('; ')})`);
  return hit.findings.join('\n');
}

test('wrong type: core and custom resource', async () => {
  assert.match(await findingsOf('wrong-type.yaml', 'Deployment'), /\.spec\.replicas: must be integer/);
  assert.match(await findingsOf('wrong-type.yaml', 'KafkaTopic'), /\.spec\.partitions: must be integer/);
});

test('unknown fields are rejected, not ignored', async () => {
  assert.match(await findingsOf('unknown-field.yaml', 'Deployment'), /containers\[0\]\.imagePullPolicyy: unknown field/);
  assert.match(await findingsOf('unknown-field.yaml', 'Service'), /\.metadata\.labls: unknown field/);
  const kafka = await findingsOf('unknown-field.yaml', 'Kafka unknown-field');
  assert.match(kafka, /\.spec\.zookeeper: unknown field/);
  assert.match(kafka, /\.spec\.kafka\.replicas: unknown field/);
});

test('missing required fields', async () => {
  assert.match(await findingsOf('missing-required.yaml', 'StatefulSet'), /containers\.0: missing required field name|missing required field name/);
  const pool = await findingsOf('missing-required.yaml', 'KafkaNodePool');
  assert.match(pool, /missing required field roles/);
  assert.match(pool, /missing required field storage/);
});

test('API versions that are not served, and unknown kinds', async () => {
  assert.match(await findingsOf('wrong-version.yaml', 'kafka.strimzi.io/v1beta2 Kafka'), /no version v1beta2 of kafka\.strimzi\.io\/Kafka is served.*serves v1/);
  assert.match(await findingsOf('wrong-version.yaml', 'policy/v1beta1'), /unknown kind/);
  assert.match(await findingsOf('wrong-version.yaml', 'Widget'), /unknown kind/);
});

test('every broken schema file fails as a whole (nothing valid slipped in)', async () => {
  for (const f of ['wrong-type.yaml', 'unknown-field.yaml', 'missing-required.yaml', 'wrong-version.yaml']) {
    const docs = read(f);
    const bad = await validateDocs(docs, crds);
    assert.equal(bad.length, docs.length, `${f}: ${docs.length - bad.length} object(s) passed`);
  }
});

test('well-formed objects of the same kinds pass', async () => {
  const good = parseStream(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: ok}
spec:
  replicas: 2
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: x, image: "x:1", imagePullPolicy: Always}]
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaNodePool
metadata: {name: ok, labels: {strimzi.io/cluster: c}}
spec: {replicas: 1, roles: [broker], storage: {type: ephemeral}}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata: {name: ok, labels: {strimzi.io/cluster: c}}
spec: {partitions: 64, replicas: 1, config: {retention.ms: 1000}}
`, 'inline');
  assert.deepEqual(await validateDocs(good, crds), []);
});

test('policy: every planted defect is reported', () => {
  const findings = checkPolicy(read('policy.yaml')).join('\n');
  for (const want of [
    /gateway container gateway: no cpu limits/,
    /gateway container gateway: no memory limits/,
    /gateway container gateway: no startupProbe/,
    /gateway container gateway: no readinessProbe/,
    /gateway container gateway: runAsNonRoot is not true/,
    /gateway container gateway: runAsUser is 0/,
    /gateway container gateway: readOnlyRootFilesystem is not true/,
    /gateway container gateway: capabilities do not drop ALL/,
    /gateway container gateway: seccompProfile is not RuntimeDefault/,
    /uses the tag latest/,
    /env PGPASSWORD holds a credential in clear/,
    /env MERIDIAN_REDIS_URL has a password in clear in a URL/,
    /ConfigMap config: key MERIDIAN_PG_DSN has a password in clear in a URL/,
    /ConfigMap config: key JWT_SECRET names a credential/,
    /Secret secrets: stringData/,
    /KafkaTopic dispatch-events: replicas 3 > 1 brokers of k/,
    /Kafka k: default.replication.factor 3 > 1 brokers/,
    /dispatch-standby: 2 replicas, need 0 or dispatch's 4/,
    /Deployment gateway: no PodDisruptionBudget/,
    /Deployment gateway: no topology spread over nodes/,
  ])
    assert.match(findings, want);
});

test('policy: a Secret in the base is refused, references to secret-fed variables are not', () => {
  const docs = parseStream(`
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {k: aGV4}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {MERIDIAN_REDIS_HOST: redis}
`, 'inline');
  assert.match(checkPolicy(docs, {noSecrets: true}).join('\n'), /Secret s: a Secret in the base/);
  assert.deepEqual(checkPolicy(docs), []);
});
