// API keys: creating one (the secret shown once, in the answer that made
// it, and never again: not in the job's result, not in a list, not as its
// hash), restricted roles, who may create an owner key, rotation with and
// without a grace period, revocation that takes effect at once even for a
// key the api has cached, and the 404/409/400 answers of the key routes.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createTenant, login, OWNER_PASSWORD, waitJob } from './lib/billow.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, newId, until } from './lib/util.mjs';

const S = slot(19);
const stack = new Stack('api_keys', S);
let api;

// The tenant under test: its owner key (A.secret), an admin user's
// session and an admin key.
let A;
let adminSession;
let adminKey;
// Every secret this file has seen, to search list answers for.
const secrets = [];

const SECRET_RE = /^sk_test_[A-Za-z0-9]+$/;
const WAIT = { Prefer: 'wait=20' };

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

// Creates a key with Prefer: wait as the owner and returns it (with secret).
async function makeKey(body, token = A.secret) {
  const res = await api.post('/v1/api_keys', { token, headers: WAIT, json: body });
  assert.equal(res.status, 201, res.text);
  secrets.push(res.json.secret);
  return res.json;
}

// The status of a request that needs an authenticated tenant credential
// and nothing else (api_keys:read, which every key made here holds).
async function authStatus(secret) {
  const res = await api.get('/v1/api_keys', { token: secret, query: { limit: 1 } });
  if (res.status === 401) assertError(res, 401, 'unauthenticated', { type: 'authentication_error' });
  return res.status;
}

async function keyRow(id) {
  const rows = await superuser(`SELECT secret_hash, prefix, role, name, created_by,
      expires_at IS NULL, revoked_at IS NULL,
      floor(extract(epoch FROM expires_at))::bigint
    FROM api_keys WHERE id = ${lit(id)}`);
  assert.equal(rows.length, 1, `api_keys holds ${id}`);
  const [hash, prefix, role, name, createdBy, noExpiry, notRevoked, expiresS] = rows[0];
  return { hash, prefix, role, name, createdBy, expires: noExpiry === 't' ? null : Number(expiresS) * 1000, revoked: notRevoked !== 't' };
}

function assertAround(actualMs, expectedMs, slackMs, what) {
  assert.ok(Math.abs(actualMs - expectedMs) <= slackMs, `${what}: ${new Date(actualMs).toISOString()} is not within ${slackMs} ms of ${new Date(expectedMs).toISOString()}`);
}

before(async () => {
  api = client(await stack.startAll());
  A = await createTenant(api);
  secrets.push(A.secret);
  const admin = await api.post('/v1/users', {
    token: A.secret,
    headers: WAIT,
    json: { email: `admin@${A.tenant.slug}.example`, name: 'The admin', role: 'admin', password: OWNER_PASSWORD },
  });
  assert.equal(admin.status, 201, admin.text);
  adminSession = (await login(api, { tenant: A.tenant.slug, email: admin.json.email, password: OWNER_PASSWORD })).token;
  adminKey = await makeKey({ name: 'admin key', role: 'admin' });
});

after(async () => {
  await stack.stopAll();
});

