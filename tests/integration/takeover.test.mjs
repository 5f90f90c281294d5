// takeover: what happens to a job while another consumer takes its entry
// over after the visibility timeout.
//
// - A consumer whose batch was taken over while it waited, and committed by
//   the consumer that took it, finds that commit in processed_jobs when it
//   runs the batch again: it republishes the outcome instead of running the
//   job a second time (and publishing `dead` over `succeeded`). The waits
//   are made with locks held by the test, and each step waits for the
//   worker's backend to be seen waiting on the lock it should, so nothing
//   depends on timing.
// - A charger batch whose Stripe calls take longer than the visibility
//   timeout heartbeats while it waits for Stripe, so a second charger never
//   takes its entries over and no delivery is counted twice.
// - The batch of a charger that died is taken over an entry at a time: an
//   entry claimed but not yet run would go idle behind the others, and a
//   third charger would take it over again.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createTenant, waitJob } from './lib/billow.mjs';
import { holdLock, lit, superuser, superValue } from './lib/db.mjs';
import { PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { connectStripe, startStripeFake } from './lib/payments.mjs';
import { hgetall, pendingOf, redisValue, streamConsumers } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { tag, until } from './lib/util.mjs';

const S = slot(38);
const stack = new Stack('takeover', S);
let api;
let fake;

before(async () => {
  await stack.flushRedis();
  fake = await startStripeFake(stack);
  api = client(await stack.startApi());
});

after(async () => {
  await stack.stopAll();
});

// The Postgres backends of a worker kind: [{pid, wait, state}], wait being
// "<wait_event_type>:<wait_event>" ("Lock:relation", "Lock:advisory") or "".
async function backends(kind) {
  const rows = await superuser(
    `SELECT pid, coalesce(wait_event_type || ':' || wait_event, ''), state FROM pg_stat_activity WHERE application_name = ${lit(`billow-worker-${kind}`)}`,
  );
  return rows.map(([pid, wait, state]) => ({ pid: Number(pid), wait, state }));
}

// Waits until the backend chosen by pick (from backends(kind)) exists and
// returns it.
async function waitBackend(kind, what, pick) {
  let last = [];
  return until(
    what,
    async () => {
      last = await backends(kind);
      return last.find(pick);
    },
    { timeoutMs: 60000, intervalMs: 50, describe: () => JSON.stringify(last) },
  );
}

// The log events ({event, ...}) a process has written so far.
function logEvents(p) {
  return fs
    .readFileSync(p.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

describe('a job taken over by another consumer', () => {
  it('committed by the consumer that took it over, is not run again by the one it was taken from', { timeout: 180000 }, async () => {
    const w0 = stack.startWorker('domain');
    const { tenant, secret } = await createTenant(api);
    await w0.stop();

    // Inserts into customers wait behind this lock: the first worker holds
    // the job, its first delivery, for as long as the test needs.
    const lock = await holdLock('LOCK TABLE customers IN SHARE ROW EXCLUSIVE MODE');
    let released = false;
    try {
      const name = tag('taken');
      const res = await api.post('/v1/customers', { token: secret, json: { name } });
      assert.equal(res.status, 202, res.text);
      const jobId = res.json.id;

      // A reads the job (delivery 1) and waits on the table lock inside
      // its first, optimistic pass, holding the job's advisory lock.
      const a = stack.startWorker('domain', { LOG_LEVEL: 'debug' });
      const aDb = await waitBackend('domain', 'the first worker to wait on the customers lock', (b) => b.wait === 'Lock:relation');

      // B takes the entry over once it is idle for B's visibility timeout
      // (delivery 2) and waits on the job's advisory lock, behind A.
      const b = stack.startWorker('domain', { VISIBILITY_TIMEOUT_MS: 1000 });
      const bDb = await waitBackend('domain', 'the second worker to wait on the job\'s advisory lock', (x) => x.pid !== aDb.pid && x.wait === 'Lock:advisory');
      assert.equal((await hgetall(S.redisDb, `job:${jobId}`)).deliveries, '2', 'B counted the second delivery');

      // A's statement is canceled: a passing fault in the optimistic pass,
      // so A rolls back (B is granted the advisory lock) and runs the batch
      // again carefully, waiting behind B for the job's advisory lock.
      assert.equal(await superValue(`SELECT pg_cancel_backend(${aDb.pid})`), 't');
      await waitBackend('domain', 'B to run the job and wait on the customers lock', (x) => x.pid === bDb.pid && x.wait === 'Lock:relation');
      await waitBackend('domain', 'A to wait behind B on the job\'s advisory lock', (x) => x.pid === aDb.pid && x.wait === 'Lock:advisory');

      // B commits the job; then A has the lock, with its delivery count of 1.
      await lock.release();
      released = true;
      const done = await waitJob(api, jobId, secret, { timeoutMs: 60000 });
      assert.equal(done.result.name, name);
      const ended = await until(
        'A to finish its batch',
        async () => logEvents(a).find((e) => e.event === 'batch_done' || e.event === 'batch_failed'),
        { timeoutMs: 60000, describe: () => a.statusReport() },
      );
      assert.equal(ended.event, 'batch_done', `A's batch: ${JSON.stringify(ended)}`);
      assert.equal(ended.already_processed, 1, `A found B's commit: ${JSON.stringify(ended)}`);

      const now = await api.get('/v1/jobs/{id}', { params: { id: jobId }, token: PLATFORM_ADMIN_TOKEN });
      assert.equal(now.json.status, 'succeeded', `the job is still succeeded: ${JSON.stringify(now.json)}`);
      assert.equal(now.json.result.id, done.result.id);
      assert.equal(await redisValue(S.redisDb, 'ZSCORE', 'dead:domain', jobId), '', 'the job is not in the dead set');
      const t = lit(tenant.id);
      assert.equal(Number(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${t} AND name = ${lit(name)}`)), 1, 'one customer');
      assert.equal(Number(await superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${t} AND job_id = ${lit(jobId)}`)), 1);
      await a.stop();
      await b.stop();
    } finally {
      if (!released) await lock.release();
    }
  });
});

// A tenant connected to the fake, with the workers its payments need but no
// charger, and `n` one-time payments queued (amounts base, base + 1, …) for
// two customers whose Stripe customers were made first (a payment each), so
// the payments go through the set-based handler: prepared together, sent to
// Stripe at once. Enqueued while no charger runs, the first charger to
// start reads them as one batch.
async function queuedPayments(n, base) {
  const workers = ['domain', 'access', 'webhook'].map((kind) => stack.startWorker(kind));
  const T = await createTenant(api);
  const { key } = await connectStripe(api, fake, T);
  const warm = stack.startWorker('charger');
  const customers = [];
  for (let i = 0; i < 2; i++) {
    const c = await createCustomer(api, T.secret, { default_payment_method: 'pm_card_visa' });
    const res = await api.post('/v1/payments', { token: T.secret, headers: { Prefer: 'wait=30' }, json: { customer: c.id, amount: 500, currency: 'usd' } });
    assert.equal(res.status, 201, res.text);
    customers.push(c);
  }
  await warm.stop();
  const ids = [];
  for (let i = 0; i < n; i++) {
    const res = await api.post('/v1/payments', { token: T.secret, json: { customer: customers[i % 2].id, amount: base + i, currency: 'usd' } });
    assert.equal(res.status, 202, res.text);
    ids.push(res.json.id);
  }
  return { workers, T, key, ids };
}

describe('a charger batch longer than the visibility timeout', () => {
  // A second charger takes over entries idle this long; each Stripe call of
  // the batch takes three times as long.
  const VISIBILITY_MS = 5000;
  const STRIPE_DELAY_MS = 3 * VISIBILITY_MS;
  const PAYMENTS = 4;

  it('heartbeats while Stripe answers: its entries are not taken over and each job is delivered once', { timeout: 180000 }, async () => {
    const { workers, T, key, ids } = await queuedPayments(PAYMENTS, 1000);
    await fake.control('POST', '/_fake/faults', { api_key: key, path_prefix: '/v1/payment_intents', method: 'POST', count: PAYMENTS, delay_ms: STRIPE_DELAY_MS });

    const env = { VISIBILITY_TIMEOUT_MS: VISIBILITY_MS };
    const a = stack.startWorker('charger', env);
    await until('the first charger to hold the batch', async () => (await pendingOf(S.redisDb, 'jobs:charger', a.pid)) === PAYMENTS, {
      timeoutMs: 60000,
      intervalMs: 50,
      describe: async () => JSON.stringify(await streamConsumers(S.redisDb, 'jobs:charger')),
    });
    // B would take over any entry of A's idle for VISIBILITY_MS.
    const b = stack.startWorker('charger', { ...env, LOG_LEVEL: 'debug' });

    for (const id of ids) await waitJob(api, id, T.secret, { timeoutMs: STRIPE_DELAY_MS + 60000 });
    const deliveries = await Promise.all(ids.map(async (id) => (await hgetall(S.redisDb, `job:${id}`)).deliveries));
    assert.deepEqual(deliveries, ids.map(() => '1'), 'each job was delivered once: nobody took the batch over');
    assert.equal(logEvents(b).filter((e) => e.event === 'jobs_taken_over').length, 0, 'the second charger took nothing over');
    const stats = await fake.stats(key);
    assert.equal(stats.charges_total, PAYMENTS + 2, 'one charge per payment');

    await a.stop();
    await b.stop();
    for (const w of workers) await w.stop();
  });
});

describe('the batch of a charger that died, taken over', () => {
  // Entries idle this long are taken over. Each payment makes two Stripe
  // calls (the intent's create, its confirmation) of STRIPE_DELAY_MS each:
  // one payment fits in the timeout with room to spare on a loaded machine,
  // the four run one after another last well over two timeouts.
  const VISIBILITY_MS = 6000;
  const STRIPE_DELAY_MS = 2000;
  const PAYMENTS = 4;

  it('is claimed an entry at a time: no entry is taken over twice, each job is delivered twice', { timeout: 240000 }, async () => {
    const { workers, T, key, ids } = await queuedPayments(PAYMENTS, 2000);
    await fake.control('POST', '/_fake/faults', { api_key: key, path_prefix: '/v1/payment_intents', method: 'POST', count: 100, delay_ms: STRIPE_DELAY_MS });

    // The first charger reads the four as one batch and dies in Stripe's wait.
    const env = { VISIBILITY_TIMEOUT_MS: VISIBILITY_MS };
    const a = stack.startWorker('charger', env);
    await until('the first charger to hold the batch', async () => (await pendingOf(S.redisDb, 'jobs:charger', a.pid)) === PAYMENTS, {
      timeoutMs: 60000,
      intervalMs: 20,
      describe: async () => JSON.stringify(await streamConsumers(S.redisDb, 'jobs:charger')),
    });
    await a.kill9();

    // Two chargers take the entries over and run them, each Stripe call
    // slow: an entry claimed but not yet run must not go idle long enough
    // for the other to take it over again.
    const b = stack.startWorker('charger', env);
    const c = stack.startWorker('charger', env);
    for (const id of ids) await waitJob(api, id, T.secret, { timeoutMs: 120000 });

    const taken = [b, c].flatMap((p) => logEvents(p).filter((e) => e.event === 'jobs_taken_over').map((e) => e.count));
    assert.equal(taken.reduce((x, y) => x + y, 0), PAYMENTS, `each entry taken over once: ${JSON.stringify(taken)}`);
    const deliveries = await Promise.all(ids.map(async (id) => (await hgetall(S.redisDb, `job:${id}`)).deliveries));
    assert.deepEqual(deliveries, ids.map(() => '2'), 'the dead charger\'s delivery and one more, each');
    const stats = await fake.stats(key);
    assert.equal(stats.charges_total, PAYMENTS + 2, 'one charge per payment');

    await fake.control('DELETE', `/_fake/faults?api_key=${encodeURIComponent(key)}`);
    await b.stop();
    await c.stop();
    for (const w of workers) await w.stop();
  });
});
