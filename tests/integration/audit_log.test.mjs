// The audit log: every change to a customer or to the tenant's access is
// recorded by Postgres with who asked (an API key or a signed-in user),
// from where, in which request and job, and each changed field before and
// after, secrets redacted; GET /v1/audit-events filters and pages them for
// owners and admins only, within the tenant; and no role, the superuser
// included, can change or remove an event.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant, login, OWNER_PASSWORD, waitJob } from './lib/billow.mjs';
import { asRole, lit, superuser, superValue } from './lib/db.mjs';
import { DATABASE_READ_URL, DATABASE_URL, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, rfc3339, tag } from './lib/util.mjs';

const S = slot(20);
const stack = new Stack('audit_log', S);
let api;

const WAIT = { Prefer: 'wait=20' };
const REQUEST_ID_RE = /^req_[0-9A-HJKMNP-TV-Z]{26}$/;

// Tenant A and what it did in before(): a billing key made by the owner
// key, a customer the billing key created and updated, then the owner
// (signed in) updated it again.
let A;
let B;
let billingKey;
let keyEvent; // {res} of the key's creation
let ownerLogin;
let customer;
let createReq; // Request-Id of the POST that created the customer
let updateReq; // ... of the key's update
let updateJob; // its job id
let userUpdateReq; // ... of the signed-in owner's update

async function events(query, token = A.secret) {
  const res = await api.get('/v1/audit-events', { token, query: { limit: 100, ...query } });
  assert.equal(res.status, 200, res.text);
  return res;
}

before(async () => {
  api = client(await stack.startAll());
  A = await createTenant(api);
  B = await createTenant(api);

  keyEvent = await api.post('/v1/api_keys', { token: A.secret, headers: WAIT, json: { name: 'billing robot', role: 'billing' } });
  assert.equal(keyEvent.status, 201, keyEvent.text);
  billingKey = keyEvent.json;

  const email = `${tag('c')}@example.com`;
  const created = await api.post('/v1/customers', {
    token: billingKey.secret,
    headers: WAIT,
    json: { email, name: 'Old name', metadata: { plan: 'basic' } },
  });
  assert.equal(created.status, 201, created.text);
  customer = created.json;
  createReq = created.headers['request-id'];

  // The email is sent unchanged: only name and metadata change.
  const updated = await api.post('/v1/customers/{id}', {
    params: { id: customer.id },
    token: billingKey.secret,
    json: { email, name: 'New name', metadata: { plan: 'pro' } },
  });
  assert.equal(updated.status, 202, updated.text);
  updateReq = updated.headers['request-id'];
  updateJob = updated.json.id;
  await waitJob(api, updateJob, A.secret);

  ownerLogin = await login(api, { tenant: A.tenant.slug, email: A.owner.email, password: OWNER_PASSWORD });
  const byUser = await api.post('/v1/customers/{id}', {
    params: { id: customer.id },
    token: ownerLogin.token,
    headers: WAIT,
    json: { status: 'suspended' },
  });
  assert.equal(byUser.status, 200, byUser.text);
  userUpdateReq = byUser.headers['request-id'];
});

after(async () => {
  await stack.stopAll();
});

