// Staff sign-in (POST /v1/auth/login): what a good sign-in answers, that
// every kind of failure looks the same, the failure counters in Redis (per
// account and per client address, with their lockout window), validation,
// and that the password never comes back in an answer or a log.
//
// The api is restarted between the parts below with the limits each needs
// (LOGIN_MAX_FAILURES, LOGIN_MAX_FAILURES_ADDRESS, LOGIN_LOCKOUT_S); the
// failure counters are emptied between parts so one part's failures, all
// from 127.0.0.1, do not lock the next part out.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { createTenant, OWNER_PASSWORD } from './lib/billow.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { redis, redisValue } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, newId, until } from './lib/util.mjs';

const S = slot(15);
const stack = new Stack('auth_signin', S);
let apiProc;
let api;

const SESSION_TTL_S = 7200;
const MAX_FAILURES = 3;
const LOCKOUT_S = 600;

// Every password this file sends that is not OWNER_PASSWORD: distinctive,
// so finding one in an answer or a log cannot be a coincidence.
const WRONG = `Wrong-Password-${randomBytes(6).toString('hex')}`;
const PASSWORDS = [OWNER_PASSWORD, WRONG];
function wrongPassword() {
  const pw = `${WRONG}-${PASSWORDS.length}`;
  PASSWORDS.push(pw);
  return pw;
}

// Every sign-in answer's text, for the check that none holds a password.
const answers = [];

async function signIn(json, opts = {}) {
  const res = await api.post('/v1/auth/login', { json, ...opts });
  answers.push(res.text);
  return res;
}

function sha256(s) {
  return createHash('sha256').update(s).digest('hex');
}

// The account's failure counter in Redis (tenant id and email, lowercased).
function accountKey(tenantId, email) {
  return `login:fail:acct:${sha256(`${tenantId}\n${email}`.toLowerCase())}`;
}

async function counterKeys() {
  const out = await redis(S.redisDb, '--scan', '--pattern', 'login:fail:*');
  return out.filter((k) => k !== '');
}

async function clearCounters() {
  const keys = await counterKeys();
  if (keys.length) await redis(S.redisDb, 'DEL', ...keys);
}

// (Re)starts the api with env, on empty failure counters.
async function restartApi(env) {
  if (apiProc) await apiProc.stop();
  await clearCounters();
  apiProc = await stack.startApi({ SESSION_TTL_S, ...env });
  api = client(apiProc);
}

// The error object of an answer without its request id (which differs).
function errorWithoutRequestId(res) {
  assert.ok(res.json?.error, `${res.status} ${res.text}`);
  const { request_id: requestId, ...rest } = res.json.error;
  return rest;
}

function assertInvalidCredentials(res, what) {
  assertError(res, 401, 'invalid_credentials', { type: 'authentication_error' });
  assert.equal(res.json.error.param, null, `${what}: ${res.text}`);
}

function assertLocked(res, lockoutS) {
  assertError(res, 429, 'too_many_attempts', { type: 'rate_limit_error' });
  const retry = res.headers['retry-after'];
  assert.match(retry ?? '', /^[0-9]+$/, `Retry-After must be whole seconds, got ${retry}`);
  const n = Number(retry);
  assert.ok(n > 0 && n <= lockoutS, `Retry-After ${n} must be in 1..${lockoutS}`);
}

async function sessionCount(userId) {
  return Number(await superValue(`SELECT count(*) FROM sessions WHERE user_id = ${lit(userId)}`));
}

let T; // The main tenant.
let U; // Another tenant.

async function makeUser(role, { password = OWNER_PASSWORD, tenant = T } = {}) {
  const email = `${role}-${randomBytes(4).toString('hex')}@${tenant.tenant.slug}.example`;
  const json = { email, name: `The ${role}`, role };
  if (password) json.password = password;
  const res = await api.post('/v1/users', { token: tenant.secret, headers: { Prefer: 'wait=20' }, json });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.status, password ? 'active' : 'invited');
  return res.json;
}

