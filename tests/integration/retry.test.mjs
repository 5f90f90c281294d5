// Retries: a job that fails for a passing reason (here a lock it cannot get
// in time) waits in the delayed set with its error and
// next_attempt_at, comes back after the backoff and succeeds once the cause
// is gone; a job that keeps failing goes dead after MAX_ATTEMPTS and can be
// replayed after the fix.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { createTenant, waitJob } from './lib/billow.mjs';
import { holdLock, lit, superuser, superValue } from './lib/db.mjs';
import { PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { hgetall, redis, redisValue } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { tag, until } from './lib/util.mjs';

const S = slot(11);
const stack = new Stack('retry', S);
let api;
let tenant;
let secret;

// The worker role waits at most 300 ms for a lock (set for the role in
// before(), reset in after()), so a locked table makes the insert fail with
// SQLSTATE 55P03, which the runtime retries. The lock blocks inserts only, so
// the test can still count rows.
const IMPATIENT = { BACKOFF_BASE_MS: 200, BACKOFF_MAX_MS: 1000 };
const LOCK_CUSTOMERS = 'LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE';

before(async () => {
  await superuser("ALTER ROLE billow_worker SET lock_timeout = '300ms'");
  await stack.flushRedis();
  api = client(await stack.startApi());
  const w = stack.startWorker('domain');
  ({ tenant, secret } = await createTenant(api));
  await w.stop();
});

after(async () => {
  await superuser('ALTER ROLE billow_worker RESET lock_timeout');
  await stack.stopAll();
});

async function submit(name) {
  const res = await api.post('/v1/customers', { token: secret, json: { name, metadata: { run: name } } });
  assert.equal(res.status, 202, res.text);
  return res.json.id;
}

async function job(id) {
  const res = await api.get('/v1/jobs/{id}', { params: { id }, token: secret });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

async function customersNamed(name) {
  return Number(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(tenant.id)} AND name = ${lit(name)}`));
}

describe('retries', () => {
  it('a passing failure is retried after a backoff, keeps its error meanwhile, and then succeeds once', async () => {
    const name = tag('retry');
    const lock = await holdLock(LOCK_CUSTOMERS);
    let released = false;
    try {
      const worker = stack.startWorker('domain', { ...IMPATIENT, MAX_ATTEMPTS: 50 });
      const id = await submit(name);
      let last;
      const waiting = await until(
        'the job to wait for a retry',
        async () => {
          last = await job(id);
          return last.status === 'queued' && last.attempts >= 1 && last.next_attempt_at ? last : undefined;
        },
        { timeoutMs: 30000, describe: () => JSON.stringify(last) },
      );
      assert.equal(waiting.error.code, 'database_error');
      assert.match(waiting.error.message, /lock/);
      assert.ok(Date.parse(waiting.next_attempt_at) > Date.parse(waiting.created_at), 'the retry is scheduled after the job was made');
      assert.equal(await customersNamed(name), 0, 'a failed attempt leaves nothing behind');

      await lock.release();
      released = true;
      const done = await waitJob(api, id, secret, { timeoutMs: 30000 });
      assert.ok(done.attempts >= 1, `the attempts are counted (${done.attempts})`);
      assert.equal(done.result.name, name);
      assert.equal(await customersNamed(name), 1, 'one customer, however many attempts');
      await worker.stop();
    } finally {
      if (!released) await lock.release();
    }
  });

  it('a job that fails MAX_ATTEMPTS times goes dead with its last error, and its replay succeeds after the fix', async () => {
    const name = tag('dead');
    const lock = await holdLock(LOCK_CUSTOMERS);
    let released = false;
    let worker;
    try {
      worker = stack.startWorker('domain', { ...IMPATIENT, MAX_ATTEMPTS: 2 });
      const id = await submit(name);
      const dead = await waitJob(api, id, secret, { status: 'dead', timeoutMs: 30000 });
      assert.equal(dead.error.code, 'database_error');
      assert.ok(dead.finished_at, 'a dead job has the time it died');

      const listed = await api.get('/v1/jobs', { query: { status: 'dead', type: 'customer.create' }, token: PLATFORM_ADMIN_TOKEN });
      assert.equal(listed.status, 200, listed.text);
      assert.ok(listed.json.data.some((j) => j.id === id), 'the dead job is listed for the operator');

      await lock.release();
      released = true;
      const replay = await api.post('/v1/jobs/{id}/replay', { params: { id }, token: PLATFORM_ADMIN_TOKEN });
      assert.equal(replay.status, 200, replay.text);
      const done = await waitJob(api, id, secret, { timeoutMs: 30000 });
      assert.equal(done.replays, 1);
      assert.equal(await customersNamed(name), 1);
    } finally {
      if (!released) await lock.release();
      if (worker) await worker.stop();
    }
  });

  it('a stale retry of a job that has finished since is dropped, not run again', async () => {
    // A slow worker chose to retry the job while a takeover ran it to
    // success: the hash holds the retry's envelope, the status the success,
    // and the delayed set the retry's entry.
    const w = stack.startWorker('domain');
    const name = tag('finished');
    const id = await submit(name);
    const done = await waitJob(api, id, secret);
    await w.stop();
    await redis(S.redisDb, 'HSET', `job:${id}`, 'envelope', JSON.stringify({ id, type: 'customer.create' }));
    await redis(S.redisDb, 'ZADD', 'delayed:domain', 0, id);
    const length = await redisValue(S.redisDb, 'XLEN', 'jobs:domain');

    const moved = await redisValue(S.redisDb, 'FCALL', 'billow_promote', 2, 'delayed:domain', 'jobs:domain', Date.now(), 100);
    assert.equal(moved, '1', 'the entry was taken off the delayed set');
    assert.equal(await redisValue(S.redisDb, 'ZSCORE', 'delayed:domain', id), '');
    assert.equal(await redisValue(S.redisDb, 'XLEN', 'jobs:domain'), length, 'nothing was queued again');
    const hash = await hgetall(S.redisDb, `job:${id}`);
    assert.equal(hash.status, 'succeeded');
    assert.deepEqual((await job(id)).result, done.result);
    assert.equal(await customersNamed(name), 1);
  });

  it('with Redis out of memory a job is neither run uncounted nor acked unrecorded; it finishes once Redis has room', async () => {
    const w = stack.startWorker('domain', IMPATIENT);
    await until('the worker to start', async () => (fs.readFileSync(w.logFile, 'utf8').includes('worker_started') ? true : undefined));
    // Held still while the job arrives and Redis fills up (maxmemory of 1
    // byte, noeviction: every write that may grow it is refused, while
    // reads, XACK and XDEL are still taken).
    process.kill(w.pid, 'SIGSTOP');
    const name = tag('oom');
    let id;
    try {
      id = await submit(name);
      await redis(S.redisDb, 'CONFIG', 'SET', 'maxmemory', '1');
      process.kill(w.pid, 'SIGCONT');
      // The worker cannot count the delivery: it runs nothing, acks
      // nothing, and tries again after a pause.
      await until('the worker to meet the refusal', async () => (fs.readFileSync(w.logFile, 'utf8').includes('OOM') ? true : undefined));
      assert.equal((await job(id)).status, 'queued');
      assert.equal(await customersNamed(name), 0);
      assert.equal(await redisValue(S.redisDb, 'XLEN', 'jobs:domain'), '1', 'the entry is still in the stream');
    } finally {
      process.kill(w.pid, 'SIGCONT');
      await redis(S.redisDb, 'CONFIG', 'SET', 'maxmemory', '0');
    }
    const done = await waitJob(api, id, secret, { timeoutMs: 30000 });
    assert.equal(done.result.name, name);
    assert.equal(await customersNamed(name), 1);
    await w.stop();
  });
});
