// Renewals under concurrency and a crash: 10,000 subscriptions whose period
// has ended, two renewal schedulers asking for the same renewals, three
// invoice workers taking them, and one invoice worker SIGKILLed while it
// holds a batch. Every subscription is renewed exactly once: 10,000 cycle
// invoices, one per subscription, numbered 1..10,000 without a gap or a
// repeat, one processed_jobs row per renewal, every period moved once.
// Among them are 100 more subscriptions set to cancel at the period end:
// they share batches with the plain renewals (which the invoice worker
// writes set-based) but take the one-by-one path, and end without an
// invoice.
//
// The subscriptions are written straight into Postgres (the subject here
// is the renewal machinery, not how subscriptions are created, which
// subscription_lifecycle covers through the API).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant } from './lib/billow.mjs';
import { holdLock, lit, superValue, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { pendingOf, streamConsumers } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { sleep, until } from './lib/util.mjs';

const S = slot(26);
const stack = new Stack('renewal_concurrency', S);
const N = 10000;
const CANCELING = 100;
const WORKER_ENV = { WORKER_BATCH: 100, VISIBILITY_TIMEOUT_MS: 3000 };
let api;
let tenantId;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  const domain = stack.startWorker('domain');
  ({ tenant: { id: tenantId } } = await createTenant(api));
  await domain.stop();
  const t = lit(tenantId);
  // N customers, each with one monthly subscription whose period ended a
  // minute ago (so each renews exactly once: the next period ends next
  // month).
  await superuser(`
    BEGIN;
    INSERT INTO products (tenant_id, id, name) VALUES (${t}, 'prod_01JRENEWA1000000000000000P', 'Renewal plan');
    INSERT INTO prices (tenant_id, id, product_id, currency, billing_scheme, unit_amount, interval, interval_count)
      VALUES (${t}, 'price_01JRENEWA1000000000000000P', 'prod_01JRENEWA1000000000000000P', 'usd', 'per_unit', 1500, 'month', 1);
    CREATE TEMP TABLE seed AS
      SELECT g, ulid_id('cus') AS cus, ulid_id('sub') AS sub, ulid_id('si') AS si,
             date_trunc('second', now()) - interval '1 month' - interval '1 minute' AS start
        FROM generate_series(1, ${N + CANCELING}) g;
    INSERT INTO customers (tenant_id, id, email, currency) SELECT ${t}, cus, 'renew' || g || '@example.com', 'usd' FROM seed;
    INSERT INTO subscriptions (tenant_id, id, customer_id, status, currency, interval, interval_count,
                               billing_cycle_anchor, start_date, current_period_start, current_period_end,
                               cancel_at_period_end, created_at)
      SELECT ${t}, sub, cus, 'active', 'usd', 'month', 1, start, start, start, start + interval '1 month', g > ${N}, start
        FROM seed;
    INSERT INTO subscription_items (tenant_id, id, subscription_id, price_id, quantity)
      SELECT ${t}, si, sub, 'price_01JRENEWA1000000000000000P', 1 FROM seed;
    COMMIT;`);
});

after(async () => {
  await stack.stopAll();
});

