// openapi: checks responses against docs/openapi.yaml, the API contract.
//
// The document is loaded with `yaml` and handed whole to Ajv (JSON Schema
// 2020-12, as OpenAPI 3.1 uses), so a response schema is compiled as a
// reference into the document and its own $refs resolve in place.
// assertMatchesSpec() fails a test when the status is not documented for
// the operation (no exact code, no "4XX"-style range, no default), when the
// response's media type is not documented for that status, when a header
// the document marks required is missing, or when the body does not
// validate. The http helper calls it for every response.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

import { ROOT } from './env.mjs';

export const SPEC_PATH = path.join(ROOT, 'docs', 'openapi.yaml');

// The $id the document is registered under, so references into it resolve.
const DOC_ID = 'https://billow.invalid/openapi.json';

let cached = null;

// OpenAPI 3.0 marks nullable values with `nullable: true`, which JSON Schema
// does not know; rewritten as a type union so null validates as 3.0 means.
function nullableToTypeUnion(node) {
  if (Array.isArray(node)) {
    node.forEach(nullableToTypeUnion);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  if (node.nullable === true) {
    if (typeof node.type === 'string') node.type = [node.type, 'null'];
    else if (node.enum) node.enum = [...node.enum, null];
    else if (!node.type) {
      const alt = { ...node };
      delete alt.nullable;
      for (const k of Object.keys(node)) delete node[k];
      node.anyOf = [alt, { type: 'null' }];
    }
    delete node.nullable;
  }
  for (const v of Object.values(node)) nullableToTypeUnion(v);
}

function load() {
  if (cached) return cached;
  if (!fs.existsSync(SPEC_PATH)) {
    throw new Error(`${SPEC_PATH} does not exist: responses cannot be checked against the contract`);
  }
  const text = fs.readFileSync(SPEC_PATH, 'utf8');
  const doc = YAML.parse(text);
  assert.ok(doc && typeof doc === 'object' && doc.paths, 'docs/openapi.yaml has no paths');
  const forAjv = structuredClone(doc);
  if (String(forAjv.openapi).startsWith('3.0')) nullableToTypeUnion(forAjv);
  forAjv.$id = DOC_ID;
  const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false, validateSchema: false });
  addFormats(ajv);
  ajv.addSchema(forAjv);
  cached = { doc, ajv, validators: new Map() };
  return cached;
}

// The parsed document, as docs/openapi.yaml says it (for /openapi.json).
export function specDocument() {
  return load().doc;
}

function pointerEscape(s) {
  return String(s).replaceAll('~', '~0').replaceAll('/', '~1');
}

