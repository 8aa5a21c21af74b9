// lib.mjs: the offline, strict schema check of rendered Kubernetes manifests, as an API server
// with strict field validation (kubectl's default) would judge them, with no cluster:
// - core objects (apps/v1, batch/v1, v1, ...): the Kubernetes OpenAPI schemas as compiled by
//   npm kubernetes-models (types, required fields, enums, formats), plus a walk of every field
//   against the type maps of npm @kubernetes/client-node, which rejects fields the API does not
//   have (kubernetes-models' validators ignore them);
// - custom resources: the openAPIV3Schema of the served version of the CRDs given (copied into
//   k8s/crds/), with ajv, every object schema closed (additionalProperties: false) unless it says
//   x-kubernetes-preserve-unknown-fields, as a structural-schema API server prunes and strict
//   field validation rejects; metadata as core ObjectMeta. CEL rules (x-kubernetes-validations)
//   are not evaluated.
// Pure: documents in, findings out (validateDocs); the CLI is validate.mjs.
import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import * as k8s from '@kubernetes/client-node';

export {parseStream, describe} from './read.mjs';
import {parseStream, describe} from './read.mjs';

// ---- CRDs ------------------------------------------------------------------------------

/** Close every object schema that lists properties and does not preserve unknown fields. */
function strictify(schema) {
  if (Array.isArray(schema)) return schema.map(strictify);
  if (!schema || typeof schema !== 'object') return schema;
  const s = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'x-kubernetes-validations') continue; // CEL: not evaluated here
    s[k] = k === 'enum' || k === 'required' || k === 'default' || k === 'example' ? v : strictify(v);
  }
  // Go's inline case-insensitive flag, which JavaScript's RegExp does not take
  if (typeof s.pattern === 'string' && s.pattern.includes('(?i)')) {
    s.patternCI = s.pattern.replaceAll('(?i)', '');
    delete s.pattern;
  }
  if (s['x-kubernetes-int-or-string'] && !s.type && !s.anyOf) s.anyOf = [{type: 'integer'}, {type: 'string'}];
  if (s.properties && s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields'])
    s.additionalProperties = false;
  return s;
}

function collectFormats(schema, set) {
  if (Array.isArray(schema)) schema.forEach((x) => collectFormats(x, set));
  else if (schema && typeof schema === 'object') {
    if (typeof schema.format === 'string') set.add(schema.format);
    Object.values(schema).forEach((x) => collectFormats(x, set));
  }
}

/** Load CRD files (a directory of *.yaml) into {"group/Kind": {versions: {name: {served, validate}}}}. */
export function loadCrds(dir) {
  const ajv = new Ajv({allErrors: true, strict: false, validateFormats: false});
  ajv.addKeyword({keyword: 'patternCI', type: 'string', schemaType: 'string',
                  validate: (p, data) => new RegExp(p, 'iu').test(data),
                  error: {message: (cxt) => `must match ${cxt.schema} (any case)`}});
  const crds = new Map();
  for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    for (const crd of parseStream(fs.readFileSync(path.join(dir, f), 'utf8'), f)) {
      if (crd.kind !== 'CustomResourceDefinition') continue;
      const key = `${crd.spec.group}/${crd.spec.names.kind}`;
      const versions = {};
      for (const v of crd.spec.versions) {
        const schema = strictify(v.schema.openAPIV3Schema);
        // metadata is checked as core ObjectMeta (below), apiVersion/kind by the lookup
        if (schema.properties) {
          delete schema.properties.metadata;
          schema.properties.metadata = {type: 'object'};
        }
        const formats = new Set();
        collectFormats(schema, formats);
        for (const fm of formats) if (!ajv.formats[fm]) ajv.addFormat(fm, true);
        versions[v.name] = {served: v.served, validate: ajv.compile(schema)};
      }
      crds.set(key, {file: f, versions});
    }
  }
  return crds;
}

// ---- core objects ----------------------------------------------------------------------

const modelCache = new Map();

/** kubernetes-models' class for apiVersion/kind, or null when the API has no such type. */
async function coreModel(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  let cls = null;
  try {
    const mod = await import(`kubernetes-models/${apiVersion}`);
    cls = typeof mod[kind] === 'function' ? mod[kind] : null;
  } catch {
    cls = null;
  }
  modelCache.set(key, cls);
  return cls;
}

