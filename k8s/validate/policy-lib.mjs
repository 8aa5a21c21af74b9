// policy-lib.mjs: Meridian's own rules for rendered manifests, beyond what the API schemas
// say (lib.mjs checks those). Pure: documents in, findings out. Rules:
//   workload    every container and init container of a pod template has CPU and memory
//               requests and limits; long-running containers (not Jobs', not init) have
//               startup, liveness and readiness probes; pods run non-root (runAsNonRoot and a
//               non-zero runAsUser), with seccomp RuntimeDefault (or Localhost); containers
//               have allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities
//               drop ALL and add none, are not privileged; no hostNetwork/hostPID/hostPath.
//   images      every image (pod templates, CloudNativePG imageName, Strimzi images) names a
//               tag or digest, never `latest`.
//   secrets     no credential in clear: an env var whose name says password/secret/token/key
//               only through valueFrom; no URL with user:password@ in an env value or a
//               ConfigMap; no ConfigMap key that names a credential; no Secret with
//               stringData or a placeholder value (change-me, ...); with noSecrets, no Secret at
//               all (the base).
//   kafka       per Strimzi cluster: brokers = replicas of its node pools with role broker;
//               every topic's replicas <= brokers and its min.insync.replicas <= replicas; the
//               cluster's default/offsets/transaction replication factors <= brokers and
//               min.insync.replicas <= default.replication.factor; dispatch's shards (its
//               StatefulSet replicas) <= the partitions of the topics it consumes.
//   shards      dispatch-standby has 0 replicas or as many as dispatch, and the same containers.
//   availability every Deployment/StatefulSet of Meridian's pods (label meridian.io/client)
//               is covered by a PodDisruptionBudget; the gateway spreads over nodes.

const POD_KINDS = {Deployment: 1, StatefulSet: 1, DaemonSet: 1, ReplicaSet: 1, Job: 1, CronJob: 1, Pod: 1};
const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)/i;
const URL_CREDENTIAL = /:\/\/[^\s/:@]+:([^\s@]+)@/;
const PLACEHOLDER = /^(change-?me.*|changeit|password|secret|example|todo|xxx+|test)$/i;

const name = (o) => `${o.kind} ${o.metadata?.name ?? '?'}`;

/** The pod spec and metadata of a workload object, or null. */
export function podTemplate(o) {
  if (!POD_KINDS[o?.kind]) return null;
  if (o.kind === 'Pod') return {spec: o.spec ?? {}, metadata: o.metadata ?? {}};
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template ?? null;
  return o.spec?.template ?? null;
}

/** A URL's embedded password that is not a $(VAR) reference to a secret-fed variable. */
function clearCredentialInUrl(value) {
  const m = URL_CREDENTIAL.exec(String(value));
  return m && !/^\$\([A-Za-z_][A-Za-z0-9_]*\)$/.test(m[1]);
}

function imageOk(image) {
  if (typeof image !== 'string' || !image) return 'no image';
  if (image.includes('@sha256:')) return null;
  const last = image.split('/').pop();
  if (!last.includes(':')) return `image ${image} has no tag (means latest)`;
  if (last.split(':').pop() === 'latest') return `image ${image} uses the tag latest`;
  return null;
}