describe('what an event records', () => {
  it('a customer created and updated with an API key: action, operation, actor, request, client and exact changes', async () => {
    const res = await events({ target: customer.id });
    const list = res.json.data;
    assert.deepEqual(list.map((e) => [e.action, e.operation, e.actor.type]), [
      ['customer.update', 'update', 'user'],
      ['customer.update', 'update', 'api_key'],
      ['customer.create', 'insert', 'api_key'],
    ], 'the customer\'s three events, newest first');
    const [, update, create] = list;

    assert.match(create.id, ID_RE('aud'));
    assert.equal(create.object, 'audit_event');
    assert.deepEqual(create.actor, { type: 'api_key', id: billingKey.id });
    assert.deepEqual(create.target, { type: 'customer', id: customer.id });
    assert.match(createReq, REQUEST_ID_RE);
    assert.equal(create.request_id, createReq, 'the Request-Id of the POST that made the customer');
    assert.equal(create.client_addr, '127.0.0.1');
    assert.match(create.job_id, ID_RE('job'));
    const createJob = await api.get('/v1/jobs/{id}', { params: { id: create.job_id }, token: A.secret });
    assert.equal(createJob.status, 200, createJob.text);
    assert.equal(createJob.json.type, 'customer.create');
    assert.equal(createJob.json.request_id, createReq);
    assert.equal(createJob.json.result.id, customer.id);
    // An insert: every non-null column, null before (no id, tenant_id or updated_at).
    assert.deepEqual(create.changes, {
      email: { before: null, after: customer.email },
      name: { before: null, after: 'Old name' },
      metadata: { before: null, after: { plan: 'basic' } },
      status: { before: null, after: 'active' },
      balance: { before: null, after: 0 },
      created_at: { before: null, after: customer.created_at },
    });

    assert.deepEqual(update.actor, { type: 'api_key', id: billingKey.id });
    assert.deepEqual(update.target, { type: 'customer', id: customer.id });
    assert.equal(update.request_id, updateReq);
    assert.equal(update.job_id, updateJob);
    assert.equal(update.client_addr, '127.0.0.1');
    assert.deepEqual(update.changes, {
      name: { before: 'Old name', after: 'New name' },
      metadata: { before: { plan: 'basic' }, after: { plan: 'pro' } },
    }, 'exactly the changed fields: not the unchanged email, not updated_at');
    assert.ok(update.id > create.id);
    assert.ok(update.created_at >= create.created_at);
  });

  it('a change by a signed-in user has actor {type user, id usr_…}', async () => {
    const [byUser] = (await events({ target: customer.id, limit: 1 })).json.data;
    assert.deepEqual(byUser.actor, { type: 'user', id: A.owner.id });
    assert.match(byUser.actor.id, ID_RE('usr'));
    assert.equal(byUser.request_id, userUpdateReq);
    assert.equal(byUser.client_addr, '127.0.0.1');
    assert.deepEqual(byUser.changes, { status: { before: 'active', after: 'suspended' } });
  });

  it('an API key\'s and a session\'s events show their secret columns only as [redacted]', async () => {
    const keyHash = await superValue(`SELECT secret_hash FROM api_keys WHERE id = ${lit(billingKey.id)}`);
    const keyRes = await events({ target: billingKey.id });
    const [keyCreate] = keyRes.json.data;
    assert.equal(keyRes.json.data.length, 1);
    assert.equal(keyCreate.action, 'api_key.create');
    assert.equal(keyCreate.operation, 'insert');
    assert.deepEqual(keyCreate.actor, { type: 'api_key', id: A.apiKey.id });
    assert.deepEqual(keyCreate.target, { type: 'api_key', id: billingKey.id });
    assert.equal(keyCreate.request_id, keyEvent.headers['request-id']);
    assert.deepEqual(keyCreate.changes.secret_hash, { before: null, after: '[redacted]' });
    assert.deepEqual(keyCreate.changes.prefix, { before: null, after: billingKey.prefix });
    assert.deepEqual(keyCreate.changes.role, { before: null, after: 'billing' });
    assert.ok(!keyRes.text.includes(keyHash), 'the key\'s hash appears nowhere');
    assert.ok(!keyRes.text.includes(billingKey.secret), 'nor its secret');

    const tokenHash = await superValue(`SELECT token_hash FROM sessions WHERE id = ${lit(ownerLogin.session.id)}`);
    const sesRes = await events({ target: ownerLogin.session.id });
    assert.equal(sesRes.json.data.length, 1);
    const [sesCreate] = sesRes.json.data;
    assert.equal(sesCreate.action, 'session.create');
    assert.equal(sesCreate.operation, 'insert');
    assert.deepEqual(sesCreate.actor, { type: 'user', id: A.owner.id });
    assert.deepEqual(sesCreate.target, { type: 'session', id: ownerLogin.session.id });
    assert.equal(sesCreate.client_addr, '127.0.0.1');
    assert.deepEqual(sesCreate.changes.token_hash, { before: null, after: '[redacted]' });
    assert.deepEqual(sesCreate.changes.user_id, { before: null, after: A.owner.id });
    assert.ok(!sesRes.text.includes(tokenHash), 'the session token\'s hash appears nowhere');
    assert.ok(!sesRes.text.includes(ownerLogin.token), 'nor the token');

    // The owner user's own creation (with the tenant) hides its password hash.
    const pwHash = await superValue(`SELECT password_hash FROM users WHERE id = ${lit(A.owner.id)}`);
    const userRes = await events({ target: A.owner.id });
    const userCreate = userRes.json.data.find((e) => e.operation === 'insert');
    assert.ok(userCreate, userRes.text);
    assert.deepEqual(userCreate.changes.password_hash, { before: null, after: '[redacted]' });
    assert.ok(!userRes.text.includes(pwHash));

    // Everywhere in A's log: any secret column shows only [redacted] (or null).
    const all = await events({});
    for (const e of all.json.data) {
      for (const col of ['secret_hash', 'token_hash', 'password_hash', 'totp_secret_sealed']) {
        if (!(col in e.changes)) continue;
        for (const side of ['before', 'after']) {
          const v = e.changes[col][side];
          assert.ok(v === null || v === '[redacted]', `${e.id} shows ${col}.${side} = ${JSON.stringify(v)}`);
        }
      }
    }
  });
});

