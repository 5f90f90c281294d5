// billow: the steps many tests share (a fresh tenant, a customer, waiting
// for a job), written against the API contract.

import assert from 'node:assert/strict';

import { PLATFORM_ADMIN_TOKEN } from './env.mjs';
import { ID_RE, tag, until } from './util.mjs';

export const FINAL_STATUSES = new Set(['succeeded', 'failed', 'dead']);

// Creates a tenant through POST /v1/tenants with the platform token and
// waits for it (a domain worker must be running). Returns {tenant, apiKey,
// secret}.
export async function createTenant(api, { name, slug } = {}) {
  slug ??= tag('t').slice(0, 40);
  const res = await api.post('/v1/tenants', {
    token: PLATFORM_ADMIN_TOKEN,
    headers: { Prefer: 'wait=20' },
    json: { name: name ?? `Tenant ${slug}`, slug },
  });
  assert.equal(res.status, 201, `POST /v1/tenants with wait: ${res.status} ${res.text}`);
  const { tenant, api_key: apiKey } = res.json;
  assert.match(tenant.id, ID_RE('ten'));
  assert.equal(tenant.slug, slug);
  assert.match(apiKey.secret, /^sk_(test|live)_[A-Za-z0-9_-]+$/);
  return { tenant, apiKey, secret: apiKey.secret };
}

// Creates a customer with Prefer: wait and returns the customer object.
export async function createCustomer(api, token, body = {}) {
  const res = await api.post('/v1/customers', { token, headers: { Prefer: 'wait=20' }, json: body });
  assert.equal(res.status, 201, `POST /v1/customers with wait: ${res.status} ${res.text}`);
  assert.match(res.json.id, ID_RE('cus'));
  return res.json;
}

// Polls GET /v1/jobs/{id} until the job's status is final, then asserts it
// is `status` and returns the job.
export async function waitJob(api, id, token, { status = 'succeeded', timeoutMs = 30000 } = {}) {
  let last;
  const job = await until(
    `job ${id} to finish`,
    async () => {
      const res = await api.get('/v1/jobs/{id}', { params: { id }, token });
      assert.equal(res.status, 200, `GET /v1/jobs/${id}: ${res.status} ${res.text}`);
      last = res.json;
      return FINAL_STATUSES.has(res.json.status) ? res.json : undefined;
    },
    { timeoutMs, intervalMs: 100, describe: () => JSON.stringify(last) },
  );
  assert.equal(job.status, status, `job ${id} ended ${job.status}, expected ${status}: ${JSON.stringify(job)}`);
  return job;
}