// The object a local $ref ("#/components/…") points at.
function resolveOnce(doc, ref) {
  assert.ok(ref.startsWith('#/'), `only local $ref is supported: ${ref}`);
  let cur = doc;
  for (const part of ref.slice(2).split('/')) {
    cur = cur?.[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  assert.ok(cur !== undefined, `unresolved $ref ${ref} in docs/openapi.yaml`);
  return cur;
}

// Follows $ref of a non-schema object (a response, a header) within the
// document. `pointer` is where obj sits; the answer says where the object
// finally found sits, so schemas under it can be compiled by pointer.
function derefAt(doc, obj, pointer) {
  for (let hops = 0; obj && typeof obj === 'object' && typeof obj.$ref === 'string'; hops++) {
    assert.ok(hops < 32, `$ref loop at ${obj.$ref}`);
    pointer = obj.$ref.slice(1);
    obj = resolveOnce(doc, obj.$ref);
  }
  return { obj, pointer };
}

function deref(doc, obj) {
  return derefAt(doc, obj, '').obj;
}

// A validator for the schema at a JSON pointer into the document.
function validatorAt(pointer) {
  const s = load();
  let v = s.validators.get(pointer);
  if (!v) {
    v = s.ajv.compile({ $ref: `${DOC_ID}#${pointer}` });
    s.validators.set(pointer, v);
  }
  return v;
}

function baseType(contentType) {
  return String(contentType || '').split(';')[0].trim().toLowerCase();
}

// The documented media type key that covers contentType, or undefined.
function mediaKey(content, contentType) {
  const want = baseType(contentType);
  const keys = Object.keys(content || {});
  return (
    keys.find((k) => baseType(k) === want) ??
    keys.find((k) => {
      const [t, sub] = baseType(k).split('/');
      return sub === '*' && (t === '*' || t === want.split('/')[0]);
    })
  );
}

function formatErrors(errors) {
  return (errors || [])
    .slice(0, 12)
    .map((e) => `${e.instancePath || '(body)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
    .join('\n  ');
}

function describeBody(body) {
  const t = typeof body === 'string' ? body : JSON.stringify(body);
  return t === undefined ? 'undefined' : t.length > 800 ? `${t.slice(0, 800)}…` : t;
}

// The response object documented for an operation and status: the exact
// code, then its range ("4XX"), then "default". Fails when none is.
function responseFor(method, pathTemplate, status) {
  const { doc } = load();
  const { obj: item, pointer: itemPointer } = derefAt(doc, doc.paths[pathTemplate], `/paths/${pointerEscape(pathTemplate)}`);
  assert.ok(item, `docs/openapi.yaml has no path ${pathTemplate}`);
  const m = method.toLowerCase();
  const op = item[m];
  assert.ok(op, `docs/openapi.yaml has no operation ${method.toUpperCase()} ${pathTemplate}`);
  const responses = op.responses || {};
  const code = String(status);
  const key = [code, `${code[0]}XX`, `${code[0]}xx`, 'default'].find((k) => k in responses);
  assert.ok(
    key,
    `${method.toUpperCase()} ${pathTemplate} answered ${status}, which docs/openapi.yaml does not document ` +
      `(documented: ${Object.keys(responses).join(', ') || 'none'})`,
  );
  const at = derefAt(doc, responses[key], `${itemPointer}/${m}/responses/${pointerEscape(key)}`);
  return { response: at.obj, pointer: at.pointer };
}

// Asserts that status is documented for METHOD pathTemplate and that body
// (parsed JSON, or text for other media types) validates against the
// documented schema. opts.contentType is the response's Content-Type
// (JSON assumed when absent); opts.headers (lower-case names) are checked
// for the headers the document marks required.
export function assertMatchesSpec(method, pathTemplate, status, body, opts = {}) {
  const { doc } = load();
  const where = `${method.toUpperCase()} ${pathTemplate} → ${status}`;
  const { response, pointer } = responseFor(method, pathTemplate, status);

  if (opts.headers) {
    for (const [name, h] of Object.entries(response.headers || {})) {
      const header = deref(doc, h);
      if (header?.required) {
        assert.ok(
          opts.headers[name.toLowerCase()] !== undefined,
          `${where}: header ${name} is required by docs/openapi.yaml but missing`,
        );
      }
    }
  }

  const hasBody = body !== undefined && body !== null && body !== '';
  const content = response.content;
  if (!hasBody) {
    return;
  }
  const contentType = opts.contentType ?? 'application/json';
  assert.ok(content, `${where}: the response has a body but docs/openapi.yaml documents none`);
  const key = mediaKey(content, contentType);
  assert.ok(
    key,
    `${where}: media type ${baseType(contentType)} is not documented (documented: ${Object.keys(content).join(', ')})`,
  );
  if (!content[key]?.schema) return;
  const validate = validatorAt(`${pointer}/content/${pointerEscape(key)}/schema`);
  const ok = validate(body);
  assert.ok(
    ok,
    `${where}: body does not match docs/openapi.yaml:\n  ${formatErrors(validate.errors)}\nbody: ${describeBody(body)}`,
  );
}

// The pointer of the error envelope schema: components.schemas.Error (or
// the first component schema with an `error` property).
function errorSchemaPointer() {
  const { doc } = load();
  const schemas = doc.components?.schemas || {};
  const name =
    ['Error', 'ErrorResponse', 'ErrorEnvelope'].find((n) => n in schemas) ??
    Object.keys(schemas).find((n) => deref(doc, schemas[n])?.properties?.error);
  assert.ok(name, 'docs/openapi.yaml has no error schema in components.schemas');
  return `/components/schemas/${pointerEscape(name)}`;
}

// Asserts body is the documented error envelope. For answers the HTTP layer
// gives before any route matched (malformed request, head too large or too
// slow), which belong to no operation.
export function assertMatchesErrorSchema(body) {
  const validate = validatorAt(errorSchemaPointer());
  assert.ok(
    validate(body),
    `error body does not match the error schema of docs/openapi.yaml:\n  ${formatErrors(validate.errors)}\nbody: ${describeBody(body)}`,
  );
}
