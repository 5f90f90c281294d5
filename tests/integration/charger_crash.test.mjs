// charger_crash: the charger SIGKILLed between Stripe's answer and its
// commit (fault point charger.after_stripe), again and again over a run of
// 1,000 one-time payments (each a one-off invoice charged at once): in the
// end every invoice is paid, the Stripe fake made exactly one charge per
// invoice, and no idempotency key was charged twice.

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';

import { createCustomer, createTenant } from './lib/billow.mjs';
import { lit, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { connectStripe, startStripeFake } from './lib/payments.mjs';
import { Stack } from './lib/stack.mjs';
import { mapLimit, sleep, until } from './lib/util.mjs';

const S = slot(31);
const stack = new Stack('charger_crash', S);
const INVOICES = 1000;
const CUSTOMERS = 20;
// Crashes wanted before a charger is let run to the end.
const CRASHES = 12;
// A crashed consumer's jobs are taken over after this long.
const VISIBILITY_MS = 1000;
let api;
let fake;
let T;
let key;

before(async () => {
  await stack.flushRedis();
  fake = await startStripeFake(stack);
  api = client(await stack.startApi());
  for (const kind of ['domain', 'access', 'webhook']) stack.startWorker(kind);
  T = await createTenant(api);
  ({ key } = await connectStripe(api, fake, T));
});

after(async () => {
  await stack.stopAll();
});

async function paidCount() {
  const [[n]] = await superuser(`SELECT count(*) FROM invoices WHERE tenant_id = ${lit(T.tenant.id)} AND billing_reason = 'manual' AND status = 'paid'`);
  return Number(n);
}

it(`${INVOICES} payments survive ${CRASHES} kills between Stripe's answer and the commit: each charged exactly once`, async () => {
  const customers = [];
  for (let i = 0; i < CUSTOMERS; i++) customers.push(await createCustomer(api, T.secret, { default_payment_method: 'pm_card_visa' }));
  // Enqueued while no charger runs: the charger meets a full queue.
  const ids = Array.from({ length: INVOICES }, (_, i) => i);
  await mapLimit(ids, 16, async (i) => {
    const res = await api.post('/v1/payments', { token: T.secret, json: { customer: customers[i % CUSTOMERS].id, amount: 1000 + i, currency: 'usd' } });
    assert.equal(res.status, 202, res.text);
  });

  // Each charger dies at its Nth Stripe answer (N varies, so kills land
  // early and late in batches); the next takes over what it left.
  let crashes = 0;
  for (let round = 0; crashes < CRASHES && round < CRASHES * 3; round++) {
    const nth = 1 + ((round * 7) % 40);
    const p = stack.startWorker('charger', { BILLOW_FAULTS: `charger.after_stripe:${nth}`, VISIBILITY_TIMEOUT_MS: VISIBILITY_MS, CHARGER_WORKER_BATCH: 32 });
    p.expectDeath();
    const deadline = Date.now() + 60000;
    let done = false;
    while (p.running && !done) {
      assert.ok(Date.now() < deadline, `charger round ${round} neither died nor finished in 60 s`);
      done = (await paidCount()) === INVOICES;
      if (!done) await sleep(100);
    }
    if (done) {
      await p.kill9();
      break;
    }
    assert.equal((await p.exited).signal, 'SIGKILL', `the charger ended by its fault point: ${JSON.stringify(p.exit)}`);
    crashes += 1;
  }
  assert.ok(crashes >= CRASHES, `the charger was killed ${crashes} times`);

  stack.startWorker('charger', { VISIBILITY_TIMEOUT_MS: VISIBILITY_MS });
  await until(`all ${INVOICES} invoices to be paid`, async () => ((await paidCount()) === INVOICES ? true : undefined), { timeoutMs: 120000, intervalMs: 500 });

  const stats = await fake.stats(key);
  const counts = Object.entries(stats.charges);
  assert.equal(stats.charges_total, INVOICES, 'charges at Stripe = invoices paid');
  assert.equal(stats.succeeded_total, INVOICES);
  assert.deepEqual(counts.filter(([, n]) => n !== 1), [], 'no idempotency key was charged twice');
  const t = lit(T.tenant.id);
  const [[payments, intents, attempts]] = await superuser(`SELECT (SELECT count(*) FROM payments WHERE tenant_id = ${t}),
      (SELECT count(DISTINCT stripe_payment_intent) FROM payments WHERE tenant_id = ${t}),
      (SELECT count(*) FROM payment_attempts WHERE tenant_id = ${t})`);
  assert.deepEqual([payments, intents, attempts].map(Number), [INVOICES, INVOICES, INVOICES]);
  const [[amount]] = await superuser(`SELECT sum(amount) FROM payments WHERE tenant_id = ${t}`);
  assert.equal(Number(amount), stats.amount_succeeded, 'the amounts agree with Stripe');
});