before(async () => {
  await stack.flushRedis();
  await restartApi({ LOGIN_MAX_FAILURES: MAX_FAILURES, LOGIN_MAX_FAILURES_ADDRESS: 1000, LOGIN_LOCKOUT_S: LOCKOUT_S });
  stack.startWorker('domain');
  stack.startWorker('access');
  stack.startWorker('metrics');
  T = await createTenant(api);
  U = await createTenant(api);
});

after(async () => {
  await stack.stopAll();
});

describe('a good sign-in', () => {
  it('answers a bst_ token, its expiry, the session and the user; the token works', async () => {
    const res = await signIn(
      { tenant: T.tenant.slug, email: T.owner.email, password: OWNER_PASSWORD },
      { headers: { 'User-Agent': 'auth-signin-test/1.0' } },
    );
    assert.equal(res.status, 200, res.text);
    const { token, expires_at: expiresAt, session, user } = res.json;
    assert.deepEqual(Object.keys(res.json).sort(), ['expires_at', 'session', 'token', 'user']);
    assert.match(token, /^bst_[A-Za-z0-9]{43}$/);
    assert.match(expiresAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);

    assert.match(session.id, ID_RE('ses'));
    assert.equal(session.object, 'session');
    assert.equal(session.user_id, T.owner.id);
    assert.equal(session.expires_at, expiresAt);
    assert.equal(session.revoked_at, null);
    assert.equal(session.revoked_reason, null);
    assert.equal(session.client_addr, '127.0.0.1');
    assert.equal(session.user_agent, 'auth-signin-test/1.0');
    const ttl = (Date.parse(expiresAt) - Date.parse(session.created_at)) / 1000;
    assert.ok(ttl >= SESSION_TTL_S - 2 && ttl <= SESSION_TTL_S + 1, `expires_at is SESSION_TTL_S after created_at, got ${ttl} s`);

    assert.equal(user.id, T.owner.id);
    assert.equal(user.object, 'user');
    assert.equal(user.email, T.owner.email);
    assert.equal(user.role, 'owner');
    assert.equal(user.status, 'active');
    assert.ok(user.last_sign_in_at, 'last_sign_in_at is set by the sign-in');

    // Only the token's SHA-256 is kept.
    const [row] = await superuser(`SELECT token_hash, user_id, tenant_id FROM sessions WHERE id = ${lit(session.id)}`);
    assert.deepEqual(row, [sha256(token), T.owner.id, T.tenant.id]);

    const users = await api.get('/v1/users', { token });
    assert.equal(users.status, 200, users.text);
    assert.ok(users.json.data.some((u) => u.id === T.owner.id), 'the owner sees the users of the tenant');
  });

  it('takes the tenant by id or by slug, and the email in any case', async () => {
    for (const tenant of [T.tenant.id, T.tenant.slug]) {
      const res = await signIn({ tenant, email: T.owner.email, password: OWNER_PASSWORD });
      assert.equal(res.status, 200, `by ${tenant}: ${res.text}`);
      assert.equal(res.json.user.id, T.owner.id);
      assert.equal(res.json.session.user_id, T.owner.id);
      assert.match(res.json.token, /^bst_[A-Za-z0-9]{43}$/);
    }
    const res = await signIn({ tenant: T.tenant.id, email: T.owner.email.toUpperCase(), password: OWNER_PASSWORD });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user.id, T.owner.id);
  });
});

