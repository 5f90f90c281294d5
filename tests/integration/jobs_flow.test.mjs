// Jobs from request to result: enqueue → process → status, Idempotency-Key
// replays and conflicts, Prefer: wait (answered, capped, timed out, failed),
// and the job routes' own errors.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, waitJob } from './lib/billow.mjs';
import { DEMO_API_KEY, DEMO_TENANT_ID, PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { assertError, client, REQUEST_ID_RE } from './lib/http.mjs';
import { redisValue } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, newId, tag } from './lib/util.mjs';

const S = slot(1);
const stack = new Stack('jobs_flow', S);
let api;

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

before(async () => {
  await stack.flushRedis();
  const p = await stack.startApi();
  api = client(p);
});

after(async () => {
  await stack.stopAll();
});

// Asserts a 202 answer carries a freshly queued job for this request.
function assertQueuedJob(res, type, tenantId) {
  assert.equal(res.status, 202, res.text);
  const job = res.json;
  assert.match(job.id, ID_RE('job'));
  assert.equal(job.object, 'job');
  assert.equal(job.type, type);
  assert.equal(job.status, 'queued');
  assert.equal(job.tenant_id, tenantId);
  assert.equal(job.attempts, 0);
  assert.equal(job.replays, 0);
  assert.equal(job.result, null);
  assert.equal(job.error, null);
  assert.match(job.request_id, REQUEST_ID_RE);
  assert.match(job.created_at, RFC3339_RE);
  assert.equal(res.headers.location, `/v1/jobs/${job.id}`);
  return job;
}

describe('with no worker running', () => {
  let waitedJob;
  const email = `${tag('nowait')}@example.com`;

  it('Prefer: wait=2 answers 202 with the queued job once the wait has passed', async () => {
    const res = await api.post('/v1/customers', {
      token: DEMO_API_KEY,
      headers: { Prefer: 'wait=2' },
      json: { email },
    });
    waitedJob = assertQueuedJob(res, 'customer.create', DEMO_TENANT_ID);
    assert.equal(waitedJob.request_id, res.headers['request-id'], 'the job records the request that made it');
    // The answer came only after the wait: well over a second, far under the deadline.
    assert.ok(res.elapsedMs >= 1500, `answered after ${res.elapsedMs} ms, expected about 2000`);
    assert.ok(res.elapsedMs < 20000, `answered after ${res.elapsedMs} ms`);
  });

  it('the job lives in this test file\'s own Redis database (REDIS_URL /N is honoured)', async () => {
    assert.ok(waitedJob, 'needs the job of the previous test');
    assert.equal(await redisValue(S.redisDb, 'EXISTS', `job:${waitedJob.id}`), '1');
    assert.equal(await redisValue(S.redisDb, 'HGET', `job:${waitedJob.id}`, 'status'), 'queued');
  });

  it('a job accepted while no worker runs is processed once a worker starts', async () => {
    assert.ok(waitedJob, 'needs the job of the first test');
    stack.startWorker('domain');
    const job = await waitJob(api, waitedJob.id, DEMO_API_KEY);
    assert.equal(job.result.object, 'customer');
    assert.equal(job.result.email, email);
  });
});

