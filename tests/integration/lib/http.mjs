// http: requests to a Billow api, each response checked against the contract.
//
// A request names its route by template ('/v1/customers/{id}') with the
// values in `params`, so the helper can look the operation up in
// docs/openapi.yaml and check every response: its status must be
// documented and its body must validate (lib/openapi.mjs). Every response
// must also carry a well-formed Request-Id, and an error body's request_id
// must equal it. Responses come back as {status, headers, json, text}.

import assert from 'node:assert/strict';

import { assertMatchesErrorSchema, assertMatchesSpec } from './openapi.mjs';

export const REQUEST_ID_RE = /^req_[0-9A-HJKMNP-TV-Z]{26}$/;

// Longest a single request may take before the test fails instead of hanging.
const REQUEST_TIMEOUT_MS = 60000;

function fillTemplate(route, params = {}) {
  return route.replace(/\{([^}]+)\}/g, (_, name) => {
    assert.ok(name in params, `route ${route} needs params.${name}`);
    return encodeURIComponent(params[name]);
  });
}

function headersObject(h) {
  const out = {};
  for (const [k, v] of h.entries()) out[k.toLowerCase()] = v;
  return out;
}

// Checks what every Billow response must have, and its fit to the contract.
// spec: true checks METHOD route in docs/openapi.yaml; 'error' checks the
// error schema only (for requests no documented operation matches).
export function checkResponse(method, route, res, spec = true) {
  const where = `${method} ${route} → ${res.status}`;
  assert.match(res.headers['request-id'] ?? '', REQUEST_ID_RE, `${where}: missing or malformed Request-Id`);
  if (res.json?.error && typeof res.json.error === 'object' && 'request_id' in res.json.error) {
    assert.equal(res.json.error.request_id, res.headers['request-id'], `${where}: error.request_id differs from Request-Id`);
  }
  const body = res.json !== undefined ? res.json : res.text;
  if (spec === 'error') {
    assertMatchesErrorSchema(res.json);
  } else if (spec) {
    assertMatchesSpec(method, route, res.status, body, {
      contentType: res.headers['content-type'],
      headers: res.headers,
    });
  }
}

// A client for an api: a process from lib/stack.mjs startApi() (whose exit
// status and log are then quoted when a request fails at the network level),
// or a base URL ("http://127.0.0.1:18081").
export function client(target) {
  const baseUrl = typeof target === 'string' ? target : target.url;
  const proc = typeof target === 'string' ? null : target;
  // opts: params (template values), query (object), json (body sent as
  // application/json), body (raw body; set Content-Type in headers), token
  // (Bearer), headers, spec (see checkResponse).
  async function request(method, route, opts = {}) {
    const url = new URL(fillTemplate(route, opts.params), baseUrl);
    for (const [k, v] of Object.entries(opts.query || {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers = { ...(opts.headers || {}) };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] ??= 'application/json';
    }
    const started = Date.now();
    let r;
    let text;
    try {
      r = await fetch(url, {
        method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS),
      });
      text = await r.text();
    } catch (e) {
      const cause = e.cause?.code ?? e.cause?.message ?? e.message;
      const state = proc ? `\n${proc.statusReport()}` : '';
      const err = new Error(`${method} ${url.pathname}: no answer (${cause})${state}`);
      err.network = true;
      throw err;
    }
    const res = { status: r.status, headers: headersObject(r.headers), text, json: undefined, elapsedMs: Date.now() - started };
    if ((res.headers['content-type'] || '').toLowerCase().startsWith('application/json')) {
      try {
        res.json = JSON.parse(text);
      } catch (e) {
        assert.fail(`${method} ${route} → ${r.status}: Content-Type is JSON but the body is not: ${text.slice(0, 300)}`);
      }
    }
    checkResponse(method, route, res, opts.spec ?? true);
    return res;
  }

  return {
    baseUrl,
    request,
    get: (route, opts) => request('GET', route, opts),
    post: (route, opts) => request('POST', route, opts),
    delete: (route, opts) => request('DELETE', route, opts),
  };
}

// Asserts res is the error `code` with `status` (and `param`, `type` when given).
export function assertError(res, status, code, { param, type } = {}) {
  const what = `expected ${status} ${code}, got ${res.status} ${res.text.slice(0, 400)}`;
  assert.equal(res.status, status, what);
  assert.ok(res.json?.error, what);
  assert.equal(res.json.error.code, code, what);
  if (param !== undefined) assert.equal(res.json.error.param, param, what);
  if (type !== undefined) assert.equal(res.json.error.type, type, what);
}
