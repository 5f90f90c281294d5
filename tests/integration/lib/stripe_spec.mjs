// stripe_spec: holds Stripe API requests against Stripe's published
// parameter schemas (tests/fakes/stripe/spec_subset.json, extracted from
// Stripe's OpenAPI spec by tests/fakes/stripe/extract_spec.mjs).
//
// The Stripe fake rejects requests with this same code, so what the fake
// accepts and what these checks pass cannot drift apart; the integration
// tests also run every request the fake logged through checkRequest, which
// catches a parameter Billow sends that Stripe would refuse.
//
// Form bodies arrive as strings, so a value is valid for `integer` if it
// reads as one ("42"), for `boolean` if it is "true" or "false"; objects
// sent with indices (tax_id_data[0][type]=…) count as arrays where the
// schema wants an array.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { extract } from '../../fakes/stripe/extract_spec.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_SPEC = path.join(HERE, '..', '..', 'fakes', 'stripe', 'spec_subset.json');

// Stripe's codes for the problems it names with a code; the others (a bad
// boolean, an enum value, a wrong shape) come back with a message only.
const CODES = {
  unknown: 'parameter_unknown',
  missing: 'parameter_missing',
  integer: 'parameter_invalid_integer',
  empty: 'parameter_invalid_empty',
};

let cached = null;

// The spec subset: from $STRIPE_SPEC if set (the subset, or Stripe's full
// spec, which is cut down the way extract_spec.mjs does), else the committed
// subset. Read once.
export function loadSpec() {
  if (cached) return cached;
  const file = process.env.STRIPE_SPEC || DEFAULT_SPEC;
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  cached = doc.paths ? extract(doc) : doc;
  return cached;
}

