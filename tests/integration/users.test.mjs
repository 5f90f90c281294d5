// Staff users and the owner rules: GET /v1/users (newest first, role and
// status filters, paging) and GET /v1/users/{id} (404 for unknown ids and
// another tenant's users), never a password hash or a TOTP secret in a user
// object; POST /v1/users validation, email_taken in any letter case (per
// tenant), and who may create an owner; POST /v1/users/{id}: only an owner
// changes an owner, the tenant keeps an active owner (last_owner), an
// invited user cannot be set active (user_invited), an unknown id is 404
// before any job; and the API key routes' owner rules (only an owner
// creates, rotates or revokes an owner's key).
//
// Every refused change leaves the rows as they were and no audit event
// behind (GET /v1/audit-events?target=… before and after are equal); every
// accepted change adds exactly one event for its target, with exactly the
// changed fields.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant, FINAL_STATUSES, login, OWNER_PASSWORD, waitJob } from './lib/billow.mjs';
import { totpCode } from './lib/crypto.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { redis } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, newId, until } from './lib/util.mjs';

const S = slot(22);
const stack = new Stack('users', S);
let api;

const WAIT = { Prefer: 'wait=20' };
const ADMIN_ROLES = ['admin', 'billing', 'support', 'analyst'];

// Tenant A (the one most tests act on), its owner's session, an admin user
// with a session and an admin key; tenant B, another tenant.
let A;
let B;
let ownerSession;
let admin;
let adminSession;
let adminKey;

let emailSeq = 0;
// A fresh email address in tenant t's domain.
function email(t, who = 'user') {
  emailSeq += 1;
  return `${who}-${emailSeq}@${t.tenant.slug}.example`;
}

// POST /v1/users with Prefer: wait; returns the response.
function postUser(token, json) {
  return api.post('/v1/users', { token, headers: WAIT, json });
}

// Creates a user (with a password unless invite) and returns it.
async function makeUser(token, t, role, { invite = false, name } = {}) {
  const body = { email: email(t, role), name: name ?? `The ${role}`, role };
  if (!invite) body.password = OWNER_PASSWORD;
  const res = await postUser(token, body);
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.role, role);
  assert.equal(res.json.status, invite ? 'invited' : 'active');
  return res.json;
}

// POST /v1/users/{id} with Prefer: wait; returns the response.
function updateUser(token, id, json) {
  return api.post('/v1/users/{id}', { params: { id }, token, headers: WAIT, json });
}

// The audit events whose target is id, newest first (read with t's owner key).
async function auditOf(t, target) {
  const res = await api.get('/v1/audit-events', { token: t.secret, query: { target, limit: 100 } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.has_more, false, 'fewer than 100 events');
  return res.json.data;
}

// Every audit event of tenant t, newest first (the first 100).
async function auditAll(t) {
  const res = await api.get('/v1/audit-events', { token: t.secret, query: { limit: 100 } });
  assert.equal(res.status, 200, res.text);
  return res.json.data;
}

// The whole stored row of a user or key, as JSON text (the superuser's view).
function userRow(id) {
  return superValue(`SELECT row_to_json(u)::text FROM users u WHERE id = ${lit(id)}`);
}
function keyRow(id) {
  return superValue(`SELECT row_to_json(k)::text FROM api_keys k WHERE id = ${lit(id)}`);
}
async function countRows(table, t) {
  return Number(await superValue(`SELECT count(*) FROM ${table} WHERE tenant_id = ${lit(t.tenant.id)}`));
}

// Runs refuse() (which asserts its own answer) and checks that the row of
// target (read by rowOf) and its audit events are exactly as before.
async function assertLeavesNothing(t, target, rowOf, refuse) {
  const row = await rowOf(target);
  const events = await auditOf(t, target);
  await refuse();
  assert.equal(await rowOf(target), row, `the row of ${target} is unchanged`);
  assert.deepEqual(await auditOf(t, target), events, `no audit event for ${target}`);
}

// Asserts that `after` is `before` plus exactly one newer event and returns it.
function oneNewEvent(before, after) {
  assert.equal(after.length, before.length + 1, `exactly one new event: ${JSON.stringify(after.slice(0, after.length - before.length))}`);
  assert.deepEqual(after.slice(1), before, 'the older events are as they were');
  return after[0];
}

// The exact changes of a user's creation: every non-null column.
function insertChanges(user, { invited = false } = {}) {
  const c = {
    email: { before: null, after: user.email },
    name: { before: null, after: user.name },
    role: { before: null, after: user.role },
    status: { before: null, after: user.status },
    totp_enabled: { before: null, after: false },
    totp_last_step: { before: null, after: 0 },
    created_at: { before: null, after: user.created_at },
  };
  if (!invited) {
    c.password_hash = { before: null, after: '[redacted]' };
    c.password_changed_at = { before: null, after: user.created_at };
  }
  return c;
}

// The number of jobs this file's Redis database holds.
// (Every test before has made jobs, so a count of 0 would mean the count
// is broken, not that nothing was enqueued.)
async function jobCount() {
  const keys = (await redis(S.redisDb, 'KEYS', 'job:*')).filter((k) => k !== '');
  assert.ok(keys.length > 0, 'the jobs made so far are in Redis as job:<id>');
  return keys.length;
}

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  stack.startWorker('domain');
  // Two access workers, so concurrent changes to owners meet in Postgres.
  stack.startWorker('access');
  stack.startWorker('access');
  stack.startWorker('metrics');
  A = await createTenant(api);
  B = await createTenant(api);
  ownerSession = (await login(api, { tenant: A.tenant.slug, email: A.owner.email, password: OWNER_PASSWORD })).token;
  admin = await makeUser(A.secret, A, 'admin');
  adminSession = (await login(api, { tenant: A.tenant.id, email: admin.email, password: OWNER_PASSWORD })).token;
  const key = await api.post('/v1/api_keys', { token: A.secret, headers: WAIT, json: { name: 'admin key', role: 'admin' } });
  assert.equal(key.status, 201, key.text);
  adminKey = key.json;
});