describe('with a domain worker running', () => {
  before(() => {
    stack.startWorker('domain');
  });

  it('POST /v1/customers enqueues a job; once it succeeds GET /v1/customers/{id} equals its result', async () => {
    const body = { email: `${tag('flow')}@example.com`, name: 'Ada Lovelace', phone: '+447700900123', metadata: { plan: 'gold' } };
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, json: body });
    const queued = assertQueuedJob(res, 'customer.create', DEMO_TENANT_ID);

    const viaLocation = await api.get('/v1/jobs/{id}', { params: { id: queued.id }, token: DEMO_API_KEY });
    assert.equal(viaLocation.status, 200);
    assert.equal(viaLocation.json.id, queued.id);

    const job = await waitJob(api, queued.id, DEMO_API_KEY);
    assert.equal(job.error, null);
    assert.match(job.started_at, RFC3339_RE);
    assert.match(job.finished_at, RFC3339_RE);
    const c = job.result;
    assert.match(c.id, ID_RE('cus'));
    assert.equal(c.object, 'customer');
    assert.equal(c.email, body.email);
    assert.equal(c.name, body.name);
    assert.equal(c.phone, body.phone);
    assert.deepEqual(c.metadata, body.metadata);
    assert.equal(c.status, 'active');

    const got = await api.get('/v1/customers/{id}', { params: { id: c.id }, token: DEMO_API_KEY });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, c);
  });

  it('an empty body creates a customer with null fields and empty metadata', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { Prefer: 'wait=20', 'Content-Type': 'application/json' } });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.email, null);
    assert.equal(res.json.name, null);
    assert.equal(res.json.phone, null);
    assert.deepEqual(res.json.metadata, {});
  });

  it('the same Idempotency-Key and body give the same job with Idempotent-Replayed: true, and one customer', async () => {
    const key = tag('idem');
    const body = { email: `${tag('idem')}@example.com` };
    const first = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': key }, json: body });
    const job = assertQueuedJob(first, 'customer.create', DEMO_TENANT_ID);
    assert.notEqual(first.headers['idempotent-replayed'], 'true');

    const second = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': key }, json: body });
    assert.equal(second.status, 202, second.text);
    assert.equal(second.json.id, job.id);
    assert.equal(second.headers['idempotent-replayed'], 'true');

    await waitJob(api, job.id, DEMO_API_KEY);
    const third = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': key }, json: body });
    assert.equal(third.status, 202, third.text);
    assert.equal(third.json.id, job.id);
    assert.equal(third.json.status, 'succeeded', 'the replay shows the job as it is now');
    assert.equal(third.headers['idempotent-replayed'], 'true');

    const list = await api.get('/v1/customers', { token: DEMO_API_KEY, query: { email: body.email } });
    assert.equal(list.status, 200);
    assert.equal(list.json.data.length, 1, `one customer for ${body.email}: ${list.text}`);
  });

  it('the same Idempotency-Key with another body or path is 409 idempotency_key_reused', async () => {
    const key = tag('idem');
    const first = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': key }, json: { name: 'One' } });
    assertQueuedJob(first, 'customer.create', DEMO_TENANT_ID);

    const other = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': key }, json: { name: 'Two' } });
    assertError(other, 409, 'idempotency_key_reused', { type: 'idempotency_error' });

    const c = await createCustomer(api, DEMO_API_KEY, { name: 'Target' });
    const otherPath = await api.post('/v1/customers/{id}', {
      params: { id: c.id },
      token: DEMO_API_KEY,
      headers: { 'Idempotency-Key': key },
      json: { name: 'One' },
    });
    assertError(otherPath, 409, 'idempotency_key_reused', { type: 'idempotency_error' });
  });

  it('an Idempotency-Key over 255 characters is 400 parameter_invalid; 255 are accepted', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': 'k'.repeat(256) }, json: {} });
    assertError(res, 400, 'parameter_invalid', { param: 'Idempotency-Key', type: 'invalid_request_error' });
    const ok = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { 'Idempotency-Key': `${tag('k')}`.padEnd(255, 'k') }, json: {} });
    assert.equal(ok.status, 202, ok.text);
  });

  it('Prefer: wait=5 answers 201 with the customer and Preference-Applied: wait=5', async () => {
    const body = { email: `${tag('wait')}@example.com`, metadata: { source: 'wait' } };
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { Prefer: 'wait=5' }, json: body });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers['preference-applied'], 'wait=5');
    assert.equal(res.json.object, 'customer');
    assert.equal(res.json.email, body.email);
    assert.deepEqual(res.json.metadata, body.metadata);
    const got = await api.get('/v1/customers/{id}', { params: { id: res.json.id }, token: DEMO_API_KEY });
    assert.deepEqual(got.json, res.json);
  });

  it('Prefer: wait above 30 is capped at 30', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { Prefer: 'wait=600' }, json: {} });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers['preference-applied'], 'wait=30');
  });

  it('an update with Prefer: wait answers 200 with metadata merged, "" removing a key and null clearing a field', async () => {
    const c = await createCustomer(api, DEMO_API_KEY, { name: 'Old', phone: '+14155550123', metadata: { a: '1', b: '2' } });
    const res = await api.post('/v1/customers/{id}', {
      params: { id: c.id },
      token: DEMO_API_KEY,
      headers: { Prefer: 'wait=20' },
      json: { name: 'New', phone: null, metadata: { b: '', c: '3' }, status: 'suspended' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['preference-applied'], 'wait=20');
    assert.equal(res.json.id, c.id);
    assert.equal(res.json.name, 'New');
    assert.equal(res.json.phone, null);
    assert.equal(res.json.status, 'suspended');
    assert.deepEqual(res.json.metadata, { a: '1', c: '3' });
    assert.equal(res.json.created_at, c.created_at);
    const got = await api.get('/v1/customers/{id}', { params: { id: c.id }, token: DEMO_API_KEY });
    assert.deepEqual(got.json, res.json);
  });

  it('an update without wait answers 202 with a customer.update job that succeeds', async () => {
    const c = await createCustomer(api, DEMO_API_KEY, { name: 'Before' });
    const res = await api.post('/v1/customers/{id}', { params: { id: c.id }, token: DEMO_API_KEY, json: { name: 'After' } });
    const queued = assertQueuedJob(res, 'customer.update', DEMO_TENANT_ID);
    const job = await waitJob(api, queued.id, DEMO_API_KEY);
    assert.equal(job.result.id, c.id);
    assert.equal(job.result.name, 'After');
  });

  it('updating a customer that does not exist is 404 resource_missing at once', async () => {
    const res = await api.post('/v1/customers/{id}', { params: { id: newId('cus') }, token: DEMO_API_KEY, json: { name: 'x' } });
    assertError(res, 404, 'resource_missing', { param: 'id' });
  });

  it('a job the worker rejects answers its error under Prefer: wait, and ends failed without it', async () => {
    const waited = await api.post('/v1/tenants', {
      token: PLATFORM_ADMIN_TOKEN,
      headers: { Prefer: 'wait=20' },
      json: { name: 'Another demo', slug: 'demo', owner: { email: 'owner@example.com', name: 'Owner' } },
    });
    assertError(waited, 409, 'slug_taken', { param: 'slug' });

    const res = await api.post('/v1/tenants', { token: PLATFORM_ADMIN_TOKEN, json: { name: 'Another demo', slug: 'demo', owner: { email: 'owner@example.com', name: 'Owner' } } });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.type, 'tenant.create');
    const job = await waitJob(api, res.json.id, PLATFORM_ADMIN_TOKEN, { status: 'failed' });
    assert.equal(job.error.code, 'slug_taken');
    assert.equal(job.error.param, 'slug');
    assert.equal(job.error.http_status, 409);
    assert.equal(job.result, null);
  });

  it('replaying a job that is not dead is 409 job_not_dead; an unknown job is 404', async () => {
    const res = await api.post('/v1/customers', { token: DEMO_API_KEY, json: {} });
    const job = await waitJob(api, res.json.id, DEMO_API_KEY);
    const replay = await api.post('/v1/jobs/{id}/replay', { params: { id: job.id }, token: PLATFORM_ADMIN_TOKEN });
    assertError(replay, 409, 'job_not_dead');

    const unknown = newId('job');
    assertError(await api.post('/v1/jobs/{id}/replay', { params: { id: unknown }, token: PLATFORM_ADMIN_TOKEN }), 404, 'resource_missing');
    assertError(await api.get('/v1/jobs/{id}', { params: { id: unknown }, token: PLATFORM_ADMIN_TOKEN }), 404, 'resource_missing');
    assertError(await api.get('/v1/jobs/{id}', { params: { id: unknown }, token: DEMO_API_KEY }), 404, 'resource_missing');
  });

  it('GET /v1/jobs with a status other than dead is 400 parameter_invalid param status', async () => {
    const res = await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { status: 'queued' } });
    assertError(res, 400, 'parameter_invalid', { param: 'status' });
  });
});