describe('renewals with two schedulers, three invoice workers and a crash', () => {
  it(`renews each of ${N} due subscriptions exactly once, with gapless invoice numbers`, { timeout: 600000 }, async (t) => {
    // Invoice numbers wait behind this lock, so the first invoice worker to
    // read a batch holds it uncommitted until the SIGKILL lands.
    const lock = await holdLock('LOCK TABLE invoice_sequences IN SHARE ROW EXCLUSIVE MODE');
    let released = false;
    try {
      stack.startWorker('renewal', { RENEWAL_SCAN_MS: 200, RENEWAL_BATCH: 500 });
      stack.startWorker('renewal', { RENEWAL_SCAN_MS: 200, RENEWAL_BATCH: 500 });
      const victim = stack.startWorker('invoice', WORKER_ENV);
      stack.startWorker('invoice', WORKER_ENV);
      stack.startWorker('invoice', WORKER_ENV);
      let held = 0;
      // Held, and still held a moment later: its batch waits on the lock.
      await until('the first invoice worker to hold a batch it cannot finish', async () => {
        if ((await pendingOf(S.redisDb, 'jobs:invoice', victim.pid)) === 0) return undefined;
        await sleep(300);
        held = await pendingOf(S.redisDb, 'jobs:invoice', victim.pid);
        return held > 0 ? true : undefined;
      }, { timeoutMs: 120000, intervalMs: 20, describe: async () => JSON.stringify(await streamConsumers(S.redisDb, 'jobs:invoice')) });
      await victim.kill9();
      t.diagnostic(`killed invoice worker ${victim.pid} holding ${held} renewals`);
      assert.ok((await pendingOf(S.redisDb, 'jobs:invoice', victim.pid)) > 0, 'the killed worker left renewals unacked');
      await lock.release();
      released = true;
    } finally {
      if (!released) await lock.release();
    }

    const count = () => superValue(`SELECT count(*) FROM invoices WHERE tenant_id = ${lit(tenantId)} AND billing_reason = 'subscription_cycle'`);
    await until(`${N} renewal invoices`, async () => (Number(await count()) >= N ? true : undefined), {
      timeoutMs: 480000,
      intervalMs: 500,
      describe: async () => `${await count()} so far`,
    });
    const done = () => superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${lit(tenantId)} AND type = 'subscription.cycle'`);
    await until(`${N + CANCELING} period ends processed`, async () => (Number(await done()) >= N + CANCELING ? true : undefined), {
      timeoutMs: 120000,
      intervalMs: 500,
      describe: async () => `${await done()} so far`,
    });
    // Everything the schedulers asked for has run; a late duplicate would
    // show up now.
    await until('the invoice stream to drain', async () => {
      const cs = await streamConsumers(S.redisDb, 'jobs:invoice');
      return cs.every((c) => c.pending === 0) ? true : undefined;
    }, { timeoutMs: 60000 });

    const t0 = lit(tenantId);
    const [[invoices, subs, numbers, maxNumber, processed, moved]] = await superuser(`
      SELECT (SELECT count(*) FROM invoices WHERE tenant_id = ${t0} AND billing_reason = 'subscription_cycle'),
             (SELECT count(DISTINCT subscription_id) FROM invoices WHERE tenant_id = ${t0} AND billing_reason = 'subscription_cycle'),
             (SELECT count(DISTINCT number) FROM invoices WHERE tenant_id = ${t0}),
             (SELECT max(substr(number, 5)::int) FROM invoices WHERE tenant_id = ${t0}),
             (SELECT count(*) FROM processed_jobs WHERE tenant_id = ${t0} AND type = 'subscription.cycle'),
             (SELECT count(*) FROM subscriptions WHERE tenant_id = ${t0} AND current_period_end > now() + interval '20 days'
                AND current_period_start = billing_cycle_anchor + interval '1 month')`);
    assert.equal(Number(invoices), N, 'one renewal invoice per due subscription');
    assert.equal(Number(subs), N, 'no subscription renewed twice');
    assert.equal(Number(numbers), N, 'every invoice has its own number');
    assert.equal(Number(maxNumber), N, 'numbers run 1..N without a gap');
    assert.equal(Number(processed), N + CANCELING, 'one processed_jobs row per period end');
    assert.equal(Number(moved), N, 'every subscription moved on by exactly one period');
    const [[amounts]] = await superuser(`SELECT count(*) FROM invoices WHERE tenant_id = ${t0} AND (total <> 1500 OR amount_due <> 1500 OR status <> 'open')`);
    assert.equal(Number(amounts), 0, 'every renewal invoice bills the period in full');
    const [[outbox]] = await superuser(`SELECT count(*) FROM outbox WHERE tenant_id = ${t0}`);
    assert.equal(Number(outbox), 0, 'every charge follow-up was relayed');
    assert.equal(Number(await superValue(`SELECT count(*) FROM invoice_lines WHERE tenant_id = ${t0}`)), N, 'one line each');
    const [[ended, endedRight]] = await superuser(`
      SELECT count(*), count(*) FILTER (WHERE ended_at = start_date + interval '1 month' AND current_period_end IS NULL
                                          AND latest_invoice_id IS NULL)
        FROM subscriptions WHERE tenant_id = ${t0} AND status = 'canceled'`);
    assert.equal(Number(ended), CANCELING, 'the subscriptions set to cancel ended');
    assert.equal(Number(endedRight), CANCELING, 'at their period end, without an invoice');
  });
});