describe('failed sign-ins', () => {
  it('wrong password, unknown email, unknown tenant, invited and disabled users all get the same 401', async () => {
    const victim = await makeUser('billing');
    const invited = await makeUser('support', { password: null });
    const disabled = await makeUser('analyst');
    // The disabled user's password is right: it worked before the disabling.
    const ok = await signIn({ tenant: T.tenant.slug, email: disabled.email, password: OWNER_PASSWORD });
    assert.equal(ok.status, 200, ok.text);
    const dis = await api.post('/v1/users/{id}', {
      params: { id: disabled.id },
      token: T.secret,
      headers: { Prefer: 'wait=20' },
      json: { status: 'disabled' },
    });
    assert.equal(dis.status, 200, dis.text);
    assert.equal(dis.json.status, 'disabled');

    const cases = {
      'a wrong password': { tenant: T.tenant.slug, email: victim.email, password: wrongPassword() },
      'an unknown email': { tenant: T.tenant.slug, email: `nobody-${randomBytes(4).toString('hex')}@example.com`, password: wrongPassword() },
      'an unknown tenant slug': { tenant: `no-such-${randomBytes(4).toString('hex')}`, email: victim.email, password: OWNER_PASSWORD },
      'an unknown tenant id': { tenant: newId('ten'), email: victim.email, password: OWNER_PASSWORD },
      'an invited user': { tenant: T.tenant.slug, email: invited.email, password: OWNER_PASSWORD },
      'a disabled user (right password)': { tenant: T.tenant.id, email: disabled.email, password: OWNER_PASSWORD },
    };
    let first;
    for (const [what, body] of Object.entries(cases)) {
      const res = await signIn(body);
      assertInvalidCredentials(res, what);
      const err = errorWithoutRequestId(res);
      first ??= err;
      assert.deepEqual(err, first, `${what} answers exactly what a wrong password answers`);
    }
    assert.deepEqual(Object.keys(first).sort(), ['code', 'message', 'param', 'type']);
    for (const u of [invited, disabled]) {
      const open = await superValue(`SELECT count(*) FROM sessions WHERE user_id = ${lit(u.id)} AND revoked_at IS NULL`);
      assert.equal(open, '0', `no open session for ${u.status} user ${u.id}`);
    }
  });
});

