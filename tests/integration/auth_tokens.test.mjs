// Tokens that reach a person by email: password reset ("brt_…") and
// invitations ("bit_…").
//
// Nothing sends email yet: the job records a row in `notifications` whose
// data carries the token sealed (AES-256-GCM under ENCRYPTION_KEY, context
// "user_token": api/tokens.c, shared/seal.c). The test opens it the way the
// notifier will, which also proves that the token travels only sealed;
// user_tokens keeps only its SHA-256. Time is moved by rewriting
// user_tokens.expires_at, not by waiting.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant, login, OWNER_PASSWORD } from './lib/billow.mjs';
import { sha256, unseal } from './lib/crypto.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { redis } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, until } from './lib/util.mjs';

const S = slot(18);
const stack = new Stack('auth_tokens', S);
let api;

const RESET_TTL_S = 3600; // RESET_TOKEN_TTL_S's default.
const INVITE_TTL_S = 604800; // INVITE_TOKEN_TTL_S's default.
const NEW_PASSWORD = 'tangerine kettle ninety lanterns';
const RESET_ANSWER = { object: 'password_reset', status: 'requested' };

// Waits for the count-th notification (template) to recipient in tenant
// and returns it with its token opened: {id, data, token}.
async function nthNotification(tenantId, recipient, template, count) {
  const rows = await until(`notification ${count} (${template}) to ${recipient}`, async () => {
    const r = await superuser(`SELECT id, data::text FROM notifications
      WHERE tenant_id = ${lit(tenantId)} AND recipient = ${lit(recipient)} AND template = ${lit(template)}
      ORDER BY id`);
    return r.length >= count ? r : undefined;
  }, { timeoutMs: 20000, intervalMs: 50 });
  assert.equal(rows.length, count, `exactly ${count} ${template} notifications to ${recipient}: ${JSON.stringify(rows)}`);
  const [id, text] = rows[count - 1];
  assert.match(id, ID_RE('ntf'));
  const data = JSON.parse(text);
  assert.match(data.sealed_token, /^v1\./);
  const token = unseal(data.sealed_token, 'user_token');
  assert.throws(() => unseal(data.sealed_token, 'totp_secret'), 'the seal is bound to its context');
  return { id, data, token };
}

async function tokenRow(token) {
  const r = await superuser(`SELECT id, user_id, purpose, used_at IS NOT NULL,
      extract(epoch FROM expires_at - created_at)::int, tenant_id
    FROM user_tokens WHERE token_hash = ${lit(sha256(token))}`);
  assert.equal(r.length, 1, `one user_tokens row for the token's hash: ${JSON.stringify(r)}`);
  const [id, userId, purpose, used, ttl, tenantId] = r[0];
  return { id, userId, purpose, used: used === 't', ttl: Number(ttl), tenantId };
}

// The plain token (or its random part) is in no row Billow keeps for the
// tenant and in no Redis value of this file's database (streams included).
async function assertStoredNowhere(token, tenantId) {
  const random = token.slice(4);
  const t = lit(tenantId);
  const tables = {
    notifications: `SELECT row_to_json(x)::text FROM notifications x WHERE tenant_id = ${t}`,
    user_tokens: `SELECT row_to_json(x)::text FROM user_tokens x WHERE tenant_id = ${t}`,
    users: `SELECT row_to_json(x)::text FROM users x WHERE tenant_id = ${t}`,
    processed_jobs: `SELECT row_to_json(x)::text FROM processed_jobs x WHERE tenant_id = ${t}`,
    audit_events: `SELECT row_to_json(x)::text FROM audit_events x WHERE tenant_id = ${t}`,
    outbox: `SELECT row_to_json(x)::text FROM outbox x WHERE tenant_id = ${t}`,
  };
  for (const [table, sql] of Object.entries(tables)) {
    const rows = await superuser(sql);
    if (table === 'notifications' || table === 'user_tokens') assert.ok(rows.length > 0, `${table} has rows to search`);
    for (const [text] of rows) assert.ok(!text.includes(random), `${table} holds the plain token: ${text.slice(0, 300)}`);
  }
  const keys = (await redis(S.redisDb, 'KEYS', '*')).filter((k) => k !== '');
  for (const key of keys) {
    const type = (await redis(S.redisDb, 'TYPE', key))[0];
    let values = [];
    if (type === 'stream') values = await redis(S.redisDb, 'XRANGE', key, '-', '+');
    else if (type === 'string') values = await redis(S.redisDb, 'GET', key);
    else if (type === 'hash') values = await redis(S.redisDb, 'HGETALL', key);
    else if (type === 'list') values = await redis(S.redisDb, 'LRANGE', key, '0', '-1');
    for (const v of values) assert.ok(!v.includes(random), `Redis ${type} ${key} holds the plain token`);
  }
}

