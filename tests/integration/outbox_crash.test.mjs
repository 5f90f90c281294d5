// The outbox: a worker that dies right after committing a job, before
// relaying the job's follow-up to Redis, delays the follow-up but does not
// lose it, and the job itself is not done twice.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant, waitJob } from './lib/billow.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { redisValue } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { until } from './lib/util.mjs';

const S = slot(4);
const stack = new Stack('outbox_crash', S);
let api;

// Sweep orphaned outbox rows often, so the test need not wait long.
const SWEEP = { OUTBOX_SWEEP_MS: 200 };

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
});

after(async () => {
  await stack.stopAll();
});

const TODAY = `day IN (current_date, (now() AT TIME ZONE 'UTC')::date)`;

async function metricsRow(tenantId) {
  const rows = await superuser(`SELECT customers_total, customers_active FROM metrics_daily WHERE tenant_id = ${lit(tenantId)} AND ${TODAY} ORDER BY day DESC LIMIT 1`);
  return rows[0] ? { total: Number(rows[0][0]), active: Number(rows[0][1]) } : null;
}

async function outboxCount(tenantId) {
  return Number(await superValue(`SELECT count(*) FROM outbox WHERE tenant_id = ${lit(tenantId)}`));
}

async function streamDrained(stream) {
  const len = Number(await redisValue(S.redisDb, 'XLEN', stream));
  let pending = 0;
  try {
    pending = Number(await redisValue(S.redisDb, 'XPENDING', stream, 'workers'));
  } catch {
    // No group yet: nothing pending.
  }
  return len === 0 && pending === 0;
}

describe('crash between commit and outbox relay', () => {
  it('the job is done exactly once and its metrics.refresh follow-up still arrives', { timeout: 180000 }, async () => {
    // Set-up with healthy workers: the tenant, and every follow-up it caused
    // processed, so only the crashed job's follow-up can count a customer.
    const w0 = stack.startWorker('domain', SWEEP);
    const m0 = stack.startWorker('metrics', SWEEP);
    const { tenant, secret } = await createTenant(api);
    await until('the set-up follow-ups to be relayed and processed', async () =>
      (await outboxCount(tenant.id)) === 0 && (await streamDrained('jobs:metrics')) ? true : undefined,
    );
    const before = await metricsRow(tenant.id);
    assert.ok(before === null || before.total === 0, `no customer counted yet: ${JSON.stringify(before)}`);
    await w0.stop();
    await m0.stop();

    // The faulty worker dies right after its first batch commits.
    const faulty = stack.startWorker('domain', { ...SWEEP, BILLOW_FAULTS: 'worker.after_commit' });
    faulty.expectDeath();
    const res = await api.post('/v1/customers', { token: secret, json: { name: 'Survivor', metadata: { case: 'outbox' } } });
    assert.equal(res.status, 202, res.text);
    const jobId = res.json.id;
    const { signal } = await faulty.waitExit(60000);
    assert.equal(signal, 'SIGKILL', 'the fault point killed the worker');

    // Committed, not relayed: the effect and the follow-up are in Postgres.
    assert.equal(await superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${lit(tenant.id)} AND job_id = ${lit(jobId)}`), '1');
    assert.ok((await outboxCount(tenant.id)) >= 1, 'the follow-up waits in the outbox');

    // Healthy workers take over: the job's unacked entry after the visibility
    // timeout, the outbox row through the sweeper.
    stack.startWorker('domain', { ...SWEEP, VISIBILITY_TIMEOUT_MS: 1000 });
    stack.startWorker('metrics', SWEEP);

    const job = await waitJob(api, jobId, PLATFORM_ADMIN_TOKEN, { timeoutMs: 60000 });
    assert.equal(job.result.object, 'customer');
    assert.equal(job.result.name, 'Survivor');
    assert.equal(await superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${lit(tenant.id)} AND job_id = ${lit(jobId)}`), '1');
    assert.equal(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(tenant.id)}`), '1', 'the customer was created once');

    let last;
    await until(
      'metrics_daily to count the customer and the outbox to empty',
      async () => {
        last = { metrics: await metricsRow(tenant.id), outbox: await outboxCount(tenant.id) };
        return last.metrics?.total === 1 && last.outbox === 0 ? true : undefined;
      },
      { timeoutMs: 60000, intervalMs: 200, describe: () => JSON.stringify(last) },
    );
    assert.deepEqual(last.metrics, { total: 1, active: 1 });
  });
});
