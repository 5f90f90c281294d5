// Crash safety of the worker batch: a worker SIGKILLed with jobs in flight,
// and a worker killed right after a batch commit (before its acks), lose no
// job and repeat none. Counted in Postgres: one customer and one
// processed_jobs row per job, in a tenant made for the test.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant, waitJob } from './lib/billow.mjs';
import { holdLock, lit, superValue } from './lib/db.mjs';
import { PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { pendingOf, streamConsumers, streamPending } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { mapLimit, tag, until } from './lib/util.mjs';

const S = slot(2);
const stack = new Stack('crash_batch', S);
let api;

// Requests in flight while submitting jobs.
const SUBMIT_CONCURRENCY = 16;
// Short enough that a dead worker's entries are taken over within the test,
// long enough that a live worker's batch (ASan build) is never taken from it.
const WORKER_ENV = { WORKER_BATCH: 50, VISIBILITY_TIMEOUT_MS: 3000 };

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
});

after(async () => {
  await stack.stopAll();
});

// Submits n customer creations tagged `batch` and returns their job ids.
async function submit(secret, batch, n) {
  return mapLimit(Array.from({ length: n }, (_, i) => i), SUBMIT_CONCURRENCY, async (i) => {
    const res = await api.post('/v1/customers', {
      token: secret,
      json: { name: `Customer ${i}`, metadata: { batch, n: String(i) } },
    });
    assert.equal(res.status, 202, res.text);
    return res.json.id;
  });
}

// Consumers of the domain stream's group: [{name, pending}].
function consumers() {
  return streamConsumers(S.redisDb, 'jobs:domain');
}

// Waits until every job is succeeded (counting in Postgres first, then each
// job through the API) and checks each was done exactly once.
async function assertExactlyOnce(tenantId, batch, ids) {
  const n = ids.length;
  const idList = `ARRAY[${ids.map(lit).join(',')}]::text[]`;
  const processed = () =>
    superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${lit(tenantId)} AND job_id = ANY(${idList})`).then(Number);
  let last = 0;
  await until(
    `all ${n} jobs to be recorded in processed_jobs`,
    async () => {
      last = await processed();
      return last >= n ? true : undefined;
    },
    { timeoutMs: 240000, intervalMs: 500, describe: () => `${last} of ${n}` },
  );

  const jobs = await mapLimit(ids, SUBMIT_CONCURRENCY, (id) => waitJob(api, id, PLATFORM_ADMIN_TOKEN, { timeoutMs: 60000 }).catch(() => null));
  const notDone = ids.filter((_, i) => !jobs[i]);
  assert.deepEqual(notDone, [], 'every job ends succeeded');

  assert.equal(await processed(), n, 'one processed_jobs row per job');
  const where = `tenant_id = ${lit(tenantId)} AND metadata->>'batch' = ${lit(batch)}`;
  assert.equal(Number(await superValue(`SELECT count(*) FROM customers WHERE ${where}`)), n, 'one customer per job');
  assert.equal(Number(await superValue(`SELECT count(DISTINCT metadata->>'n') FROM customers WHERE ${where}`)), n);

  const resultIds = new Set(jobs.map((j) => j.result.id));
  assert.equal(resultIds.size, n, 'each job has its own customer');
  const dbIds = await superValue(`SELECT string_agg(id, ',' ORDER BY id) FROM customers WHERE ${where}`);
  assert.deepEqual(dbIds.split(','), [...resultIds].sort(), 'the jobs\' results are the customers in Postgres');

  await until('the domain stream to have no unacked entries', async () => ((await streamPending(S.redisDb, 'jobs:domain')) === 0 ? true : undefined), {
    timeoutMs: 30000,
    describe: async () => JSON.stringify(await consumers()),
  });
}

describe('worker crashes in the middle of a batch', () => {
  it('a worker SIGKILLed with jobs in flight: all 1,000 jobs are done exactly once', { timeout: 420000 }, async (t) => {
    const w0 = stack.startWorker('domain', WORKER_ENV);
    const { tenant, secret } = await createTenant(api);
    await w0.stop();
    const batch = tag('kill');

    // Inserts into customers wait behind this lock, so a worker that has
    // read a batch holds it, uncommitted, for as long as the test needs:
    // the SIGKILL then lands in the middle of a batch every time.
    const lock = await holdLock('LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE');
    let released = false;
    try {
      // All 1,000 wait in the stream, so each worker's first read is a full batch.
      const ids = await submit(secret, batch, 1000);
      const w1 = stack.startWorker('domain', WORKER_ENV);
      stack.startWorker('domain', WORKER_ENV);
      let pendingAtKill = 0;
      await until(
        'the first worker to hold a batch',
        async () => {
          pendingAtKill = await pendingOf(S.redisDb, 'jobs:domain', w1.pid);
          return pendingAtKill > 0 ? true : undefined;
        },
        { timeoutMs: 60000, intervalMs: 20, describe: async () => JSON.stringify(await consumers()) },
      );
      await w1.kill9();
      const orphaned = await pendingOf(S.redisDb, 'jobs:domain', w1.pid);
      t.diagnostic(`killed worker pid ${w1.pid} holding ${orphaned} unacked entries; consumers ${JSON.stringify(await consumers())}`);
      assert.ok(orphaned > 0, 'the killed worker left unacked entries behind');

      await lock.release();
      released = true;
      stack.startWorker('domain', WORKER_ENV);
      await assertExactlyOnce(tenant.id, batch, ids);
    } finally {
      if (!released) await lock.release();
    }
    // The survivors stop cleanly, and leave the next test's jobs alone.
    await stack.stopWorkers();
  });

  it('a worker killed right after a batch commit, before its acks: the redelivered batch is not repeated', { timeout: 300000 }, async () => {
    // A normal worker creates the tenant, then stops, so the faulty worker's
    // commits are all job batches of this test.
    await stack.stopWorkers();
    const w0 = stack.startWorker('domain', WORKER_ENV);
    const { tenant, secret } = await createTenant(api);
    await w0.stop();

    const batch = tag('commit');
    const ids = await submit(secret, batch, 300);
    const faulty = stack.startWorker('domain', { ...WORKER_ENV, BILLOW_FAULTS: 'worker.after_commit:2' });
    faulty.expectDeath();
    const { signal } = await faulty.waitExit(120000);
    assert.equal(signal, 'SIGKILL', 'the fault point killed the worker');
    const committed = Number(
      await superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${lit(tenant.id)} AND job_id = ANY(ARRAY[${ids.map(lit).join(',')}]::text[])`),
    );
    assert.ok(committed > 0 && committed < 300, `the faulty worker committed some jobs before dying (${committed})`);

    stack.startWorker('domain', WORKER_ENV);
    await assertExactlyOnce(tenant.id, batch, ids);
  });
});