after(async () => {
  await stack.stopAll();
});

describe('listing and reading users', () => {
  // Tenant L with users of every role and status, in creation order.
  let L;
  let made;
  let analystSession;
  let sealed;

  before(async () => {
    L = await createTenant(api);
    made = [L.owner];
    made.push(await makeUser(L.secret, L, 'admin'));
    made.push(await makeUser(L.secret, L, 'billing', { invite: true }));
    made.push(await makeUser(L.secret, L, 'support'));
    made.push(await makeUser(L.secret, L, 'analyst'));
    made.push(await makeUser(L.secret, L, 'billing'));
    const support = made[3];
    const off = await updateUser(L.secret, support.id, { status: 'disabled' });
    assert.equal(off.status, 200, off.text);
    made[3] = off.json;
    // The analyst turns TOTP on, so the row holds a sealed secret.
    const analyst = made[4];
    analystSession = (await login(api, { tenant: L.tenant.id, email: analyst.email, password: OWNER_PASSWORD })).token;
    const enrol = await api.post('/v1/auth/totp', { token: analystSession });
    assert.equal(enrol.status, 200, enrol.text);
    const confirm = await api.post('/v1/auth/totp/confirm', { token: analystSession, json: { code: totpCode(enrol.json.secret) } });
    assert.equal(confirm.status, 200, confirm.text);
    assert.equal(confirm.json.user.totp_enabled, true);
    made[4] = confirm.json.user;
    sealed = await superValue(`SELECT totp_secret_sealed FROM users WHERE id = ${lit(analyst.id)}`);
    assert.match(sealed, /^v1\./);
  });

  const newestFirst = (users) => [...users].reverse().map((u) => u.id);

  it('lists every user newest first, each exactly as stored (user_object)', async () => {
    const res = await api.get('/v1/users', { token: L.secret, query: { limit: 100 } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'list');
    assert.equal(res.json.url, '/v1/users');
    assert.equal(res.json.has_more, false);
    const ids = res.json.data.map((u) => u.id);
    assert.deepEqual(ids, newestFirst(made), 'newest (last created) first');
    assert.deepEqual(ids, [...ids].sort().reverse(), 'ids descending');
    const stored = (await superuser(`SELECT user_object(u)::text FROM users u WHERE tenant_id = ${lit(L.tenant.id)} ORDER BY id DESC`)).map((r) => JSON.parse(r[0]));
    assert.deepEqual(res.json.data, stored);
    const byId = Object.fromEntries(res.json.data.map((u) => [u.id, u]));
    assert.equal(byId[made[2].id].status, 'invited');
    assert.equal(byId[made[3].id].status, 'disabled');
    assert.equal(byId[made[4].id].totp_enabled, true);
    // The default page is 10: all six fit.
    const plain = await api.get('/v1/users', { token: L.secret });
    assert.deepEqual(plain.json.data.map((u) => u.id), ids);
  });

  it('filters by role, by status and by both', async () => {
    const cases = [
      [{ role: 'owner' }, (u) => u.role === 'owner'],
      [{ role: 'billing' }, (u) => u.role === 'billing'],
      [{ role: 'analyst' }, (u) => u.role === 'analyst'],
      [{ status: 'invited' }, (u) => u.status === 'invited'],
      [{ status: 'disabled' }, (u) => u.status === 'disabled'],
      [{ status: 'active' }, (u) => u.status === 'active'],
      [{ role: 'billing', status: 'active' }, (u) => u.role === 'billing' && u.status === 'active'],
      [{ role: 'support', status: 'active' }, () => false],
    ];
    for (const [query, keep] of cases) {
      const res = await api.get('/v1/users', { token: L.secret, query: { ...query, limit: 100 } });
      assert.equal(res.status, 200, res.text);
      const want = newestFirst(made.filter(keep));
      assert.deepEqual(res.json.data.map((u) => u.id), want, `filter ${JSON.stringify(query)}`);
      for (const u of res.json.data) {
        if (query.role) assert.equal(u.role, query.role);
        if (query.status) assert.equal(u.status, query.status);
      }
    }
    assert.equal(newestFirst(made.filter((u) => u.status === 'active')).length, 4, 'the fixture has four active users');
  });

  it('a role or status that is none is 400 parameter_invalid naming it', async () => {
    for (const role of ['superuser', 'Owner', 'OWNER', '', 'administrator-of-everything']) {
      assertError(await api.get('/v1/users', { token: L.secret, query: { role } }), 400, 'parameter_invalid', { param: 'role' });
    }
    for (const status of ['deleted', 'Active', '', 'disabled-and-more-than-sixteen']) {
      assertError(await api.get('/v1/users', { token: L.secret, query: { status } }), 400, 'parameter_invalid', { param: 'status' });
    }
    assertError(await api.get('/v1/users', { token: L.secret, query: { team: 'x' } }), 400, 'parameter_unknown', { param: 'team' });
  });

  it('pages with limit and starting_after, without gaps or overlaps', async () => {
    const all = newestFirst(made);
    const seen = [];
    let after;
    for (let page = 0; page < 10; page++) {
      const res = await api.get('/v1/users', { token: L.secret, query: { limit: 4, starting_after: after } });
      assert.equal(res.status, 200, res.text);
      const ids = res.json.data.map((u) => u.id);
      assert.ok(ids.length <= 4);
      seen.push(...ids);
      assert.equal(res.json.has_more, seen.length < all.length, `has_more on page ${page}`);
      if (!res.json.has_more) break;
      after = ids.at(-1);
    }
    assert.deepEqual(seen, all);
    // starting_after with a filter: the older billing user only.
    const billing = newestFirst(made.filter((u) => u.role === 'billing'));
    const res = await api.get('/v1/users', { token: L.secret, query: { role: 'billing', limit: 1 } });
    assert.deepEqual(res.json.data.map((u) => u.id), [billing[0]]);
    assert.equal(res.json.has_more, true);
    const next = await api.get('/v1/users', { token: L.secret, query: { role: 'billing', limit: 1, starting_after: billing[0] } });
    assert.deepEqual(next.json.data.map((u) => u.id), [billing[1]]);
    assert.equal(next.json.has_more, false);
    // An id past the oldest: an empty page.
    const none = await api.get('/v1/users', { token: L.secret, query: { starting_after: L.owner.id } });
    assert.deepEqual(none.json.data, []);
    assert.equal(none.json.has_more, false);
    for (const [q, param] of [[{ limit: 0 }, 'limit'], [{ limit: 101 }, 'limit'], [{ starting_after: 'cus_00000000000000000000000000' }, 'starting_after'], [{ starting_after: 'usr_x' }, 'starting_after']]) {
      assertError(await api.get('/v1/users', { token: L.secret, query: q }), 400, 'parameter_invalid', { param });
    }
  });

  it('GET /v1/users/{id} answers the user; 404 for an unknown id and for another tenant\'s user', async () => {
    for (const u of made) {
      const res = await api.get('/v1/users/{id}', { params: { id: u.id }, token: L.secret });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, JSON.parse(await superValue(`SELECT user_object(u)::text FROM users u WHERE id = ${lit(u.id)}`)));
      assert.equal(res.json.object, 'user');
    }
    assertError(await api.get('/v1/users/{id}', { params: { id: newId('usr') }, token: L.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/users/{id}', { params: { id: 'usr_nope' }, token: L.secret }), 404, 'resource_missing');
    // A's users through L's key and session, and L's through A's.
    assertError(await api.get('/v1/users/{id}', { params: { id: A.owner.id }, token: L.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/users/{id}', { params: { id: admin.id }, token: L.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/users/{id}', { params: { id: made[1].id }, token: ownerSession }), 404, 'resource_missing', { param: 'id' });
    const listA = await api.get('/v1/users', { token: A.secret, query: { limit: 100 } });
    for (const u of made) assert.ok(!listA.text.includes(u.id), `A's list shows L's ${u.id}`);
  });

  it('no answer about a user holds a password hash or a TOTP secret', async () => {
    const hashes = (await superuser(`SELECT password_hash FROM users WHERE tenant_id = ${lit(L.tenant.id)} AND password_hash IS NOT NULL`)).map((r) => r[0]);
    assert.equal(hashes.length, 5, 'five users have passwords');
    for (const h of hashes) assert.match(h, /^\$scrypt\$/);
    const texts = [];
    texts.push((await api.get('/v1/users', { token: L.secret, query: { limit: 100 } })).text);
    for (const u of made) texts.push((await api.get('/v1/users/{id}', { params: { id: u.id }, token: L.secret })).text);
    // Answers of changes and of jobs too: an update (with wait), a creation
    // without wait and its job.
    const renamed = await updateUser(L.secret, made[4].id, { name: 'Analyst renamed' });
    assert.equal(renamed.status, 200, renamed.text);
    made[4] = renamed.json;
    texts.push(renamed.text);
    const queued = await api.post('/v1/users', { token: L.secret, json: { email: email(L, 'late'), name: 'Late', role: 'support', password: OWNER_PASSWORD } });
    assert.equal(queued.status, 202, queued.text);
    texts.push(queued.text);
    const done = await waitJob(api, queued.json.id, L.secret);
    assert.equal(done.result.object, 'user');
    made.push(done.result);
    const jobRes = await api.get('/v1/jobs/{id}', { params: { id: queued.json.id }, token: L.secret });
    assert.equal(jobRes.status, 200, jobRes.text);
    texts.push(jobRes.text);
    const late = await superValue(`SELECT password_hash FROM users WHERE id = ${lit(done.result.id)}`);
    for (const text of texts) {
      assert.ok(!text.includes('scrypt'), `an answer shows a password hash: ${text.slice(0, 300)}`);
      assert.ok(!text.includes('v1.'), `an answer shows a sealed secret: ${text.slice(0, 300)}`);
      assert.ok(!text.includes(sealed));
      for (const h of [...hashes, late]) assert.ok(!text.includes(h.split('$').at(-1)));
      for (const field of ['password_hash', 'totp_secret', 'password_changed_at', 'totp_last_step']) {
        assert.ok(!text.includes(`"${field}`), `an answer has ${field}`);
      }
    }
  });
});

describe('creating a user: validation', () => {
  const good = () => ({ email: email(A, 'v'), name: 'Valid Person', role: 'billing', password: 'tangerine kettle ninety lanterns' });

  // Runs each request, expecting its 400, and checks nothing was made.
  async function assertAllRefused(cases) {
    const users = await countRows('users', A);
    const events = await auditAll(A);
    const jobs = await jobCount();
    for (const [body, code, param] of cases) {
      const res = await postUser(A.secret, body);
      assertError(res, 400, code, { param, type: 'invalid_request_error' });
    }
    assert.equal(await countRows('users', A), users, 'no user was made');
    assert.deepEqual(await auditAll(A), events, 'no audit event');
    assert.equal(await jobCount(), jobs, 'no job was enqueued');
  }

  it('a missing email, name or role is 400 parameter_missing naming it', async () => {
    const cases = [];
    for (const field of ['email', 'name', 'role']) {
      const body = good();
      delete body[field];
      cases.push([body, 'parameter_missing', field]);
    }
    await assertAllRefused(cases);
  });

  it('a bad email, an unknown role, a weak password or an unknown key is 400 naming the parameter', async () => {
    const withField = (k, v) => ({ ...good(), [k]: v });
    await assertAllRefused([
      [withField('email', 'no-at-sign.example'), 'parameter_invalid', 'email'],
      [withField('email', 'two@at@signs.example'), 'parameter_invalid', 'email'],
      [withField('email', 'has space@x.example'), 'parameter_invalid', 'email'],
      [withField('email', 'nodot@localhost'), 'parameter_invalid', 'email'],
      [withField('email', ''), 'parameter_invalid', 'email'],
      [withField('email', 42), 'parameter_invalid', 'email'],
      [withField('email', `${'a'.repeat(64)}@${'d'.repeat(182)}.example`), 'parameter_invalid', 'email'],
      [withField('email', `${'a'.repeat(65)}@x.example`), 'parameter_invalid', 'email'],
      [withField('name', ''), 'parameter_invalid', 'name'],
      [withField('name', 'n'.repeat(257)), 'parameter_invalid', 'name'],
      [withField('name', 'é'.repeat(129)), 'parameter_invalid', 'name'],
      [withField('name', 'tab\there'), 'parameter_invalid', 'name'],
      [withField('name', ['x']), 'parameter_invalid', 'name'],
      [withField('role', 'superuser'), 'parameter_invalid', 'role'],
      [withField('role', 'Admin'), 'parameter_invalid', 'role'],
      [withField('role', null), 'parameter_invalid', 'role'],
      [withField('password', 'short pass'), 'password_too_short', 'password'],
      [withField('password', 'abcdefghijk'), 'password_too_short', 'password'],
      [withField('password', 'QWERTYQWERTY'), 'password_too_common', 'password'],
      [withField('password', 'qazwsxedcrfv'), 'password_too_common', 'password'],
      [withField('password', 'zzzzzzzzzzzzzzzz'), 'password_too_common', 'password'],
      [withField('password', 12345678901234), 'parameter_invalid', 'password'],
      [withField('phone', '+33 1 23 45 67 89'), 'parameter_unknown', 'phone'],
      [withField('status', 'active'), 'parameter_unknown', 'status'],
      [withField('password_hash', '$scrypt$ln=15,r=8,p=1$AAAA$BBBB'), 'parameter_unknown', 'password_hash'],
    ]);
  });

  it('the longest email (254 bytes) and name (256 bytes) are accepted as sent', async () => {
    const long = `${'a'.repeat(64)}@${'d'.repeat(180 - A.tenant.slug.length)}.${A.tenant.slug}.example`;
    assert.equal(Buffer.byteLength(long), 254);
    const name = 'é'.repeat(128);
    const res = await postUser(A.secret, { email: long, name, role: 'analyst' });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.email, long);
    assert.equal(res.json.name, name);
    const renamed = await updateUser(A.secret, res.json.id, { name: 'n'.repeat(256) });
    assert.equal(renamed.status, 200, renamed.text);
    assert.equal(renamed.json.name, 'n'.repeat(256));
  });

  it('an email another user of the tenant has, in any letter case, is 409 email_taken (param email); another tenant may use it', async () => {
    const first = await postUser(A.secret, { email: 'Dup.Person@Example.com', name: 'First', role: 'support', password: OWNER_PASSWORD });
    assert.equal(first.status, 201, first.text);
    const users = await countRows('users', A);
    const events = await auditAll(A);
    const tries = ['Dup.Person@Example.com', 'dup.person@example.com', 'DUP.PERSON@EXAMPLE.COM', 'dUP.pERSON@eXAMPLE.cOM', A.owner.email.toUpperCase(), admin.email];
    for (const taken of tries) {
      for (const body of [{ email: taken, name: 'Second', role: 'analyst', password: OWNER_PASSWORD }, { email: taken, name: 'Invited', role: 'analyst' }]) {
        const res = await postUser(A.secret, body);
        assertError(res, 409, 'email_taken', { param: 'email', type: 'invalid_request_error' });
      }
    }
    assert.equal(await countRows('users', A), users, 'no second user');
    assert.deepEqual(await auditAll(A), events, 'the refused creations left no audit event (nor an invitation)');
    assert.equal(await superValue(`SELECT count(*) FROM users WHERE tenant_id = ${lit(A.tenant.id)} AND lower(email) = 'dup.person@example.com'`), '1');

    // Tenant B may have the same address (once: the rule holds there too).
    const inB = await postUser(B.secret, { email: 'dup.person@example.com', name: 'In B', role: 'support', password: OWNER_PASSWORD });
    assert.equal(inB.status, 201, inB.text);
    assert.equal(inB.json.email, 'dup.person@example.com');
    assertError(await postUser(B.secret, { email: 'DUP.person@example.com', name: 'In B again', role: 'support' }), 409, 'email_taken', { param: 'email' });
  });

  it('letter case beyond ASCII counts too: Élodie@ and élodie@ are one address', async () => {
    const first = await postUser(A.secret, { email: 'Élodie.Ünal@example.com', name: 'Élodie', role: 'support', password: OWNER_PASSWORD });
    assert.equal(first.status, 201, first.text);
    const res = await postUser(A.secret, { email: 'élodie.ünal@example.com', name: 'Élodie again', role: 'support', password: OWNER_PASSWORD });
    assertError(res, 409, 'email_taken', { param: 'email' });
  });
});

describe('creating a user: who may give which role', () => {
  for (const [who, token] of [['session', () => adminSession], ['key', () => adminKey.secret]]) {
    it(`an admin ${who} creating an owner is 403 forbidden (param role); nothing is made`, async () => {
      const users = await countRows('users', A);
      const events = await auditAll(A);
      for (const body of [
        { email: email(A, 'o'), name: 'Would-be owner', role: 'owner', password: OWNER_PASSWORD },
        { email: email(A, 'o'), name: 'Would-be invited owner', role: 'owner' },
      ]) {
        const res = await postUser(token(), body);
        assertError(res, 403, 'forbidden', { param: 'role', type: 'permission_error' });
      }
      assert.equal(await countRows('users', A), users);
      assert.deepEqual(await auditAll(A), events);
    });

    it(`an admin ${who} creates admin, billing, support and analyst users, each with one audit event`, async () => {
      const actor = who === 'session' ? { type: 'user', id: admin.id } : { type: 'api_key', id: adminKey.id };
      for (const role of ADMIN_ROLES) {
        for (const invite of [false, true]) {
          const body = { email: email(A, role), name: `${role} by admin ${who}`, role };
          if (!invite) body.password = 'tangerine kettle ninety lanterns';
          const res = await postUser(token(), body);
          assert.equal(res.status, 201, res.text);
          const user = res.json;
          assert.match(user.id, ID_RE('usr'));
          assert.equal(user.object, 'user');
          assert.equal(user.email, body.email);
          assert.equal(user.name, body.name);
          assert.equal(user.role, role);
          assert.equal(user.status, invite ? 'invited' : 'active');
          assert.equal(user.totp_enabled, false);
          assert.equal(user.last_sign_in_at, null);
          const events = await auditOf(A, user.id);
          assert.equal(events.length, 1, JSON.stringify(events));
          const [e] = events;
          assert.equal(e.action, 'user.create');
          assert.equal(e.operation, 'insert');
          assert.deepEqual(e.actor, actor);
          assert.deepEqual(e.target, { type: 'user', id: user.id });
          assert.equal(e.request_id, res.headers['request-id']);
          assert.deepEqual(e.changes, insertChanges(user, { invited: invite }));
        }
      }
    });
  }

  for (const [who, token, actor] of [
    ['session', () => ownerSession, () => ({ type: 'user', id: A.owner.id })],
    ['key', () => A.secret, () => ({ type: 'api_key', id: A.apiKey.id })],
  ]) {
    it(`an owner ${who} may create an owner (active or invited)`, async () => {
      for (const invite of [false, true]) {
        const body = { email: email(A, 'owner'), name: `Owner by owner ${who}`, role: 'owner' };
        if (!invite) body.password = OWNER_PASSWORD;
        const res = await postUser(token(), body);
        assert.equal(res.status, 201, res.text);
        assert.equal(res.json.role, 'owner');
        assert.equal(res.json.status, invite ? 'invited' : 'active');
        const events = await auditOf(A, res.json.id);
        assert.equal(events.length, 1);
        assert.deepEqual(events[0].actor, actor());
        assert.equal(events[0].action, 'user.create');
        assert.deepEqual(events[0].changes, insertChanges(res.json, { invited: invite }));
      }
    });
  }
});

describe('updating a user: the owner rules', () => {
  it('an admin (session or key) may not change, rename or disable an owner, nor make anyone an owner: 403, nothing changes', async () => {
    const billing = await makeUser(A.secret, A, 'billing');
    for (const token of [adminSession, adminKey.secret]) {
      for (const body of [{ role: 'admin' }, { role: 'analyst' }, { status: 'disabled' }, { name: 'Renamed by admin' }, { role: 'admin', status: 'disabled' }, { name: 'X', role: 'owner' }]) {
        await assertLeavesNothing(A, A.owner.id, userRow, async () => {
          const res = await updateUser(token, A.owner.id, body);
          // The target is an owner (param id), or the role asked is (param role).
          assertError(res, 403, 'forbidden', { param: body.role === 'owner' ? 'role' : 'id', type: 'permission_error' });
        });
      }
      // Making someone an owner: refused at once, naming role.
      await assertLeavesNothing(A, billing.id, userRow, async () => {
        const jobs = await jobCount();
        const res = await api.post('/v1/users/{id}', { params: { id: billing.id }, token, json: { role: 'owner' } });
        assertError(res, 403, 'forbidden', { param: 'role', type: 'permission_error' });
        assert.equal(await jobCount(), jobs, 'refused before any job');
      });
    }
    const [row] = await superuser(`SELECT role, status, name FROM users WHERE id = ${lit(A.owner.id)}`);
    assert.deepEqual(row, ['owner', 'active', 'Owner']);
    // The owner still signs in.
    await login(api, { tenant: A.tenant.slug, email: A.owner.email, password: OWNER_PASSWORD });
  });

  it('an admin may change a non-owner: one audit event with exactly the changed fields', async () => {
    const user = await makeUser(A.secret, A, 'billing');
    const before = await auditOf(A, user.id);
    const res = await updateUser(adminSession, user.id, { name: 'Now support', role: 'support' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.role, 'support');
    assert.equal(res.json.name, 'Now support');
    const e = oneNewEvent(before, await auditOf(A, user.id));
    assert.equal(e.action, 'user.update');
    assert.equal(e.operation, 'update');
    assert.deepEqual(e.actor, { type: 'user', id: admin.id });
    assert.deepEqual(e.target, { type: 'user', id: user.id });
    assert.equal(e.request_id, res.headers['request-id']);
    assert.deepEqual(e.changes, { name: { before: 'The billing', after: 'Now support' }, role: { before: 'billing', after: 'support' } });

    // Disabled by the admin key: one event, status only.
    const mid = await auditOf(A, user.id);
    const off = await updateUser(adminKey.secret, user.id, { status: 'disabled' });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.json.status, 'disabled');
    const e2 = oneNewEvent(mid, await auditOf(A, user.id));
    assert.deepEqual(e2.actor, { type: 'api_key', id: adminKey.id });
    assert.deepEqual(e2.changes, { status: { before: 'active', after: 'disabled' } });

    // And back to active (it has a password): one event.
    const on = await updateUser(adminKey.secret, user.id, { status: 'active' });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.json.status, 'active');
    const e3 = oneNewEvent([e2, ...mid], await auditOf(A, user.id));
    assert.deepEqual(e3.changes, { status: { before: 'disabled', after: 'active' } });

    // A change to what it already is: 200, and no event.
    const last = await auditOf(A, user.id);
    const same = await updateUser(adminSession, user.id, { name: 'Now support', role: 'support', status: 'active' });
    assert.equal(same.status, 200, same.text);
    assert.deepEqual(same.json, on.json, 'nothing moved, updated_at included');
    assert.deepEqual(await auditOf(A, user.id), last);
  });

  it('the only active owner can be neither demoted nor disabled (409 last_owner); invited and disabled owners do not count', async () => {
    const O = await createTenant(api);
    const oSession = (await login(api, { tenant: O.tenant.slug, email: O.owner.email, password: OWNER_PASSWORD })).token;
    await makeUser(O.secret, O, 'owner', { invite: true });
    const disabledOwner = await makeUser(O.secret, O, 'owner');
    const off = await updateUser(O.secret, disabledOwner.id, { status: 'disabled' });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.json.status, 'disabled');

    for (const token of [O.secret, oSession]) {
      for (const role of ['admin', 'analyst']) {
        await assertLeavesNothing(O, O.owner.id, userRow, async () => {
          assertError(await updateUser(token, O.owner.id, { role }), 409, 'last_owner', { param: 'role', type: 'invalid_request_error' });
        });
      }
      await assertLeavesNothing(O, O.owner.id, userRow, async () => {
        assertError(await updateUser(token, O.owner.id, { status: 'disabled' }), 409, 'last_owner', { param: 'status' });
      });
      await assertLeavesNothing(O, O.owner.id, userRow, async () => {
        assertError(await updateUser(token, O.owner.id, { name: 'Renamed too', role: 'admin', status: 'disabled' }), 409, 'last_owner');
      });
    }
    // The owner's session still works: nothing was revoked.
    assert.equal((await api.get('/v1/users', { token: oSession })).status, 200);

    // Re-enabling the disabled owner makes two active owners: one may go.
    const on = await updateUser(O.secret, disabledOwner.id, { status: 'active' });
    assert.equal(on.status, 200, on.text);
    const before = await auditOf(O, O.owner.id);
    const demoted = await updateUser(oSession, O.owner.id, { role: 'admin' });
    assert.equal(demoted.status, 200, demoted.text);
    assert.equal(demoted.json.role, 'admin');
    assert.equal(demoted.json.status, 'active');
    const e = oneNewEvent(before, await auditOf(O, O.owner.id));
    assert.equal(e.action, 'user.update');
    assert.deepEqual(e.actor, { type: 'user', id: O.owner.id });
    assert.deepEqual(e.changes, { role: { before: 'owner', after: 'admin' } });

    // Now the other one is the only active owner.
    await assertLeavesNothing(O, disabledOwner.id, userRow, async () => {
      assertError(await updateUser(O.secret, disabledOwner.id, { status: 'disabled' }), 409, 'last_owner', { param: 'status' });
    });
    await assertLeavesNothing(O, disabledOwner.id, userRow, async () => {
      assertError(await updateUser(O.secret, disabledOwner.id, { role: 'billing' }), 409, 'last_owner', { param: 'role' });
    });
    // The demoted former owner (an admin now, on its next request) may not touch it either.
    await assertLeavesNothing(O, disabledOwner.id, userRow, async () => {
      assertError(await updateUser(oSession, disabledOwner.id, { status: 'disabled' }), 403, 'forbidden');
    });
    assert.equal(await superValue(`SELECT count(*) FROM users WHERE tenant_id = ${lit(O.tenant.id)} AND role = 'owner' AND status = 'active'`), '1');
  });

  it('with two active owners, an owner disables the other: one event, the other\'s sessions end', async () => {
    const O = await createTenant(api);
    const second = await makeUser(O.secret, O, 'owner');
    const s = await login(api, { tenant: O.tenant.id, email: second.email, password: OWNER_PASSWORD });
    const before = await auditOf(O, second.id);
    const res = await updateUser(O.secret, second.id, { status: 'disabled' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, 'disabled');
    assert.equal(res.json.role, 'owner');
    const e = oneNewEvent(before, await auditOf(O, second.id));
    assert.deepEqual(e.changes, { status: { before: 'active', after: 'disabled' } });
    assert.deepEqual(await superuser(`SELECT revoked_reason FROM sessions WHERE id = ${lit(s.session.id)}`), [['user_disabled']]);
    assertError(await api.get('/v1/users', { token: s.token }), 401, 'unauthenticated');
    // O's first owner is now the only active one.
    assertError(await updateUser(O.secret, O.owner.id, { status: 'disabled' }), 409, 'last_owner', { param: 'status' });
  });

  it('two owners each demoted or disabled at the same moment: exactly one change wins, the other is last_owner', async () => {
    const O = await createTenant(api);
    const second = await makeUser(O.secret, O, 'owner');
    const before = [...await auditOf(O, O.owner.id), ...await auditOf(O, second.id)];
    const sent = await Promise.all([
      api.post('/v1/users/{id}', { params: { id: O.owner.id }, token: O.secret, json: { role: 'admin' } }),
      api.post('/v1/users/{id}', { params: { id: second.id }, token: O.secret, json: { status: 'disabled' } }),
    ]);
    const jobs = [];
    for (const r of sent) {
      assert.equal(r.status, 202, r.text);
      jobs.push(await until(`job ${r.json.id} to finish`, async () => {
        const res = await api.get('/v1/jobs/{id}', { params: { id: r.json.id }, token: O.secret });
        return FINAL_STATUSES.has(res.json.status) ? res.json : undefined;
      }));
    }
    assert.deepEqual(jobs.map((j) => j.status).sort(), ['failed', 'succeeded'], JSON.stringify(jobs));
    const lost = jobs.find((j) => j.status === 'failed');
    assert.equal(lost.error.code, 'last_owner', JSON.stringify(lost));
    assert.equal(await superValue(`SELECT count(*) FROM users WHERE tenant_id = ${lit(O.tenant.id)} AND role = 'owner' AND status = 'active'`), '1');
    const afterEvents = [...await auditOf(O, O.owner.id), ...await auditOf(O, second.id)];
    assert.equal(afterEvents.length, before.length + 1, 'one event: the change that won');
  });

  it('setting status active on an invited user is 409 user_invited (param status); nothing changes', async () => {
    const invited = await makeUser(A.secret, A, 'support', { invite: true });
    for (const token of [A.secret, ownerSession, adminSession, adminKey.secret]) {
      await assertLeavesNothing(A, invited.id, userRow, async () => {
        assertError(await updateUser(token, invited.id, { status: 'active' }), 409, 'user_invited', { param: 'status', type: 'invalid_request_error' });
      });
      await assertLeavesNothing(A, invited.id, userRow, async () => {
        assertError(await updateUser(token, invited.id, { name: 'And renamed', status: 'active' }), 409, 'user_invited', { param: 'status' });
      });
    }
    assert.deepEqual(await superuser(`SELECT status, password_hash IS NULL FROM users WHERE id = ${lit(invited.id)}`), [['invited', 't']]);
  });

  it('an empty body, an unknown key or a bad value is 400 before any job; nothing changes', async () => {
    const user = await makeUser(A.secret, A, 'analyst');
    const jobs = await jobCount();
    await assertLeavesNothing(A, user.id, userRow, async () => {
      assertError(await updateUser(A.secret, user.id, {}), 400, 'parameter_missing', { type: 'invalid_request_error' });
      assertError(await api.post('/v1/users/{id}', { params: { id: user.id }, token: A.secret, headers: WAIT }), 400, 'parameter_missing');
      assertError(await updateUser(A.secret, user.id, { email: 'new@x.example' }), 400, 'parameter_unknown', { param: 'email' });
      assertError(await updateUser(A.secret, user.id, { password: 'tangerine kettle ninety lanterns' }), 400, 'parameter_unknown', { param: 'password' });
      assertError(await updateUser(A.secret, user.id, { status: 'invited' }), 400, 'parameter_invalid', { param: 'status' });
      assertError(await updateUser(A.secret, user.id, { status: 'deleted' }), 400, 'parameter_invalid', { param: 'status' });
      assertError(await updateUser(A.secret, user.id, { role: 'root' }), 400, 'parameter_invalid', { param: 'role' });
      assertError(await updateUser(A.secret, user.id, { name: '' }), 400, 'parameter_invalid', { param: 'name' });
      assertError(await updateUser(A.secret, user.id, { name: null }), 400, 'parameter_invalid', { param: 'name' });
    });
    assert.equal(await jobCount(), jobs, 'no job was enqueued');
  });

  it('an unknown user id, or another tenant\'s, is 404 at once: no job is made', async () => {
    const bUser = await makeUser(B.secret, B, 'billing');
    const bRow = await userRow(bUser.id);
    const events = await auditAll(A);
    const jobs = await jobCount();
    for (const id of [newId('usr'), bUser.id, B.owner.id, 'usr_bad', 'cus_00000000000000000000000000']) {
      for (const token of [A.secret, ownerSession, adminSession]) {
        // Without Prefer: wait a job would answer 202; 404 means none was made.
        const res = await api.post('/v1/users/{id}', { params: { id }, token, json: { name: 'Nobody' } });
        assertError(res, 404, 'resource_missing', { param: 'id' });
      }
    }
    assert.equal(await jobCount(), jobs, 'no job was enqueued');
    assert.equal(await userRow(bUser.id), bRow);
    assert.deepEqual(await auditAll(A), events);
  });
});

describe('API keys of owners', () => {
  it('an admin (session or key) may neither rotate nor revoke an owner\'s key, nor create an owner key: 403, nothing changes', async () => {
    const ownerKeyId = A.apiKey.id;
    for (const token of [adminSession, adminKey.secret]) {
      const keys = await countRows('api_keys', A);
      await assertLeavesNothing(A, ownerKeyId, keyRow, async () => {
        for (const json of [{}, { grace_period_seconds: 0 }, { grace_period_seconds: 3600 }]) {
          const res = await api.post('/v1/api_keys/{id}/rotate', { params: { id: ownerKeyId }, token, headers: WAIT, json });
          assertError(res, 403, 'forbidden', { type: 'permission_error' });
        }
        const rev = await api.post('/v1/api_keys/{id}/revoke', { params: { id: ownerKeyId }, token, headers: WAIT });
        assertError(rev, 403, 'forbidden', { type: 'permission_error' });
      });
      const events = await auditAll(A);
      for (const json of [{ role: 'owner' }, { name: 'escalation', role: 'owner' }]) {
        const res = await api.post('/v1/api_keys', { token, headers: WAIT, json });
        assertError(res, 403, 'forbidden', { param: 'role', type: 'permission_error' });
      }
      assert.equal(await countRows('api_keys', A), keys, 'no key was made');
      assert.deepEqual(await auditAll(A), events, 'no audit event');
    }
    // The owner key still works, with its role.
    const still = await api.get('/v1/api_keys', { token: A.secret, query: { limit: 1 } });
    assert.equal(still.status, 200, still.text);
    assert.deepEqual(await superuser(`SELECT role, revoked_at IS NULL, expires_at IS NULL FROM api_keys WHERE id = ${lit(ownerKeyId)}`), [['owner', 't', 't']]);
  });

  it('an admin may rotate and revoke a non-owner key (the refusals above are about owners)', async () => {
    const made = await api.post('/v1/api_keys', { token: adminKey.secret, headers: WAIT, json: { name: 'billing by admin', role: 'billing' } });
    assert.equal(made.status, 201, made.text);
    const rot = await api.post('/v1/api_keys/{id}/rotate', { params: { id: made.json.id }, token: adminSession, headers: WAIT, json: { grace_period_seconds: 0 } });
    assert.equal(rot.status, 200, rot.text);
    assert.equal(rot.json.api_key.role, 'billing');
    const rev = await api.post('/v1/api_keys/{id}/revoke', { params: { id: rot.json.api_key.id }, token: adminKey.secret, headers: WAIT });
    assert.equal(rev.status, 200, rev.text);
    assert.ok(rev.json.revoked_at);
  });

  it('an owner creates, rotates and revokes an owner key, each with exactly one audit event', async () => {
    // Created by the owner's session.
    const created = await api.post('/v1/api_keys', { token: ownerSession, headers: WAIT, json: { name: 'second owner key', role: 'owner' } });
    assert.equal(created.status, 201, created.text);
    const key = created.json;
    assert.equal(key.role, 'owner');
    assert.equal(key.created_by, A.owner.id);
    const [ins] = await auditOf(A, key.id);
    assert.equal((await auditOf(A, key.id)).length, 1);
    assert.equal(ins.action, 'api_key.create');
    assert.equal(ins.operation, 'insert');
    assert.deepEqual(ins.actor, { type: 'user', id: A.owner.id });
    assert.deepEqual(ins.changes.role, { before: null, after: 'owner' });
    assert.deepEqual(ins.changes.secret_hash, { before: null, after: '[redacted]' });
    // The new key is an owner: it may itself create an owner key.
    const byNew = await api.post('/v1/api_keys', { token: key.secret, headers: WAIT, json: { name: 'third owner key', role: 'owner' } });
    assert.equal(byNew.status, 201, byNew.text);

    // Rotated by the owner key, with a grace period.
    const before = await auditOf(A, key.id);
    const rot = await api.post('/v1/api_keys/{id}/rotate', { params: { id: key.id }, token: A.secret, headers: WAIT, json: { grace_period_seconds: 3600 } });
    assert.equal(rot.status, 200, rot.text);
    assert.equal(rot.json.api_key.role, 'owner');
    assert.equal(rot.json.api_key.name, 'second owner key');
    assert.equal(rot.json.previous.id, key.id);
    assert.ok(rot.json.previous.expires_at);
    assert.equal(rot.json.previous.revoked_at, null);
    const e = oneNewEvent(before, await auditOf(A, key.id));
    assert.equal(e.action, 'api_key.rotate');
    assert.equal(e.operation, 'update');
    assert.deepEqual(e.actor, { type: 'api_key', id: A.apiKey.id });
    assert.deepEqual(e.changes, { expires_at: { before: null, after: rot.json.previous.expires_at } });
    const newEvents = await auditOf(A, rot.json.api_key.id);
    assert.equal(newEvents.length, 1);
    assert.equal(newEvents[0].action, 'api_key.rotate');
    assert.equal(newEvents[0].operation, 'insert');
    assert.deepEqual(newEvents[0].changes.role, { before: null, after: 'owner' });

    // The new key revoked by the owner's session.
    const before2 = await auditOf(A, rot.json.api_key.id);
    const rev = await api.post('/v1/api_keys/{id}/revoke', { params: { id: rot.json.api_key.id }, token: ownerSession, headers: WAIT });
    assert.equal(rev.status, 200, rev.text);
    assert.ok(rev.json.revoked_at);
    const e2 = oneNewEvent(before2, await auditOf(A, rot.json.api_key.id));
    assert.equal(e2.action, 'api_key.revoke');
    assert.deepEqual(e2.actor, { type: 'user', id: A.owner.id });
    assert.deepEqual(e2.changes, { revoked_at: { before: null, after: rev.json.revoked_at } });
    assertError(await api.get('/v1/api_keys', { token: rot.json.api_key.secret }), 401, 'unauthenticated');
    // The rotated (old) key is still in its grace period; revoking it is one more event.
    const before3 = await auditOf(A, key.id);
    const rev2 = await api.post('/v1/api_keys/{id}/revoke', { params: { id: key.id }, token: A.secret, headers: WAIT });
    assert.equal(rev2.status, 200, rev2.text);
    const e3 = oneNewEvent(before3, await auditOf(A, key.id));
    assert.deepEqual(e3.changes, { revoked_at: { before: null, after: rev2.json.revoked_at } });
    // Revoking again changes nothing: no event.
    const again = await api.post('/v1/api_keys/{id}/revoke', { params: { id: key.id }, token: A.secret, headers: WAIT });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(await auditOf(A, key.id), [e3, ...before3]);
  });
});
