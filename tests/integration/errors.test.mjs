// Client errors: validation (400 with the right code and param),
// authentication (401), permission (403), unknown routes (404) and methods
// (405 with Allow).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { createCustomer } from './lib/billow.mjs';
import { lit, superuser } from './lib/db.mjs';
import { DEMO_API_KEY, DEMO_TENANT_ID, PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { newId, tag, until } from './lib/util.mjs';

const S = slot(7);
const stack = new Stack('errors', S);
let api;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  stack.startWorker('domain');
});

after(async () => {
  await stack.stopAll();
});

const createCustomerWith = (json) => api.post('/v1/customers', { token: DEMO_API_KEY, json });

function metadataOf(n) {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
}

describe('validation errors are 400 with the offending param', () => {
  const invalid = [
    ['an email without @', { email: 'not-an-email' }, 'email'],
    ['an email with a space', { email: 'a b@example.com' }, 'email'],
    ['an email over 254 characters', { email: `${'a'.repeat(250)}@example.com` }, 'email'],
    ['an email that is a number', { email: 5 }, 'email'],
    ['a phone without +', { phone: '14155550123' }, 'phone'],
    ['a phone with 7 digits', { phone: '+1415555' }, 'phone'],
    ['a phone with 16 digits', { phone: '+1415555012345678' }, 'phone'],
    ['a phone with letters', { phone: '+1415555ABCD' }, 'phone'],
    ['an empty name', { name: '' }, 'name'],
    ['a name of 257 characters', { name: 'n'.repeat(257) }, 'name'],
    ['a name that is an object', { name: { first: 'A' } }, 'name'],
    ['metadata that is an array', { metadata: ['a'] }, 'metadata'],
  ];
  for (const [what, body, param] of invalid) {
    it(`${what} is parameter_invalid (param ${param})`, async () => {
      assertError(await createCustomerWith(body), 400, 'parameter_invalid', { param, type: 'invalid_request_error' });
    });
  }

  it('metadata with 51 keys is parameter_invalid on metadata; 50 keys are accepted', async () => {
    const res = await createCustomerWith({ metadata: metadataOf(51) });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.code, 'parameter_invalid');
    assert.equal(res.json.error.param, 'metadata');
    assert.equal((await createCustomerWith({ metadata: metadataOf(50) })).status, 202);
  });

  for (const [what, metadata] of [
    ['a metadata key over 40 characters', { ['k'.repeat(41)]: 'v' }],
    ['a metadata value over 500 characters', { note: 'v'.repeat(501) }],
    ['a metadata value that is a number', { count: 3 }],
  ]) {
    it(`${what} is parameter_invalid on metadata`, async () => {
      const res = await createCustomerWith({ metadata });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.error.code, 'parameter_invalid');
      assert.match(res.json.error.param, /^metadata/);
    });
  }

  it('an unknown parameter is parameter_unknown naming it', async () => {
    assertError(await createCustomerWith({ email: 'ok@example.com', nickname: 'x' }), 400, 'parameter_unknown', { param: 'nickname' });
    assertError(await createCustomerWith({ status: 'active' }), 400, 'parameter_unknown', { param: 'status' });
  });

  it('an update with an invalid status is parameter_invalid on status', async () => {
    const c = await createCustomer(api, DEMO_API_KEY, { name: 'Valid' });
    const res = await api.post('/v1/customers/{id}', { params: { id: c.id }, token: DEMO_API_KEY, json: { status: 'deleted' } });
    assertError(res, 400, 'parameter_invalid', { param: 'status' });
    const bad = await api.post('/v1/customers/{id}', { params: { id: c.id }, token: DEMO_API_KEY, json: { email: 'nope' } });
    assertError(bad, 400, 'parameter_invalid', { param: 'email' });
  });

  it('a tenant with a bad slug, a missing name or a non-boolean livemode is refused', async () => {
    const post = (json) => api.post('/v1/tenants', { token: PLATFORM_ADMIN_TOKEN, json });
    assertError(await post({ name: 'X', slug: 'Bad_Slug' }), 400, 'parameter_invalid', { param: 'slug' });
    assertError(await post({ name: 'X', slug: 'ends-with-dash-' }), 400, 'parameter_invalid', { param: 'slug' });
    assertError(await post({ name: 'X', slug: 'ab' }), 400, 'parameter_invalid', { param: 'slug' });
    assertError(await post({ slug: tag('s') }), 400, 'parameter_missing', { param: 'name' });
    assertError(await post({ name: 'X', slug: tag('s'), livemode: 'yes' }), 400, 'parameter_invalid', { param: 'livemode' });
    assertError(await post({ name: 'X', slug: tag('s'), color: 'red' }), 400, 'parameter_unknown', { param: 'color' });
  });

  it('a list limit outside 1..100 is parameter_invalid on limit', async () => {
    for (const limit of ['0', '101', 'ten', '-1']) {
      assertError(await api.get('/v1/customers', { token: DEMO_API_KEY, query: { limit } }), 400, 'parameter_invalid', { param: 'limit' });
    }
    assertError(await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { status: 'dead', limit: 0 } }), 400, 'parameter_invalid', { param: 'limit' });
  });

  it('a customer id that does not exist is 404 resource_missing on id', async () => {
    for (const id of [newId('cus'), 'cus_nope', newId('job')]) {
      assertError(await api.get('/v1/customers/{id}', { params: { id }, token: DEMO_API_KEY }), 404, 'resource_missing', { param: 'id' });
    }
  });
});

