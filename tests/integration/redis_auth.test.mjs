// redis_auth: REDIS_URL with credentials. The api and a worker sign in to
// Redis (AUTH) before anything else: as a Redis ACL user on the test Redis
// (redis://user:password@…, the password percent-encoded), and with a
// password alone on a Redis of this file's own started with requirepass
// (redis://:password@…). A wrong password keeps the api unready with the
// reason logged, refuses jobs with 503, and never puts the password in a log.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { DEMO_API_KEY, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { redis } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { tag, until } from './lib/util.mjs';

const S = slot(32);
const stack = new Stack('redis_auth', S);
const USER = `billow_t${S.slot}`;
// Characters a URL must percent-encode, to prove the decoding.
const PASSWORD = 'p@ss:w/rd%';
const ENCODED = encodeURIComponent(PASSWORD);
const REQUIREPASS = 'legacy-secret-t32';
// The port of this file's own Redis (requirepass), beside its api's.
const OWN_REDIS_PORT = S.port + 300;

// REDIS_URL for the test Redis with credentials (the file's database).
function urlWith(userinfo) {
  const u = new URL(S.redisUrl);
  return `redis://${userinfo}@${u.host}${u.pathname}`;
}

before(async () => {
  await stack.flushRedis();
  // A user that may do everything in every database, as Billow needs.
  await redis(S.redisDb, 'ACL', 'SETUSER', USER, 'reset', 'on', `>${PASSWORD}`, '~*', '&*', '+@all');
});

after(async () => {
  await stack.stopAll();
  await redis(S.redisDb, 'ACL', 'DELUSER', USER);
});

// Creates a customer through api and a worker; the job's result comes back
// within the wait, so both the enqueue and the worker went through Redis.
async function customerThroughRedis(api) {
  const email = `${tag('auth')}@example.com`;
  const res = await api.post('/v1/customers', { token: DEMO_API_KEY, headers: { Prefer: 'wait=20' }, json: { email } });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.object, 'customer');
  assert.equal(res.json.email, email);
}

// Runs fn(started), then stops whatever it started that still runs, so a
// failing test leaves no api holding the port for the next.
async function withProcs(fn) {
  const started = [];
  try {
    await fn(started);
  } finally {
    for (const p of started.reverse()) if (p.running) await p.stop();
  }
}

describe('REDIS_URL with credentials', () => {
  it('an ACL user with a percent-encoded password: the api and a worker sign in and run jobs', async () => withProcs(async (started) => {
    const env = { REDIS_URL: urlWith(`${USER}:${ENCODED}`) };
    const p = await stack.startApi(env);
    const worker = stack.startWorker('domain', env);
    started.push(p, worker);
    await customerThroughRedis(client(p));
    // Both connections of the api and the worker's are the ACL user's.
    const clients = (await redis(S.redisDb, 'CLIENT', 'LIST')).join('\n');
    const mine = clients.split('\n').filter((l) => l.includes(`user=${USER} `));
    assert.ok(mine.length >= 3, `the api's two connections and the worker's are ${USER}'s:\n${clients}`);
    await worker.stop();
    await p.stop();
    for (const f of [p.logFile, worker.logFile]) {
      const text = fs.readFileSync(f, 'utf8');
      assert.ok(!text.includes(PASSWORD) && !text.includes(ENCODED), `${f} does not hold the password`);
    }
  }));

  it('a wrong password: the api stays unready, says why, refuses jobs with 503; the worker keeps trying', async () => withProcs(async (started) => {
    const env = { REDIS_URL: urlWith(`${USER}:not-the-password`) };
    const p = await stack.startApi(env, { waitReady: false });
    const api = client(p);
    const worker = stack.startWorker('domain', env);
    started.push(p, worker);
    await until('the api to log why Redis refused it', () => fs.readFileSync(p.logFile, 'utf8').includes('WRONGPASS') || undefined);
    const ready = await api.get('/readyz');
    assert.equal(ready.status, 503, ready.text);
    const refused = await api.post('/v1/customers', { token: DEMO_API_KEY, json: { email: `${tag('noauth')}@example.com` } });
    assertError(refused, 503, 'service_unavailable');
    await until('the worker to log the refusal', () => fs.readFileSync(worker.logFile, 'utf8').includes('WRONGPASS') || undefined);
    assert.ok(worker.running, 'the worker retries instead of exiting');
    const refusals = fs.readFileSync(p.logFile, 'utf8').split('\n').filter((l) => l.includes('redis_setup_failed'));
    assert.ok(refusals.every((l) => l.includes('WRONGPASS')), `only the refused AUTH is logged, not the NOAUTH behind it:\n${refusals.join('\n')}`);
  }));

  it('a malformed REDIS_URL with credentials stops the api and the worker at start-up', async () => {
    const env = { REDIS_URL: urlWith(`${USER}:bad%zzescape`) };
    const p = await stack.startApi(env, { waitReady: false });
    const worker = stack.startWorker('domain', env);
    p.expectDeath();
    worker.expectDeath();
    const [apiExit, workerExit] = await Promise.all([p.waitExit(), worker.waitExit()]);
    assert.equal(apiExit.code, 1, JSON.stringify(apiExit));
    assert.equal(workerExit.code, 1, JSON.stringify(workerExit));
    for (const f of [p.logFile, worker.logFile]) {
      const text = fs.readFileSync(f, 'utf8');
      assert.match(text, /REDIS_URL must look like redis:\/\/\[\[user\]:password@\]host/);
      assert.ok(!text.includes('bad%zzescape'), `${f} does not repeat the password`);
    }
  });

  it('a password alone (Redis requirepass): AUTH with the password, jobs run', async () => withProcs(async (started) => {
    const own = stack.spawn('redis', 'redis-server', ['--port', String(OWN_REDIS_PORT), '--bind', '127.0.0.1', '--requirepass', REQUIREPASS,
      '--save', '', '--appendonly', 'no', '--databases', '4'], stack.baseEnv({}));
    started.push(own);
    await until('the own Redis to answer', async () => {
      assert.ok(own.running, `redis-server exited: ${JSON.stringify(own.exit)}`);
      try {
        return (await redisAt(OWN_REDIS_PORT, 'PING')) === 'PONG' || undefined;
      } catch {
        return undefined;
      }
    });
    const env = { REDIS_URL: `redis://:${REQUIREPASS}@127.0.0.1:${OWN_REDIS_PORT}/1` };
    const p = await stack.startApi(env);
    const worker = stack.startWorker('domain', env);
    started.push(p, worker);
    await customerThroughRedis(client(p));
  }));
});

// One command to the Redis on port with the requirepass password.
async function redisAt(port, ...args) {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', '-a', REQUIREPASS, ...args], (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.trim());
    });
  });
}

describe('the Redis the scripts start', () => {
  it('asks for the password drawn for its data folder: a client without it may do nothing', async () => {
    const url = new URL(S.redisUrl);
    assert.match(decodeURIComponent(url.password), /^[0-9a-f]{48}$/, 'REDIS_URL carries the drawn password');
    const { execFile } = await import('node:child_process');
    const env = { ...process.env };
    delete env.REDISCLI_AUTH;
    const out = await new Promise((resolve, reject) => {
      execFile('redis-cli', ['-h', '127.0.0.1', '-p', url.port, 'XADD', 'jobs:domain', '*', 'job', '{}'], { env }, (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    });
    assert.match(out, /^NOAUTH/, 'an enqueue without the password is refused');
    assert.equal((await redis(S.redisDb, 'PING'))[0], 'PONG', 'with it, commands run');
  });
});
