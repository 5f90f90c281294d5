// billing: the steps the subscription tests share, for one tenant's secret
// key: posts that wait for their job, reads, moving a test clock and
// waiting until what it made due is done, and a subscription's invoices.

import assert from 'node:assert/strict';

import { createTenant } from './billow.mjs';
import { client } from './http.mjs';
import { until } from './util.mjs';

const WAIT = { Prefer: 'wait=20' };

// The helpers bound to api (a client of http.mjs) and a tenant's secret.
export function billingClient(api, secret) {
  // POSTs with Prefer: wait and asserts the finished status.
  async function post(path, json, status = 200, params = {}, token = secret) {
    const res = await api.post(path, { token, headers: WAIT, json, params });
    assert.equal(res.status, status, `POST ${path}: ${res.status} ${res.text}`);
    return res.json;
  }

  // POSTs with Prefer: wait and returns the raw response (for refusals).
  function attempt(path, json, params = {}, token = secret) {
    return api.post(path, { token, headers: WAIT, json, params });
  }

  async function get(path, params = {}, query = undefined) {
    const res = await api.get(path, { token: secret, params, query });
    assert.equal(res.status, 200, `GET ${path}: ${res.status} ${res.text}`);
    return res.json;
  }

  // Advances the clock and waits until everything it made due is done.
  async function advance(clock, iso) {
    const moved = await post('/v1/test_clocks/{id}/advance', { frozen_time: iso }, 200, { id: clock.id });
    assert.equal(moved.frozen_time, iso);
    await until(`test clock ${clock.id} to be ready at ${iso}`, async () => {
      const c = await get('/v1/test_clocks/{id}', { id: clock.id });
      return c.status === 'ready';
    }, { timeoutMs: 30000, intervalMs: 100 });
  }

  // The subscription's invoices, oldest first, each with its lines.
  async function invoicesOf(sub) {
    const list = await get('/v1/invoices', {}, { subscription: sub.id, limit: 100 });
    const full = [];
    for (const inv of list.data.reverse()) full.push(await get('/v1/invoices/{id}', { id: inv.id }));
    return full;
  }

  return { post, attempt, get, advance, invoicesOf };
}

// The amounts of an invoice's lines, in order.
export function amounts(inv) {
  return inv.lines.data.map((l) => l.amount);
}

// Starts what the subscription tests need on stack (the api, the workers
// of every billing kind, a renewal scheduler scanning every 100 ms so a
// clock's advance settles quickly) and a fresh tenant. Returns {api,
// secret, tenantId} and the helpers of billingClient for that tenant.
export async function startBilling(stack) {
  await stack.flushRedis();
  const api = client(await stack.startApi());
  for (const kind of ['domain', 'access', 'metrics', 'invoice']) stack.startWorker(kind);
  stack.startWorker('renewal', { RENEWAL_SCAN_MS: 100 });
  const t = await createTenant(api);
  return { api, secret: t.secret, tenantId: t.tenant.id, ...billingClient(api, t.secret) };
}