function requestReset(body) {
  return api.post('/v1/auth/password_reset', { json: body });
}

function confirmReset(token, password) {
  return api.post('/v1/auth/password_reset/confirm', { json: { token, password } });
}

function acceptInvitation(token, password, extra = {}) {
  return api.post('/v1/auth/invitations/accept', { json: { token, password, ...extra } });
}

async function createUser(secret, body) {
  const res = await api.post('/v1/users', { token: secret, headers: { Prefer: 'wait=20' }, json: body });
  assert.equal(res.status, 201, res.text);
  assert.match(res.json.id, ID_RE('usr'));
  return res.json;
}

before(async () => {
  // Every reset request counts against the client address; this file makes
  // more of them from 127.0.0.1 than the default allows, and the address
  // limit is not what it tests.
  api = client(await stack.startAll({ LOGIN_MAX_FAILURES_ADDRESS: 200 }));
});

after(async () => {
  await stack.stopAll();
});

describe('password reset', () => {
  let A;
  let user;
  let email;
  let sessionBefore;
  let resets = 0; // user.password_reset notifications to the user so far.
  let token;

  before(async () => {
    A = await createTenant(api);
    email = `grace@${A.tenant.slug}.example`;
    user = await createUser(A.secret, { email, name: 'Grace Hopper', role: 'billing', password: OWNER_PASSWORD });
    sessionBefore = (await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD })).token;
  });

  it('answers 202 with the same body for an existing email, an unknown email and an unknown tenant', async () => {
    const known = await requestReset({ tenant: A.tenant.slug, email });
    const unknown = await requestReset({ tenant: A.tenant.slug, email: `nobody@${A.tenant.slug}.example` });
    const noTenant = await requestReset({ tenant: 'no-such-tenant-at-all', email });
    resets += 1;
    for (const res of [known, unknown, noTenant]) {
      assert.equal(res.status, 202, res.text);
      assert.deepEqual(res.json, RESET_ANSWER);
    }
    assert.equal(unknown.text, known.text, 'byte-identical bodies');
    assert.equal(noTenant.text, known.text, 'byte-identical bodies');
  });

  it('records a user.password_reset notification whose data holds the token sealed', async () => {
    const n = await nthNotification(A.tenant.id, email, 'user.password_reset', resets);
    assert.match(n.token, /^brt_[A-Za-z0-9]{43}$/);
    assert.equal(n.data.user_name, 'Grace Hopper');
    assert.equal(n.data.tenant_name, A.tenant.name);
    const [row] = await superuser(`SELECT channel, status FROM notifications WHERE id = ${lit(n.id)}`);
    assert.deepEqual(row, ['email', 'recorded']);
    const t = await tokenRow(n.token);
    assert.match(t.id, ID_RE('utk'));
    assert.equal(t.userId, user.id);
    assert.equal(t.tenantId, A.tenant.id);
    assert.equal(t.purpose, 'reset');
    assert.equal(t.used, false);
    assert.ok(Math.abs(t.ttl - RESET_TTL_S) <= 2, `expires RESET_TOKEN_TTL_S after creation: ${t.ttl}`);
    // The unknown email got nothing.
    assert.equal(await superValue(`SELECT count(*) FROM notifications WHERE tenant_id = ${lit(A.tenant.id)} AND recipient <> ${lit(email)}`), '0');
    token = n.token;
  });

  it('a weak password is refused before the token is spent', async () => {
    assertError(await confirmReset(token, 'short'), 400, 'password_too_short', { param: 'password' });
    assertError(await confirmReset(token, 'password1234'), 400, 'password_too_common', { param: 'password' });
    assert.equal((await tokenRow(token)).used, false);
  });

  it('the token and a new password give 200 and the user; the new password signs in, the old does not', async () => {
    const res = await confirmReset(token, NEW_PASSWORD);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'user');
    assert.equal(res.json.id, user.id);
    assert.equal(res.json.email, email);
    assert.equal(res.json.status, 'active');
    assert.equal((await tokenRow(token)).used, true);
    const s = await login(api, { tenant: A.tenant.slug, email, password: NEW_PASSWORD });
    assert.equal(s.user.id, user.id);
    const old = await api.post('/v1/auth/login', { json: { tenant: A.tenant.slug, email, password: OWNER_PASSWORD } });
    assertError(old, 401, 'invalid_credentials');
  });

  it('sessions opened before the reset no longer work', async () => {
    assertError(await api.get('/v1/auth/sessions', { token: sessionBefore }), 401, 'unauthenticated');
    assertError(await api.get('/v1/customers', { token: sessionBefore }), 401, 'unauthenticated');
    const rows = await superuser(`SELECT revoked_reason FROM sessions WHERE user_id = ${lit(user.id)} ORDER BY id LIMIT 1`);
    assert.deepEqual(rows, [['password_changed']]);
  });

  it('the same token again is 400 token_invalid (param token)', async () => {
    assertError(await confirmReset(token, 'another long passphrase here'), 400, 'token_invalid', { param: 'token', type: 'invalid_request_error' });
    await login(api, { tenant: A.tenant.slug, email, password: NEW_PASSWORD });
  });

  it('an expired token is 400 token_invalid', async () => {
    assert.equal((await requestReset({ tenant: A.tenant.id, email: email.toUpperCase() })).status, 202);
    resets += 1;
    const n = await nthNotification(A.tenant.id, email, 'user.password_reset', resets);
    assert.notEqual(n.token, token);
    await superuser(`UPDATE user_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = ${lit(sha256(n.token))}`);
    assertError(await confirmReset(n.token, 'expired tokens change nothing'), 400, 'token_invalid', { param: 'token' });
    assert.equal((await tokenRow(n.token)).used, false);
    await login(api, { tenant: A.tenant.slug, email, password: NEW_PASSWORD });
  });

  it('a garbage token is 400 token_invalid', async () => {
    for (const garbage of ['brt_' + 'x'.repeat(43), 'brt_short', 'not-a-token-at-all']) {
      assertError(await confirmReset(garbage, 'a perfectly fine passphrase'), 400, 'token_invalid', { param: 'token' });
    }
  });

  it('neither notifications nor user_tokens (nor jobs, audit or Redis) hold the plain token', async () => {
    await assertStoredNowhere(token, A.tenant.id);
  });
});