describe('filters and paging', () => {
  it('actor, target and action filters each hold exactly the matching events', async () => {
    const byKey = (await events({ actor: billingKey.id })).json.data;
    assert.deepEqual(byKey.map((e) => e.action), ['customer.update', 'customer.create']);
    assert.ok(byKey.every((e) => e.actor.id === billingKey.id && e.actor.type === 'api_key'));

    const byOwner = (await events({ actor: A.owner.id })).json.data;
    assert.ok(byOwner.length >= 2, 'the sign-in and the update');
    assert.ok(byOwner.every((e) => e.actor.id === A.owner.id && e.actor.type === 'user'));
    assert.ok(byOwner.some((e) => e.target.id === customer.id));
    assert.ok(byOwner.some((e) => e.target.id === ownerLogin.session.id));

    const updates = (await events({ action: 'customer.update' })).json.data;
    assert.equal(updates.length, 2);
    assert.ok(updates.every((e) => e.action === 'customer.update' && e.target.id === customer.id));

    const both = (await events({ action: 'customer.update', actor: billingKey.id, target: customer.id })).json.data;
    assert.equal(both.length, 1, 'every filter given must match');
    assert.equal(both[0].request_id, updateReq);

    assert.deepEqual((await events({ action: 'customer.create', target: ownerLogin.session.id })).json.data, []);
  });

  it('created_gte and created_lte bound the events by time', async () => {
    const list = (await events({ target: customer.id })).json.data;
    const newest = Date.parse(list[0].created_at);
    const oldest = Date.parse(list[list.length - 1].created_at);
    assert.equal((await events({ target: customer.id, created_gte: rfc3339(oldest), created_lte: rfc3339(newest + 1000) })).json.data.length, 3);
    assert.deepEqual((await events({ target: customer.id, created_lte: rfc3339(oldest - 1000) })).json.data, [], 'nothing before the first event');
    assert.deepEqual((await events({ target: customer.id, created_gte: rfc3339(newest + 1000) })).json.data, [], 'nothing after the last event');
    assert.deepEqual((await events({ target: customer.id, created_gte: '2000-01-01T00:00:00Z', created_lte: '2000-12-31T23:59:59Z' })).json.data, []);
    // Every RFC 3339 form: an offset names the same instant.
    const shifted = new Date(oldest + 2 * 3600 * 1000).toISOString().replace('.000Z', '+02:00');
    assert.equal((await events({ target: customer.id, created_gte: shifted })).json.data.length, 3);
    for (const e of list) {
      const got = (await events({ target: customer.id, created_gte: e.created_at })).json.data;
      assert.ok(got.some((x) => x.id === e.id), `created_gte=${e.created_at} holds ${e.id}`);
      assert.ok(got.every((x) => x.created_at >= e.created_at));
    }
  });

  it('created_lte equal to an event\'s created_at includes that event', async () => {
    // Times are shown in whole seconds: an event shown at T is "at T", so
    // created_lte=T must include it, whatever its sub-second part.
    const list = (await events({ target: customer.id })).json.data;
    for (const e of list) {
      const got = (await events({ target: customer.id, created_lte: e.created_at })).json.data;
      assert.ok(got.some((x) => x.id === e.id), `created_lte=${e.created_at} should hold ${e.id} (created_at ${e.created_at}); got ${JSON.stringify(got.map((x) => [x.id, x.created_at]))}`);
      assert.ok(got.every((x) => x.created_at <= e.created_at));
    }
  });

  it('invalid filters are 400 parameter_invalid naming the parameter', async () => {
    const bad = {
      created_gte: ['yesterday', '2026-02-30T00:00:00Z', '2026-01-01', '2026-01-01T00:00:00'],
      created_lte: ['2026-13-01T00:00:00Z', '1700000000', '2026-01-01T24:00:00Z'],
      actor: ['cus_00000000000000000000000000', 'someone'],
      target: ['not-an-id'],
      limit: ['0', '101', 'x'],
      starting_after: ['cus_00000000000000000000000000'],
    };
    for (const [param, values] of Object.entries(bad)) {
      for (const v of values) {
        const res = await api.get('/v1/audit-events', { token: A.secret, query: { [param]: v } });
        assertError(res, 400, 'parameter_invalid', { param, type: 'invalid_request_error' });
      }
    }
    assertError(await api.get('/v1/audit-events', { token: A.secret, query: { since: '2026-01-01T00:00:00Z' } }), 400, 'parameter_unknown', { param: 'since' });
  });

  it('limit and starting_after page newest first, without overlaps or gaps', async () => {
    // More events by one actor: five customers from the billing key.
    for (let i = 0; i < 5; i++) {
      const res = await api.post('/v1/customers', { token: billingKey.secret, headers: WAIT, json: { name: `Paged ${i}` } });
      assert.equal(res.status, 201, res.text);
    }
    const all = (await events({ actor: billingKey.id })).json;
    assert.equal(all.data.length, 7);
    assert.equal(all.has_more, false);
    const ids = all.data.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort().reverse(), 'newest first: ids descending');

    const paged = [];
    let after;
    let pages = 0;
    for (;;) {
      const res = await api.get('/v1/audit-events', { token: A.secret, query: { actor: billingKey.id, limit: 2, starting_after: after } });
      assert.equal(res.status, 200, res.text);
      pages += 1;
      assert.ok(res.json.data.length <= 2);
      paged.push(...res.json.data.map((e) => e.id));
      if (!res.json.has_more) break;
      assert.equal(res.json.data.length, 2);
      after = res.json.data[res.json.data.length - 1].id;
      assert.ok(pages < 10, 'paging ends');
    }
    assert.equal(pages, 4);
    assert.equal(new Set(paged).size, paged.length, 'no event on two pages');
    assert.deepEqual(paged, ids, 'the pages together are the whole list, in order');
  });
});