describe('creating a key', () => {
  it('with Prefer: wait answers 201 with the key and its secret, once; only the hash is stored', async () => {
    const res = await api.post('/v1/api_keys', { token: A.secret, headers: WAIT, json: { name: 'ci deploy', role: 'billing' } });
    assert.equal(res.status, 201, res.text);
    const key = res.json;
    secrets.push(key.secret);
    assert.match(key.id, ID_RE('key'));
    assert.equal(key.object, 'api_key');
    assert.match(key.secret, SECRET_RE);
    assert.equal(key.role, 'billing');
    assert.equal(key.name, 'ci deploy');
    assert.equal(key.prefix, key.secret.slice(0, 12));
    assert.equal(key.created_by, A.apiKey.id, 'made by the owner key that asked');
    assert.equal(key.expires_at, null);
    assert.equal(key.revoked_at, null);

    const row = await keyRow(key.id);
    assert.deepEqual(row, { hash: sha256(key.secret), prefix: key.prefix, role: 'billing', name: 'ci deploy', createdBy: A.apiKey.id, expires: null, revoked: false });
    const whole = await superValue(`SELECT row_to_json(k)::text FROM api_keys k WHERE id = ${lit(key.id)}`);
    assert.ok(!whole.includes(key.secret), 'the secret itself is stored nowhere in the row');

    // The key works, with its role: billing reads customers.
    const list = await api.get('/v1/customers', { token: key.secret });
    assert.equal(list.status, 200, list.text);
  });

  it('without wait answers 202 with the job and api_key holding the secret; the job\'s result never has it', async () => {
    const res = await api.post('/v1/api_keys', { token: A.secret, json: { name: 'queued key', role: 'support' } });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.object, 'job');
    assert.equal(res.json.type, 'api_key.create');
    assert.equal(res.headers.location, `/v1/jobs/${res.json.id}`);
    const reveal = res.json.api_key;
    secrets.push(reveal.secret);
    assert.match(reveal.id, ID_RE('key'));
    assert.equal(reveal.object, 'api_key');
    assert.match(reveal.secret, SECRET_RE);
    assert.equal(reveal.prefix, reveal.secret.slice(0, 12));
    assert.equal(reveal.role, 'support');
    assert.equal(reveal.name, 'queued key');

    const job = await waitJob(api, res.json.id, A.secret);
    assert.equal(job.result.id, reveal.id);
    assert.equal(job.result.object, 'api_key');
    assert.equal(job.result.role, 'support');
    assert.equal(job.result.prefix, reveal.prefix);
    assert.ok(!('secret' in job.result), `the result has no secret: ${JSON.stringify(job.result)}`);
    assert.ok(!('api_key' in job), 'a later read of the job does not reveal the key');
    const raw = await api.get('/v1/jobs/{id}', { params: { id: job.id }, token: A.secret });
    assert.equal(raw.status, 200);
    assert.ok(!raw.text.includes(reveal.secret), 'GET /v1/jobs/{id} never shows the secret');
    assert.ok(!raw.text.includes(sha256(reveal.secret)), 'nor its hash');
    assert.equal(await authStatus(reveal.secret), 403, 'the key authenticates (support lacks api_keys:read)');
  });

  it('an idempotent replay answers the same job but never the secret again', async () => {
    const opts = { token: A.secret, headers: { 'Idempotency-Key': `key-${Date.now()}` }, json: { name: 'once', role: 'analyst' } };
    const first = await api.post('/v1/api_keys', opts);
    assert.equal(first.status, 202, first.text);
    secrets.push(first.json.api_key.secret);
    await waitJob(api, first.json.id, A.secret);
    const again = await api.post('/v1/api_keys', opts);
    assert.equal(again.status, 202, again.text);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.json.id, first.json.id);
    assert.ok(!('api_key' in again.json), `the replay shows no key: ${again.text}`);
    assert.ok(!again.text.includes(first.json.api_key.secret));
    assert.equal(await superValue(`SELECT count(*) FROM api_keys WHERE tenant_id = ${lit(A.tenant.id)} AND name = 'once'`), '1');
  });

  it('GET /v1/api_keys never shows a secret nor its hash', async () => {
    const res = await api.get('/v1/api_keys', { token: A.secret, query: { limit: 100 } });
    assert.equal(res.status, 200, res.text);
    const ids = res.json.data.map((k) => k.id);
    assert.ok(ids.includes(A.apiKey.id) && ids.includes(adminKey.id), 'the list holds the keys');
    assert.ok(secrets.length >= 4);
    for (const secret of secrets) {
      assert.ok(!res.text.includes(secret), `the list shows the secret ${secret.slice(0, 12)}…`);
      assert.ok(!res.text.includes(sha256(secret)), `the list shows the hash of ${secret.slice(0, 12)}…`);
    }
    for (const k of res.json.data) {
      assert.ok(!('secret' in k) && !('secret_hash' in k), `key ${k.id} carries no secret field`);
    }
    // Newest first.
    assert.deepEqual(ids, [...ids].sort().reverse());
  });

  it('a restricted key (analyst) lists jobs but may neither read a customer\'s job nor create a customer (403)', async () => {
    const analyst = await makeKey({ name: 'read only', role: 'analyst' });
    const support = await makeKey({ name: 'support desk', role: 'support' });
    const before = await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`);
    const job = await api.post('/v1/customers', { token: A.secret, json: { name: 'Seen by support only' } });
    assert.equal(job.status, 202, job.text);
    // A job's result is the customer it made: reading it needs customers:read.
    assertError(await api.get('/v1/jobs/{id}', { params: { id: job.json.id }, token: analyst.secret }), 404, 'resource_missing');
    const read = await api.get('/v1/jobs/{id}', { params: { id: job.json.id }, token: support.secret });
    assert.equal(read.status, 200, read.text);
    assert.equal(read.json.id, job.json.id);
    const list = await api.get('/v1/jobs', { token: analyst.secret, query: { status: 'dead', limit: 5 } });
    assert.equal(list.status, 200, list.text);

    const res = await api.post('/v1/customers', { token: analyst.secret, headers: WAIT, json: { name: 'Not allowed' } });
    assertError(res, 403, 'forbidden', { type: 'permission_error' });
    assert.match(res.json.error.message, /analyst/);
    assert.match(res.json.error.message, /customers:write/);
    assertError(await api.get('/v1/customers', { token: analyst.secret }), 403, 'forbidden');
    await waitJob(api, job.json.id, A.secret);
    assert.equal(Number(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`)), Number(before) + 1, 'only the owner\'s customer was made');
  });

  for (const who of ['session', 'key']) {
    it(`an admin ${who} may not create an owner key: 403 forbidden, param role, nothing stored`, async () => {
      const token = who === 'session' ? adminSession : adminKey.secret;
      const count = await superValue(`SELECT count(*) FROM api_keys WHERE tenant_id = ${lit(A.tenant.id)}`);
      const res = await api.post('/v1/api_keys', { token, headers: WAIT, json: { name: 'escalate', role: 'owner' } });
      assertError(res, 403, 'forbidden', { param: 'role', type: 'permission_error' });
      assert.equal(await superValue(`SELECT count(*) FROM api_keys WHERE tenant_id = ${lit(A.tenant.id)}`), count);
      // The refusal is about the role: the same admin may make an admin key.
      const ok = await api.post('/v1/api_keys', { token, headers: WAIT, json: { name: `by admin ${who}`, role: 'admin' } });
      assert.equal(ok.status, 201, ok.text);
      secrets.push(ok.json.secret);
      assert.equal(ok.json.role, 'admin');
      assert.equal(ok.json.created_by, who === 'session' ? (await adminUserId()) : adminKey.id);
    });
  }
});