function checkWorkload(o, out) {
  const t = podTemplate(o);
  if (!t) return;
  const spec = t.spec ?? {};
  const psc = spec.securityContext ?? {};
  const isJob = o.kind === 'Job' || o.kind === 'CronJob';
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push(`${name(o)}: uses the host's network/PID/IPC namespace`);
  for (const v of spec.volumes ?? []) if (v.hostPath) out.push(`${name(o)}: volume ${v.name} is a hostPath`);
  const all = [...(spec.initContainers ?? []).map((c) => [c, true]), ...(spec.containers ?? []).map((c) => [c, false])];
  for (const [c, init] of all) {
    const where = `${name(o)} container ${c.name}`;
    const r = c.resources ?? {};
    for (const kind of ['requests', 'limits'])
      for (const res of ['cpu', 'memory'])
        if (r[kind]?.[res] === undefined) out.push(`${where}: no ${res} ${kind}`);
    if (!init && !isJob)
      for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe'])
        if (!c[p]) out.push(`${where}: no ${p}`);
    const sc = c.securityContext ?? {};
    const nonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
    const uid = sc.runAsUser ?? psc.runAsUser;
    if (nonRoot !== true) out.push(`${where}: runAsNonRoot is not true`);
    if (uid === undefined || uid === 0) out.push(`${where}: runAsUser is ${uid === 0 ? 0 : 'unset'} (need a non-zero uid)`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${where}: allowPrivilegeEscalation is not false`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${where}: readOnlyRootFilesystem is not true`);
    if (sc.privileged) out.push(`${where}: privileged`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${where}: capabilities do not drop ALL`);
    if ((sc.capabilities?.add ?? []).length) out.push(`${where}: adds capabilities ${sc.capabilities.add.join(',')}`);
    const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${where}: seccompProfile is not RuntimeDefault`);
    const bad = imageOk(c.image);
    if (bad) out.push(`${where}: ${bad}`);
    for (const e of c.env ?? []) {
      if (e.value !== undefined && SECRET_NAME.test(e.name) && !/_FILE$/.test(e.name))
        out.push(`${where}: env ${e.name} holds a credential in clear (use valueFrom.secretKeyRef)`);
      if (e.value !== undefined && clearCredentialInUrl(e.value))
        out.push(`${where}: env ${e.name} has a password in clear in a URL`);
    }
  }
}

function checkImagesOfCustomResources(o, out) {
  if (o.kind === 'Cluster' && o.apiVersion?.startsWith('postgresql.cnpg.io/') && o.spec?.imageName !== undefined) {
    const bad = imageOk(o.spec.imageName);
    if (bad) out.push(`${name(o)}: ${bad}`);
  }
  if (o.kind === 'Kafka' && o.spec?.kafka?.image !== undefined) {
    const bad = imageOk(o.spec.kafka.image);
    if (bad) out.push(`${name(o)}: ${bad}`);
  }
}

function decode(v) {
  try {
    return Buffer.from(String(v).replace(/[\r\n]/g, ''), 'base64').toString('utf8');
  } catch {
    return '';
  }
}

function checkSecrets(o, out, noSecrets) {
  if (o.kind === 'Secret') {
    if (noSecrets) out.push(`${name(o)}: a Secret in the base (credentials come from the overlays' secretGenerator)`);
    if (o.stringData) out.push(`${name(o)}: stringData (a credential in clear in the manifests)`);
    for (const [k, v] of Object.entries(o.data ?? {}))
      if (PLACEHOLDER.test(decode(v).trim())) out.push(`${name(o)}: key ${k} holds a placeholder, not a credential`);
  }
  if (o.kind === 'ConfigMap') {
    for (const [k, v] of Object.entries(o.data ?? {})) {
      if (SECRET_NAME.test(k)) out.push(`${name(o)}: key ${k} names a credential (put it in a Secret)`);
      if (clearCredentialInUrl(v)) out.push(`${name(o)}: key ${k} has a password in clear in a URL`);
    }
  }
}

const num = (v) => (v === undefined || v === null ? undefined : Number(v));