describe('lockout per account', () => {
  it(`after ${MAX_FAILURES} failures even the right password is 429 with Retry-After, and the counter is in Redis`, async () => {
    const user = await makeUser('billing');
    const sessionsBefore = await sessionCount(user.id);
    for (let i = 0; i < MAX_FAILURES; i++) {
      assertInvalidCredentials(await signIn({ tenant: T.tenant.slug, email: user.email, password: wrongPassword() }), `failure ${i + 1}`);
    }
    const key = accountKey(T.tenant.id, user.email);
    assert.equal(await redisValue(S.redisDb, 'GET', key), String(MAX_FAILURES), `${key} counts the failures`);
    const pttl = Number(await redisValue(S.redisDb, 'PTTL', key));
    assert.ok(pttl > 0 && pttl <= LOCKOUT_S * 1000, `${key} expires within LOGIN_LOCKOUT_S, PTTL ${pttl}`);

    // Locked: by slug and by id alike, with the right password, which is not even checked.
    assertLocked(await signIn({ tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD }), LOCKOUT_S);
    assertLocked(await signIn({ tenant: T.tenant.id, email: user.email.toUpperCase(), password: OWNER_PASSWORD }), LOCKOUT_S);
    assertLocked(await signIn({ tenant: T.tenant.id, email: user.email, password: wrongPassword() }), LOCKOUT_S);
    assert.equal(await redisValue(S.redisDb, 'GET', key), String(MAX_FAILURES), 'refused attempts are not counted');
    assert.equal(await sessionCount(user.id), sessionsBefore, 'no session was opened');
  });

  it('a burst of simultaneous wrong passwords is held to the limit (each counted before it is judged)', async () => {
    const user = await makeUser('billing');
    const BURST = MAX_FAILURES * 3;
    const answers = await Promise.all(
      Array.from({ length: BURST }, () => signIn({ tenant: T.tenant.slug, email: user.email, password: wrongPassword() })),
    );
    const checked = answers.filter((r) => r.status === 401);
    const locked = answers.filter((r) => r.status === 429);
    assert.equal(checked.length + locked.length, BURST, `only 401 and 429: ${answers.map((r) => r.status)}`);
    assert.equal(checked.length, MAX_FAILURES, `exactly ${MAX_FAILURES} guesses were checked: ${answers.map((r) => r.status)}`);
    for (const r of locked) assertLocked(r, LOCKOUT_S);
    assert.equal(await redisValue(S.redisDb, 'GET', accountKey(T.tenant.id, user.email)), String(MAX_FAILURES));
    assertLocked(await signIn({ tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD }), LOCKOUT_S);
  });

  it('failures on one account do not lock another', async () => {
    const locked = await makeUser('billing');
    const other = await makeUser('billing');
    for (let i = 0; i < MAX_FAILURES; i++) {
      assertInvalidCredentials(await signIn({ tenant: T.tenant.id, email: locked.email, password: wrongPassword() }), `failure ${i + 1}`);
    }
    assertLocked(await signIn({ tenant: T.tenant.id, email: locked.email, password: OWNER_PASSWORD }), LOCKOUT_S);
    const res = await signIn({ tenant: T.tenant.id, email: other.email, password: OWNER_PASSWORD });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user.id, other.id);
    // The same email in another tenant is another account.
    const twin = await makeUser('billing', { tenant: U });
    const inU = await signIn({ tenant: U.tenant.slug, email: twin.email, password: OWNER_PASSWORD });
    assert.equal(inU.status, 200, inU.text);
  });

  it('a good sign-in resets the account counter', async () => {
    const user = await makeUser('billing');
    const key = accountKey(T.tenant.id, user.email);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < MAX_FAILURES - 1; i++) {
        assertInvalidCredentials(await signIn({ tenant: T.tenant.slug, email: user.email, password: wrongPassword() }), `round ${round} failure ${i + 1}`);
      }
      assert.equal(await redisValue(S.redisDb, 'GET', key), String(MAX_FAILURES - 1));
      const res = await signIn({ tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD });
      assert.equal(res.status, 200, `round ${round}: ${res.text}`);
      assert.equal(await redisValue(S.redisDb, 'EXISTS', key), '0', 'the counter is gone after the good sign-in');
    }
  });

  it('malformed bodies are 400 and count as no attempt', async () => {
    const user = await makeUser('billing');
    for (let i = 0; i < MAX_FAILURES + 1; i++) {
      assertError(await signIn({ tenant: T.tenant.slug, email: user.email, password: 12345 }), 400, 'parameter_invalid', { param: 'password' });
    }
    const res = await signIn({ tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD });
    assert.equal(res.status, 200, res.text);
  });
});

// An unknown email must cost what a known one costs: its attempt runs the
// password check (on a dummy hash) and is counted the same way, so
// neither the answers nor the lockout tell whether the account exists.
describe('an unknown email counts like a known one', () => {
  // Sends `refs.length` wrong passwords naming the tenant by each ref in
  // turn, then one more attempt by `last`; returns the statuses.
  async function sequence(email, refs, last) {
    const statuses = [];
    for (const tenant of refs) statuses.push((await signIn({ tenant, email, password: wrongPassword() })).status);
    const res = await signIn({ tenant: last, email, password: wrongPassword() });
    statuses.push(res.status);
    if (res.status === 429) assertLocked(res, LOCKOUT_S);
    return statuses;
  }

  it('by the same tenant reference', async () => {
    const known = await makeUser('billing');
    const unknown = `ghost-${randomBytes(4).toString('hex')}@${T.tenant.slug}.example`;
    const refs = Array(MAX_FAILURES).fill(T.tenant.slug);
    const expected = [...Array(MAX_FAILURES).fill(401), 429];
    assert.deepEqual(await sequence(known.email, refs, T.tenant.slug), expected, 'a known email');
    assert.deepEqual(await sequence(unknown, refs, T.tenant.slug), expected, 'an unknown email');
    // Its counter exists like a known account's.
    assert.ok((await counterKeys()).includes(accountKey(T.tenant.id, known.email)));
  });

  it('naming the tenant by slug and by id in turn', async () => {
    const known = await makeUser('billing');
    const unknown = `ghost-${randomBytes(4).toString('hex')}@${T.tenant.slug}.example`;
    const refs = Array.from({ length: MAX_FAILURES }, (_, i) => (i % 2 ? T.tenant.id : T.tenant.slug));
    const expected = [...Array(MAX_FAILURES).fill(401), 429];
    assert.deepEqual(await sequence(known.email, refs, T.tenant.id), expected, 'a known email');
    assert.deepEqual(
      await sequence(unknown, refs, T.tenant.id),
      expected,
      'an unknown email must lock after the same failures, or the lockout tells which emails have accounts',
    );
  });
});