describe('authentication and permission', () => {
  it('no Authorization header is 401 unauthenticated', async () => {
    assertError(await api.get('/v1/customers'), 401, 'unauthenticated', { type: 'authentication_error' });
    assertError(await api.post('/v1/customers', { json: {} }), 401, 'unauthenticated', { type: 'authentication_error' });
    assertError(await api.post('/v1/tenants', { json: { name: 'X', slug: tag('s') } }), 401, 'unauthenticated');
  });

  it('an unknown key, a malformed header or a wrong platform token is 401', async () => {
    assertError(await api.get('/v1/customers', { token: 'sk_test_unknownunknownunknown00' }), 401, 'unauthenticated');
    assertError(await api.get('/v1/customers', { headers: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }), 401, 'unauthenticated');
    assertError(await api.get('/v1/customers', { headers: { Authorization: 'Bearer' } }), 401, 'unauthenticated');
    assertError(await api.post('/v1/tenants', { token: `${PLATFORM_ADMIN_TOKEN}x`, json: { name: 'X', slug: tag('s') } }), 401, 'unauthenticated');
  });

  it('a revoked key is 401', async () => {
    const secret = `sk_test_${tag('revoke').replaceAll('-', '_')}`;
    const keyId = newId('key');
    const hash = createHash('sha256').update(secret).digest('hex');
    await superuser(`INSERT INTO api_keys (tenant_id, id, name, secret_hash, prefix, role)
      VALUES (${lit(DEMO_TENANT_ID)}, ${lit(keyId)}, 'revocable', ${lit(hash)}, ${lit(secret.slice(0, 12))}, 'owner')`);
    assert.equal((await api.get('/v1/customers', { token: secret })).status, 200);
    await superuser(`UPDATE api_keys SET revoked_at = now() WHERE id = ${lit(keyId)}`);
    await until('the revoked key to be refused', async () => {
      const res = await api.get('/v1/customers', { token: secret });
      if (res.status === 200) return undefined;
      assertError(res, 401, 'unauthenticated');
      return true;
    });
  });

  it('a tenant key on POST /v1/tenants is 403 forbidden', async () => {
    const res = await api.post('/v1/tenants', { token: DEMO_API_KEY, json: { name: 'X', slug: tag('s') } });
    assertError(res, 403, 'forbidden', { type: 'permission_error' });
  });

  it('the platform token on a tenant route is 403 forbidden', async () => {
    assertError(await api.get('/v1/customers', { token: PLATFORM_ADMIN_TOKEN }), 403, 'forbidden', { type: 'permission_error' });
    assertError(await api.post('/v1/customers', { token: PLATFORM_ADMIN_TOKEN, json: {} }), 403, 'forbidden', { type: 'permission_error' });
  });

  it('health, readiness and the API document need no credentials', async () => {
    for (const route of ['/healthz', '/readyz', '/openapi.json', '/docs']) {
      assert.equal((await api.get(route)).status, 200, route);
    }
  });

  it('metrics are the platform operator\'s: no token 401, a tenant key 403, the platform token 200', async () => {
    assertError(await api.get('/metrics'), 401, 'unauthenticated');
    assertError(await api.get('/metrics', { token: DEMO_API_KEY }), 403, 'forbidden');
    assert.equal((await api.get('/metrics', { token: PLATFORM_ADMIN_TOKEN })).status, 200);
  });
});

describe('unknown routes and methods', () => {
  it('a path no route has is 404 route_not_found', async () => {
    for (const path of ['/v1/nothing', '/v1/customers/cus_x/extra', '/v2/customers', '/healthz/extra']) {
      const res = await api.get(path, { token: DEMO_API_KEY, spec: 'error' });
      assertError(res, 404, 'route_not_found', { type: 'invalid_request_error' });
    }
  });

  it('a known path with another method is 405 method_not_allowed with Allow', async () => {
    const cases = [
      ['DELETE', '/v1/customers', ['GET', 'POST']],
      ['PUT', '/v1/customers/cus_00000000000000000000000000', ['GET', 'POST']],
      ['GET', '/v1/tenants', ['POST']],
      ['POST', '/healthz', ['GET']],
    ];
    for (const [method, path, allow] of cases) {
      const res = await api.request(method, path, { token: DEMO_API_KEY, spec: 'error' });
      assertError(res, 405, 'method_not_allowed');
      const got = (res.headers.allow || '').split(',').map((s) => s.trim()).filter(Boolean).sort();
      for (const m of allow) assert.ok(got.includes(m), `${method} ${path}: Allow ${res.headers.allow} includes ${m}`);
    }
  });
});
