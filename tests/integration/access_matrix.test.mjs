// The route × role test: every registered route, called by every role (as a
// staff session and as a restricted API key), by the platform token, with
// no token, an expired session, an ended session, a disabled user's
// session, a revoked key and another tenant's credentials, answers what the
// matrix below says.
//
// The matrix here is written out independently of shared/permissions.c on
// purpose: the test reads the server's own route table (billow-api
// --routes-json) and fails when a route exists that this file does not
// list, or lists with another permission, so a route cannot be added (or
// its permission changed) without deciding here who may call it.
//
// Probing without side effects: every POST carries an unknown parameter, so
// a caller who gets past the permission check is stopped by validation
// (400 parameter_unknown) before anything is enqueued; path ids are fresh
// ids that exist nowhere (404). A 401 or 403 therefore always comes from
// authentication or the permission check, and anything else proves the
// caller got past them.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createPrice, createProduct, createTenant, login, OWNER_PASSWORD } from './lib/billow.mjs';
import { lit, superuser } from './lib/db.mjs';
import { BILLOW_BUILD, PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { newId } from './lib/util.mjs';

const S = slot(14);
const stack = new Stack('access_matrix', S);
let api;

const ROLES = ['owner', 'admin', 'billing', 'support', 'analyst'];

// Who holds each permission (docs/permissions.md).
const HOLDERS = {
  'customers:read': ['owner', 'admin', 'billing', 'support'],
  'customers:write': ['owner', 'admin', 'billing'],
  'jobs:read': ROLES,
  'jobs:replay': ['owner', 'admin'],
  'users:read': ['owner', 'admin'],
  'users:write': ['owner', 'admin'],
  'api_keys:read': ['owner', 'admin'],
  'api_keys:write': ['owner', 'admin'],
  'sessions:manage': ['owner', 'admin'],
  'audit:read': ['owner', 'admin'],
  'settings:read': ['owner', 'admin'],
  'settings:write': ['owner'],
  'account:self': ROLES,
  'catalog:read': ROLES,
  'catalog:write': ['owner', 'admin', 'billing'],
  'subscriptions:read': ROLES,
  'subscriptions:write': ['owner', 'admin', 'billing'],
  'invoices:read': ROLES,
  'invoices:write': ['owner', 'admin', 'billing'],
  'test_clocks:read': ROLES,
  'test_clocks:write': ['owner', 'admin', 'billing'],
  'billing_settings:read': ['owner', 'admin', 'billing'],
  'billing_settings:write': ['owner', 'admin'],
  'payments:read': ROLES,
  'payments:write': ['owner', 'admin', 'billing'],
  'stripe_settings:read': ['owner', 'admin'],
  'stripe_settings:write': ['owner', 'admin'],
};

// Every route: [auth, permission]. auth: public (anyone), tenant (a key or
// a session), user (a session only), platform (the operator only), ops (the
// operator, or a tenant credential for its own tenant).
const ROUTES = {
  'GET /healthz': ['public', ''],
  'GET /readyz': ['public', ''],
  'GET /metrics': ['platform', 'metrics:scrape'],
  'GET /openapi.json': ['public', ''],
  'GET /docs': ['public', ''],
  'POST /v1/tenants': ['platform', 'tenants:write'],
  'POST /v1/auth/login': ['public', ''],
  'POST /v1/auth/logout': ['user', 'account:self'],
  'GET /v1/auth/session': ['user', 'account:self'],
  'GET /v1/auth/sessions': ['user', 'account:self'],
  'DELETE /v1/auth/sessions/{id}': ['user', 'account:self'],
  'POST /v1/auth/password': ['user', 'account:self'],
  'POST /v1/auth/password_reset': ['public', ''],
  'POST /v1/auth/password_reset/confirm': ['public', ''],
  'POST /v1/auth/invitations/accept': ['public', ''],
  'POST /v1/auth/totp': ['user', 'account:self'],
  'POST /v1/auth/totp/confirm': ['user', 'account:self'],
  'POST /v1/auth/totp/disable': ['user', 'account:self'],
  'GET /v1/users': ['tenant', 'users:read'],
  'POST /v1/users': ['tenant', 'users:write'],
  'GET /v1/users/{id}': ['tenant', 'users:read'],
  'POST /v1/users/{id}': ['tenant', 'users:write'],
  'GET /v1/api_keys': ['tenant', 'api_keys:read'],
  'POST /v1/api_keys': ['tenant', 'api_keys:write'],
  'POST /v1/api_keys/{id}/rotate': ['tenant', 'api_keys:write'],
  'POST /v1/api_keys/{id}/revoke': ['tenant', 'api_keys:write'],
  'GET /v1/audit-events': ['tenant', 'audit:read'],
  'GET /v1/settings/security': ['tenant', 'settings:read'],
  'POST /v1/settings/security': ['tenant', 'settings:write'],
  'GET /v1/settings/billing': ['tenant', 'billing_settings:read'],
  'POST /v1/settings/billing': ['tenant', 'billing_settings:write'],
  'GET /v1/settings/stripe': ['tenant', 'stripe_settings:read'],
  'POST /v1/settings/stripe': ['tenant', 'stripe_settings:write'],
  'GET /v1/settings/dunning': ['tenant', 'billing_settings:read'],
  'POST /v1/settings/dunning': ['tenant', 'billing_settings:write'],
  'POST /v1/customers': ['tenant', 'customers:write'],
  'GET /v1/customers': ['tenant', 'customers:read'],
  'GET /v1/customers/{id}': ['tenant', 'customers:read'],
  'POST /v1/customers/{id}': ['tenant', 'customers:write'],
  'GET /v1/customers/{id}/balance_transactions': ['tenant', 'customers:read'],
  'POST /v1/customers/{id}/setup_intents': ['tenant', 'payments:write'],
  'POST /v1/products': ['tenant', 'catalog:write'],
  'GET /v1/products': ['tenant', 'catalog:read'],
  'GET /v1/products/{id}': ['tenant', 'catalog:read'],
  'POST /v1/products/{id}': ['tenant', 'catalog:write'],
  'POST /v1/prices': ['tenant', 'catalog:write'],
  'GET /v1/prices': ['tenant', 'catalog:read'],
  'GET /v1/prices/{id}': ['tenant', 'catalog:read'],
  'POST /v1/prices/{id}': ['tenant', 'catalog:write'],
  'POST /v1/subscriptions': ['tenant', 'subscriptions:write'],
  'GET /v1/subscriptions': ['tenant', 'subscriptions:read'],
  'GET /v1/subscriptions/{id}': ['tenant', 'subscriptions:read'],
  'POST /v1/subscriptions/{id}': ['tenant', 'subscriptions:write'],
  'POST /v1/subscriptions/{id}/cancel': ['tenant', 'subscriptions:write'],
  'POST /v1/subscriptions/{id}/pause': ['tenant', 'subscriptions:write'],
  'POST /v1/subscriptions/{id}/resume': ['tenant', 'subscriptions:write'],
  'GET /v1/invoices': ['tenant', 'invoices:read'],
  'GET /v1/invoices/{id}': ['tenant', 'invoices:read'],
  'POST /v1/invoices/{id}/void': ['tenant', 'invoices:write'],
  'POST /v1/invoices/{id}/mark_uncollectible': ['tenant', 'invoices:write'],
  'POST /v1/invoices/{id}/pay': ['tenant', 'invoices:write'],
  'GET /v1/invoices/{id}/payment_attempts': ['tenant', 'payments:read'],
  'POST /v1/payments': ['tenant', 'payments:write'],
  'GET /v1/payments': ['tenant', 'payments:read'],
  'GET /v1/payments/{id}': ['tenant', 'payments:read'],
  'POST /v1/payments/{id}/refunds': ['tenant', 'payments:write'],
  'GET /v1/payments/{id}/refunds': ['tenant', 'payments:read'],
  'POST /v1/test_clocks': ['tenant', 'test_clocks:write'],
  'GET /v1/test_clocks': ['tenant', 'test_clocks:read'],
  'GET /v1/test_clocks/{id}': ['tenant', 'test_clocks:read'],
  'POST /v1/test_clocks/{id}/advance': ['tenant', 'test_clocks:write'],
  'GET /v1/jobs': ['ops', 'jobs:read'],
  'POST /v1/jobs/replay': ['ops', 'jobs:replay'],
  'GET /v1/jobs/{id}': ['ops', 'jobs:read'],
  'POST /v1/jobs/{id}/replay': ['ops', 'jobs:replay'],
  'POST /webhooks/stripe/{tenant}': ['public', ''],
};

// The id prefix a route's {id} takes, so probes use a well-formed id.
function idPrefix(route) {
  const m = route.match(/^\/v1\/(\w+)/);
  return {
    customers: 'cus', users: 'usr', api_keys: 'key', jobs: 'job', auth: 'ses', products: 'prod',
    prices: 'price', subscriptions: 'sub', invoices: 'in', test_clocks: 'clock', payments: 'pay',
  }[m[1]];
}

// Sends the side-effect-free probe of a route (see the top of the file).
function probe(route, token) {
  const [method, template] = route.split(' ');
  const opts = { token };
  if (template.includes('{id}')) opts.params = { id: newId(idPrefix(template)) };
  // A webhook's tenant is its path; one that exists nowhere still proves
  // the route is public (a signature error or 404, never 401 or 403).
  if (template.includes('{tenant}')) opts.params = { tenant: 'no-such-tenant' };
  if (template === '/v1/jobs') opts.query = { status: 'dead' };
  if (method === 'POST') opts.json = { probe_unknown_parameter: true };
  return api.request(method, template, opts);
}

const PASSED = new Set([200, 202, 400, 404]);

function assertPassed(res, route, who) {
  assert.ok(PASSED.has(res.status), `${who} on ${route} should pass auth and permission, got ${res.status} ${res.text.slice(0, 300)}`);
}

function assertDenied(res, route, who) {
  assert.equal(res.status, 403, `${who} on ${route} should be 403, got ${res.status} ${res.text.slice(0, 300)}`);
  assert.equal(res.json.error.code, 'forbidden', `${who} on ${route}: ${res.text}`);
  assert.equal(res.json.error.type, 'permission_error');
}

function assertUnauthenticated(res, route, who) {
  assertError(res, 401, 'unauthenticated', { type: 'authentication_error' });
}

// The tenant under test and its credentials: sessions[role], keys[role].
let A;
let B;
const sessions = {};
const keys = {};
let bOwner;

async function makeUser(tenant, secret, role) {
  const email = `${role}-${Date.now()}@${tenant.slug}.example`;
  const res = await api.post('/v1/users', {
    token: secret,
    headers: { Prefer: 'wait=20' },
    json: { email, name: `The ${role}`, role, password: OWNER_PASSWORD },
  });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.role, role);
  return res.json;
}

