// Staff sessions: listing (one's own, or another user's with
// sessions:manage), ending them (logout, DELETE), the idle and absolute
// expiry, and what ends them by itself: a password change and disabling
// the user. A role change ends nothing but counts from the next request.
// Both sign-in and sign-out leave audit events on the session.
//
// Time is moved by changing stored data, not by waiting: the last use of a
// session is the millisecond timestamp in Redis key sess:<session id> (set
// to one older than SESSION_IDLE_S for the idle expiry), and its absolute
// end is sessions.expires_at (set in the past as the superuser).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { createTenant, login, OWNER_PASSWORD } from './lib/billow.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { redis, redisValue } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { newId } from './lib/util.mjs';

const S = slot(16);
const stack = new Stack('auth_sessions', S);
let api;

const SESSION_IDLE_S = 600;

let T; // The tenant: T.secret is its owner API key.
let owner; // The owner's session token.

async function makeUser(role, password = OWNER_PASSWORD) {
  const email = `${role}-${randomBytes(4).toString('hex')}@${T.tenant.slug}.example`;
  const res = await api.post('/v1/users', {
    token: T.secret,
    headers: { Prefer: 'wait=20' },
    json: { email, name: `The ${role}`, role, password },
  });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.role, role);
  return res.json;
}

function signIn(user, password = OWNER_PASSWORD) {
  return login(api, { tenant: T.tenant.slug, email: user.email, password });
}

// GET /v1/auth/sessions as token; asserts 200 and returns the list.
async function listSessions(token, query) {
  const res = await api.get('/v1/auth/sessions', { token, query });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.object, 'list');
  return res.json.data;
}

// True when token still authenticates (checked on a route every role may call).
async function works(token) {
  const res = await api.get('/v1/auth/sessions', { token });
  if (res.status === 200) return true;
  assertError(res, 401, 'unauthenticated', { type: 'authentication_error' });
  return false;
}

async function sessionRow(id) {
  const [row] = await superuser(`SELECT revoked_at IS NOT NULL, coalesce(revoked_reason, '') FROM sessions WHERE id = ${lit(id)}`);
  return { revoked: row[0] === 't', reason: row[1] };
}