describe('invitations', () => {
  let A;
  let email;
  let invited;
  let inviteToken;

  before(async () => {
    A = await createTenant(api);
    email = `alan@${A.tenant.slug}.example`;
  });

  it('POST /v1/users without a password creates an invited user', async () => {
    invited = await createUser(A.secret, { email, name: 'Alan Turing', role: 'support' });
    assert.equal(invited.status, 'invited');
    assert.equal(invited.role, 'support');
    assert.equal(await superValue(`SELECT password_hash IS NULL FROM users WHERE id = ${lit(invited.id)}`), 't');
  });

  it('records a user.invitation notification with the bit_ token sealed', async () => {
    const n = await nthNotification(A.tenant.id, email, 'user.invitation', 1);
    assert.match(n.token, /^bit_[A-Za-z0-9]{43}$/);
    assert.equal(n.data.user_name, 'Alan Turing');
    assert.equal(n.data.tenant_name, A.tenant.name);
    const t = await tokenRow(n.token);
    assert.equal(t.userId, invited.id);
    assert.equal(t.purpose, 'invite');
    assert.equal(t.used, false);
    assert.ok(Math.abs(t.ttl - INVITE_TTL_S) <= 2, `expires INVITE_TOKEN_TTL_S after creation: ${t.ttl}`);
    inviteToken = n.token;
    await assertStoredNowhere(inviteToken, A.tenant.id);
  });

  it('the invited user cannot sign in: 401 invalid_credentials', async () => {
    for (const password of [OWNER_PASSWORD, NEW_PASSWORD]) {
      const res = await api.post('/v1/auth/login', { json: { tenant: A.tenant.slug, email, password } });
      assertError(res, 401, 'invalid_credentials');
    }
  });

  it('a reset token does not accept an invitation, nor an invitation token reset a password', async () => {
    // A live reset token, of the tenant's owner.
    assert.equal((await requestReset({ tenant: A.tenant.slug, email: A.owner.email })).status, 202);
    const reset = (await nthNotification(A.tenant.id, A.owner.email, 'user.password_reset', 1)).token;
    assertError(await acceptInvitation(reset, NEW_PASSWORD), 400, 'token_invalid', { param: 'token' });
    assertError(await confirmReset(inviteToken, NEW_PASSWORD), 400, 'token_invalid', { param: 'token' });
    assert.equal((await tokenRow(reset)).used, false);
    assert.equal((await tokenRow(inviteToken)).used, false);
    assert.equal(await superValue(`SELECT status FROM users WHERE id = ${lit(invited.id)}`), 'invited');
    await login(api, { tenant: A.tenant.slug, email: A.owner.email, password: OWNER_PASSWORD });
  });

  it('accepting with the token and a password makes the user active; the password signs in', async () => {
    const res = await acceptInvitation(inviteToken, NEW_PASSWORD);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'user');
    assert.equal(res.json.id, invited.id);
    assert.equal(res.json.status, 'active');
    assert.equal(res.json.name, 'Alan Turing');
    assert.equal((await tokenRow(inviteToken)).used, true);
    const s = await login(api, { tenant: A.tenant.slug, email, password: NEW_PASSWORD });
    assert.equal(s.user.id, invited.id);
    assert.equal(s.user.role, 'support');
  });

  it('the invitation again is 400 token_invalid', async () => {
    assertError(await acceptInvitation(inviteToken, 'a different passphrase now'), 400, 'token_invalid', { param: 'token' });
    await login(api, { tenant: A.tenant.slug, email, password: NEW_PASSWORD });
  });

  it('an expired invitation is 400 token_invalid', async () => {
    const late = await createUser(A.secret, { email: `late@${A.tenant.slug}.example`, name: 'Late', role: 'analyst' });
    const n = await nthNotification(A.tenant.id, late.email, 'user.invitation', 1);
    await superuser(`UPDATE user_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = ${lit(sha256(n.token))}`);
    assertError(await acceptInvitation(n.token, NEW_PASSWORD), 400, 'token_invalid', { param: 'token' });
    assert.equal(await superValue(`SELECT status FROM users WHERE id = ${lit(late.id)}`), 'invited');
  });

  it('accepting may also set the user\'s name', async () => {
    const named = await createUser(A.secret, { email: `named@${A.tenant.slug}.example`, name: 'Placeholder', role: 'analyst' });
    const n = await nthNotification(A.tenant.id, named.email, 'user.invitation', 1);
    const res = await acceptInvitation(n.token, NEW_PASSWORD, { name: 'Katherine Johnson' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, named.id);
    assert.equal(res.json.status, 'active');
    assert.equal(res.json.name, 'Katherine Johnson');
  });
});