async function makeKey(secret, role) {
  const res = await api.post('/v1/api_keys', { token: secret, headers: { Prefer: 'wait=20' }, json: { name: `${role} key`, role } });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.role, role);
  assert.match(res.json.secret, /^sk_test_/);
  return res.json;
}

before(async () => {
  api = client(await stack.startAll());
  A = await createTenant(api);
  B = await createTenant(api);
  for (const role of ROLES) {
    const user = role === 'owner' ? A.owner : await makeUser(A.tenant, A.secret, role);
    sessions[role] = (await login(api, { tenant: A.tenant.slug, email: user.email, password: OWNER_PASSWORD })).token;
    keys[role] = (await makeKey(A.secret, role)).secret;
  }
  bOwner = (await login(api, { tenant: B.tenant.id, email: B.owner.email, password: OWNER_PASSWORD })).token;
});

after(async () => {
  await stack.stopAll();
});

describe('the route table', () => {
  it('lists exactly the routes this test knows, with the permissions it expects', () => {
    const out = execFileSync(path.join(BILLOW_BUILD, 'billow-api'), ['--routes-json'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    const table = JSON.parse(out);
    const actual = Object.fromEntries(table.map((r) => [`${r.method} ${r.path}`, [r.auth, r.permission]]));
    for (const route of Object.keys(actual)) {
      assert.ok(route in ROUTES, `route ${route} is registered but missing from this test's matrix: decide who may call it and add it here`);
    }
    for (const route of Object.keys(ROUTES)) {
      assert.ok(route in actual, `the matrix lists ${route}, which the server does not register`);
    }
    assert.deepEqual(actual, ROUTES);
    for (const [, [auth, perm]] of Object.entries(ROUTES)) {
      if (auth !== 'public' && auth !== 'platform') assert.ok(perm in HOLDERS, `permission ${perm} has holders`);
    }
  });
});

describe('every route × every role', () => {
  for (const [route, [auth, perm]] of Object.entries(ROUTES)) {
    it(`${route} (${auth}${perm ? `, ${perm}` : ''})`, async () => {
      if (auth === 'public') {
        const res = await probe(route);
        assert.ok(res.status !== 401 && res.status !== 403, `${route} is public: ${res.status} ${res.text.slice(0, 200)}`);
        return;
      }
      assertUnauthenticated(await probe(route), route, 'no token');
      assertUnauthenticated(await probe(route, 'bst_' + 'x'.repeat(43)), route, 'an unknown session token');
      assertUnauthenticated(await probe(route, 'sk_test_' + 'y'.repeat(32)), route, 'an unknown key');

      const platform = await probe(route, PLATFORM_ADMIN_TOKEN);
      if (auth === 'platform' || auth === 'ops') assertPassed(platform, route, 'the platform token');
      else assertDenied(platform, route, 'the platform token');

      for (const role of ROLES) {
        const allowed = auth !== 'platform' && HOLDERS[perm].includes(role);
        const bySession = await probe(route, sessions[role]);
        if (allowed) assertPassed(bySession, route, `a ${role} session`);
        else assertDenied(bySession, route, `a ${role} session`);
        const byKey = await probe(route, keys[role]);
        if (allowed && auth !== 'user') assertPassed(byKey, route, `a ${role} key`);
        else assertDenied(byKey, route, `a ${role} key`);
      }
    });
  }
});

describe('credentials that no longer count', () => {
  const tenantRoutes = Object.entries(ROUTES).filter(([, [auth]]) => auth !== 'public' && auth !== 'platform').map(([r]) => r);

  it('an expired session is 401 on every route', async () => {
    const user = await makeUser(A.tenant, A.secret, 'admin');
    const s = await login(api, { tenant: A.tenant.slug, email: user.email, password: OWNER_PASSWORD });
    assertPassed(await probe('GET /v1/users', s.token), 'GET /v1/users', 'the fresh session');
    await superuser(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = ${lit(s.session.id)}`);
    for (const route of tenantRoutes) assertUnauthenticated(await probe(route, s.token), route, 'an expired session');
  });

  it('an ended (logged-out) session is 401 on every route', async () => {
    const s = await login(api, { tenant: A.tenant.slug, email: A.owner.email, password: OWNER_PASSWORD });
    const out = await api.post('/v1/auth/logout', { token: s.token });
    assert.equal(out.status, 200, out.text);
    assert.equal(out.json.revoked_reason, 'logout');
    for (const route of tenantRoutes) assertUnauthenticated(await probe(route, s.token), route, 'a logged-out session');
  });

  it('a disabled user\'s session is 401 on every route', async () => {
    const user = await makeUser(A.tenant, A.secret, 'billing');
    const s = await login(api, { tenant: A.tenant.slug, email: user.email, password: OWNER_PASSWORD });
    assertPassed(await probe('GET /v1/customers', s.token), 'GET /v1/customers', 'before disabling');
    const res = await api.post('/v1/users/{id}', { params: { id: user.id }, token: A.secret, headers: { Prefer: 'wait=20' }, json: { status: 'disabled' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, 'disabled');
    for (const route of tenantRoutes) assertUnauthenticated(await probe(route, s.token), route, 'a disabled user');
  });

  it('a revoked API key is 401 on every route at once', async () => {
    const key = await makeKey(A.secret, 'admin');
    assertPassed(await probe('GET /v1/users', key.secret), 'GET /v1/users', 'the fresh key');
    const res = await api.post('/v1/api_keys/{id}/revoke', { params: { id: key.id }, token: A.secret, headers: { Prefer: 'wait=20' } });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.revoked_at);
    for (const route of tenantRoutes) assertUnauthenticated(await probe(route, key.secret), route, 'a revoked key');
  });
});

describe('another tenant\'s credentials', () => {
  let ids;
  let original;

  // A snapshot of A's objects that B's requests name.
  async function snapshot() {
    return superuser(`SELECT
      (SELECT row_to_json(c)::text FROM customers c WHERE id = ${lit(ids.customer)}),
      (SELECT row_to_json(u)::text FROM users u WHERE id = ${lit(ids.user)}),
      (SELECT row_to_json(k)::text FROM api_keys k WHERE id = ${lit(ids.key)}),
      (SELECT row_to_json(s)::text FROM sessions s WHERE id = ${lit(ids.session)}),
      (SELECT row_to_json(p)::text FROM products p WHERE id = ${lit(ids.product)}),
      (SELECT row_to_json(p)::text FROM prices p WHERE id = ${lit(ids.price)}),
      (SELECT row_to_json(s)::text FROM subscriptions s WHERE id = ${lit(ids.subscription)}),
      (SELECT row_to_json(i)::text FROM invoices i WHERE id = ${lit(ids.invoice)}),
      (SELECT row_to_json(c)::text FROM test_clocks c WHERE id = ${lit(ids.clock)}),
      (SELECT row_to_json(p)::text FROM payments p WHERE id = ${lit(ids.payment)}),
      (SELECT count(*) FROM refunds WHERE payment_id = ${lit(ids.payment)})`);
  }

  before(async () => {
    const customer = await createCustomer(api, A.secret, { name: 'Of A' });
    const user = await makeUser(A.tenant, A.secret, 'support');
    const key = await makeKey(A.secret, 'analyst');
    const s = await login(api, { tenant: A.tenant.slug, email: user.email, password: OWNER_PASSWORD });
    const job = await api.post('/v1/customers', { token: A.secret, json: {} });
    const product = await createProduct(api, A.secret);
    const price = await createPrice(api, A.secret, { product: product.id });
    const wait = { Prefer: 'wait=20' };
    const sub = await api.post('/v1/subscriptions', { token: A.secret, headers: wait, json: { customer: customer.id, items: [{ price: price.id }] } });
    assert.equal(sub.status, 201, sub.text);
    const clock = await api.post('/v1/test_clocks', { token: A.secret, headers: wait, json: { frozen_time: '2027-01-01T00:00:00Z' } });
    assert.equal(clock.status, 201, clock.text);
    // A payment of A's, written as the charger would record one, so B has
    // a payment of A's to name (no Stripe account is needed to read one).
    const payment = newId('pay');
    await superuser(`INSERT INTO payments (tenant_id, id, customer_id, invoice_id, amount, currency, status,
                       stripe_payment_intent, created_at)
                     VALUES (${lit(A.tenant.id)}, ${lit(payment)}, ${lit(customer.id)}, ${lit(sub.json.latest_invoice)},
                             1000, 'usd', 'succeeded', ${lit(`pi_${payment.slice(4)}`)}, now())`);
    ids = {
      customer: customer.id, user: user.id, key: key.id, session: s.session.id, job: job.json.id, product: product.id,
      price: price.id, subscription: sub.json.id, invoice: sub.json.latest_invoice, clock: clock.json.id, payment,
    };
    original = await snapshot();
  });

  // Each route that names an object, with a body that passes validation.
  const CROSS = [
    ['GET', '/v1/customers/{id}', 'customer'],
    ['POST', '/v1/customers/{id}', 'customer', { name: 'Taken over' }],
    ['GET', '/v1/users/{id}', 'user'],
    ['POST', '/v1/users/{id}', 'user', { role: 'admin' }],
    ['POST', '/v1/api_keys/{id}/rotate', 'key', {}],
    ['POST', '/v1/api_keys/{id}/revoke', 'key', {}],
    ['DELETE', '/v1/auth/sessions/{id}', 'session'],
    ['GET', '/v1/jobs/{id}', 'job'],
    ['POST', '/v1/jobs/{id}/replay', 'job', {}],
    ['GET', '/v1/customers/{id}/balance_transactions', 'customer'],
    ['GET', '/v1/products/{id}', 'product'],
    ['POST', '/v1/products/{id}', 'product', { name: 'Taken over' }],
    ['GET', '/v1/prices/{id}', 'price'],
    ['POST', '/v1/prices/{id}', 'price', { nickname: 'Taken over' }],
    ['GET', '/v1/subscriptions/{id}', 'subscription'],
    ['POST', '/v1/subscriptions/{id}', 'subscription', { cancel_at_period_end: true }],
    ['POST', '/v1/subscriptions/{id}/cancel', 'subscription', {}],
    ['POST', '/v1/subscriptions/{id}/pause', 'subscription', {}],
    ['POST', '/v1/subscriptions/{id}/resume', 'subscription', {}],
    ['GET', '/v1/invoices/{id}', 'invoice'],
    ['POST', '/v1/invoices/{id}/void', 'invoice', {}],
    ['POST', '/v1/invoices/{id}/mark_uncollectible', 'invoice', {}],
    ['POST', '/v1/invoices/{id}/pay', 'invoice', { paid_out_of_band: true }],
    ['GET', '/v1/test_clocks/{id}', 'clock'],
    ['POST', '/v1/test_clocks/{id}/advance', 'clock', { frozen_time: '2027-02-01T00:00:00Z' }],
    ['POST', '/v1/customers/{id}/setup_intents', 'customer', {}],
    ['GET', '/v1/invoices/{id}/payment_attempts', 'invoice'],
    ['GET', '/v1/payments/{id}', 'payment'],
    ['POST', '/v1/payments/{id}/refunds', 'payment', { amount: 100 }],
    ['GET', '/v1/payments/{id}/refunds', 'payment'],
  ];

  it('covers every route that takes an id', () => {
    const withId = Object.keys(ROUTES).filter((r) => r.includes('{id}'));
    assert.deepEqual(withId.sort(), CROSS.map(([m, p]) => `${m} ${p}`).sort());
  });

  for (const cred of ['session', 'key']) {
    it(`B's owner ${cred} gets 404 for every one of A's objects, and A's rows stay as they were`, async () => {
      const token = cred === 'session' ? bOwner : B.secret;
      for (const [method, route, kind, json] of CROSS) {
        // A key has no account: the staff-only route refuses it earlier (403, above).
        if (cred === 'key' && ROUTES[`${method} ${route}`][0] === 'user') continue;
        const res = await api.request(method, route, { params: { id: ids[kind] }, token, json, headers: { Prefer: 'wait=5' } });
        assertError(res, 404, 'resource_missing');
      }
      assert.deepEqual(await snapshot(), original);
    });
  }

  it('B\'s lists hold none of A\'s rows', async () => {
    const lists = ['/v1/customers', '/v1/users', '/v1/api_keys', '/v1/audit-events', '/v1/products', '/v1/prices',
      '/v1/subscriptions', '/v1/invoices', '/v1/test_clocks', '/v1/payments'];
    for (const route of lists) {
      const res = await api.get(route, { token: bOwner, query: { limit: 100 } });
      assert.equal(res.status, 200, res.text);
      const text = JSON.stringify(res.json);
      for (const id of Object.values(ids)) assert.ok(!text.includes(id), `${route} of B shows ${id} of A`);
    }
    const sessionsOfA = await api.get('/v1/auth/sessions', { token: bOwner, query: { user: ids.user } });
    assert.deepEqual(sessionsOfA.json.data, []);
  });
});