async function adminUserId() {
  return superValue(`SELECT id FROM users WHERE tenant_id = ${lit(A.tenant.id)} AND role = 'admin'`);
}

describe('rotating a key', () => {
  it('with a grace period of an hour: both secrets work, the old one until its expires_at', async () => {
    const old = await makeKey({ name: 'rotating', role: 'admin' });
    assert.equal(await authStatus(old.secret), 200);
    const t0 = Date.now();
    const res = await api.post('/v1/api_keys/{id}/rotate', { params: { id: old.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 3600 } });
    const t1 = Date.now();
    assert.equal(res.status, 200, res.text);
    const { api_key: next, previous } = res.json;
    secrets.push(next.secret);
    assert.match(next.secret, SECRET_RE);
    assert.notEqual(next.id, old.id);
    assert.notEqual(next.secret, old.secret);
    assert.equal(next.name, 'rotating');
    assert.equal(next.role, 'admin');
    assert.equal(next.prefix, next.secret.slice(0, 12));
    assert.equal(next.expires_at, null);
    assert.equal(next.revoked_at, null);
    assert.equal(previous.id, old.id);
    assert.equal(previous.revoked_at, null);
    assert.ok(previous.expires_at, 'the old key now expires');
    assertAround(Date.parse(previous.expires_at), (t0 + t1) / 2 + 3600 * 1000, (t1 - t0) / 2 + 2000, 'old key expires_at');
    const row = await keyRow(old.id);
    assert.equal(row.expires, Date.parse(previous.expires_at));
    assert.equal((await keyRow(next.id)).hash, sha256(next.secret));

    assert.equal(await authStatus(next.secret), 200, 'the new secret works');
    assert.equal(await authStatus(old.secret), 200, 'the old secret still works in its grace period');
  });

  it('an old key stops at the end of its grace period, though the api has it cached', async () => {
    const old = await makeKey({ name: 'short grace', role: 'admin' });
    const res = await api.post('/v1/api_keys/{id}/rotate', { params: { id: old.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 2 } });
    assert.equal(res.status, 200, res.text);
    const next = res.json.api_key;
    // Used during the grace period: verified and cached by the api.
    assert.equal(await authStatus(old.secret), 200, 'the old secret works in its grace period');
    // No key job runs from here on, so nothing flushes the cache: the
    // cached entry itself must end with the key's expires_at.
    await until('the old key to be refused after its grace period', async () => ((await authStatus(old.secret)) === 401 ? true : undefined), { timeoutMs: 15000, intervalMs: 200 });
    assert.ok(Date.now() < Date.parse(res.json.previous.expires_at) + 30000, 'refused well before a cache entry of 30 s would have ended');
    assert.equal(await authStatus(next.secret), 200, 'the new one works on');

    // An expired key cannot be rotated again.
    const again = await api.post('/v1/api_keys/{id}/rotate', { params: { id: old.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 60 } });
    assertError(again, 409, 'api_key_inactive', { param: 'id' });
  });

  it('with grace 0: the old key is revoked and refused at once, even though it was just used', async () => {
    const old = await makeKey({ name: 'rotate now', role: 'billing' });
    const use = await api.get('/v1/customers', { token: old.secret });
    assert.equal(use.status, 200, 'used (and cached) right before the rotation');
    const res = await api.post('/v1/api_keys/{id}/rotate', { params: { id: old.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 0 } });
    assert.equal(res.status, 200, res.text);
    const { api_key: next, previous } = res.json;
    secrets.push(next.secret);
    assert.equal(previous.id, old.id);
    assert.ok(previous.revoked_at, `the old key is revoked: ${JSON.stringify(previous)}`);
    assert.equal(previous.expires_at, null);
    assert.equal(next.role, 'billing');
    assert.equal(next.name, 'rotate now');
    assert.equal((await keyRow(old.id)).revoked, true);
    assertError(await api.get('/v1/customers', { token: old.secret }), 401, 'unauthenticated');
    assert.equal((await api.get('/v1/customers', { token: next.secret })).status, 200);
  });

  it('the longest grace (604800 s) is accepted: the old key expires a week later', async () => {
    const old = await makeKey({ name: 'a week', role: 'support' });
    const t0 = Date.now();
    const res = await api.post('/v1/api_keys/{id}/rotate', { params: { id: old.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 604800 } });
    const t1 = Date.now();
    assert.equal(res.status, 200, res.text);
    secrets.push(res.json.api_key.secret);
    assertAround(Date.parse(res.json.previous.expires_at), (t0 + t1) / 2 + 604800 * 1000, (t1 - t0) / 2 + 2000, 'old key expires_at');
  });

  it('an unknown key is 404 resource_missing', async () => {
    const id = newId('key');
    const rot = await api.post('/v1/api_keys/{id}/rotate', { params: { id }, token: A.secret, headers: WAIT, json: {} });
    assertError(rot, 404, 'resource_missing', { param: 'id' });
    const rev = await api.post('/v1/api_keys/{id}/revoke', { params: { id }, token: A.secret, headers: WAIT });
    assertError(rev, 404, 'resource_missing', { param: 'id' });
    const bad = await api.post('/v1/api_keys/{id}/revoke', { params: { id: 'key_not_an_id' }, token: A.secret, headers: WAIT });
    assertError(bad, 404, 'resource_missing', { param: 'id' });
  });

  it('a bad grace period is 400 parameter_invalid, and the key is left alone', async () => {
    const key = await makeKey({ name: 'bad grace', role: 'analyst' });
    for (const grace of [-1, 604801, 'x', 1.5, null]) {
      const res = await api.post('/v1/api_keys/{id}/rotate', { params: { id: key.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: grace } });
      assertError(res, 400, 'parameter_invalid', { param: 'grace_period_seconds', type: 'invalid_request_error' });
    }
    assert.deepEqual(await keyRow(key.id), { hash: sha256(key.secret), prefix: key.prefix, role: 'analyst', name: 'bad grace', createdBy: A.apiKey.id, expires: null, revoked: false });
    assert.equal(await superValue(`SELECT count(*) FROM api_keys WHERE tenant_id = ${lit(A.tenant.id)} AND name = 'bad grace'`), '1', 'no new key was made');
  });
});