// The operation a concrete request is for: {key, op, pathParams}, or null.
// Templates' {name} segments match one path segment (an object id).
export function findOperation(spec, method, urlPath) {
  const want = method.toUpperCase();
  const segs = urlPath.split('/');
  let best = null;
  for (const [key, op] of Object.entries(spec.operations)) {
    const [m, template] = key.split(' ');
    if (m !== want) continue;
    const tsegs = template.split('/');
    if (tsegs.length !== segs.length) continue;
    const pathParams = {};
    let ok = true;
    for (let i = 0; i < tsegs.length && ok; i++) {
      const t = /^\{(\w+)\}$/.exec(tsegs[i]);
      if (t && segs[i] !== '') pathParams[t[1]] = decodeURIComponent(segs[i]);
      else ok = tsegs[i] === segs[i];
    }
    // A literal segment beats a parameter: /v1/payment_intents/search is
    // not the intent "search".
    if (ok && (!best || Object.keys(pathParams).length < Object.keys(best.pathParams).length)) best = { key, op, pathParams };
  }
  return best;
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// An object whose keys are all 0, 1, 2… (from a[0]=x&a[1]=y) as an array.
function indexedToArray(v) {
  if (!isPlainObject(v)) return null;
  const keys = Object.keys(v);
  if (!keys.every((k) => /^(0|[1-9]\d*)$/.test(k))) return null;
  return keys.sort((a, b) => a - b).map((k) => v[k]);
}

function effectiveType(schema) {
  return schema.type || (schema.properties || schema.additionalProperties !== undefined ? 'object' : undefined);
}

// Whether a value has the shape (object, array, scalar) a schema branch
// wants, to pick which anyOf branch's problems to report.
function fitsShape(schema, v) {
  const t = effectiveType(schema);
  if (t === 'object') return isPlainObject(v) && !indexedToArray(v)?.length;
  if (t === 'array') return Array.isArray(v) || indexedToArray(v) !== null;
  return !isPlainObject(v) && !Array.isArray(v);
}

const child = (name, key) => (name ? `${name}[${key}]` : String(key));

function problem(list, kind, param, message) {
  const p = { kind, param, message };
  if (CODES[kind]) p.code = CODES[kind];
  list.push(p);
}

function emptyMessage(param) {
  return `You passed an empty string for '${param}'. We assume empty values are an attempt to unset a parameter; however '${param}' cannot be unset. You should remove '${param}' from your request or supply a non-empty value.`;
}

function oneOfList(values) {
  const v = values.filter((x) => x !== '');
  return v.length <= 1 ? v.join('') : `${v.slice(0, -1).join(', ')}${v.length > 2 ? ',' : ''} or ${v[v.length - 1]}`;
}

const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

// Checks value against schema, pushing problems; returns the value
// normalised (numbers, booleans, arrays) for the fake to use.
function checkValue(schema, value, name, out) {
  if (schema.anyOf) {
    const fitting = schema.anyOf.filter((b) => fitsShape(b, value));
    let first = null;
    for (const branch of fitting.length ? fitting : schema.anyOf) {
      const probs = [];
      const v = checkValue(branch, value, name, probs);
      if (probs.length === 0) return v;
      first ||= probs;
    }
    out.push(...first);
    return value;
  }
  const type = effectiveType(schema);
  if (value === '' && type !== 'string') {
    problem(out, 'empty', name, emptyMessage(name));
    return value;
  }
  switch (type) {
    case 'object': {
      if (!isPlainObject(value)) {
        problem(out, 'type', name, 'Invalid object');
        return value;
      }
      const props = schema.properties || {};
      const extra = schema.additionalProperties;
      const res = {};
      for (const [k, v] of Object.entries(value)) {
        if (Object.hasOwn(props, k)) res[k] = checkValue(props[k], v, child(name, k), out);
        else if (isPlainObject(extra)) res[k] = checkValue(extra, v, child(name, k), out);
        else problem(out, 'unknown', child(name, k), `Received unknown parameter: ${child(name, k)}`);
      }
      for (const r of schema.required || []) {
        if (!Object.hasOwn(value, r)) problem(out, 'missing', child(name, r), `Missing required param: ${child(name, r)}.`);
      }
      return res;
    }
    case 'array': {
      const arr = Array.isArray(value) ? value : indexedToArray(value);
      if (!arr) {
        problem(out, 'type', name, 'Invalid array');
        return value;
      }
      return arr.map((v, i) => (schema.items ? checkValue(schema.items, v, child(name, i), out) : v));
    }
    case 'integer': {
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
      if (typeof value === 'string' && /^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
      problem(out, 'integer', name, `Invalid integer: ${show(value)}`);
      return value;
    }
    case 'number': {
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
      problem(out, 'type', name, `Invalid decimal: ${show(value)}`);
      return value;
    }
    case 'boolean': {
      if (value === true || value === 'true') return true;
      if (value === false || value === 'false') return false;
      problem(out, 'type', name, `Invalid boolean: ${show(value)}`);
      return value;
    }
    case 'string': {
      if (typeof value === 'number') value = String(value);
      if (typeof value !== 'string') {
        problem(out, 'type', name, `Invalid string: ${show(value)}`);
        return value;
      }
      if (schema.enum && !schema.enum.includes(value) && !schema['x-stripeBypassValidation']) {
        if (value === '') problem(out, 'empty', name, emptyMessage(name));
        else problem(out, 'enum', name, `Invalid ${name}: must be one of ${oneOfList(schema.enum)}`);
      } else if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        problem(out, 'too_long', name, `Invalid string: ${value.slice(0, 20)}...; must be at most ${schema.maxLength} characters`);
      }
      return value;
    }
    default:
      return value;
  }
}

// Checks the parameters of one operation (from findOperation): problems
// (empty when valid) and the parameters normalised.
export function checkParams(op, params) {
  const problems = [];
  const normalised = checkValue(op.params, params ?? {}, '', problems);
  return { problems, params: normalised };
}

// Problems with one request {method, path, params} (params: the decoded
// form body or query, nested); [] when Stripe would accept its parameters.
// A path without a query string, e.g. /v1/payment_intents/pi_123/confirm.
export function checkRequest({ method, path: urlPath, params }, spec = loadSpec()) {
  const found = findOperation(spec, method, urlPath.split('?')[0]);
  if (!found) {
    return [{ kind: 'operation', param: null, message: `${method} ${urlPath} is not an operation of the spec subset` }];
  }
  return checkParams(found.op, params).problems;
}
