// Two-factor sign-in (TOTP, RFC 6238): enrolment (the secret and its
// otpauth URI, the sealed copy in Postgres), confirmation and recovery
// codes, sign-in with a code (missing, wrong, right, replayed) or a
// recovery code (once), enrolling twice, turning it off with the password,
// and a tenant's require_totp setting, which holds a session of a user
// without TOTP to the account:self routes until the user enrols.
//
// The test computes codes itself (HMAC-SHA1 of the 30-second step, from the
// base32 secret the api returns), so it checks the api against the RFC, not
// against its own code. Each code works once: confirming records its step,
// and a sign-in needs a later one. A later step's code is accepted ahead of
// time (the api allows one step either way), so a fresh code never needs a
// wait: freshStep() takes the step after the last one used, or the current
// one when that is later.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createTenant, login, OWNER_PASSWORD } from './lib/billow.mjs';
import { base32Decode, PERIOD_S, recoveryCodeHash, stepAt, totpCode, unseal } from './lib/crypto.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { BILLOW_BUILD, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { newId } from './lib/util.mjs';

const S = slot(17);
const stack = new Stack('auth_totp', S);
let api;

// --- TOTP, computed here (RFC 4648 base32, RFC 4226 HOTP, RFC 6238) ----------

function currentStep() {
  return stepAt();
}

// A step whose code has not been used (after lastUsed) and that the api
// accepts now and for the next 30 s at least: the current step, or the
// next one when the current one is spent.
function freshStep(lastUsed) {
  const now = currentStep();
  const step = Math.max(lastUsed + 1, now);
  assert.ok(step <= now + 1, `no fresh TOTP step: the last one used (${lastUsed}) is ahead of now (${now})`);
  return step;
}

// Six digits that are the code of no step near now (so "wrong" whatever
// the clock does during the request).
function wrongCode(secret) {
  const now = currentStep();
  const near = new Set();
  for (let s = now - 3; s <= now + 3; s++) near.add(totpCode(secret, s));
  for (let i = 0; ; i++) {
    const candidate = String(i * 111111 % 1000000).padStart(6, '0');
    if (!near.has(candidate)) return candidate;
  }
}

// --- the tenants and users --------------------------------------------------

const SECRET_RE = /^[A-Z2-7]{32}$/;
const RECOVERY_RE = /^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$/;

async function makeUser(secret, { email, role }) {
  const res = await api.post('/v1/users', {
    token: secret,
    headers: { Prefer: 'wait=20' },
    json: { email, name: `The ${role}`, role, password: OWNER_PASSWORD },
  });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.status, 'active');
  assert.equal(res.json.totp_enabled, false);
  return res.json;
}

async function userRow(id) {
  const [row] = await superuser(`SELECT totp_enabled, coalesce(totp_secret_sealed, ''), totp_last_step,
      (SELECT count(*) FROM recovery_codes r WHERE r.user_id = u.id),
      (SELECT count(*) FROM recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NOT NULL)
    FROM users u WHERE id = ${lit(id)}`);
  const [enabled, sealed, lastStep, codes, used] = row;
  return { enabled: enabled === 't', sealed, lastStep: Number(lastStep), codes: Number(codes), used: Number(used) };
}

function loginRaw(body) {
  return api.post('/v1/auth/login', { json: body });
}

before(async () => {
  api = client(await stack.startAll());
});

after(async () => {
  await stack.stopAll();
});

describe('the test\'s own TOTP', () => {
  it('matches RFC 6238\'s SHA-1 test vector (T = 59 s) and decodes base32', () => {
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'; // base32 of "12345678901234567890"
    assert.equal(base32Decode(secret).toString('ascii'), '12345678901234567890');
    // The RFC's 8-digit value is 94287082; six digits are its last six.
    assert.equal(totpCode(secret, Math.floor(59 / PERIOD_S)), '287082');
    assert.equal(totpCode(secret, Math.floor(1111111109 / PERIOD_S)), '081804');
  });
});

