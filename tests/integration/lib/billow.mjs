// billow: the steps many tests share (a fresh tenant, a customer, waiting
// for a job), written against the API contract.

import assert from 'node:assert/strict';

import { PLATFORM_ADMIN_TOKEN } from './env.mjs';
import { ID_RE, tag, until } from './util.mjs';

export const FINAL_STATUSES = new Set(['succeeded', 'failed', 'dead']);

// The password the tenants made by createTenant give their owner.
export const OWNER_PASSWORD = 'correct horse battery staple';

// Creates a tenant through POST /v1/tenants with the platform token and
// waits for it (a domain worker must be running). Its owner signs in with
// OWNER_PASSWORD unless invite is set (then the owner is invited). Returns
// {tenant, apiKey, secret, owner}.
export async function createTenant(api, { name, slug, invite = false } = {}) {
  slug ??= tag('t').slice(0, 40);
  const owner = { email: `owner@${slug}.example`, name: 'Owner', ...(invite ? {} : { password: OWNER_PASSWORD }) };
  const res = await api.post('/v1/tenants', {
    token: PLATFORM_ADMIN_TOKEN,
    headers: { Prefer: 'wait=20' },
    json: { name: name ?? `Tenant ${slug}`, slug, owner },
  });
  assert.equal(res.status, 201, `POST /v1/tenants with wait: ${res.status} ${res.text}`);
  const { tenant, api_key: apiKey } = res.json;
  assert.match(tenant.id, ID_RE('ten'));
  assert.equal(tenant.slug, slug);
  assert.match(apiKey.secret, /^sk_(test|live)_[A-Za-z0-9_-]+$/);
  assert.equal(res.json.owner.email, owner.email);
  assert.equal(res.json.owner.status, invite ? 'invited' : 'active');
  return { tenant, apiKey, secret: apiKey.secret, owner: res.json.owner };
}

// Signs in and returns the login result ({token, expires_at, session, user}).
export async function login(api, { tenant, email, password, ...extra }) {
  const res = await api.post('/v1/auth/login', { json: { tenant, email, password, ...extra } });
  assert.equal(res.status, 200, `POST /v1/auth/login: ${res.status} ${res.text}`);
  assert.match(res.json.token, /^bst_[A-Za-z0-9]{43}$/);
  return res.json;
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

// Creates a tenant in live mode through POST /v1/tenants with the platform
// token (its key is sk_live_…), as createTenant does in test mode, and
// waits for it. Returns {tenant, apiKey, secret, owner}.
export async function createLiveTenant(api, { slug } = {}) {
  slug ??= tag('live').slice(0, 40);
  const owner = { email: `owner@${slug}.example`, name: 'Owner', password: OWNER_PASSWORD };
  const res = await api.post('/v1/tenants', {
    token: PLATFORM_ADMIN_TOKEN,
    headers: { Prefer: 'wait=20' },
    json: { name: `Live ${slug}`, slug, livemode: true, owner },
  });
  assert.equal(res.status, 201, `POST /v1/tenants (live) with wait: ${res.status} ${res.text}`);
  const { tenant, api_key: apiKey } = res.json;
  assert.equal(tenant.livemode, true);
  assert.match(apiKey.secret, /^sk_live_[A-Za-z0-9_-]+$/);
  return { tenant, apiKey, secret: apiKey.secret, owner: res.json.owner };
}

// Creates a product with Prefer: wait and returns the product object.
export async function createProduct(api, token, body = {}) {
  const res = await api.post('/v1/products', { token, headers: { Prefer: 'wait=20' }, json: { name: tag('Product'), ...body } });
  assert.equal(res.status, 201, `POST /v1/products with wait: ${res.status} ${res.text}`);
  assert.match(res.json.id, ID_RE('prod'));
  return res.json;
}

// Creates a price with Prefer: wait and returns the price object. body
// needs product; currency, unit_amount and a monthly recurring default.
export async function createPrice(api, token, body) {
  const json = { currency: 'usd', recurring: { interval: 'month' }, ...body };
  if (json.billing_scheme !== 'tiered' && !('unit_amount' in body)) json.unit_amount = 1000;
  const res = await api.post('/v1/prices', { token, headers: { Prefer: 'wait=20' }, json });
  assert.equal(res.status, 201, `POST /v1/prices with wait: ${res.status} ${res.text}`);
  assert.match(res.json.id, ID_RE('price'));
  return res.json;
}