describe('revoking a key', () => {
  it('is refused at once even though it was used (and cached) just before; twice is fine', async () => {
    const key = await makeKey({ name: 'to revoke', role: 'billing' });
    const customer = await createCustomer(api, key.secret, { name: 'Made by the key' });
    assert.equal((await api.get('/v1/customers/{id}', { params: { id: customer.id }, token: key.secret })).status, 200);

    const res = await api.post('/v1/api_keys/{id}/revoke', { params: { id: key.id }, token: A.secret, headers: WAIT });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, key.id);
    assert.ok(res.json.revoked_at, 'revoked_at is set');
    assertError(await api.get('/v1/customers/{id}', { params: { id: customer.id }, token: key.secret }), 401, 'unauthenticated');
    assert.equal((await keyRow(key.id)).revoked, true);

    const again = await api.post('/v1/api_keys/{id}/revoke', { params: { id: key.id }, token: A.secret, headers: WAIT });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, res.json, 'the second revocation answers the key as it is, same revoked_at');

    const rot = await api.post('/v1/api_keys/{id}/rotate', { params: { id: key.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 3600 } });
    assertError(rot, 409, 'api_key_inactive', { param: 'id' });
    assert.equal(await superValue(`SELECT count(*) FROM api_keys WHERE tenant_id = ${lit(A.tenant.id)} AND name = 'to revoke'`), '1', 'the refused rotation made no key');
  });
});