function checkKafka(docs, out) {
  const clusters = docs.filter((o) => o.kind === 'Kafka' && o.apiVersion?.startsWith('kafka.strimzi.io/'));
  const clusterOf = (o) => o.metadata?.labels?.['strimzi.io/cluster'];
  const dispatch = docs.find((o) => o.kind === 'StatefulSet' && o.metadata?.name === 'dispatch');
  for (const k of clusters) {
    const cname = k.metadata?.name;
    const brokers = docs
      .filter((o) => o.kind === 'KafkaNodePool' && clusterOf(o) === cname && (o.spec?.roles ?? []).includes('broker'))
      .reduce((n, o) => n + (num(o.spec?.replicas) ?? 0), 0);
    if (brokers === 0) out.push(`Kafka ${cname}: no KafkaNodePool with the broker role`);
    const cfg = k.spec?.kafka?.config ?? {};
    for (const key of ['default.replication.factor', 'offsets.topic.replication.factor', 'transaction.state.log.replication.factor'])
      if (num(cfg[key]) > brokers) out.push(`Kafka ${cname}: ${key} ${cfg[key]} > ${brokers} brokers`);
    if (num(cfg['min.insync.replicas']) > (num(cfg['default.replication.factor']) ?? brokers))
      out.push(`Kafka ${cname}: min.insync.replicas ${cfg['min.insync.replicas']} > default.replication.factor`);
    if (num(cfg['transaction.state.log.min.isr']) > (num(cfg['transaction.state.log.replication.factor']) ?? brokers))
      out.push(`Kafka ${cname}: transaction.state.log.min.isr > transaction.state.log.replication.factor`);
    for (const t of docs.filter((o) => o.kind === 'KafkaTopic' && clusterOf(o) === cname)) {
      const topic = t.spec?.topicName ?? t.metadata?.name;
      const replicas = num(t.spec?.replicas) ?? num(cfg['default.replication.factor']) ?? brokers;
      if (replicas > brokers) out.push(`KafkaTopic ${topic}: replicas ${replicas} > ${brokers} brokers of ${cname}`);
      const isr = num(t.spec?.config?.['min.insync.replicas']);
      if (isr !== undefined && isr > replicas) out.push(`KafkaTopic ${topic}: min.insync.replicas ${isr} > replicas ${replicas}`);
      const shards = num(dispatch?.spec?.replicas);
      if (shards !== undefined && ['driver-locations', 'dispatch-commands'].includes(topic) && num(t.spec?.partitions) < shards)
        out.push(`KafkaTopic ${topic}: ${t.spec.partitions} partitions < ${shards} dispatch shards`);
    }
  }
}

function checkShards(docs, out) {
  const active = docs.find((o) => o.kind === 'StatefulSet' && o.metadata?.name === 'dispatch');
  const standby = docs.find((o) => o.kind === 'StatefulSet' && o.metadata?.name === 'dispatch-standby');
  if (!active || !standby) return;
  const a = num(active.spec?.replicas) ?? 1, s = num(standby.spec?.replicas) ?? 1;
  if (s !== 0 && s !== a) out.push(`StatefulSet dispatch-standby: ${s} replicas, need 0 or dispatch's ${a}`);
  const strip = (t) => JSON.stringify({c: t?.spec?.containers, i: t?.spec?.initContainers, v: t?.spec?.volumes});
  if (strip(active.spec?.template) !== strip(standby.spec?.template))
    out.push('StatefulSet dispatch-standby: its containers differ from dispatch\'s');
}

function selects(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels?.[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = labels && Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function checkAvailability(docs, out) {
  const pdbs = docs.filter((o) => o.kind === 'PodDisruptionBudget');
  for (const o of docs) {
    if (o.kind !== 'Deployment' && o.kind !== 'StatefulSet') continue;
    const labels = o.spec?.template?.metadata?.labels ?? {};
    if (labels['meridian.io/client'] !== 'true') continue;
    if (!pdbs.some((p) => selects(p.spec?.selector, labels))) out.push(`${name(o)}: no PodDisruptionBudget covers its pods`);
  }
  const gw = docs.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'gateway');
  if (gw && !(gw.spec?.template?.spec?.topologySpreadConstraints ?? []).some((c) => c.topologyKey === 'kubernetes.io/hostname'))
    out.push('Deployment gateway: no topology spread over nodes');
}

/** Every policy finding for a rendered manifest set. */
export function checkPolicy(docs, {noSecrets = false} = {}) {
  const out = [];
  for (const o of docs) {
    checkWorkload(o, out);
    checkImagesOfCustomResources(o, out);
    checkSecrets(o, out, noSecrets);
  }
  checkKafka(docs, out);
  checkShards(docs, out);
  checkAvailability(docs, out);
  return out;
}