describe('a tenant created without an owner password', () => {
  it('has an invited owner with an invitation, who accepts it and signs in', async () => {
    const T = await createTenant(api, { invite: true });
    assert.equal(T.owner.status, 'invited');
    assert.equal(T.owner.role, 'owner');
    const n = await nthNotification(T.tenant.id, T.owner.email, 'user.invitation', 1);
    assert.match(n.token, /^bit_[A-Za-z0-9]{43}$/);
    assert.equal(n.data.tenant_name, T.tenant.name);
    const t = await tokenRow(n.token);
    assert.equal(t.userId, T.owner.id);
    assert.equal(t.purpose, 'invite');
    assertError(await api.post('/v1/auth/login', { json: { tenant: T.tenant.slug, email: T.owner.email, password: OWNER_PASSWORD } }), 401, 'invalid_credentials');

    const res = await acceptInvitation(n.token, NEW_PASSWORD);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, T.owner.id);
    assert.equal(res.json.status, 'active');
    const s = await login(api, { tenant: T.tenant.slug, email: T.owner.email, password: NEW_PASSWORD });
    assert.equal(s.user.role, 'owner');
    await assertStoredNowhere(n.token, T.tenant.id);
  });
});

describe('reset requests per account', () => {
  // LOGIN_MAX_FAILURES (5, the default here) reset requests per account
  // within LOGIN_LOCKOUT_S; the count is kept for addresses without an
  // account too, so the 429 tells nothing about which exist.
  const LIMIT = 5;

  it('past the limit an account gets 429 with Retry-After, exactly as an unknown address does', async () => {
    const T = await createTenant(api);
    const user = await createUser(T.secret, { email: `flooded@${T.tenant.slug}.example`, name: 'Flooded', role: 'support', password: 'lantern harbour seventeen' });
    const unknownEmail = `nobody-here@${T.tenant.slug}.example`;
    for (const email of [user.email, unknownEmail]) {
      for (let i = 0; i < LIMIT; i++) {
        // By slug and by id in turn: one account, one counter.
        const res = await requestReset({ tenant: i % 2 ? T.tenant.id : T.tenant.slug, email });
        assert.equal(res.status, 202, `${email} request ${i + 1}: ${res.text}`);
      }
      const over = await requestReset({ tenant: T.tenant.slug, email });
      assertError(over, 429, 'too_many_attempts', { type: 'rate_limit_error' });
      const retry = Number(over.headers['retry-after']);
      assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After: ${over.headers['retry-after']}`);
    }
    // Only the requests within the limit made a message.
    await nthNotification(T.tenant.id, user.email, 'user.password_reset', LIMIT);
    const count = await superValue(`SELECT count(*) FROM notifications WHERE tenant_id = ${lit(T.tenant.id)} AND recipient = ${lit(user.email)} AND template = 'user.password_reset'`);
    assert.equal(Number(count), LIMIT);
    // A burst of simultaneous requests for a fresh account: each is counted
    // before it is judged, so exactly LIMIT of them get through.
    const burstUser = await createUser(T.secret, { email: `burst@${T.tenant.slug}.example`, name: 'Burst', role: 'support', password: 'lantern harbour seventeen' });
    const burst = await Promise.all(Array.from({ length: LIMIT * 3 }, () => requestReset({ tenant: T.tenant.slug, email: burstUser.email })));
    assert.equal(burst.filter((r) => r.status === 202).length, LIMIT, `statuses: ${burst.map((r) => r.status)}`);
    assert.equal(burst.filter((r) => r.status === 429).length, LIMIT * 2);
    await nthNotification(T.tenant.id, burstUser.email, 'user.password_reset', LIMIT);
    assert.equal(Number(await superValue(`SELECT count(*) FROM notifications WHERE tenant_id = ${lit(T.tenant.id)} AND recipient = ${lit(burstUser.email)}`)), LIMIT);
    // Another account of the same tenant is not held back.
    const other = await requestReset({ tenant: T.tenant.slug, email: T.owner.email });
    assert.equal(other.status, 202, other.text);
  });
});