const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/** @kubernetes/client-node's class (with its attribute type map) for apiVersion/kind. */
function clientType(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const names = [];
  if (group) names.push(cap(group.split('.')[0]) + cap(version) + kind);
  names.push(cap(version) + kind);
  for (const n of names) if (typeof k8s[n]?.getAttributeTypeMap === 'function') return n;
  return null;
}

/** Every field of value that the type typeName does not have, as JSON paths. */
export function unknownFields(value, typeName, at, out) {
  if (value === null || value === undefined) return out;
  let m;
  if ((m = /^Array<(.+)>$/.exec(typeName))) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, m[1], `${at}[${i}]`, out));
    return out;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(typeName))) {
    if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${at}.${k}`, out);
    return out;
  }
  const cls = k8s[typeName];
  if (typeof cls?.getAttributeTypeMap !== 'function') return out; // scalar, any, IntOrString, Date
  if (!value || typeof value !== 'object' || Array.isArray(value)) return out; // the type check reports it
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!attrs.has(k)) out.push(`${at}.${k}: unknown field (not in ${typeName})`);
    else unknownFields(v, attrs.get(k), `${at}.${k}`, out);
  }
  return out;
}

function ajvErrors(errors) {
  return (errors ?? []).map((e) => {
    const where = e.instancePath ? e.instancePath.replace(/\//g, '.') : '.';
    if (e.keyword === 'additionalProperties') return `${where}.${e.params.additionalProperty}: unknown field`;
    if (e.keyword === 'required') return `${where}: missing required field ${e.params.missingProperty}`;
    if (e.keyword === 'enum') return `${where}: must be one of ${JSON.stringify(e.params.allowedValues)}`;
    return `${where}: ${e.message}`;
  });
}

// ---- one object ------------------------------------------------------------------------

/** The findings (strings) for one object; [] when it is valid. */
export async function validateObject(obj, crds) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return ['not an object'];
  const {apiVersion, kind} = obj;
  if (typeof apiVersion !== 'string' || !apiVersion) return ['missing apiVersion'];
  if (typeof kind !== 'string' || !kind) return ['missing kind'];
  const findings = [];
  const meta = obj.metadata;
  if (!meta || typeof meta !== 'object') findings.push('.metadata: missing');
  else {
    if (!meta.name && !meta.generateName) findings.push('.metadata.name: missing');
    unknownFields(meta, 'V1ObjectMeta', '.metadata', findings);
  }

  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  const version = apiVersion.includes('/') ? apiVersion.split('/')[1] : apiVersion;
  const crd = crds.get(`${group}/${kind}`);
  if (crd) {
    const v = crd.versions[version];
    if (!v || !v.served) {
      const served = Object.entries(crd.versions).filter(([, x]) => x.served).map(([n]) => n);
      findings.push(`no version ${version} of ${group}/${kind} is served (the CRD ${crd.file} serves ${served.join(', ')})`);
      return findings;
    }
    if (!v.validate(obj)) findings.push(...ajvErrors(v.validate.errors));
    return findings;
  }

  const Model = await coreModel(apiVersion, kind);
  const typeName = clientType(apiVersion, kind);
  if (!Model || !typeName) {
    findings.push(`unknown kind: neither a Kubernetes API type nor a custom resource of the CRDs given`);
    return findings;
  }
  let checked = obj;
  if (apiVersion === 'v1' && (kind === 'Secret' || kind === 'ConfigMap') && obj.data && typeof obj.data === 'object') {
    // base64 in data/binaryData: kustomize folds it over lines, and the API server's decoder
    // (Go's encoding/base64) skips CR and LF, so the check does too
    const field = kind === 'Secret' ? 'data' : 'binaryData';
    if (obj[field] && typeof obj[field] === 'object') {
      const unfolded = {};
      for (const [k, v] of Object.entries(obj[field])) unfolded[k] = typeof v === 'string' ? v.replace(/[\r\n]/g, '') : v;
      checked = {...obj, [field]: unfolded};
    }
  }
  try {
    new Model(checked).validate();
  } catch (e) {
    if (e?.errors) findings.push(...ajvErrors(e.errors));
    else findings.push(String(e?.message ?? e));
  }
  const unknown = [];
  unknownFields(obj, typeName, '', unknown);
  findings.push(...unknown.filter((u) => !u.startsWith('.metadata.')));
  return findings;
}

/** Validate documents; returns [{object, findings}] for the invalid ones. */
export async function validateDocs(docs, crds) {
  const bad = [];
  for (const obj of docs) {
    const findings = await validateObject(obj, crds);
    if (findings.length) bad.push({object: describe(obj), findings});
  }
  return bad;
}
