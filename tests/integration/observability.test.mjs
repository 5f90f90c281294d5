// What the api tells about itself: /healthz, /readyz, the Prometheus
// /metrics families of the contract, /openapi.json (the same document as
// docs/openapi.yaml) and /docs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { DEMO_API_KEY, PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { specDocument } from './lib/openapi.mjs';
import { Stack } from './lib/stack.mjs';
import { newId } from './lib/util.mjs';

const S = slot(9);
const stack = new Stack('observability', S);
let api;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
});

after(async () => {
  await stack.stopAll();
});

// Prometheus text → {types: {family: type}, samples: [{name, labels, value}]}.
function parseMetrics(text) {
  const types = {};
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types[t[1]] = t[2];
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `a well-formed sample line: ${line}`);
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { types, samples };
}

async function scrape() {
  const res = await api.get('/metrics', { token: PLATFORM_ADMIN_TOKEN });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain/);
  assert.match(res.headers['content-type'], /version=0\.0\.4/);
  return parseMetrics(res.text);
}

describe('health and readiness', () => {
  it('GET /healthz is 200 {"status":"ok"}', async () => {
    const res = await api.get('/healthz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: 'ok' });
  });

  it('GET /readyz is 200 with Postgres and Redis ok', async () => {
    const res = await api.get('/readyz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: 'ready', postgres: 'ok', redis: 'ok' });
  });
});

describe('GET /metrics', () => {
  it('has every metric family of the contract, with its labels', async () => {
    // Traffic of each kind first: a read, a job, a 404.
    assert.equal((await api.get('/healthz')).status, 200);
    assert.equal((await api.post('/v1/customers', { token: DEMO_API_KEY, json: { name: 'Counted' } })).status, 202);
    assert.equal((await api.get('/v1/customers/{id}', { params: { id: newId('cus') }, token: DEMO_API_KEY })).status, 404);

    const { types, samples } = await scrape();
    assert.equal(types.billow_http_requests_total, 'counter');
    assert.equal(types.billow_http_request_duration_seconds, 'histogram');
    assert.equal(types.billow_jobs_enqueued_total, 'counter');
    assert.equal(types.billow_queue_depth, 'gauge');
    assert.equal(types.billow_dead_jobs, 'gauge');

    const requests = samples.filter((s) => s.name === 'billow_http_requests_total');
    for (const s of requests) {
      for (const l of ['route', 'method', 'status']) assert.ok(l in s.labels, `label ${l} on ${JSON.stringify(s)}`);
    }
    const posts = requests.filter((s) => s.labels.method === 'POST' && s.labels.status === '202');
    assert.ok(posts.some((s) => /customers/.test(s.labels.route) && s.value >= 1), `a POST 202 on the customers route: ${JSON.stringify(requests)}`);
    assert.ok(requests.some((s) => s.labels.status === '404' && s.value >= 1), 'the 404 is counted');

    const buckets = samples.filter((s) => s.name === 'billow_http_request_duration_seconds_bucket');
    assert.ok(buckets.length > 0, 'histogram buckets');
    assert.ok(buckets.every((s) => 'le' in s.labels), 'every bucket has le');
    const counts = samples.filter((s) => s.name === 'billow_http_request_duration_seconds_count');
    assert.ok(counts.length > 0 && samples.some((s) => s.name === 'billow_http_request_duration_seconds_sum'), '_sum and _count');
    for (const c of counts) {
      const key = JSON.stringify(c.labels);
      const inf = buckets.find((b) => b.labels.le === '+Inf' && JSON.stringify({ ...b.labels, le: undefined }) === JSON.stringify({ ...c.labels, le: undefined }));
      assert.ok(inf, `a +Inf bucket for ${key}`);
      assert.equal(inf.value, c.value, `the +Inf bucket equals _count for ${key}`);
    }

    const enqueued = samples.find((s) => s.name === 'billow_jobs_enqueued_total' && s.labels.type === 'customer.create');
    assert.ok(enqueued && enqueued.value >= 1, `jobs enqueued of customer.create: ${JSON.stringify(enqueued)}`);

    const depth = samples.filter((s) => s.name === 'billow_queue_depth');
    assert.ok(depth.length > 0 && depth.every((s) => 'stream' in s.labels), `queue depth by stream: ${JSON.stringify(depth)}`);
    const domain = depth.find((s) => /domain/.test(s.labels.stream));
    assert.ok(domain && domain.value >= 1, `the queued job shows in the domain stream's depth (no worker runs): ${JSON.stringify(depth)}`);
    const dead = samples.filter((s) => s.name === 'billow_dead_jobs');
    assert.ok(dead.length > 0 && dead.every((s) => 'stream' in s.labels), `dead jobs by stream: ${JSON.stringify(dead)}`);
  });

  it('counters only grow: a request to /healthz adds to its counter', async () => {
    const count = (m) =>
      m.samples
        .filter((s) => s.name === 'billow_http_requests_total' && s.labels.method === 'GET' && s.labels.status === '200' && /healthz/.test(s.labels.route))
        .reduce((a, s) => a + s.value, 0);
    const before = count(await scrape());
    for (let i = 0; i < 3; i++) await api.get('/healthz');
    const afterCount = count(await scrape());
    assert.ok(afterCount >= before + 3, `healthz counter went from ${before} to ${afterCount}`);
  });
});

describe('the API document', () => {
  it('GET /openapi.json is the same document as docs/openapi.yaml', async () => {
    const res = await api.get('/openapi.json');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^application\/json/);
    assert.deepEqual(res.json, specDocument());
  });

  it('GET /docs is an HTML page that loads /openapi.json', async () => {
    const res = await api.get('/docs');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^text\/html/);
    assert.match(res.text, /<html/i);
    assert.match(res.text, /openapi\.json/);
  });
});
