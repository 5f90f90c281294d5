// payments_recovery: money that Stripe's answers or its later word put in
// doubt. A charge whose answer was lost is retried after the customer's
// default payment method changed (the retry must still end, and charge once);
// a refund Stripe marks failed after it was counted gives its amount back to
// the payment and the invoice, whatever order Stripe's events come in.
//
// The tenants of the lost-answer tests have no webhook endpoint: only the
// charger's own answers tell Billow what happened, so a retry that goes dead
// leaves the invoice unpaid for everyone to see. The charger backs off for
// seconds, not milliseconds, so the payment method is changed between the
// lost answer and the retry; each test checks that the retry indeed carried
// the new method.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createPrice, createProduct, createTenant, waitJob } from './lib/billow.mjs';
import { billingClient } from './lib/billing.mjs';
import { slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { connectStripe, startStripeFake } from './lib/payments.mjs';
import { Stack } from './lib/stack.mjs';
import { until } from './lib/util.mjs';

const S = slot(33);
const stack = new Stack('payments_recovery', S);
let api;
let fake;

before(async () => {
  await stack.flushRedis();
  fake = await startStripeFake(stack);
  api = client(await stack.startApi());
  for (const kind of ['domain', 'access', 'invoice', 'webhook']) stack.startWorker(kind);
  stack.startWorker('renewal', { RENEWAL_SCAN_MS: 100 });
  stack.startWorker('dunning', { DUNNING_SCAN_MS: 100 });
  // A retry waits at least 2 s: time for the test to change the method.
  stack.startWorker('charger', { BACKOFF_BASE_MS: 4000, BACKOFF_MAX_MS: 8000, MAX_ATTEMPTS: 6 });
});

after(async () => {
  await stack.stopAll();
});

// A tenant connected to the fake; `webhooks: false` registers no endpoint.
async function setUp({ webhooks = true } = {}) {
  const T = await createTenant(api);
  const { key, whsec } = await connectStripe(api, webhooks ? fake : null, T);
  const b = billingClient(api, T.secret);
  return { T, key, whsec, b };
}

// The fake's log of the tenant's POSTs to PaymentIntents.
async function intentPosts(ctx) {
  return (await fake.requests(ctx.key)).filter((r) => r.method === 'POST' && r.path.startsWith('/v1/payment_intents'));
}

// Stripe's next `count` answers under path_prefix are lost (the work done,
// the answer a 500). Two, because a batch whose charge fails is run again
// at once job by job: the second loss sends the job to its backoff.
const LOST = 2;
function loseAnswers(ctx, pathPrefix) {
  return fake.control('POST', '/_fake/faults', { api_key: ctx.key, path_prefix: pathPrefix, count: LOST, status: 500, mode: 'after' });
}

// Waits until LOST POSTs to a PaymentIntent path matching `re` were
// answered by the injected fault, and returns the last of them.
async function lostAnswers(ctx, re) {
  return until('the faults to take their answers', async () => {
    const lost = (await intentPosts(ctx)).filter((r) => r.fault && re.test(r.path));
    return lost.length === LOST ? lost[LOST - 1] : undefined;
  });
}

async function setMethod(ctx, customer, pm) {
  const c = await ctx.b.post('/v1/customers/{id}', { default_payment_method: pm }, 200, { id: customer.id });
  assert.equal(c.default_payment_method, pm);
}

describe('a charge whose answer was lost, retried after the payment method changed', () => {
  it('a one-time payment: the retry ends, the invoice is paid once, one charge at Stripe', async () => {
    const ctx = await setUp({ webhooks: false });
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    await loseAnswers(ctx, '/v1/payment_intents');
    const res = await api.post('/v1/payments', { token: ctx.T.secret, json: { customer: customer.id, amount: 2600, currency: 'usd' } });
    assert.equal(res.status, 202, res.text);
    const lost = await lostAnswers(ctx, /^\/v1\/payment_intents/);
    await setMethod(ctx, customer, 'pm_card_mastercard');

    const job = await waitJob(api, res.json.id, ctx.T.secret);
    const invoice = job.result.invoice;
    assert.deepEqual([invoice.status, invoice.amount_paid], ['paid', 2600]);
    const posts = await intentPosts(ctx);
    const after = posts.slice(posts.findIndex((r) => r.request_id === lost.request_id) + 1);
    assert.ok(after.some((r) => r.params.payment_method === 'pm_card_mastercard'), `the retry carried the new method: ${JSON.stringify(posts.map((r) => [r.path, r.params.payment_method, r.status]))}`);
    // Executed, not replayed (the first one's answer was lost, not its work).
    const made = posts.filter((r) => r.path === '/v1/payment_intents' && !r.idempotent_replayed);
    assert.equal(made.length, 1, 'one PaymentIntent was made for the invoice');
    const stats = await fake.stats(ctx.key);
    assert.deepEqual([stats.succeeded_total, stats.amount_succeeded], [1, 2600], `one charge: ${JSON.stringify(stats)}`);
    const payments = await ctx.b.get('/v1/payments', {}, { invoice: invoice.id });
    assert.deepEqual(payments.data.map((p) => p.amount), [2600]);
  });

  it('a renewal\'s retry whose confirmation succeeded unseen: the next try with the new method records that success, charging nothing more', async () => {
    const ctx = await setUp({ webhooks: false });
    const product = await createProduct(api, ctx.T.secret);
    const price = await createPrice(api, ctx.T.secret, { product: product.id, unit_amount: 2000 });
    const clock = await ctx.b.post('/v1/test_clocks', { frozen_time: '2027-01-01T00:00:00Z' }, 201);
    const customer = await createCustomer(api, ctx.T.secret, { email: `r-${clock.id.slice(-6)}@example.com`, test_clock: clock.id, default_payment_method: 'pm_card_visa' });
    const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: price.id }] }, 201);
    await until('the first invoice to be paid', async () => ((await ctx.b.get('/v1/invoices/{id}', { id: sub.latest_invoice })).status === 'paid' ? true : undefined));
    // The renewal is declined: attempt 1 made the invoice's intent.
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds'] });
    await ctx.b.advance(clock, '2027-02-01T00:00:00Z');
    const renewal = (await ctx.b.get('/v1/subscriptions/{id}', { id: sub.id })).latest_invoice;
    const failed = await ctx.b.get('/v1/invoices/{id}', { id: renewal });
    assert.deepEqual([failed.status, failed.attempt_count], ['open', 1]);

    // A new card retries at once; Stripe takes the money, the answer is lost.
    await loseAnswers(ctx, '/v1/payment_intents/');
    await setMethod(ctx, customer, 'pm_card_mastercard');
    const lost = await lostAnswers(ctx, /\/confirm$/);
    assert.equal(lost.params.payment_method, 'pm_card_mastercard');
    // Before the retry, the customer changes card again.
    await setMethod(ctx, customer, 'pm_card_amex');

    let inv;
    await until('the renewal to be paid', async () => {
      inv = await ctx.b.get('/v1/invoices/{id}', { id: renewal });
      return inv.status === 'paid' ? true : undefined;
    }, { timeoutMs: 30000, describe: () => JSON.stringify(inv) });
    assert.deepEqual([inv.amount_paid, inv.attempt_count], [2000, 2]);
    const posts = await intentPosts(ctx);
    const retried = posts.slice(posts.findIndex((r) => r.request_id === lost.request_id) + 1);
    assert.ok(retried.some((r) => r.params.payment_method === 'pm_card_amex'), `the retry carried the newest method: ${JSON.stringify(posts.map((r) => [r.path, r.params.payment_method, r.status]))}`);
    const stats = await fake.stats(ctx.key);
    // The first invoice and the renewal, each once; the decline of attempt 1.
    assert.deepEqual([stats.succeeded_total, stats.failed_total], [2, 1], `charges: ${JSON.stringify(stats)}`);
    const payments = await ctx.b.get('/v1/payments', {}, { invoice: renewal });
    assert.deepEqual(payments.data.map((p) => p.amount), [2000], 'one payment for the renewal');
    const attempts = (await ctx.b.get('/v1/invoices/{id}/payment_attempts', { id: renewal })).data;
    assert.deepEqual(attempts.map((a) => [a.attempt, a.status]), [[1, 'failed'], [2, 'succeeded']]);
    const dead = await api.get('/v1/jobs', { token: ctx.T.secret, query: { status: 'dead' } });
    assert.deepEqual(dead.json.data.map((j) => [j.type, j.error?.code]), [], 'no job went dead');
  });
});
