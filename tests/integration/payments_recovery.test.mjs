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

import Stripe from 'stripe';

import { createCustomer, createPrice, createProduct, createTenant, waitJob } from './lib/billow.mjs';
import { billingClient } from './lib/billing.mjs';
import { lit, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { connectStripe, startPaymentsStack } from './lib/payments.mjs';
import { Stack } from './lib/stack.mjs';
import { newId, until } from './lib/util.mjs';

const S = slot(33);
const stack = new Stack('payments_recovery', S);
const signer = new Stripe('sk_test_unused');
let api;
let fake;

before(async () => {
  // A retry waits at least 2 s: time for the test to change the method.
  ({ api, fake } = await startPaymentsStack(stack, { BACKOFF_BASE_MS: 4000, BACKOFF_MAX_MS: 8000, MAX_ATTEMPTS: 6 }));
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

// A Stripe object of the tenant's as the fake holds it now.
async function stripeGet(ctx, path) {
  const r = await fetch(`${fake.url}${path}`, { headers: { Authorization: `Bearer ${ctx.key}` } });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

// A signed event of Stripe's, as Stripe sends it, `ahead` seconds after
// now; waits until the webhook worker has recorded it, and returns its
// outcome (applied, stale, recorded).
async function sendEvent(ctx, type, object, ahead) {
  const id = `evt_${newId('t').slice(2)}`;
  const created = Math.floor(Date.now() / 1000) + ahead;
  const body = JSON.stringify({ id, object: 'event', api_version: '2024-06-20', created, data: { object }, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, type });
  const res = await api.post('/webhooks/stripe/{tenant}', {
    params: { tenant: ctx.T.tenant.id },
    headers: { 'Content-Type': 'application/json', 'Stripe-Signature': signer.webhooks.generateTestHeaderString({ payload: body, secret: ctx.whsec }) },
    body,
  });
  assert.equal(res.status, 200, res.text);
  return until(`event ${type} to be processed`, async () => {
    const rows = await superuser(`SELECT outcome FROM stripe_events WHERE tenant_id = ${lit(ctx.T.tenant.id)} AND id = ${lit(id)}`);
    return rows.length ? rows[0][0] : undefined;
  });
}

// Waits until every event the fake made for the tenant was delivered and
// recorded by the webhook worker.
async function eventsSettled(ctx) {
  await until('the fake\'s events to be recorded', async () => {
    const events = await fake.events(ctx.key);
    if (!events.every((e) => e.deliveries.every((d) => d.state === 'delivered'))) return undefined;
    const [[n]] = await superuser(`SELECT count(*) FROM stripe_events WHERE tenant_id = ${lit(ctx.T.tenant.id)}`);
    return Number(n) >= events.length ? true : undefined;
  });
}

// The refund's status (the API has no read of one refund).
async function refundStatus(ctx, id) {
  const [[status]] = await superuser(`SELECT status FROM refunds WHERE tenant_id = ${lit(ctx.T.tenant.id)} AND id = ${lit(id)}`);
  return status;
}

async function refundedAmounts(ctx, payment, invoice) {
  const p = await ctx.b.get('/v1/payments/{id}', { id: payment });
  const i = await ctx.b.get('/v1/invoices/{id}', { id: invoice });
  return [p.amount_refunded, p.status, i.amount_refunded];
}

describe('a refund Stripe marks failed after it was counted', () => {
  it('is no longer counted in the payment\'s and invoice\'s refunded amounts, once, whatever the order of Stripe\'s events', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    const paid = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 10000, currency: 'usd' }, 201);
    const payment = paid.payment.id;
    const invoice = paid.invoice.id;
    const refund = await ctx.b.post('/v1/payments/{id}/refunds', { amount: 3000 }, 201, { id: payment });
    assert.equal(refund.status, 'succeeded');
    await eventsSettled(ctx);
    assert.deepEqual(await refundedAmounts(ctx, payment, invoice), [3000, 'partially_refunded', 3000]);
    const re = await stripeGet(ctx, `/v1/refunds/${refund.stripe_refund}`);
    const chargeBefore = await stripeGet(ctx, `/v1/charges/${re.charge}`);
    assert.equal(chargeBefore.amount_refunded, 3000);

    // The card cannot take the money back: Stripe marks the refund failed.
    const failed = { ...re, status: 'failed', failure_reason: 'expired_or_canceled_card', failure_balance_transaction: `txn_${newId('t').slice(2)}` };
    assert.equal(await sendEvent(ctx, 'charge.refund.updated', failed, 10), 'applied');
    assert.equal(await refundStatus(ctx, refund.id), 'failed');
    assert.deepEqual(await refundedAmounts(ctx, payment, invoice), [0, 'succeeded', 0], 'the failed refund is not counted');

    // The same failure told again (Stripe's other event types for it): counted off once.
    await sendEvent(ctx, 'refund.updated', failed, 11);
    await sendEvent(ctx, 'refund.failed', failed, 12);
    assert.deepEqual(await refundedAmounts(ctx, payment, invoice), [0, 'succeeded', 0], 'a failure counted off once');

    // Older news arriving late: the refund as it was before it failed, and
    // the charge's total that still counted it. Neither counts it again.
    assert.equal(await sendEvent(ctx, 'refund.updated', re, 5), 'stale');
    await sendEvent(ctx, 'charge.refunded', chargeBefore, 6);
    assert.equal(await refundStatus(ctx, refund.id), 'failed');
    assert.deepEqual(await refundedAmounts(ctx, payment, invoice), [0, 'succeeded', 0], 'a stale event does not raise the total again');

    // A later refund is counted as any other.
    const second = await ctx.b.post('/v1/payments/{id}/refunds', { amount: 2000 }, 201, { id: payment });
    assert.equal(second.status, 'succeeded');
    await eventsSettled(ctx);
    assert.deepEqual(await refundedAmounts(ctx, payment, invoice), [2000, 'partially_refunded', 2000]);
  });

  it('a pending refund canceled is no longer counted either', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_pendingRefund' });
    const paid = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 5000, currency: 'usd' }, 201);
    const refund = await ctx.b.post('/v1/payments/{id}/refunds', {}, 201, { id: paid.payment.id });
    assert.equal(refund.status, 'pending');
    await eventsSettled(ctx);
    assert.deepEqual(await refundedAmounts(ctx, paid.payment.id, paid.invoice.id), [5000, 'refunded', 5000]);
    const re = await stripeGet(ctx, `/v1/refunds/${refund.stripe_refund}`);
    assert.equal(await sendEvent(ctx, 'refund.updated', { ...re, status: 'canceled' }, 10), 'applied');
    assert.equal(await refundStatus(ctx, refund.id), 'canceled');
    assert.deepEqual(await refundedAmounts(ctx, paid.payment.id, paid.invoice.id), [0, 'succeeded', 0]);
  });
});