async function updateUser(id, json, token = owner) {
  const res = await api.post('/v1/users/{id}', { params: { id }, token, headers: { Prefer: 'wait=20' }, json });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

before(async () => {
  api = client(await stack.startAll({ SESSION_IDLE_S }));
  T = await createTenant(api);
  owner = (await login(api, { tenant: T.tenant.id, email: T.owner.email, password: OWNER_PASSWORD })).token;
});

after(async () => {
  await stack.stopAll();
});

describe('listing sessions', () => {
  it('GET /v1/auth/session names the token\'s own session and user', async () => {
    const user = await makeUser('analyst');
    const first = await signIn(user);
    const second = await signIn(user);
    for (const s of [first, second]) {
      const res = await api.get('/v1/auth/session', { token: s.token });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.session, { ...s.session, current: true });
      assert.equal(res.json.user.id, user.id);
      assert.equal(res.json.user.email, user.email);
      assert.equal(res.json.user.role, 'analyst');
      assert.ok(res.json.user.last_sign_in_at);
    }
    assertError(await api.get('/v1/auth/session', { token: first.token, query: { user: user.id } }), 400, 'parameter_unknown', { param: 'user' });
  });


  it('lists the caller\'s open sessions, newest first, exactly one of them current', async () => {
    const user = await makeUser('support');
    const s = [];
    for (let i = 0; i < 3; i++) s.push(await signIn(user));
    const ids = s.map((x) => x.session.id);

    const data = await listSessions(s[1].token);
    assert.deepEqual(data.map((x) => x.id), [...ids].reverse());
    assert.deepEqual(data.map((x) => x.current), [false, true, false]);
    for (const x of data) {
      assert.equal(x.object, 'session');
      assert.equal(x.user_id, user.id);
      assert.equal(x.revoked_at, null);
      assert.equal(x.revoked_reason, null);
    }
    assert.deepEqual((await listSessions(s[2].token)).filter((x) => x.current).map((x) => x.id), [ids[2]]);

    // Open ones only: an ended one and an expired one drop out.
    const out = await api.post('/v1/auth/logout', { token: s[0].token });
    assert.equal(out.status, 200, out.text);
    await superuser(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = ${lit(ids[2])}`);
    const left = await listSessions(s[1].token);
    assert.deepEqual(left.map((x) => [x.id, x.current]), [[ids[1], true]]);

    // Only the caller's: another user's sessions are not in it.
    assert.ok(!(await listSessions(owner)).some((x) => x.user_id !== T.owner.id));
  });

  it('an owner or an admin lists another user\'s sessions and ends one; that token is then refused', async () => {
    const user = await makeUser('billing');
    const admin = await signIn(await makeUser('admin'));
    const a = await signIn(user);
    const b = await signIn(user);
    const c = await signIn(user);

    for (const token of [owner, admin.token]) {
      const data = await listSessions(token, { user: user.id });
      assert.deepEqual(data.map((x) => x.id), [c.session.id, b.session.id, a.session.id]);
      assert.ok(data.every((x) => x.current === false && x.user_id === user.id), JSON.stringify(data));
    }

    const byOwner = await api.delete('/v1/auth/sessions/{id}', { params: { id: a.session.id }, token: owner });
    assert.equal(byOwner.status, 200, byOwner.text);
    assert.equal(byOwner.json.id, a.session.id);
    assert.equal(byOwner.json.revoked_reason, 'revoked');
    assert.ok(byOwner.json.revoked_at);
    assert.equal(await works(a.token), false, 'the ended session is refused');
    assert.deepEqual(await sessionRow(a.session.id), { revoked: true, reason: 'revoked' });

    const byAdmin = await api.delete('/v1/auth/sessions/{id}', { params: { id: b.session.id }, token: admin.token });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.equal(byAdmin.json.revoked_reason, 'revoked');
    assert.equal(await works(b.token), false);

    // Ending it again answers it as it is.
    const again = await api.delete('/v1/auth/sessions/{id}', { params: { id: a.session.id }, token: owner });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, byOwner.json);

    // The user's other session goes on.
    assert.equal(await works(c.token), true);
    assert.deepEqual((await listSessions(owner, { user: user.id })).map((x) => x.id), [c.session.id]);
  });

  it('an admin may list but not end an owner\'s sessions; another owner may end them', async () => {
    const admin = await signIn(await makeUser('admin'));
    const second = await signIn(await makeUser('owner'));
    const ownerSession = await signIn(T.owner);

    const listed = await listSessions(admin.token, { user: T.owner.id });
    assert.ok(listed.some((x) => x.id === ownerSession.session.id), JSON.stringify(listed));

    const del = await api.delete('/v1/auth/sessions/{id}', { params: { id: ownerSession.session.id }, token: admin.token });
    assertError(del, 403, 'forbidden', { param: 'id', type: 'permission_error' });
    assert.match(del.json.error.message, /Only an owner may end an owner's sessions/);
    assert.equal(await works(ownerSession.token), true, 'the owner\'s session still works');
    assert.deepEqual(await sessionRow(ownerSession.session.id), { revoked: false, reason: '' });

    // Another owner may.
    const byOwner = await api.delete('/v1/auth/sessions/{id}', { params: { id: ownerSession.session.id }, token: second.token });
    assert.equal(byOwner.status, 200, byOwner.text);
    assert.equal(await works(ownerSession.token), false);
  });

  it('a billing user may neither list nor end another user\'s sessions', async () => {
    const billing = await signIn(await makeUser('billing'));
    const other = await makeUser('support');
    const theirs = await signIn(other);

    const list = await api.get('/v1/auth/sessions', { token: billing.token, query: { user: other.id } });
    assertError(list, 403, 'forbidden', { param: 'user', type: 'permission_error' });
    const ownerList = await api.get('/v1/auth/sessions', { token: billing.token, query: { user: T.owner.id } });
    assertError(ownerList, 403, 'forbidden', { param: 'user' });

    const del = await api.delete('/v1/auth/sessions/{id}', { params: { id: theirs.session.id }, token: billing.token });
    assertError(del, 404, 'resource_missing', { param: 'id' });
    // Exactly as for a session that does not exist (apart from the id named).
    const none = await api.delete('/v1/auth/sessions/{id}', { params: { id: newId('ses') }, token: billing.token });
    assertError(none, 404, 'resource_missing', { param: 'id' });
    assert.equal(del.json.error.type, none.json.error.type);

    assert.equal(await works(theirs.token), true, 'the other user\'s session still works');
    assert.deepEqual(await sessionRow(theirs.session.id), { revoked: false, reason: '' });
    // Naming oneself is allowed.
    assert.equal((await listSessions(billing.token, { user: billing.user.id })).length, 1);
  });
});

describe('ending sessions', () => {
  it('logout ends only the current session', async () => {
    const user = await makeUser('analyst');
    const a = await signIn(user);
    const b = await signIn(user);
    const res = await api.post('/v1/auth/logout', { token: a.token });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, a.session.id);
    assert.equal(res.json.object, 'session');
    assert.equal(res.json.revoked_reason, 'logout');
    assert.ok(res.json.revoked_at);
    assert.equal(await works(a.token), false, 'the logged-out token is refused');
    assert.equal(await works(b.token), true, 'the other session of the same user still works');
    assert.deepEqual((await listSessions(b.token)).map((x) => [x.id, x.current]), [[b.session.id, true]]);
    assert.deepEqual(await sessionRow(a.session.id), { revoked: true, reason: 'logout' });
    assert.deepEqual(await sessionRow(b.session.id), { revoked: false, reason: '' });
  });

  it(`a session idle longer than SESSION_IDLE_S (${SESSION_IDLE_S} s) is refused`, async () => {
    const user = await makeUser('support');
    const idle = await signIn(user);
    const busy = await signIn(user);
    const key = (s) => `sess:${s.session.id}`;
    const last = Number(await redisValue(S.redisDb, 'GET', key(idle)));
    assert.ok(Math.abs(last - Date.now()) < 60000, `${key(idle)} holds the sign-in time in ms, got ${last}`);
    assert.equal(await works(idle.token), true);

    // Last used a minute short of the limit: still fine (and touched again).
    await redis(S.redisDb, 'SET', key(busy), Date.now() - (SESSION_IDLE_S - 60) * 1000);
    assert.equal(await works(busy.token), true, 'used within SESSION_IDLE_S');
    assert.ok(Number(await redisValue(S.redisDb, 'GET', key(busy))) > Date.now() - 60000, 'the use was recorded');

    // Last used a minute past it: refused.
    await redis(S.redisDb, 'SET', key(idle), Date.now() - (SESSION_IDLE_S + 60) * 1000);
    assert.equal(await works(idle.token), false, 'idle longer than SESSION_IDLE_S');
    assert.equal(await works(idle.token), false, 'and it stays refused');
    assert.equal(await works(busy.token), true, 'the other session is not affected');
    // A new sign-in works.
    assert.equal(await works((await signIn(user)).token), true);
  });

  it('a session past its expires_at is refused', async () => {
    const user = await makeUser('support');
    const s = await signIn(user);
    const other = await signIn(user);
    assert.equal(await works(s.token), true);
    await superuser(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = ${lit(s.session.id)}`);
    assert.equal(await works(s.token), false);
    const res = await api.get('/v1/customers', { token: s.token });
    assertError(res, 401, 'unauthenticated');
    assert.equal(await works(other.token), true);
  });
});

