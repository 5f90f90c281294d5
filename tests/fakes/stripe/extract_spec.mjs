// extract_spec: builds tests/fakes/stripe/spec_subset.json, the parameter
// schemas of the Stripe endpoints Billow calls (and the field names of the
// objects they answer), from Stripe's full OpenAPI spec (2.6 MB, kept
// outside the repository).
//
// The Stripe fake rejects parameters the subset does not know, and the
// integration tests' checker (tests/integration/lib/stripe_spec.mjs) holds
// every request Billow sent against the same subset, so both agree with
// Stripe's published API without the repository carrying the whole spec.
//
//   node tests/fakes/stripe/extract_spec.mjs /path/to/spec3.json
//
// writes spec_subset.json next to this file. Run it again (and commit the
// result) when Billow starts calling another endpoint: add it to OPERATIONS.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The operations Billow calls (docs/architecture.md, "Payments") plus the reads
// and updates the fake serves for tests.
export const OPERATIONS = [
  ['post', '/v1/customers'],
  ['get', '/v1/customers/{customer}'],
  ['post', '/v1/customers/{customer}'],
  ['post', '/v1/setup_intents'],
  ['get', '/v1/setup_intents/{intent}'],
  ['post', '/v1/payment_intents'],
  ['get', '/v1/payment_intents/search'],
  ['get', '/v1/payment_intents/{intent}'],
  ['post', '/v1/payment_intents/{intent}/confirm'],
  ['post', '/v1/payment_intents/{intent}/cancel'],
  ['get', '/v1/refunds'],
  ['post', '/v1/refunds'],
  ['get', '/v1/refunds/{refund}'],
  ['get', '/v1/charges/{charge}'],
];

// The objects those operations answer with (and the event envelope and
// error object): only their top-level field names and required fields, so a
// test can tell a field Stripe does not have from a missing one.
export const OBJECTS = ['customer', 'payment_intent', 'charge', 'refund', 'setup_intent', 'payment_method', 'dispute', 'event', 'api_errors'];

// Schema keywords a parameter check needs; descriptions and titles are
// dropped to keep the file small. x-stripeBypassValidation marks enums
// Stripe itself does not enforce, so the checker must not either.
const KEEP = new Set(['type', 'properties', 'additionalProperties', 'items', 'required', 'enum', 'anyOf', 'format', 'maxLength', 'x-stripeBypassValidation']);

function resolveRef(spec, ref) {
  if (!ref.startsWith('#/')) throw new Error(`external $ref ${ref}`);
  return ref.slice(2).split('/').reduce((node, part) => node[part], spec);
}

// A copy of schema with $refs inlined and only the KEEP keywords.
function slim(spec, schema, depth = 0) {
  if (depth > 20) throw new Error('schema nests too deep (a recursive $ref?)');
  if (schema.$ref) return slim(spec, resolveRef(spec, schema.$ref), depth + 1);
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (!KEEP.has(k)) continue;
    if (k === 'properties') {
      out.properties = {};
      for (const [name, sub] of Object.entries(v)) out.properties[name] = slim(spec, sub, depth + 1);
    } else if (k === 'items' || (k === 'additionalProperties' && typeof v === 'object')) {
      out[k] = slim(spec, v, depth + 1);
    } else if (k === 'anyOf') {
      out.anyOf = v.map((sub) => slim(spec, sub, depth + 1));
    } else {
      out[k] = v;
    }
  }
  return out;
}

// One operation as {operation_id, path_params, params}: params is a single
// object schema holding the form body's fields (POST) or the query
// parameters (GET), as Stripe reads one or the other.
function extractOperation(spec, method, template) {
  const op = spec.paths[template]?.[method];
  if (!op) throw new Error(`the spec has no ${method.toUpperCase()} ${template}`);
  const pathParams = [];
  const params = { type: 'object', properties: {}, additionalProperties: false };
  for (const p of op.parameters || []) {
    if (p.in === 'path') pathParams.push(p.name);
    else if (p.in === 'query') {
      params.properties[p.name] = slim(spec, p.schema);
      if (p.required) (params.required ||= []).push(p.name);
    }
  }
  if (method === 'post') {
    const body = op.requestBody?.content?.['application/x-www-form-urlencoded']?.schema;
    if (!body) throw new Error(`${template}: no form body schema`);
    Object.assign(params, slim(spec, body));
  }
  return { operation_id: op.operationId, path_params: pathParams, params };
}

// The subset document made from a parsed full spec.
export function extract(spec) {
  const operations = {};
  for (const [method, template] of OPERATIONS) {
    operations[`${method.toUpperCase()} ${template}`] = extractOperation(spec, method, template);
  }
  const objects = {};
  for (const name of OBJECTS) {
    const schema = spec.components.schemas[name];
    if (!schema) throw new Error(`the spec has no schema ${name}`);
    objects[name] = { fields: Object.keys(schema.properties).sort(), required: [...(schema.required || [])].sort() };
  }
  return {
    source: `Stripe's OpenAPI spec (github.com/stripe/openapi, openapi/spec3), version ${spec.info.version}`,
    note: 'Generated by tests/fakes/stripe/extract_spec.mjs; do not edit by hand. operations: request parameter schemas (params is the form body for POST, the query for GET); objects: top-level field names of the objects answered.',
    api_version: spec.info.version,
    objects,
    operations,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const src = process.argv[2];
  if (!src) {
    console.error('usage: node extract_spec.mjs /path/to/spec3.json');
    process.exit(2);
  }
  const subset = extract(JSON.parse(fs.readFileSync(src, 'utf8')));
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'spec_subset.json');
  // One line per operation (and one for all objects): small, and a diff
  // still shows which operation changed.
  const ops = Object.entries(subset.operations).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  const head = Object.entries(subset).filter(([k]) => k !== 'operations').map(([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  fs.writeFileSync(out, `{\n${head.join('\n')}\n "operations": {\n${ops.join(',\n')}\n }\n}\n`);
  console.log(`wrote ${out} (${fs.statSync(out).size} bytes, ${Object.keys(subset.operations).length} operations)`);
}