describe('validation', () => {
  const good = () => ({ tenant: T.tenant.slug, email: T.owner.email, password: OWNER_PASSWORD });
  const without = (k) => {
    const b = good();
    delete b[k];
    return b;
  };

  it('answers 400 naming the parameter', async () => {
    const cases = [
      [{}, 'parameter_missing', 'tenant'],
      [without('tenant'), 'parameter_missing', 'tenant'],
      [without('email'), 'parameter_missing', 'email'],
      [without('password'), 'parameter_missing', 'password'],
      [{ ...good(), remember_me: true }, 'parameter_unknown', 'remember_me'],
      [{ ...good(), tenant: 42 }, 'parameter_invalid', 'tenant'],
      [{ ...good(), tenant: '' }, 'parameter_invalid', 'tenant'],
      [{ ...good(), tenant: 'x'.repeat(65) }, 'parameter_invalid', 'tenant'],
      [{ ...good(), email: ['a@b.example'] }, 'parameter_invalid', 'email'],
      [{ ...good(), email: null }, 'parameter_invalid', 'email'],
      [{ ...good(), password: { value: WRONG } }, 'parameter_invalid', 'password'],
      [{ ...good(), password: '' }, 'parameter_invalid', 'password'],
      [{ ...good(), password: true }, 'parameter_invalid', 'password'],
      [{ ...good(), totp_code: 123456 }, 'parameter_invalid', 'totp_code'],
      [{ ...good(), recovery_code: 7 }, 'parameter_invalid', 'recovery_code'],
    ];
    for (const [body, code, param] of cases) {
      const res = await signIn(body);
      assertError(res, 400, code, { param, type: 'invalid_request_error' });
    }
  });

  it('a body that is not a JSON object is 400 invalid_json', async () => {
    for (const body of ['[1,2]', '"password"', 'tenant=x&email=y']) {
      const res = await api.post('/v1/auth/login', { body, headers: { 'Content-Type': 'application/json' } });
      answers.push(res.text);
      assertError(res, 400, 'invalid_json');
    }
  });
});

describe('the password is never echoed', () => {
  // A long password, and one short enough (under 20 characters) for a JSON
  // parser to quote whole as "the token near the error".
  it('not even when the JSON around it is broken', async () => {
    const short = `Sh0rt-${randomBytes(4).toString('hex')}`;
    PASSWORDS.push(short);
    const leaks = [];
    for (const pw of [wrongPassword(), short]) {
      const head = `{"tenant":"${T.tenant.slug}","email":"${T.owner.email}","password":"${pw}`;
      const bodies = {
        'an unterminated string': Buffer.from(head),
        'a missing brace': Buffer.from(`${head}"`),
        'a stray token after it': Buffer.from(`${head}" x}`),
        'a byte that is not UTF-8 in it': Buffer.concat([Buffer.from(head), Buffer.from([0xff]), Buffer.from('"}')]),
        'a control character in it': Buffer.from(`${head}\u0001"}`),
        'a repeated password key': Buffer.from(`${head}","password":"${pw}"}`),
      };
      for (const [what, body] of Object.entries(bodies)) {
        const res = await api.post('/v1/auth/login', { body, headers: { 'Content-Type': 'application/json' } });
        answers.push(res.text);
        assertError(res, 400, 'invalid_json');
        // Even a part of it.
        if (res.text.includes(pw.slice(0, 10))) leaks.push(`${pw.length}-character password, ${what}: ${res.json.error.message}`);
      }
    }
    assert.deepEqual(leaks, [], 'invalid_json messages quote the password');
  });
});