describe('enrolling, confirming, signing in with a code', () => {
  let A;
  let user;
  let email;
  let session; // The user's session from before TOTP was on.
  let secret;
  let confirmStep;
  let loginStep;
  let recoveryCodes;

  before(async () => {
    A = await createTenant(api);
    // A '+' and the '@' must be percent-encoded in the URI's label.
    email = `ada+totp@${A.tenant.slug}.example`;
    user = await makeUser(A.secret, { email, role: 'admin' });
    session = (await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD })).token;
  });

  it('POST /v1/auth/totp answers a base32 secret and its otpauth URI, and stores the secret only sealed', async () => {
    const res = await api.post('/v1/auth/totp', { token: session });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'totp_enrollment');
    secret = res.json.secret;
    assert.match(secret, SECRET_RE);
    assert.equal(base32Decode(secret).length, 20);
    assert.equal(
      res.json.otpauth_uri,
      `otpauth://totp/Billow:${encodeURIComponent(email)}?secret=${secret}&issuer=Billow&algorithm=SHA1&digits=6&period=30`,
    );
    const uri = new URL(res.json.otpauth_uri);
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname.slice(1)), `Billow:${email}`);
    assert.ok(uri.pathname.includes('ada%2Btotp%40'), uri.pathname);
    assert.equal(uri.searchParams.get('secret'), secret);
    assert.equal(uri.searchParams.get('issuer'), 'Billow');

    const row = await userRow(user.id);
    assert.equal(row.enabled, false, 'pending until a code confirms it');
    assert.ok(row.sealed.startsWith('v1.'), row.sealed);
    assert.ok(!row.sealed.includes(secret), 'the stored value does not contain the secret');
    assert.ok(!row.sealed.toLowerCase().includes(secret.toLowerCase()));
    assert.equal(unseal(row.sealed, 'totp_secret'), secret, 'the stored value is the secret sealed under ENCRYPTION_KEY');
    assert.throws(() => unseal(row.sealed, 'user_token'), 'sealed for its own context only');
    // Not on yet: the password alone still signs in.
    await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD });
  });

  it('confirming with a wrong code is 400 totp_invalid (param code), and TOTP stays off', async () => {
    const res = await api.post('/v1/auth/totp/confirm', { token: session, json: { code: wrongCode(secret) } });
    assertError(res, 400, 'totp_invalid', { param: 'code' });
    const row = await userRow(user.id);
    assert.equal(row.enabled, false);
    assert.equal(row.codes, 0);
  });

  it('confirming with the right code turns TOTP on and answers 10 recovery codes', async () => {
    confirmStep = freshStep(0);
    const res = await api.post('/v1/auth/totp/confirm', { token: session, json: { code: totpCode(secret, confirmStep) } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user.id, user.id);
    assert.equal(res.json.user.email, email);
    assert.equal(res.json.user.totp_enabled, true);
    recoveryCodes = res.json.recovery_codes;
    assert.equal(recoveryCodes.length, 10);
    for (const c of recoveryCodes) assert.match(c, RECOVERY_RE);
    assert.equal(new Set(recoveryCodes).size, 10, 'the codes differ');

    const row = await userRow(user.id);
    assert.equal(row.enabled, true);
    assert.equal(row.lastStep, confirmStep, 'the confirming code is spent');
    assert.equal(row.codes, 10);
    assert.equal(row.used, 0);
    // Only hashes are stored (SHA-256 of the code without its dash).
    const hashes = (await superuser(`SELECT code_hash FROM recovery_codes WHERE user_id = ${lit(user.id)} ORDER BY 1`)).map((r) => r[0]);
    const expected = recoveryCodes.map((c) => recoveryCodeHash(c)).sort();
    assert.deepEqual(hashes, expected);
    const text = await superValue(`SELECT row_to_json(u)::text FROM users u WHERE id = ${lit(user.id)}`);
    assert.ok(!text.includes(secret));
  });

  it('sign-in without a code is 401 totp_required', async () => {
    const res = await loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD });
    assertError(res, 401, 'totp_required', { param: 'totp_code', type: 'authentication_error' });
  });

  it('sign-in with a wrong code is 401 totp_invalid', async () => {
    const res = await loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD, totp_code: wrongCode(secret) });
    assertError(res, 401, 'totp_invalid', { type: 'authentication_error' });
  });

  it('the confirming code does not sign in (it is spent)', async () => {
    const res = await loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD, totp_code: totpCode(secret, confirmStep) });
    assertError(res, 401, 'totp_invalid');
  });

  it('sign-in with the right code is 200 and the session works', async () => {
    loginStep = freshStep(confirmStep);
    const res = await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD, totp_code: totpCode(secret, loginStep) });
    assert.equal(res.user.id, user.id);
    assert.equal(res.user.totp_enabled, true);
    assert.equal(res.session.user_id, user.id);
    const users = await api.get('/v1/users', { token: res.token });
    assert.equal(users.status, 200, users.text);
    assert.equal((await userRow(user.id)).lastStep, loginStep);
  });

  it('the same code again (same step) is refused: 401 totp_invalid', async () => {
    const res = await loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD, totp_code: totpCode(secret, loginStep) });
    assertError(res, 401, 'totp_invalid', { type: 'authentication_error' });
    assert.equal((await userRow(user.id)).lastStep, loginStep);
  });

  it('a recovery code signs in once; the same code again is 401 totp_invalid', async () => {
    const code = recoveryCodes[3];
    const first = await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD, recovery_code: code });
    assert.equal(first.user.id, user.id);
    let row = await userRow(user.id);
    assert.equal(row.used, 1);
    const hash = recoveryCodeHash(code);
    assert.equal(await superValue(`SELECT used_at IS NOT NULL FROM recovery_codes WHERE code_hash = ${lit(hash)}`), 't');

    const again = await loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD, recovery_code: code });
    assertError(again, 401, 'totp_invalid');
    row = await userRow(user.id);
    assert.equal(row.used, 1, 'nothing else was spent');
    assert.equal(row.codes, 10);
    // A 401 totp_invalid is an authentication_error, wherever it is decided.
    assert.equal(again.json.error.type, 'authentication_error', again.text);
  });

  it('two sign-ins at once with one recovery code: exactly one gets a session', async () => {
    const code = recoveryCodes[7];
    const sessionsBefore = Number(await superValue(`SELECT count(*) FROM sessions WHERE user_id = ${lit(user.id)}`));
    const both = await Promise.all([0, 1].map(() => loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD, recovery_code: code })));
    const won = both.filter((r) => r.status === 200);
    const lost = both.filter((r) => r.status !== 200);
    assert.equal(won.length, 1, both.map((r) => r.text).join('\n'));
    assertError(lost[0], 401, 'totp_invalid');
    assert.equal(Number(await superValue(`SELECT count(*) FROM sessions WHERE user_id = ${lit(user.id)}`)), sessionsBefore + 1);
    assert.equal((await userRow(user.id)).used, 2);
  });

  it('two sign-ins at once with one TOTP code: exactly one gets a session', async () => {
    // The spent-step mark moved back a minute, as though the last code had
    // been used then: the current step's code is fresh again without a wait.
    const rewound = currentStep() - 2;
    await superuser(`UPDATE users SET totp_last_step = ${rewound} WHERE id = ${lit(user.id)}`);
    const step = freshStep(rewound);
    const sessionsBefore = Number(await superValue(`SELECT count(*) FROM sessions WHERE user_id = ${lit(user.id)}`));
    const body = { tenant: A.tenant.slug, email, password: OWNER_PASSWORD, totp_code: totpCode(secret, step) };
    const both = await Promise.all([loginRaw(body), loginRaw(body)]);
    const won = both.filter((r) => r.status === 200);
    const lost = both.filter((r) => r.status !== 200);
    assert.equal(won.length, 1, both.map((r) => r.text).join('\n'));
    assertError(lost[0], 401, 'totp_invalid');
    assert.equal(Number(await superValue(`SELECT count(*) FROM sessions WHERE user_id = ${lit(user.id)}`)), sessionsBefore + 1);
    assert.equal((await userRow(user.id)).lastStep, step);
  });

  it('enrolling again while TOTP is on is 409 totp_enabled, and the secret stays', async () => {
    const before = (await userRow(user.id)).sealed;
    const res = await api.post('/v1/auth/totp', { token: session });
    assertError(res, 409, 'totp_enabled');
    const row = await userRow(user.id);
    assert.equal(row.sealed, before);
    assert.equal(row.enabled, true);
  });

  it('disabling with a wrong password is 401 invalid_credentials (param password); TOTP stays on', async () => {
    const res = await api.post('/v1/auth/totp/disable', { token: session, json: { password: 'not the password at all' } });
    assertError(res, 401, 'invalid_credentials', { param: 'password' });
    const row = await userRow(user.id);
    assert.equal(row.enabled, true);
    assert.equal(row.codes, 10);
    assertError(await loginRaw({ tenant: A.tenant.slug, email, password: OWNER_PASSWORD }), 401, 'totp_required');
  });

  it('disabling with the password turns TOTP off: the password alone signs in again', async () => {
    const res = await api.post('/v1/auth/totp/disable', { token: session, json: { password: OWNER_PASSWORD } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, user.id);
    assert.equal(res.json.totp_enabled, false);
    const row = await userRow(user.id);
    assert.equal(row.enabled, false);
    assert.equal(row.sealed, '', 'the secret is gone');
    assert.equal(row.codes, 0, 'the recovery codes are gone');
    const s = await login(api, { tenant: A.tenant.slug, email, password: OWNER_PASSWORD });
    assert.equal(s.user.totp_enabled, false);
  });
});