describe('who may read the log', () => {
  for (const role of ['billing', 'support', 'analyst']) {
    it(`a ${role} user gets 403 forbidden`, async () => {
      const email = `${role}@${A.tenant.slug}.example`;
      const res = await api.post('/v1/users', { token: A.secret, headers: WAIT, json: { email, name: role, role, password: OWNER_PASSWORD } });
      assert.equal(res.status, 201, res.text);
      const s = await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD });
      const got = await api.get('/v1/audit-events', { token: s.token });
      assertError(got, 403, 'forbidden', { type: 'permission_error' });
      assert.match(got.json.error.message, /audit:read/);
      assert.ok(!got.text.includes(customer.id));
    });
  }

  it('an admin user may read it', async () => {
    const email = `admin@${A.tenant.slug}.example`;
    const res = await api.post('/v1/users', { token: A.secret, headers: WAIT, json: { email, name: 'Admin', role: 'admin', password: OWNER_PASSWORD } });
    assert.equal(res.status, 201, res.text);
    const s = await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD });
    const got = await events({ target: customer.id }, s.token);
    assert.equal(got.json.data.length, 3);
  });

  it('another tenant sees none of these events', async () => {
    const mine = (await events({})).json.data.map((e) => e.id);
    assert.ok(mine.length > 5);
    const bOwner = await login(api, { tenant: B.tenant.id, email: B.owner.email, password: OWNER_PASSWORD });
    for (const token of [B.secret, bOwner.token]) {
      const all = await events({}, token);
      for (const id of mine) assert.ok(!all.text.includes(id), `B sees ${id}`);
      assert.ok(!all.text.includes(customer.id) && !all.text.includes(A.tenant.id));
      assert.ok(all.json.data.length > 0, 'B has its own events');
      for (const query of [{ target: customer.id }, { actor: billingKey.id }, { actor: A.owner.id }]) {
        assert.deepEqual((await events(query, token)).json.data, [], `B filtering by ${JSON.stringify(query)}`);
      }
      const paged = await events({ starting_after: mine[0] }, token);
      for (const id of mine) assert.ok(!paged.text.includes(id), `B paging past A's newest event sees ${id}`);
    }
  });
});