describe('lockout per client address', () => {
  const ADDRESS_MAX = 4;

  before(async () => {
    await restartApi({ LOGIN_MAX_FAILURES: MAX_FAILURES, LOGIN_MAX_FAILURES_ADDRESS: ADDRESS_MAX, LOGIN_LOCKOUT_S: LOCKOUT_S });
  });

  it(`after ${ADDRESS_MAX} failures over several emails, every account is 429 from that address`, async () => {
    const users = [];
    for (let i = 0; i < 3; i++) users.push(await makeUser('billing'));
    const fresh = await makeUser('admin');
    const emails = [...users.map((u) => u.email), `ghost-${randomBytes(4).toString('hex')}@${T.tenant.slug}.example`];
    assert.equal(emails.length, ADDRESS_MAX);
    for (const email of emails) {
      assertInvalidCredentials(await signIn({ tenant: T.tenant.slug, email, password: wrongPassword() }), email);
    }
    assert.equal(await redisValue(S.redisDb, 'GET', 'login:fail:addr:127.0.0.1'), String(ADDRESS_MAX));
    // No single account reached its own limit.
    for (const u of users) assert.equal(await redisValue(S.redisDb, 'GET', accountKey(T.tenant.id, u.email)), '1');

    assertLocked(await signIn({ tenant: T.tenant.slug, email: fresh.email, password: OWNER_PASSWORD }), LOCKOUT_S);
    assertLocked(await signIn({ tenant: U.tenant.id, email: U.owner.email, password: OWNER_PASSWORD }), LOCKOUT_S);
    assertLocked(await signIn({ tenant: T.tenant.slug, email: users[0].email, password: OWNER_PASSWORD }), LOCKOUT_S);
    assert.equal(await sessionCount(fresh.id), 0, 'no session was opened');

    // Forgetting the address counter (as its window ending would) lets them in.
    await redis(S.redisDb, 'DEL', 'login:fail:addr:127.0.0.1');
    const res = await signIn({ tenant: T.tenant.slug, email: fresh.email, password: OWNER_PASSWORD });
    assert.equal(res.status, 200, res.text);
  });
});

