// read.mjs: multi-document YAML streams (rendered manifests) into plain objects; kept apart from
// lib.mjs so that the policy checks load without the schema libraries.
import YAML from 'yaml';

/** Parse a multi-document YAML stream into plain objects (empty documents dropped). */
export function parseStream(text, source) {
  const out = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${source}: YAML: ${doc.errors[0].message}`);
    const v = doc.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

export function describe(obj) {
  const ns = obj?.metadata?.namespace ? `${obj.metadata.namespace}/` : '';
  return `${obj?.apiVersion ?? '?'} ${obj?.kind ?? '?'} ${ns}${obj?.metadata?.name ?? '?'}`;
}