describe('a tenant that requires TOTP', () => {
  // Every route, with its auth and permission, from the server's own table.
  let routes;
  let B;
  let ownerSession;
  let admin;
  let adminEmail;
  let adminSession;

  // A request that stops before any effect when it gets past the auth,
  // permission and TOTP checks (as in access_matrix.test.mjs): an unknown
  // body parameter for a POST, an id that exists nowhere for a path.
  function probe(route, token) {
    const [method, template] = route.split(' ');
    const opts = { token };
    const prefix = { customers: 'cus', users: 'usr', api_keys: 'key', jobs: 'job', auth: 'ses' }[template.split('/')[2]];
    if (template.includes('{id}')) opts.params = { id: newId(prefix) };
    if (template === '/v1/jobs') opts.query = { status: 'dead' };
    if (method === 'POST') opts.json = { probe_unknown_parameter: true };
    return api.request(method, template, opts);
  }

  const PASSED = new Set([200, 202, 400, 404]);

  // What the admin's session gets on every route that takes a tenant's
  // session: enrolment required (or not) on all but account:self, and the
  // permission check before it (an admin lacks only settings:write).
  async function assertAdminRoutes(enrolled) {
    assert.ok(routes.length > 20, 'the route table lists the routes');
    for (const { route, permission } of routes) {
      const res = await probe(route, adminSession);
      const where = `${route} (${permission}) for the admin, ${enrolled ? 'enrolled' : 'not enrolled'}`;
      if (permission === 'settings:write') {
        assertError(res, 403, 'forbidden', { type: 'permission_error' });
      } else if (permission === 'account:self' || enrolled) {
        assert.ok(PASSED.has(res.status), `${where}: should get past the checks, got ${res.status} ${res.text.slice(0, 300)}`);
      } else {
        assert.equal(res.status, 403, `${where}: ${res.status} ${res.text.slice(0, 300)}`);
        assertError(res, 403, 'totp_enrollment_required', { type: 'permission_error' });
      }
    }
  }

  before(async () => {
    const out = execFileSync(path.join(BILLOW_BUILD, 'billow-api'), ['--routes-json'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    routes = JSON.parse(out)
      .filter((r) => r.auth === 'tenant' || r.auth === 'user' || r.auth === 'ops')
      .map((r) => ({ route: `${r.method} ${r.path}`, permission: r.permission }));
    B = await createTenant(api);
    ownerSession = (await login(api, { tenant: B.tenant.id, email: B.owner.email, password: OWNER_PASSWORD })).token;
    adminEmail = `admin@${B.tenant.slug}.example`;
    admin = await makeUser(B.secret, { email: adminEmail, role: 'admin' });
  });

  it('is off by default', async () => {
    const res = await api.get('/v1/settings/security', { token: ownerSession });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { object: 'security_settings', require_totp: false });
  });

  it('an admin may not turn it on: 403 forbidden', async () => {
    const adminBefore = (await login(api, { tenant: B.tenant.slug, email: adminEmail, password: OWNER_PASSWORD })).token;
    const res = await api.post('/v1/settings/security', { token: adminBefore, headers: { Prefer: 'wait=20' }, json: { require_totp: true } });
    assertError(res, 403, 'forbidden', { type: 'permission_error' });
    assert.equal(await superValue(`SELECT require_totp FROM tenants WHERE id = ${lit(B.tenant.id)}`), 'f');
  });

  it('an owner turns it on; GET /v1/settings/security reflects it', async () => {
    const res = await api.post('/v1/settings/security', { token: ownerSession, headers: { Prefer: 'wait=20' }, json: { require_totp: true } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { object: 'security_settings', require_totp: true });
    assert.equal(await superValue(`SELECT require_totp FROM tenants WHERE id = ${lit(B.tenant.id)}`), 't');
    // The owner API key is no staff session: it reads the setting.
    const got = await api.get('/v1/settings/security', { token: B.secret });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json, { object: 'security_settings', require_totp: true });
    // The owner has no TOTP either: their own session is held too.
    assertError(await api.get('/v1/settings/security', { token: ownerSession }), 403, 'totp_enrollment_required');
  });

  it('a user without TOTP signs in, but every route outside account:self is 403 totp_enrollment_required', async () => {
    const s = await login(api, { tenant: B.tenant.slug, email: adminEmail, password: OWNER_PASSWORD });
    assert.equal(s.user.id, admin.id);
    assert.equal(s.user.totp_enabled, false);
    adminSession = s.token;
    await assertAdminRoutes(false);
  });

  it('the account:self routes still work: the session list, enrolment and confirmation', async () => {
    const list = await api.get('/v1/auth/sessions', { token: adminSession });
    assert.equal(list.status, 200, list.text);
    const current = list.json.data.filter((x) => x.current);
    assert.equal(current.length, 1);
    assert.equal(current[0].user_id, admin.id);

    // Other users' sessions are not the admin's own account: held too.
    const ownerSessions = await api.get('/v1/auth/sessions', { token: ownerSession });
    assert.equal(ownerSessions.status, 200, ownerSessions.text);
    const theirs = ownerSessions.json.data.find((x) => x.current);
    assertError(await api.get('/v1/auth/sessions', { token: adminSession, query: { user: theirs.user_id } }), 403, 'totp_enrollment_required');
    assertError(await api.request('DELETE', '/v1/auth/sessions/{id}', { token: adminSession, params: { id: theirs.id } }), 403, 'totp_enrollment_required');
    const still = await api.get('/v1/auth/sessions', { token: ownerSession });
    assert.ok(still.json.data.some((x) => x.id === theirs.id), "the owner's session is still open");

    const enrol = await api.post('/v1/auth/totp', { token: adminSession });
    assert.equal(enrol.status, 200, enrol.text);
    assert.match(enrol.json.secret, SECRET_RE);
    // Still held while the enrolment is only pending.
    assertError(await api.get('/v1/users', { token: adminSession }), 403, 'totp_enrollment_required');
    const step = freshStep(0);
    const confirm = await api.post('/v1/auth/totp/confirm', { token: adminSession, json: { code: totpCode(enrol.json.secret, step) } });
    assert.equal(confirm.status, 200, confirm.text);
    assert.equal(confirm.json.user.totp_enabled, true);
    assert.equal(confirm.json.recovery_codes.length, 10);
  });

  it('after enrolling, the same session works on every route its role allows', async () => {
    await assertAdminRoutes(true);
    const ownerSessions = await api.get('/v1/auth/sessions', { token: ownerSession });
    const ownerId = ownerSessions.json.data[0].user_id;
    const theirs = await api.get('/v1/auth/sessions', { token: adminSession, query: { user: ownerId } });
    assert.equal(theirs.status, 200, theirs.text);
    assert.ok(theirs.json.data.length >= 1);
    const got = await api.get('/v1/settings/security', { token: adminSession });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json, { object: 'security_settings', require_totp: true });
    const users = await api.get('/v1/users', { token: adminSession });
    assert.equal(users.status, 200, users.text);
    assert.ok(users.json.data.some((u) => u.id === admin.id && u.totp_enabled === true));
    // And from now on the admin's sign-in needs a code.
    assertError(await loginRaw({ tenant: B.tenant.slug, email: adminEmail, password: OWNER_PASSWORD }), 401, 'totp_required');
  });

  it('turned off again (with the owner key), the owner\'s session is free again', async () => {
    const res = await api.post('/v1/settings/security', { token: B.secret, headers: { Prefer: 'wait=20' }, json: { require_totp: false } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { object: 'security_settings', require_totp: false });
    const got = await api.get('/v1/settings/security', { token: ownerSession });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json, { object: 'security_settings', require_totp: false });
  });
});