describe('events cannot be changed or removed', () => {
  // A's events as the superuser sees them (row-level security aside).
  async function snapshot() {
    return superValue(`SELECT count(*) || ':' || md5(string_agg(row_to_json(e)::text, ',' ORDER BY id))
      FROM audit_events e WHERE tenant_id = ${lit(A.tenant.id)}`);
  }
  const asTenant = (sql) => `BEGIN;\nSELECT set_config('app.tenant_id', ${lit(A.tenant.id)}, true) IS NULL;\n${sql};\nCOMMIT;`;
  let original;

  before(async () => {
    original = await snapshot();
    assert.match(original, /^\d+:[0-9a-f]{32}$/);
  });

  it('as billow_worker (DATABASE_URL): UPDATE, DELETE and TRUNCATE fail', async () => {
    const [[who]] = await asRole(DATABASE_URL, 'SELECT current_user');
    assert.equal(who, 'billow_worker');
    // The worker sees A's events with the tenant set, so a refusal is not
    // row-level security hiding them.
    const seen = await asRole(DATABASE_URL, asTenant(`SELECT count(*) FROM audit_events WHERE target_id = ${lit(customer.id)}`));
    assert.equal(seen[seen.length - 1][0], '3');
    const tries = [
      `UPDATE audit_events SET action = 'tampered' WHERE target_id = ${lit(customer.id)}`,
      `DELETE FROM audit_events WHERE target_id = ${lit(customer.id)}`,
      'TRUNCATE audit_events',
    ];
    for (const sql of tries) {
      await assert.rejects(asRole(DATABASE_URL, asTenant(sql)), /permission denied|cannot be changed or removed/, sql);
    }
    assert.equal(await snapshot(), original);
  });

  it('as the superuser: UPDATE, DELETE and TRUNCATE fail too', async () => {
    await assert.rejects(superuser(`UPDATE audit_events SET action = 'tampered' WHERE tenant_id = ${lit(A.tenant.id)}`), /audit events cannot be changed or removed \(update\)/);
    await assert.rejects(superuser(`DELETE FROM audit_events WHERE tenant_id = ${lit(A.tenant.id)}`), /audit events cannot be changed or removed \(delete\)/);
    // In a transaction rolled back at the end, in case it were let through.
    await assert.rejects(superuser('BEGIN;\nTRUNCATE audit_events;\nROLLBACK;'), /audit events cannot be changed or removed \(truncate\)/);
    assert.equal(await snapshot(), original);
  });

  it('billow_api (DATABASE_READ_URL) cannot INSERT an event', async () => {
    const [[who]] = await asRole(DATABASE_READ_URL, 'SELECT current_user');
    assert.equal(who, 'billow_api');
    const sql = `INSERT INTO audit_events (tenant_id, id, actor, actor_type, action, operation, target_type, target_id, changes)
      VALUES (${lit(A.tenant.id)}, 'aud_00000000000000000000000000', 'system', 'system', 'forged', 'insert', 'customer', ${lit(customer.id)}, '{}')`;
    await assert.rejects(asRole(DATABASE_READ_URL, asTenant(sql)), /permission denied for table audit_events/);
    assert.equal(await snapshot(), original);
  });
});

describe('the audit triggers', () => {
  it('every time column of an audited table is named to its trigger, so events show API times', async () => {
    // The trigger formats the columns it is told are times ('@name'
    // arguments); a time column added later without that would show in
    // Postgres's own format.
    const rows = await superuser(`SELECT c.relname, a.attname,
        position(convert_to('@' || a.attname, 'UTF8') || '\\x00'::bytea IN t.tgargs) > 0
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE t.tgname = 'audit' AND a.atttypid = 'timestamptz'::regtype AND a.attname <> 'updated_at'
     ORDER BY 1, 2`);
    assert.ok(rows.length >= 10, `time columns of audited tables found: ${JSON.stringify(rows)}`);
    const missing = rows.filter((r) => r[2] !== 't').map((r) => `${r[0]}.${r[1]}`);
    assert.deepEqual(missing, [], 'time columns the audit trigger does not know');
    const tables = new Set(rows.map((r) => r[0]));
    for (const t of ['tenants', 'api_keys', 'customers', 'users', 'sessions', 'user_tokens']) assert.ok(tables.has(t), `${t} is audited`);
  });
});