describe('changing one\'s password', () => {
  const NEW_PASSWORD = 'tangerine kettle ninety lanterns';

  it('refuses a wrong current password and a weak new one, then ends every session of the user', async () => {
    const user = await makeUser('billing');
    const a = await signIn(user);
    const b = await signIn(user);
    const bystander = await signIn(await makeUser('billing'));

    const wrong = await api.post('/v1/auth/password', { token: a.token, json: { current_password: 'not the password at all', new_password: NEW_PASSWORD } });
    assertError(wrong, 401, 'invalid_credentials', { param: 'current_password' });
    const short = await api.post('/v1/auth/password', { token: a.token, json: { current_password: OWNER_PASSWORD, new_password: 'short pw' } });
    assertError(short, 400, 'password_too_short', { param: 'new_password' });
    for (const weak of ['zzzzzzzzzzzzzzzz', 'Password1234']) {
      const res = await api.post('/v1/auth/password', { token: a.token, json: { current_password: OWNER_PASSWORD, new_password: weak } });
      assertError(res, 400, 'password_too_common', { param: 'new_password' });
    }
    // None of that changed anything.
    assert.equal(await works(a.token), true);
    assert.equal(await works(b.token), true);

    const res = await api.post('/v1/auth/password', { token: a.token, json: { current_password: OWNER_PASSWORD, new_password: NEW_PASSWORD } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'user');
    assert.equal(res.json.id, user.id);
    assert.ok(!res.text.includes(NEW_PASSWORD) && !res.text.includes(OWNER_PASSWORD), 'no password in the answer');

    assert.equal(await works(a.token), false, 'the session that changed the password ended');
    assert.equal(await works(b.token), false, 'the other session ended');
    assert.deepEqual(await sessionRow(a.session.id), { revoked: true, reason: 'password_changed' });
    assert.deepEqual(await sessionRow(b.session.id), { revoked: true, reason: 'password_changed' });
    assert.equal(await works(bystander.token), true, 'another user\'s session goes on');

    const old = await api.post('/v1/auth/login', { json: { tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD } });
    assertError(old, 401, 'invalid_credentials');
    const fresh = await signIn(user, NEW_PASSWORD);
    assert.equal(fresh.user.id, user.id);
    assert.equal(await works(fresh.token), true);
  });
});

describe('changes to the user', () => {
  it('disabling a user ends their sessions at once', async () => {
    const user = await makeUser('billing');
    const a = await signIn(user);
    const b = await signIn(user);
    assert.equal(await works(a.token), true);
    const res = await updateUser(user.id, { status: 'disabled' });
    assert.equal(res.status, 'disabled');
    assert.equal(await works(a.token), false);
    assert.equal(await works(b.token), false);
    assert.deepEqual(await sessionRow(a.session.id), { revoked: true, reason: 'user_disabled' });
    assert.deepEqual(await sessionRow(b.session.id), { revoked: true, reason: 'user_disabled' });
    // Enabling the user again does not bring the sessions back.
    await updateUser(user.id, { status: 'active' });
    assert.equal(await works(a.token), false);
  });

  it('a role change counts from the very next request and ends no session', async () => {
    const user = await makeUser('billing');
    const s = await signIn(user);
    // A probe past the permission check stops at validation (400), before
    // anything is enqueued; a role without customers:write gets 403.
    const probe = () => api.post('/v1/customers', { token: s.token, json: { probe_unknown_parameter: true } });
    assertError(await probe(), 400, 'parameter_unknown', { param: 'probe_unknown_parameter' });

    assert.equal((await updateUser(user.id, { role: 'analyst' })).role, 'analyst');
    assertError(await probe(), 403, 'forbidden', { type: 'permission_error' });
    assert.deepEqual(await sessionRow(s.session.id), { revoked: false, reason: '' });

    assert.equal((await updateUser(user.id, { role: 'billing' })).role, 'billing');
    assertError(await probe(), 400, 'parameter_unknown', { param: 'probe_unknown_parameter' });
  });
});

describe('the audit log', () => {
  it('records a session\'s sign-in as an insert and its logout as an update', async () => {
    const user = await makeUser('support');
    const s = await signIn(user);
    const out = await api.post('/v1/auth/logout', { token: s.token });
    assert.equal(out.status, 200, out.text);

    const res = await api.get('/v1/audit-events', { token: owner, query: { target: s.session.id } });
    assert.equal(res.status, 200, res.text);
    const events = res.json.data;
    assert.equal(events.length, 2, JSON.stringify(events));
    const [revoke, create] = events; // Newest first.
    assert.ok(revoke.id > create.id, 'ids descend');

    assert.equal(create.operation, 'insert');
    assert.equal(create.action, 'session.create');
    assert.deepEqual(create.actor, { type: 'user', id: user.id });
    assert.deepEqual(create.target, { type: 'session', id: s.session.id });
    assert.equal(create.changes.user_id.after, user.id);
    assert.deepEqual(create.changes.token_hash, { before: null, after: '[redacted]' });

    assert.equal(revoke.operation, 'update');
    assert.equal(revoke.action, 'session.revoke');
    assert.deepEqual(revoke.actor, { type: 'user', id: user.id });
    assert.deepEqual(revoke.target, { type: 'session', id: s.session.id });
    assert.deepEqual(revoke.changes.revoked_reason, { before: null, after: 'logout' });
    assert.equal(revoke.changes.revoked_at.before, null);
    assert.equal(revoke.changes.revoked_at.after, out.json.revoked_at);
    assert.deepEqual(Object.keys(revoke.changes).sort(), ['revoked_at', 'revoked_reason']);

    assert.ok(!res.text.includes(s.token), 'the token is not in the audit log');
    const stored = await superValue(`SELECT count(*) FROM audit_events WHERE target_id = ${lit(s.session.id)} AND changes::text LIKE ${lit(`%${s.token}%`)}`);
    assert.equal(stored, '0');
  });
});