describe('a confirmation Stripe refuses for its payment method', () => {
  it('records the intent the attempt made, so a later attempt confirms it rather than making another', async () => {
    const ctx = await setUp({ webhooks: false });
    // A payment method Stripe does not know (deleted, or of another account).
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_1NoSuchMethodAtStripe0' });
    const res = await api.post('/v1/payments', { token: ctx.T.secret, headers: { Prefer: 'wait=30' }, json: { customer: customer.id, amount: 2700, currency: 'usd' } });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.attempt.status, 'failed');
    assert.equal(res.json.attempt.failure_code, 'payment_method_missing');
    const posts = await intentPosts(ctx);
    const made = posts.filter((r) => r.path === '/v1/payment_intents' && r.status === 200);
    assert.equal(made.length, 1, `the create went through: ${JSON.stringify(posts.map((r) => [r.path, r.status]))}`);
    const confirm = posts.find((r) => r.path.endsWith('/confirm'));
    assert.equal(confirm?.status, 400, 'the confirmation was refused');
    const intent = confirm.path.split('/')[3];
    assert.match(intent, /^pi_/);
    assert.equal(res.json.attempt.stripe_payment_intent, intent, 'the attempt names the intent it made');
    const [[recorded]] = await superuser(`SELECT coalesce(stripe_payment_intent, 'none') FROM payment_attempts WHERE tenant_id = ${lit(ctx.T.tenant.id)} AND invoice_id = ${lit(res.json.invoice.id)}`);
    assert.equal(recorded, intent);
  });
});