describe('behind a trusted proxy', () => {
  const ADDRESS_MAX = 3;
  // Every test connection comes from 127.0.0.1: here it is the balancer.
  before(async () => {
    await restartApi({
      LOGIN_MAX_FAILURES: MAX_FAILURES,
      LOGIN_MAX_FAILURES_ADDRESS: ADDRESS_MAX,
      LOGIN_LOCKOUT_S: LOCKOUT_S,
      TRUSTED_PROXIES: '127.0.0.0/8, 10.0.0.0/8',
    });
  });

  const from = (xff) => ({ headers: { 'X-Forwarded-For': xff } });

  it('counts each client by the address X-Forwarded-For gives, not the balancer\'s', async () => {
    const u = await makeUser('billing');
    // The client wrote 192.0.2.1 itself; the proxies appended the rest.
    for (let i = 0; i < ADDRESS_MAX; i++) {
      const res = await signIn({ tenant: T.tenant.slug, email: `ghost-${i}@${T.tenant.slug}.example`, password: wrongPassword() }, from('192.0.2.1, 198.51.100.7, 10.0.0.3'));
      assertInvalidCredentials(res, 'a guess');
    }
    assert.equal(await redisValue(S.redisDb, 'GET', 'login:fail:addr:198.51.100.7'), String(ADDRESS_MAX));
    assert.equal(await redisValue(S.redisDb, 'GET', 'login:fail:addr:127.0.0.1'), '', 'the balancer is not counted');
    assertLocked(await signIn({ tenant: T.tenant.slug, email: u.email, password: OWNER_PASSWORD }, from('198.51.100.7')), LOCKOUT_S);

    // Another client behind the same balancer signs in, and its session
    // records its own address.
    const res = await signIn({ tenant: T.tenant.slug, email: u.email, password: OWNER_PASSWORD }, from('203.0.113.20'));
    assert.equal(res.status, 200, res.text);
    const addr = await superValue(`SELECT client_addr FROM sessions WHERE id = ${lit(res.json.session.id)}`);
    assert.equal(addr, '203.0.113.20');
  });

  it('counts an IPv6 client by its /64', async () => {
    for (let i = 0; i < ADDRESS_MAX; i++) {
      const res = await signIn({ tenant: T.tenant.slug, email: `ghost6-${i}@${T.tenant.slug}.example`, password: wrongPassword() }, from(`2001:db8:7:8::${i + 1}`));
      assertInvalidCredentials(res, 'a guess');
    }
    assert.equal(await redisValue(S.redisDb, 'GET', 'login:fail:addr:2001:db8:7:8::/64'), String(ADDRESS_MAX));
    const u = await makeUser('billing');
    assertLocked(await signIn({ tenant: T.tenant.slug, email: u.email, password: OWNER_PASSWORD }, from('2001:db8:7:8:ffff::1')), LOCKOUT_S);
  });
});

describe('the end of the lockout window', () => {
  const SHORT_LOCKOUT_S = 2;

  before(async () => {
    await restartApi({ LOGIN_MAX_FAILURES: MAX_FAILURES, LOGIN_MAX_FAILURES_ADDRESS: 1000, LOGIN_LOCKOUT_S: SHORT_LOCKOUT_S });
  });

  it('lets the right password in again once LOGIN_LOCKOUT_S has passed', async () => {
    const user = await makeUser('billing');
    for (let i = 0; i < MAX_FAILURES; i++) {
      assertInvalidCredentials(await signIn({ tenant: T.tenant.slug, email: user.email, password: wrongPassword() }), `failure ${i + 1}`);
    }
    assertLocked(await signIn({ tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD }), SHORT_LOCKOUT_S);
    let last;
    const res = await until(
      'sign-in to work again after the lockout window',
      async () => {
        const r = await signIn({ tenant: T.tenant.slug, email: user.email, password: OWNER_PASSWORD });
        last = r;
        if (r.status === 429) {
          assertLocked(r, SHORT_LOCKOUT_S);
          return undefined;
        }
        return r;
      },
      { timeoutMs: (SHORT_LOCKOUT_S + 5) * 1000, intervalMs: 200, describe: () => `${last?.status} ${last?.text}` },
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user.id, user.id);
  });
});

describe('answers and logs', () => {
  it('no answer holds a password', () => {
    assert.ok(answers.length > 50, `sign-in answers were collected (${answers.length})`);
    const leaks = answers.filter((text) => PASSWORDS.some((pw) => text.includes(pw)));
    assert.deepEqual(leaks, [], 'answers that hold a password');
  });

  it('no log holds a password', async () => {
    // Stop everything first so every log is complete on disk.
    const logs = stack.procs.map((p) => p.logFile);
    await stack.stopAll();
    apiProc = null;
    assert.ok(logs.filter((f) => f.endsWith('-api.log')).length >= 3, 'every api this file started has a log');
    for (const file of logs) {
      const text = fs.readFileSync(file, 'utf8');
      assert.ok(text.length > 0, `${file} is not empty`);
      for (const pw of PASSWORDS) assert.ok(!text.includes(pw), `${file} holds the password ${pw}`);
      assert.ok(!text.includes(WRONG.slice(0, 20)), `${file} holds part of a password`);
    }
  });
});
