// payments: a test file's Stripe fake (tests/fakes/stripe/server.mjs) as a
// child process of its stack, its control endpoints, and a tenant
// connected to it the way a tenant connects its own Stripe account.

import assert from 'node:assert/strict';
import path from 'node:path';

import { ROOT } from './env.mjs';
import { client } from './http.mjs';
import { STRIPE_FAKE_OFFSET } from './stack.mjs';
import { until } from './util.mjs';

// Starts the fake on the slot's Stripe port (the workers' STRIPE_API_BASE,
// see stack.mjs) and waits until it answers. Returns its control client.
export async function startStripeFake(stack) {
  const port = stack.slot.port + STRIPE_FAKE_OFFSET;
  const p = stack.spawn('stripe-fake', process.execPath, [path.join(ROOT, 'tests/fakes/stripe/server.mjs'), '--port', String(port)], stack.baseEnv({}));
  const fake = stripeFake(`http://127.0.0.1:${port}`);
  await until('the Stripe fake to answer', async () => {
    assert.ok(p.running, `the Stripe fake exited: ${JSON.stringify(p.exit)}`);
    try {
      return (await fetch(`${fake.url}/_fake/stats?api_key=sk_test_probe`)).ok ? true : undefined;
    } catch {
      return undefined;
    }
  }, { timeoutMs: 20000, intervalMs: 50 });
  fake.proc = p;
  return fake;
}

// A stack for money end to end: an emptied Redis database, the Stripe fake,
// the api, and every worker kind payments need, the renewal scheduler and
// the dunning scanner looking every 100 ms; chargerEnv (backoff, attempts)
// goes to the charger. Returns the api's client and the fake's.
export async function startPaymentsStack(stack, chargerEnv = { BACKOFF_BASE_MS: 100, BACKOFF_MAX_MS: 400, MAX_ATTEMPTS: 4 }) {
  await stack.flushRedis();
  const fake = await startStripeFake(stack);
  const api = client(await stack.startApi());
  for (const kind of ['domain', 'access', 'invoice', 'webhook']) stack.startWorker(kind);
  stack.startWorker('renewal', { RENEWAL_SCAN_MS: 100 });
  stack.startWorker('dunning', { DUNNING_SCAN_MS: 100 });
  stack.startWorker('charger', chargerEnv);
  return { api, fake };
}

// The fake's control endpoints (JSON, no auth), at url.
export function stripeFake(url) {
  async function control(method, route, body) {
    const r = await fetch(`${url}${route}`, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    assert.ok(r.ok, `${method} ${route} at the Stripe fake: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
  return {
    url,
    control,
    stats: (key) => control('GET', `/_fake/stats?api_key=${encodeURIComponent(key)}`),
    requests: (key) => control('GET', `/_fake/requests?api_key=${encodeURIComponent(key)}`),
    events: (key) => control('GET', `/_fake/events?api_key=${encodeURIComponent(key)}`),
  };
}

// A Stripe test key of the tenant's own (the fake keeps each key's objects
// apart, as Stripe keeps accounts apart).
export function testKey(tenantId) {
  return `sk_test_${tenantId.replace(/[^A-Za-z0-9]/g, '')}`;
}

// Connects tenant T ({tenant, secret}) to the fake: its secret key and
// webhook secret set through POST /v1/settings/stripe, and the fake told to
// send the key's events to the tenant's webhook endpoint on api.
export async function connectStripe(api, fake, T, { whsec = `whsec_${T.tenant.id}` } = {}) {
  const key = testKey(T.tenant.id);
  const res = await api.post('/v1/settings/stripe', {
    token: T.secret,
    headers: { Prefer: 'wait=20' },
    json: { secret_key: key, webhook_secrets: [whsec] },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.connected, true);
  if (fake) {
    await fake.control('POST', '/_fake/webhook_endpoints', { api_key: key, url: `${api.baseUrl}/webhooks/stripe/${T.tenant.id}`, secret: whsec });
  }
  return { key, whsec };
}
