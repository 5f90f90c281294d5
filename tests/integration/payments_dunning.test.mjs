// payments_dunning: money end to end against the Stripe fake, on test
// clocks — renewals charged off-session, declines retried on the tenant's
// schedule, the policy's end, authentication (SCA) finished by the
// customer (and a void, by staff or with its subscription, canceling the
// intent that waits for it), a hard decline waiting for a new card
// collected through a SetupIntent, one-time payments and refunds, Stripe's
// failures mapped to retries or permanent errors; and every request Billow
// sent to Stripe held against Stripe's OpenAPI spec.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import Stripe from 'stripe';

import { createCustomer, createPrice, createProduct, createTenant, waitJob } from './lib/billow.mjs';
import { billingClient } from './lib/billing.mjs';
import { lit, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError } from './lib/http.mjs';
import { connectStripe, startPaymentsStack } from './lib/payments.mjs';
import { hgetall, redis } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { checkRequest } from './lib/stripe_spec.mjs';
import { newId, sleep, until } from './lib/util.mjs';

const S = slot(30);
const stack = new Stack('payments_dunning', S);
let api;
let fake;
const tenants = [];

before(async () => {
  ({ api, fake } = await startPaymentsStack(stack));
});

after(async () => {
  await stack.stopAll();
});

// A tenant connected to the fake, with a $20/month price and helpers.
async function setUp(policy) {
  const T = await createTenant(api);
  const { key, whsec } = await connectStripe(api, fake, T);
  const b = billingClient(api, T.secret);
  if (policy) await b.post('/v1/settings/dunning', policy);
  const product = await createProduct(api, T.secret);
  const price = await createPrice(api, T.secret, { product: product.id, unit_amount: 2000 });
  const ctx = { T, key, whsec, b, price };
  tenants.push(ctx);
  return ctx;
}

// A customer on a new clock at 2027-01-01 paying with pm, subscribed, its
// first invoice paid by the card (charged at once).
async function subscribed(ctx, pm = 'pm_card_visa') {
  const clock = await ctx.b.post('/v1/test_clocks', { frozen_time: '2027-01-01T00:00:00Z' }, 201);
  const customer = await createCustomer(api, ctx.T.secret, { email: `c-${clock.id.slice(-6)}@example.com`, test_clock: clock.id, default_payment_method: pm });
  const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: ctx.price.id }] }, 201);
  await invoiceWhere(ctx, sub.latest_invoice, (i) => i.status === 'paid', 'the first invoice paid by card');
  return { clock, customer, sub };
}

async function invoiceWhere(ctx, id, pred, what) {
  let last;
  await until(`invoice ${id}: ${what}`, async () => {
    last = await ctx.b.get('/v1/invoices/{id}', { id });
    return pred(last) ? true : undefined;
  }, { timeoutMs: 30000, describe: () => JSON.stringify(last) });
  return last;
}

async function attemptsOf(ctx, id) {
  const list = await ctx.b.get('/v1/invoices/{id}/payment_attempts', { id });
  assert.equal(list.object, 'list');
  return list.data;
}

async function subStatus(ctx, id) {
  return (await ctx.b.get('/v1/subscriptions/{id}', { id })).status;
}

async function notifications(ctx, customerId) {
  return (await superuser(`SELECT template FROM notifications WHERE tenant_id = ${lit(ctx.T.tenant.id)} AND data->>'customer' = ${lit(customerId)} ORDER BY created_at, id`)).map(([t]) => t);
}

// Moves the clock and returns the subscription's latest invoice once its
// attempt count is `attempts`.
async function advanceTo(ctx, world, iso, attempts) {
  await ctx.b.advance(world.clock, iso);
  const sub = await ctx.b.get('/v1/subscriptions/{id}', { id: world.sub.id });
  return invoiceWhere(ctx, sub.latest_invoice, (i) => i.attempt_count === attempts, `${attempts} attempts by ${iso}`);
}

describe('a renewal declined', () => {
  it('is retried 3 and 5 days after the failure and paid on the third attempt; the subscription is active again', async () => {
    const ctx = await setUp();
    const w = await subscribed(ctx);
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds', 'insufficient_funds', 'succeed'] });

    let inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    assert.equal(inv.billing_reason, 'subscription_cycle');
    assert.equal(inv.status, 'open');
    assert.equal(inv.next_payment_attempt, '2027-02-04T00:00:00Z');
    assert.equal(inv.payment_method_required, false);
    assert.equal(inv.last_payment_error.decline_code, 'insufficient_funds');
    await until('the subscription to be past due', async () => ((await subStatus(ctx, w.sub.id)) === 'past_due' ? true : undefined));

    inv = await advanceTo(ctx, w, '2027-02-04T00:00:00Z', 2);
    assert.equal(inv.status, 'open');
    assert.equal(inv.next_payment_attempt, '2027-02-06T00:00:00Z');

    inv = await advanceTo(ctx, w, '2027-02-06T00:00:00Z', 3);
    assert.equal(inv.status, 'paid');
    assert.equal(inv.amount_paid, 2000);
    assert.equal(inv.next_payment_attempt, null);
    await until('the subscription to be active', async () => ((await subStatus(ctx, w.sub.id)) === 'active' ? true : undefined));

    const attempts = await attemptsOf(ctx, inv.id);
    assert.deepEqual(attempts.map((a) => [a.attempt, a.status, a.decline_code, a.created_at]), [
      [1, 'failed', 'insufficient_funds', '2027-02-01T00:00:00Z'],
      [2, 'failed', 'insufficient_funds', '2027-02-04T00:00:00Z'],
      [3, 'succeeded', null, '2027-02-06T00:00:00Z'],
    ]);
    assert.ok(attempts.every((a) => a.amount === 2000 && a.currency === 'usd' && /^pi_/.test(a.stripe_payment_intent)));
    assert.equal(new Set(attempts.map((a) => a.stripe_payment_intent)).size, 1, 'every attempt confirms the invoice\'s one PaymentIntent');
    const payments = await ctx.b.get('/v1/payments', {}, { invoice: inv.id });
    assert.equal(payments.data.length, 1);
    assert.equal(payments.data[0].amount, 2000);
    assert.equal(payments.data[0].status, 'succeeded');
    await until('the customer messages', async () => {
      const n = await notifications(ctx, w.customer.id);
      return n.filter((x) => x === 'payment.failed').length === 2 && n.includes('payment.succeeded') ? true : undefined;
    });
    // One charge per attempt at Stripe, each under its own key (the
    // attempt's, and the payment method's it was confirmed with).
    const stats = await fake.stats(ctx.key);
    assert.equal(stats.charges[`billow:pi:${inv.id}:1:pm_card_visa`], 1);
    assert.equal(stats.charges[`billow:pi:${inv.id}:2:pm_card_visa`], 1);
    assert.equal(stats.charges[`billow:pi:${inv.id}:3:pm_card_visa`], 1);
  });
});

describe('all retries failing end as the policy says', () => {
  it('cancel (the default): four attempts at 0, 3, 5 and 7 days, then the subscription is canceled', async () => {
    const ctx = await setUp();
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_chargeDeclinedInsufficientFunds' }, 200, { id: w.customer.id });
    await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    await advanceTo(ctx, w, '2027-02-04T00:00:00Z', 2);
    await advanceTo(ctx, w, '2027-02-06T00:00:00Z', 3);
    const inv = await advanceTo(ctx, w, '2027-02-08T00:00:00Z', 4);
    assert.equal(inv.next_payment_attempt, null);
    await until('the subscription to be canceled', async () => ((await subStatus(ctx, w.sub.id)) === 'canceled' ? true : undefined));
    assert.equal((await attemptsOf(ctx, inv.id)).filter((a) => a.status === 'failed').length, 4);
    await until('the retries_exhausted message', async () => ((await notifications(ctx, w.customer.id)).includes('payment.retries_exhausted') ? true : undefined));
  });

  it('mark_unpaid: with one retry a day later, the subscription is unpaid after the second failure', async () => {
    const ctx = await setUp({ retry_days: [1], end_action: 'mark_unpaid' });
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_chargeDeclined' }, 200, { id: w.customer.id });
    let inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    assert.equal(inv.next_payment_attempt, '2027-02-02T00:00:00Z');
    inv = await advanceTo(ctx, w, '2027-02-02T00:00:00Z', 2);
    await until('the subscription to be unpaid', async () => ((await subStatus(ctx, w.sub.id)) === 'unpaid' ? true : undefined));
    assert.equal(inv.status, 'open', 'the invoice stays open (it can still be paid)');
  });

  it('mark_unpaid: retries that end while the subscription is paused leave it unpaid when it resumes', async () => {
    const ctx = await setUp({ retry_days: [1], end_action: 'mark_unpaid' });
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_chargeDeclined' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    await until('the subscription to be past due', async () => ((await subStatus(ctx, w.sub.id)) === 'past_due' ? true : undefined));
    const paused = await ctx.b.post('/v1/subscriptions/{id}/pause', {}, 200, { id: w.sub.id });
    assert.equal(paused.status, 'paused');
    // The last retry fails while paused: the end is due, but a paused
    // subscription has no status to give it.
    await ctx.b.advance(w.clock, '2027-02-02T00:00:00Z');
    await invoiceWhere(ctx, inv.id, (i) => i.attempt_count === 2, 'the last retry, failed');
    await until('the end to be applied', async () => ((await notifications(ctx, w.customer.id)).includes('payment.retries_exhausted') ? true : undefined));
    assert.equal(await subStatus(ctx, w.sub.id), 'paused');
    const resumed = await ctx.b.post('/v1/subscriptions/{id}/resume', {}, 200, { id: w.sub.id });
    assert.equal(resumed.status, 'unpaid', 'its retries are over, as if it had not been paused');
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: inv.id })).status, 'open');
  });

  it('leave_past_due: without retries, the subscription stays past due', async () => {
    const ctx = await setUp({ retry_days: [], end_action: 'leave_past_due' });
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_chargeDeclined' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    await until('the end to be applied', async () => ((await notifications(ctx, w.customer.id)).includes('payment.retries_exhausted') ? true : undefined));
    assert.equal(await subStatus(ctx, w.sub.id), 'past_due');
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: inv.id })).next_payment_attempt, null);
  });
});

describe('a subscription\'s status follows all its open invoices, not its latest', () => {
  // A customer on a new clock at 2027-01-01 paying by pm_card_visa,
  // subscribed to 3 × $10/month (the first invoice paid), so a downgrade
  // to fewer units can be invoiced at once as a credit.
  async function subscribedThree(ctx) {
    const price = await createPrice(api, ctx.T.secret, { product: ctx.price.product, unit_amount: 1000 });
    const clock = await ctx.b.post('/v1/test_clocks', { frozen_time: '2027-01-01T00:00:00Z' }, 201);
    const customer = await createCustomer(api, ctx.T.secret, { email: `c-${clock.id.slice(-6)}@example.com`, test_clock: clock.id, default_payment_method: 'pm_card_visa' });
    const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: price.id, quantity: 3 }] }, 201);
    await invoiceWhere(ctx, sub.latest_invoice, (i) => i.status === 'paid', 'the first invoice paid by card');
    return { clock, customer, sub, item: sub.items.data[0] };
  }

  // The subscription's status once its jobs have settled on `want`.
  async function statusBecomes(ctx, id, want) {
    let last;
    await until(`subscription ${id} to be ${want}`, async () => {
      last = await subStatus(ctx, id);
      return last === want ? true : undefined;
    }, { describe: () => last });
  }

  it('a failed renewal paid by a retry after a credit invoice became the latest makes it active, and credit-covered renewals keep it so', async () => {
    const ctx = await setUp();
    const w = await subscribedThree(ctx);
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds', 'succeed'] });

    // R1 (Feb 1, 3 × $10) fails: past due.
    const r1 = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    assert.deepEqual([r1.status, r1.amount_due], ['open', 3000]);
    await statusBecomes(ctx, w.sub.id, 'past_due');

    // At once, down to 1 unit, invoiced now: U credits 2 units of the whole
    // period, closes paid with nothing due and becomes the latest invoice.
    const down = await ctx.b.post('/v1/subscriptions/{id}', { items: [{ id: w.item.id, quantity: 1 }], proration_behavior: 'always_invoice' }, 200, { id: w.sub.id });
    assert.notEqual(down.latest_invoice, r1.id);
    const u = await ctx.b.get('/v1/invoices/{id}', { id: down.latest_invoice });
    assert.deepEqual([u.status, u.total, u.amount_due], ['paid', -2000, 0]);
    assert.equal(down.status, 'past_due', 'R1 is still open after a failed charge: a paid newer invoice does not clear that');

    // The retry of R1 succeeds: nothing of the subscription is open any more.
    await ctx.b.advance(w.clock, '2027-02-04T00:00:00Z');
    const paid = await invoiceWhere(ctx, r1.id, (i) => i.status === 'paid', 'R1 paid by its retry');
    assert.equal(paid.attempt_count, 2);
    await statusBecomes(ctx, w.sub.id, 'active');

    // The next renewals are covered by the credit (paid at $0): still active.
    await ctx.b.advance(w.clock, '2027-03-01T00:00:00Z');
    const r2 = await ctx.b.get('/v1/invoices/{id}', { id: (await ctx.b.get('/v1/subscriptions/{id}', { id: w.sub.id })).latest_invoice });
    assert.deepEqual([r2.billing_reason, r2.status, r2.total, r2.amount_due], ['subscription_cycle', 'paid', 1000, 0]);
    assert.equal(await subStatus(ctx, w.sub.id), 'active');
  });

  it('with two open failed invoices, paying the newest leaves it past due; paying the other makes it active', async () => {
    // One retry, 40 days after the first failure: R1's retry comes after R2.
    const ctx = await setUp({ retry_days: [40] });
    const w = await subscribed(ctx);
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds', 'insufficient_funds', 'succeed'] });

    const r1 = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    assert.equal(r1.next_payment_attempt, '2027-03-13T00:00:00Z');
    await statusBecomes(ctx, w.sub.id, 'past_due');
    const r2 = await advanceTo(ctx, w, '2027-03-01T00:00:00Z', 1);
    assert.notEqual(r2.id, r1.id);
    assert.equal(r2.status, 'open');
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: r1.id })).status, 'open');

    // Staff record R2 (the latest) as paid: R1 is still open after a failure.
    const paidR2 = await ctx.b.post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: r2.id });
    assert.equal(paidR2.status, 'paid');
    assert.equal(await subStatus(ctx, w.sub.id), 'past_due');

    // R1's retry succeeds: none is open any more.
    await ctx.b.advance(w.clock, '2027-03-13T00:00:00Z');
    const paidR1 = await invoiceWhere(ctx, r1.id, (i) => i.status === 'paid', 'R1 paid by its retry');
    assert.equal(paidR1.attempt_count, 2);
    await statusBecomes(ctx, w.sub.id, 'active');
  });

  it('mark_unpaid: a later renewal charged and paid while the old invoice is open leaves it unpaid; paying the old one makes it active', async () => {
    const ctx = await setUp({ retry_days: [1], end_action: 'mark_unpaid' });
    const w = await subscribed(ctx);
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds', 'insufficient_funds', 'succeed'] });

    const r1 = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    await advanceTo(ctx, w, '2027-02-02T00:00:00Z', 2);
    await statusBecomes(ctx, w.sub.id, 'unpaid');

    // An unpaid subscription still renews, and its renewal is charged.
    const r2 = await advanceTo(ctx, w, '2027-03-01T00:00:00Z', 1);
    assert.notEqual(r2.id, r1.id);
    await invoiceWhere(ctx, r2.id, (i) => i.status === 'paid', 'R2 paid by card');
    assert.equal((await attemptsOf(ctx, r2.id))[0].status, 'succeeded');
    await until('the receipt for R2', async () => ((await notifications(ctx, w.customer.id)).includes('payment.succeeded') ? true : undefined));
    assert.equal(await subStatus(ctx, w.sub.id), 'unpaid', 'R1 is still open');
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: r1.id })).status, 'open');

    await ctx.b.post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: r1.id });
    assert.equal(await subStatus(ctx, w.sub.id), 'active');
  });

  it('mark_unpaid: the last failure of an invoice that is no longer the latest makes it unpaid', async () => {
    const ctx = await setUp({ retry_days: [1], end_action: 'mark_unpaid' });
    const w = await subscribedThree(ctx);
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds', 'insufficient_funds'] });

    const r1 = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    await statusBecomes(ctx, w.sub.id, 'past_due');
    const down = await ctx.b.post('/v1/subscriptions/{id}', { items: [{ id: w.item.id, quantity: 2 }], proration_behavior: 'always_invoice' }, 200, { id: w.sub.id });
    assert.notEqual(down.latest_invoice, r1.id);
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: down.latest_invoice })).status, 'paid');

    await ctx.b.advance(w.clock, '2027-02-02T00:00:00Z');
    await invoiceWhere(ctx, r1.id, (i) => i.attempt_count === 2, 'R1\'s last attempt');
    await statusBecomes(ctx, w.sub.id, 'unpaid');
  });
});

describe('authentication (SCA)', () => {
  it('an off-session charge that needs authentication waits for the customer, who authenticates; the webhook pays the invoice once', async () => {
    const ctx = await setUp();
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_authenticationRequired' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    const [first] = await attemptsOf(ctx, inv.id);
    assert.equal(first.status, 'requires_action');
    assert.equal(first.failure_code, 'authentication_required');
    await until('the action_required message', async () => ((await notifications(ctx, w.customer.id)).includes('payment.action_required') ? true : undefined));
    await until('the subscription to be past due', async () => ((await subStatus(ctx, w.sub.id)) === 'past_due' ? true : undefined));

    // The schedule goes on meanwhile: the retry confirms the same intent
    // off-session, which needs authentication again.
    await advanceTo(ctx, w, '2027-02-04T00:00:00Z', 2);
    const [was, second] = await attemptsOf(ctx, inv.id);
    assert.deepEqual([was.status, was.failure_code], ['failed', 'authentication_required']);
    assert.equal(second.status, 'requires_action');
    assert.equal(second.stripe_payment_intent, first.stripe_payment_intent);

    // The customer, on the tenant's page (Stripe.js), confirms that
    // PaymentIntent on-session and passes 3-D Secure.
    const pi = first.stripe_payment_intent;
    const confirm = () => fetch(`${fake.url}/v1/payment_intents/${pi}/confirm`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ctx.key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'payment_method=pm_card_authenticationRequired',
    });
    const confirmed = await confirm();
    assert.equal(confirmed.status, 200, await confirmed.text());
    await fake.control('POST', `/_fake/payment_intents/${pi}/authenticate`, { outcome: 'succeed' });

    const paid = await invoiceWhere(ctx, inv.id, (i) => i.status === 'paid', 'paid through the webhook');
    assert.equal(paid.amount_paid, 2000);
    const after = await attemptsOf(ctx, inv.id);
    assert.deepEqual(after.map((a) => [a.attempt, a.status]), [[1, 'failed'], [2, 'succeeded']]);
    await until('the subscription to be active', async () => ((await subStatus(ctx, w.sub.id)) === 'active' ? true : undefined));

    // One intent per invoice: it cannot be paid a second time.
    const again = await confirm();
    assert.equal(again.status, 400, 'a succeeded PaymentIntent cannot be confirmed again');
    const payments = await ctx.b.get('/v1/payments', {}, { invoice: inv.id });
    assert.equal(payments.data.length, 1);
    assert.equal((await fake.stats(ctx.key)).succeeded_total, 2, 'the first invoice and this one, once each');
  });
});

describe('a payment processing', () => {
  const signer = Stripe('sk_test_signer_only');

  // A renewal whose off-session charge needs authentication (attempt 1
  // requires_action, retry and end on 2027-02-04), then the customer
  // authenticates and Stripe says the payment is processing, as it does
  // for payment methods that confirm late. The world, invoice and intent.
  async function processing(ctx) {
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_authenticationRequired' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    assert.equal(inv.next_payment_attempt, '2027-02-04T00:00:00Z');
    const pi = (await attemptsOf(ctx, inv.id))[0].stripe_payment_intent;
    // Stripe's own events of the decline are in before ours are sent.
    await until('the fake\'s events to be delivered', async () => {
      const events = await fake.events(ctx.key);
      return events.every((e) => e.deliveries.every((d) => d.state === 'delivered')) ? true : undefined;
    });
    const intent = await (await fetch(`${fake.url}/v1/payment_intents/${pi}`, { headers: { Authorization: `Bearer ${ctx.key}` } })).json();
    await sendEvent(ctx, 'payment_intent.processing', { ...intent, status: 'processing', last_payment_error: null }, 10);
    await until('the attempt to be processing', async () => ((await attemptsOf(ctx, inv.id))[0].status === 'processing' ? true : undefined));
    return { w, inv, intent };
  }

  // A signed event of Stripe's, as Stripe sends it, `ahead` seconds after
  // now (newer than anything the fake sent about the same object).
  async function sendEvent(ctx, type, object, ahead) {
    const created = Math.floor(Date.now() / 1000) + ahead;
    const body = JSON.stringify({ id: `evt_${newId('t').slice(2)}`, object: 'event', api_version: '2024-06-20', created, data: { object }, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, type });
    const res = await api.post('/webhooks/stripe/{tenant}', {
      params: { tenant: ctx.T.tenant.id },
      headers: { 'Content-Type': 'application/json', 'Stripe-Signature': signer.webhooks.generateTestHeaderString({ payload: body, secret: ctx.whsec }) },
      body,
    });
    assert.equal(res.status, 200, res.text);
  }

  const declined = (intent) => ({
    ...intent,
    status: 'requires_payment_method',
    last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.' },
  });

  it('parks the dunning end while it processes: the policy\'s end does not cancel a payment in flight', async () => {
    const ctx = await setUp();
    const { w, inv } = await processing(ctx);
    await ctx.b.advance(w.clock, '2027-02-10T00:00:00Z');
    await sleep(500);
    assert.equal(await subStatus(ctx, w.sub.id), 'past_due', 'not canceled while the payment processes');
    const now = await ctx.b.get('/v1/invoices/{id}', { id: inv.id });
    assert.deepEqual([now.status, now.next_payment_attempt, now.attempt_count], ['open', null, 1]);
  });

  it('a processing attempt that fails then is a failure: the next retry is scheduled, not nothing forever', async () => {
    const ctx = await setUp();
    const { inv, intent } = await processing(ctx);
    await sendEvent(ctx, 'payment_intent.payment_failed', declined(intent), 20);
    const after = await invoiceWhere(ctx, inv.id, (i) => i.next_payment_attempt !== null, 'a retry scheduled after the failure');
    assert.deepEqual([after.status, after.attempt_count, after.next_payment_attempt], ['open', 1, '2027-02-06T00:00:00Z']);
    assert.equal(after.last_payment_error.decline_code, 'insufficient_funds');
    const [first] = await attemptsOf(ctx, inv.id);
    assert.deepEqual([first.status, first.decline_code], ['failed', 'insufficient_funds']);
  });
});

describe('an invoice settled outside Stripe', () => {
  it('paid out of band after the customer paid, with no webhook endpoint: the cancel records what Stripe took', async () => {
    // No webhook endpoint: only the cancel's answer tells Billow.
    const T = await createTenant(api);
    const { key } = await connectStripe(api, null, T);
    const b = billingClient(api, T.secret);
    const product = await createProduct(api, T.secret);
    const price = await createPrice(api, T.secret, { product: product.id, unit_amount: 2000 });
    const ctx = { T, key, b, price };
    const w = await subscribed(ctx);
    await b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_authenticationRequired' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    const [waiting] = await attemptsOf(ctx, inv.id);
    assert.equal(waiting.status, 'requires_action');
    const pi = waiting.stripe_payment_intent;

    // The customer, on the tenant's page, confirms on-session and passes
    // 3-D Secure: Stripe takes the money. Staff, not knowing, mark the
    // invoice paid out of band.
    const confirmed = await fetch(`${fake.url}/v1/payment_intents/${pi}/confirm`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'payment_method=pm_card_authenticationRequired',
    });
    assert.equal(confirmed.status, 200, await confirmed.text());
    await fake.control('POST', `/_fake/payment_intents/${pi}/authenticate`, { outcome: 'succeed' });
    const paid = await b.post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: inv.id });
    assert.equal(paid.status, 'paid');
    let payments;
    await until('the payment Stripe took to be recorded', async () => {
      payments = await superuser(`SELECT amount, stripe_payment_intent FROM payments WHERE tenant_id = ${lit(T.tenant.id)} AND invoice_id = ${lit(inv.id)}`);
      return payments.length ? true : undefined;
    });
    assert.deepEqual(payments, [['2000', pi]]);
    const [after] = await attemptsOf(ctx, inv.id);
    assert.equal(after.status, 'succeeded');
    assert.equal((await b.get('/v1/invoices/{id}', { id: inv.id })).status, 'paid');
  });

  it('paid out of band while its charge waits for authentication: the PaymentIntent is canceled and can take no money', async () => {
    const ctx = await setUp();
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_authenticationRequired' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    const [waiting] = await attemptsOf(ctx, inv.id);
    assert.equal(waiting.status, 'requires_action');
    const pi = waiting.stripe_payment_intent;

    const paid = await ctx.b.post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: inv.id });
    assert.equal(paid.status, 'paid');
    const intentAtStripe = async () => (await fetch(`${fake.url}/v1/payment_intents/${pi}`, { headers: { Authorization: `Bearer ${ctx.key}` } })).json();
    await until('the intent to be canceled at Stripe', async () => ((await intentAtStripe()).status === 'canceled' ? true : undefined));
    assert.equal((await intentAtStripe()).cancellation_reason, 'abandoned');
    // The cancel job records it on the attempt after Stripe answered.
    let after;
    await until('the waiting attempt to fail as canceled', async () => {
      [after] = await attemptsOf(ctx, inv.id);
      return after.status === 'failed' ? true : undefined;
    }, { describe: () => JSON.stringify(after) });
    assert.deepEqual([after.status, after.failure_code], ['failed', 'payment_intent_canceled']);

    // The customer, still on the authentication page, cannot pay it now.
    const confirm = await fetch(`${fake.url}/v1/payment_intents/${pi}/confirm`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ctx.key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'payment_method=pm_card_authenticationRequired',
    });
    assert.equal(confirm.status, 400);
    assert.equal((await ctx.b.get('/v1/payments', {}, { invoice: inv.id })).data.length, 0);
    await until('the subscription to be active', async () => ((await subStatus(ctx, w.sub.id)) === 'active' ? true : undefined));
  });
});

describe('an invoice voided automatically while its charge waits for authentication', () => {
  // A new subscription whose first charge needs 3-D Secure: it stays
  // incomplete, its first invoice open, the invoice's intent waiting for
  // the customer.
  async function waitingFirstCharge(ctx) {
    const clock = await ctx.b.post('/v1/test_clocks', { frozen_time: '2027-01-01T00:00:00Z' }, 201);
    const customer = await createCustomer(api, ctx.T.secret, { email: `c-${clock.id.slice(-6)}@example.com`, test_clock: clock.id, default_payment_method: 'pm_card_authenticationRequired' });
    const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: ctx.price.id }] }, 201);
    assert.equal(sub.status, 'incomplete');
    const inv = await invoiceWhere(ctx, sub.latest_invoice, (i) => i.attempt_count === 1, 'the first attempt');
    const [first] = await attemptsOf(ctx, inv.id);
    assert.equal(first.status, 'requires_action');
    return { clock, customer, sub, inv, pi: first.stripe_payment_intent };
  }

  // The void canceled the intent at Stripe: the customer, finishing
  // authentication on the tenant's page, cannot pay the void invoice.
  async function assertCannotPay(ctx, w) {
    const intentAtStripe = async () => (await fetch(`${fake.url}/v1/payment_intents/${w.pi}`, { headers: { Authorization: `Bearer ${ctx.key}` } })).json();
    let last;
    await until('the intent to be canceled at Stripe', async () => {
      last = await intentAtStripe();
      return last.status === 'canceled' ? true : undefined;
    }, { describe: () => JSON.stringify(last) });
    assert.equal(last.cancellation_reason, 'abandoned');
    const confirm = await fetch(`${fake.url}/v1/payment_intents/${w.pi}/confirm`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ctx.key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'payment_method=pm_card_authenticationRequired',
    });
    assert.equal(confirm.status, 400, 'a canceled PaymentIntent cannot be confirmed');
    // The cancel job records the canceled intent on the attempt after
    // Stripe answered it, so the attempt may trail Stripe a moment.
    let attempts;
    await until('the waiting attempt to fail as canceled', async () => {
      attempts = await attemptsOf(ctx, w.inv.id);
      return attempts.at(-1).failure_code === 'payment_intent_canceled' ? true : undefined;
    }, { describe: () => JSON.stringify(attempts) });
    assert.ok(attempts.every((a) => a.status === 'failed'), JSON.stringify(attempts));
    assert.equal((await ctx.b.get('/v1/payments', {}, { invoice: w.inv.id })).data.length, 0);
    assert.equal((await fake.stats(ctx.key)).succeeded_total, 0, 'no money was taken');
  }

  it('an incomplete subscription expiring at its first period end voids its invoice and cancels the intent', async () => {
    // No retry and no end action, so nothing but the expiry ends it.
    const ctx = await setUp({ retry_days: [], end_action: 'leave_past_due' });
    const w = await waitingFirstCharge(ctx);
    await ctx.b.advance(w.clock, '2027-02-01T00:00:00Z');
    const sub = await ctx.b.get('/v1/subscriptions/{id}', { id: w.sub.id });
    assert.deepEqual([sub.status, sub.ended_at], ['canceled', '2027-02-01T00:00:00Z']);
    const inv = await ctx.b.get('/v1/invoices/{id}', { id: w.inv.id });
    assert.deepEqual([inv.status, inv.voided_at], ['void', '2027-02-01T00:00:00Z']);
    await assertCannotPay(ctx, w);
  });

  it('an incomplete subscription canceled when dunning ends voids its invoice and cancels the intent', async () => {
    // The default policy: retries on Jan 4, 6 and 8, each needing
    // authentication again, then the subscription is canceled.
    const ctx = await setUp();
    const w = await waitingFirstCharge(ctx);
    await ctx.b.advance(w.clock, '2027-01-08T00:00:00Z');
    await until('the subscription to be canceled', async () => ((await subStatus(ctx, w.sub.id)) === 'canceled' ? true : undefined));
    const inv = await invoiceWhere(ctx, w.inv.id, (i) => i.status === 'void', 'voided with its subscription');
    assert.equal(inv.attempt_count, 4);
    await assertCannotPay(ctx, w);
  });

  it('an incomplete subscription canceled by staff voids its invoice and cancels the intent', async () => {
    const ctx = await setUp();
    const w = await waitingFirstCharge(ctx);
    const sub = await ctx.b.post('/v1/subscriptions/{id}/cancel', {}, 200, { id: w.sub.id });
    assert.equal(sub.status, 'canceled');
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: w.inv.id })).status, 'void');
    await assertCannotPay(ctx, w);
  });
});

describe('an intent canceled in Stripe\'s dashboard', () => {
  it('fails the attempt that meets it; the next attempt makes a new intent and pays', async () => {
    const ctx = await setUp();
    const w = await subscribed(ctx);
    await fake.control('POST', '/_fake/payment_methods/pm_card_visa/script', { api_key: ctx.key, outcomes: ['insufficient_funds'] });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    const [first] = await attemptsOf(ctx, inv.id);
    // Someone at the tenant cancels the intent in Stripe's dashboard.
    const cancel = await fetch(`${fake.url}/v1/payment_intents/${first.stripe_payment_intent}/cancel`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ctx.key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'cancellation_reason=requested_by_customer',
    });
    assert.equal(cancel.status, 200, await cancel.text());

    let now = await advanceTo(ctx, w, '2027-02-04T00:00:00Z', 2);
    assert.equal(now.status, 'open');
    assert.equal(now.next_payment_attempt, '2027-02-06T00:00:00Z', 'a soft failure: the schedule goes on');
    now = await advanceTo(ctx, w, '2027-02-06T00:00:00Z', 3);
    assert.equal(now.status, 'paid');
    const attempts = await attemptsOf(ctx, inv.id);
    assert.deepEqual(attempts.map((a) => [a.attempt, a.status, a.failure_code]), [
      [1, 'failed', 'card_declined'],
      [2, 'failed', 'payment_intent_canceled'],
      [3, 'succeeded', null],
    ]);
    assert.equal(attempts[1].stripe_payment_intent, first.stripe_payment_intent);
    assert.notEqual(attempts[2].stripe_payment_intent, first.stripe_payment_intent, 'a new intent');
  });
});

describe('a hard decline', () => {
  it('stops retries and asks for a new card; a card saved through a SetupIntent is tried at once and pays', async () => {
    const ctx = await setUp();
    const w = await subscribed(ctx);
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_chargeDeclinedLostCard' }, 200, { id: w.customer.id });
    const inv = await advanceTo(ctx, w, '2027-02-01T00:00:00Z', 1);
    assert.equal(inv.payment_method_required, true);
    assert.equal(inv.next_payment_attempt, null);
    const [attempt] = await attemptsOf(ctx, inv.id);
    assert.deepEqual([attempt.status, attempt.decline_code, attempt.hard_decline], ['failed', 'lost_card', true]);
    await until('the method_required message', async () => ((await notifications(ctx, w.customer.id)).includes('payment.method_required') ? true : undefined));

    const seti = await ctx.b.post('/v1/customers/{id}/setup_intents', {}, 201, { id: w.customer.id });
    assert.match(seti.id, /^seti_/);
    assert.match(seti.client_secret, /^seti_.+_secret_/);
    // The customer enters a card on the tenant's page; Stripe says so by webhook.
    await fake.control('POST', `/_fake/setup_intents/${seti.id}/succeed`, { payment_method: 'pm_card_visa' });
    const customer = await until('the new default payment method', async () => {
      const c = await ctx.b.get('/v1/customers/{id}', { id: w.customer.id });
      return c.default_payment_method !== 'pm_card_chargeDeclinedLostCard' ? c : undefined;
    });
    assert.match(customer.default_payment_method, /^pm_/);
    const paid = await invoiceWhere(ctx, inv.id, (i) => i.status === 'paid', 'paid by the new card at once');
    assert.equal(paid.attempt_count, 2);
    const attempts = await attemptsOf(ctx, inv.id);
    assert.equal(attempts[1].created_at, '2027-02-01T00:00:00Z', 'the retry came at once, not on the schedule');
  });
});

describe('one-time payments and refunds', () => {
  it('a payment is a one-off invoice charged at once; refunds in part, in full, and no further', async () => {
    const ctx = await setUp();
    const clock = await ctx.b.post('/v1/test_clocks', { frozen_time: '2027-03-01T00:00:00Z' }, 201);
    const customer = await createCustomer(api, ctx.T.secret, { email: 'once@example.com', default_payment_method: 'pm_card_visa', test_clock: clock.id });
    const res = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 5000, currency: 'usd', description: 'Set-up fee' }, 201);
    assert.equal(res.object, 'payment_result');
    assert.equal(res.invoice.status, 'paid');
    assert.equal(res.invoice.billing_reason, 'manual');
    assert.equal(res.invoice.description, 'Set-up fee');
    assert.equal(res.attempt.status, 'succeeded');
    const pay = res.payment;
    assert.deepEqual([pay.amount, pay.amount_refunded, pay.status, pay.currency], [5000, 0, 'succeeded', 'usd']);

    const part = await ctx.b.post('/v1/payments/{id}/refunds', { amount: 2000, reason: 'requested_by_customer' }, 201, { id: pay.id });
    assert.deepEqual([part.amount, part.status, part.reason], [2000, 'succeeded', 'requested_by_customer']);
    assert.deepEqual([pay.created_at, part.created_at], ['2027-03-01T00:00:00Z', '2027-03-01T00:00:00Z'], 'times are the customer\'s clock\'s');
    assert.equal((await ctx.b.get('/v1/payments/{id}', { id: pay.id })).status, 'partially_refunded');
    assertError(await ctx.b.attempt('/v1/payments/{id}/refunds', { amount: 3001 }, { id: pay.id }), 400, 'amount_too_large', { param: 'amount' });
    const rest = await ctx.b.post('/v1/payments/{id}/refunds', {}, 201, { id: pay.id });
    assert.equal(rest.amount, 3000);
    const done = await ctx.b.get('/v1/payments/{id}', { id: pay.id });
    assert.deepEqual([done.status, done.amount_refunded], ['refunded', 5000]);
    assertError(await ctx.b.attempt('/v1/payments/{id}/refunds', {}, { id: pay.id }), 409, 'payment_refunded');
    const refunds = await ctx.b.get('/v1/payments/{id}/refunds', { id: pay.id });
    assert.deepEqual(refunds.data.map((r) => r.amount).sort(), [2000, 3000]);
    assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: res.invoice.id })).amount_refunded, 5000);
    // Stripe's charge.refunded events agree and change nothing further.
    await until('the refund events to be applied', async () => {
      const [[n]] = await superuser(`SELECT count(*) FROM stripe_events WHERE tenant_id = ${lit(ctx.T.tenant.id)} AND type = 'charge.refunded'`);
      return n === '2' ? true : undefined;
    });
    assert.equal((await ctx.b.get('/v1/payments/{id}', { id: pay.id })).amount_refunded, 5000);
    assert.equal((await fake.stats(ctx.key)).amount_refunded, 5000);
  });

  // A refund whose every answer from Stripe is lost (Stripe makes it, the
  // charger never hears): its job runs again with backoff while Stripe's
  // events tell Billow what happened, and ends (recorded from the events,
  // or dead); a dead one is replayed once the answers come through again,
  // after charge.refunded has set the charge's total. The job, finished.
  async function refundLost(ctx, pay, amount) {
    await fake.control('POST', '/_fake/faults', { api_key: ctx.key, path_prefix: '/v1/refunds', method: 'POST', count: 1000, status: 500, mode: 'after' });
    const res = await api.post('/v1/payments/{id}/refunds', { params: { id: pay.id }, token: ctx.T.secret, json: { amount } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.id;
    const ended = await until('the refund job to end', async () => {
      const job = (await api.get('/v1/jobs/{id}', { params: { id }, token: ctx.T.secret })).json;
      return ['succeeded', 'failed', 'dead'].includes(job.status) ? job : undefined;
    });
    await fake.control('DELETE', `/_fake/faults?api_key=${encodeURIComponent(ctx.key)}`);
    await until('charge.refunded to be applied', async () => ((await ctx.b.get('/v1/payments/{id}', { id: pay.id })).amount_refunded >= amount ? true : undefined));
    if (ended.status === 'dead') {
      const replay = await api.post('/v1/jobs/{id}/replay', { params: { id }, token: ctx.T.secret });
      assert.equal(replay.status, 200, replay.text);
    }
    return waitJob(api, id, ctx.T.secret);
  }

  for (const amount of [5000, 6000]) {
    it(`a refund of ${amount} of 10000 whose answer was lost, run again after Stripe's event counted it, is recorded once`, async () => {
      const ctx = await setUp();
      const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
      const { payment: pay, invoice } = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 10000, currency: 'usd' }, 201);
      const job = await refundLost(ctx, pay, amount);
      assert.deepEqual([job.result.object, job.result.amount, job.result.status], ['refund', amount, 'succeeded']);

      const after = await ctx.b.get('/v1/payments/{id}', { id: pay.id });
      assert.deepEqual([after.amount_refunded, after.status], [amount, 'partially_refunded'], 'counted once');
      assert.equal((await ctx.b.get('/v1/invoices/{id}', { id: invoice.id })).amount_refunded, amount);
      const refunds = (await ctx.b.get('/v1/payments/{id}/refunds', { id: pay.id })).data;
      assert.deepEqual(refunds.map((r) => [r.id, r.amount]), [[job.result.id, amount]]);
      assert.match(refunds[0].stripe_refund, /^re_/);
      const stats = await fake.stats(ctx.key);
      assert.deepEqual([stats.refunds_total, stats.amount_refunded], [1, amount], 'Stripe refunded once');
      // What is left can still be refunded, and only that.
      const rest = await ctx.b.post('/v1/payments/{id}/refunds', {}, 201, { id: pay.id });
      assert.equal(rest.amount, 10000 - amount);
      const done = await ctx.b.get('/v1/payments/{id}', { id: pay.id });
      assert.deepEqual([done.amount_refunded, done.status], [10000, 'refunded']);
    });
  }

  it('a refund replayed after Stripe forgot its key finds the refund its lost try made, and refunds once', async () => {
    // No webhook endpoint: nothing tells Billow what its lost answers did.
    const T = await createTenant(api);
    const { key } = await connectStripe(api, null, T);
    const ctx = { T, key, b: billingClient(api, T.secret) };
    const customer = await createCustomer(api, T.secret, { default_payment_method: 'pm_card_visa' });
    const { payment: pay } = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 8000, currency: 'usd' }, 201);
    await fake.control('POST', '/_fake/faults', { api_key: key, path_prefix: '/v1/refunds', method: 'POST', count: 1000, status: 500, mode: 'after' });
    const res = await api.post('/v1/payments/{id}/refunds', { params: { id: pay.id }, token: T.secret, json: { amount: 3000 } });
    assert.equal(res.status, 202, res.text);
    const jobId = res.json.id;
    await waitJob(api, jobId, T.secret, { status: 'dead' });
    await fake.control('DELETE', `/_fake/faults?api_key=${encodeURIComponent(key)}`);
    assert.equal((await fake.stats(key)).refunds_total, 1);

    // Two days later: the envelope says so, and Stripe has forgotten the key.
    const env = JSON.parse((await hgetall(S.redisDb, `job:${jobId}`)).envelope);
    env.enqueued_at = new Date(Date.now() - 48 * 3600 * 1000).toISOString();
    await redis(S.redisDb, 'HSET', `job:${jobId}`, 'envelope', JSON.stringify(env));
    await fake.control('POST', '/_fake/idempotency/expire', { api_key: key });
    const replay = await api.post('/v1/jobs/{id}/replay', { params: { id: jobId }, token: T.secret });
    assert.equal(replay.status, 200, replay.text);
    const job = await waitJob(api, jobId, T.secret);
    assert.equal(job.result.amount, 3000);

    const stats = await fake.stats(key);
    assert.deepEqual([stats.refunds_total, stats.amount_refunded], [1, 3000], `no second refund: ${JSON.stringify(stats)}`);
    const log = await fake.requests(key);
    assert.ok(log.some((r) => r.method === 'GET' && r.path === '/v1/refunds' && r.params.payment_intent === pay.stripe_payment_intent), 'Billow looked for the refund before making one');
    const after = await ctx.b.get('/v1/payments/{id}', { id: pay.id });
    assert.deepEqual([after.amount_refunded, after.status], [3000, 'partially_refunded']);
    tenants.push(ctx);
  });

  it('5,000 kr is charged as Stripe writes isk (500000) and pays its invoice in full; refunds convert back', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    const res = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 5000, currency: 'isk' }, 201);
    assert.equal(res.invoice.status, 'paid');
    assert.deepEqual([res.payment.amount, res.payment.currency, res.attempt.amount], [5000, 'isk', 5000]);
    const made = (await fake.requests(ctx.key)).filter((r) => r.method === 'POST' && r.path === '/v1/payment_intents');
    assert.deepEqual(made.map((r) => r.params.amount), ['500000'], 'Stripe was asked for 5,000 kr, not 50');
    assert.equal((await fake.stats(ctx.key)).amount_succeeded, 500000);

    const re = await ctx.b.post('/v1/payments/{id}/refunds', { amount: 1200 }, 201, { id: res.payment.id });
    assert.equal(re.amount, 1200);
    const sent = (await fake.requests(ctx.key)).filter((r) => r.method === 'POST' && r.path === '/v1/refunds');
    assert.deepEqual(sent.map((r) => r.params.amount), ['120000']);
    await until('charge.refunded to be applied', async () => {
      const [[n]] = await superuser(`SELECT count(*) FROM stripe_events WHERE tenant_id = ${lit(ctx.T.tenant.id)} AND type = 'charge.refunded'`);
      return n === '1' ? true : undefined;
    });
    const pay = await ctx.b.get('/v1/payments/{id}', { id: res.payment.id });
    assert.deepEqual([pay.amount_refunded, pay.status], [1200, 'partially_refunded'], 'Stripe\'s total read back in krónur');
  });

  it('a kwd amount whose last digit is not 0 is refused before Stripe, naming the rule; one ending in 0 is charged as it is', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    const refused = await ctx.b.attempt('/v1/payments', { customer: customer.id, amount: 5125, currency: 'kwd' });
    assertError(refused, 400, 'stripe_amount_unsupported', { param: 'amount' });
    assert.match(refused.json.error.message, /last of the three decimals 0/);
    const log = await fake.requests(ctx.key);
    assert.deepEqual(log.filter((r) => r.path.startsWith('/v1/payment_intents')), [], 'nothing reached Stripe');
    const [[invoices]] = await superuser(`SELECT count(*) FROM invoices WHERE tenant_id = ${lit(ctx.T.tenant.id)}`);
    assert.equal(invoices, '0', 'no invoice was left behind');

    const ok = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 5120, currency: 'kwd' }, 201);
    assert.deepEqual([ok.invoice.status, ok.payment.amount], ['paid', 5120]);
    const made = (await fake.requests(ctx.key)).filter((r) => r.method === 'POST' && r.path === '/v1/payment_intents');
    assert.deepEqual(made.map((r) => r.params.amount), ['5120']);
    assertError(await ctx.b.attempt('/v1/payments/{id}/refunds', { amount: 1005 }, { id: ok.payment.id }), 400, 'stripe_amount_unsupported', { param: 'amount' });
    assert.equal((await fake.stats(ctx.key)).refunds_total, 0);
  });

  it('an intent for another amount than its invoice\'s is recorded as money received but does not pay the invoice', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_chargeDeclinedInsufficientFunds' });
    const res = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 4000, currency: 'usd' }, 201);
    assert.equal(res.invoice.status, 'open');
    // Someone makes, in Stripe, an intent for less that names the invoice.
    const form = new URLSearchParams({ amount: '1000', currency: 'usd', payment_method: 'pm_card_visa', confirm: 'true', 'metadata[billow_invoice]': res.invoice.id });
    const pi = await fetch(`${fake.url}/v1/payment_intents`, { method: 'POST', headers: { Authorization: `Bearer ${ctx.key}`, 'Content-Type': 'application/x-www-form-urlencoded', 'Idempotency-Key': `test:${res.invoice.id}` }, body: form });
    assert.equal(pi.status, 200, await pi.clone().text());
    const attempts = await until('the intent\'s success to be applied', async () => {
      const list = await attemptsOf(ctx, res.invoice.id);
      return list.length === 2 ? list : undefined;
    });
    assert.deepEqual([attempts[1].status, attempts[1].failure_code, attempts[1].amount], ['succeeded', 'amount_mismatch', 1000]);
    assert.match(attempts[1].failure_message, /the invoice asks for 4000 usd/);
    const inv = await ctx.b.get('/v1/invoices/{id}', { id: res.invoice.id });
    assert.deepEqual([inv.status, inv.next_payment_attempt, inv.last_payment_error?.code], ['open', null, 'amount_mismatch']);
    const payments = await ctx.b.get('/v1/payments', {}, { invoice: res.invoice.id });
    assert.deepEqual(payments.data.map((p) => p.amount), [1000], 'the money that moved is on record, for staff');
  });

  it('an intent in a currency Billow does not know names the invoice: no payment of a made-up figure', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_chargeDeclinedInsufficientFunds' });
    const res = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 4000, currency: 'usd' }, 201);
    assert.equal(res.invoice.status, 'open');
    // Malagasy ariary: a Stripe currency that is not among Billow's.
    const form = new URLSearchParams({ amount: '4000', currency: 'mga', payment_method: 'pm_card_visa', confirm: 'true', 'metadata[billow_invoice]': res.invoice.id });
    const pi = await fetch(`${fake.url}/v1/payment_intents`, { method: 'POST', headers: { Authorization: `Bearer ${ctx.key}`, 'Content-Type': 'application/x-www-form-urlencoded', 'Idempotency-Key': `test:mga:${res.invoice.id}` }, body: form });
    assert.equal(pi.status, 200, await pi.clone().text());
    const attempts = await until('the intent\'s success to be applied', async () => {
      const list = await attemptsOf(ctx, res.invoice.id);
      return list.length === 2 ? list : undefined;
    });
    assert.deepEqual([attempts[1].status, attempts[1].failure_code, attempts[1].currency], ['succeeded', 'amount_mismatch', 'usd']);
    assert.match(attempts[1].failure_message, /an amount Billow cannot represent mga \(4000 in Stripe's units\)/);
    assert.match(attempts[1].failure_message, /No payment is recorded/);
    const inv = await ctx.b.get('/v1/invoices/{id}', { id: res.invoice.id });
    assert.deepEqual([inv.status, inv.last_payment_error?.code], ['open', 'amount_mismatch']);
    const payments = await ctx.b.get('/v1/payments', {}, { invoice: res.invoice.id });
    assert.deepEqual(payments.data, [], 'no payment in usd or mga of a figure Billow made up');
  });

  it('a declined one-time payment leaves its invoice open and schedules nothing', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_chargeDeclinedInsufficientFunds' });
    const res = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 1500, currency: 'usd' }, 201);
    assert.equal(res.payment, null);
    assert.deepEqual([res.attempt.status, res.attempt.decline_code], ['failed', 'insufficient_funds']);
    assert.equal(res.invoice.status, 'open');
    assert.equal(res.invoice.next_payment_attempt, null);
  });

  it('Stripe answering 500 is retried under the same key, and charges once', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    // The charge (the intent's confirmation) is made, its answer lost twice.
    await fake.control('POST', '/_fake/faults', { api_key: ctx.key, path_prefix: '/v1/payment_intents/', count: 2, status: 500, mode: 'after' });
    const res = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 2500, currency: 'usd' }, 201);
    assert.equal(res.invoice.status, 'paid');
    const stats = await fake.stats(ctx.key);
    assert.equal(stats.charges[`billow:pi:${res.invoice.id}:1:pm_card_visa`], 1, 'the effect of the lost answers was replayed, not repeated');
    assert.equal(stats.succeeded_total, 1);
  });

  it('a payment replayed after Stripe forgot its key confirms the intent its lost try made, and charges once', async () => {
    // No webhook endpoint: nothing tells Billow of what its lost answers did.
    const T = await createTenant(api);
    const { key } = await connectStripe(api, null, T);
    const b = billingClient(api, T.secret);
    const customer = await createCustomer(api, T.secret, { default_payment_method: 'pm_card_visa' });
    // Stripe makes the intent and charges the card, and every answer of the
    // charge (the intent's confirmation) is lost until the job is dead (4
    // attempts), its invoice never written.
    await fake.control('POST', '/_fake/faults', { api_key: key, path_prefix: '/v1/payment_intents/', count: 1000, status: 500, mode: 'after' });
    const res = await api.post('/v1/payments', { token: T.secret, json: { customer: customer.id, amount: 3100, currency: 'usd' } });
    assert.equal(res.status, 202, res.text);
    const jobId = res.json.id;
    await waitJob(api, jobId, T.secret, { status: 'dead' });
    await fake.control('DELETE', `/_fake/faults?api_key=${encodeURIComponent(key)}`);
    const env = JSON.parse((await hgetall(S.redisDb, `job:${jobId}`)).envelope);
    const invoice = env.payload.id;
    assert.equal((await fake.stats(key)).succeeded_total, 1, 'Stripe charged the card once');
    assert.equal((await api.get('/v1/invoices/{id}', { params: { id: invoice }, token: T.secret })).status, 404);

    // Two days later: the envelope says so, and Stripe has forgotten the key.
    env.enqueued_at = new Date(Date.now() - 48 * 3600 * 1000).toISOString();
    await redis(S.redisDb, 'HSET', `job:${jobId}`, 'envelope', JSON.stringify(env));
    const { expired } = await fake.control('POST', '/_fake/idempotency/expire', { api_key: key });
    assert.ok(expired >= 1, `keys forgotten: ${expired}`);
    const replay = await api.post('/v1/jobs/{id}/replay', { params: { id: jobId }, token: T.secret });
    assert.equal(replay.status, 200, replay.text);
    await waitJob(api, jobId, T.secret);

    const paid = await b.get('/v1/invoices/{id}', { id: invoice });
    assert.equal(paid.status, 'paid');
    const stats = await fake.stats(key);
    assert.equal(stats.succeeded_total, 1, `no second charge: ${JSON.stringify(stats)}`);
    const log = await fake.requests(key);
    const made = log.filter((r) => r.method === 'POST' && r.path === '/v1/payment_intents' && !r.idempotent_replayed);
    assert.equal(made.length, 1, 'one intent was ever made: before the job died, none after its replay');
    const search = log.find((r) => r.method === 'GET' && r.path === '/v1/payment_intents/search');
    assert.ok(search, 'Billow looked for the intent before making one');
    assert.equal(search.params.query, `metadata['billow_invoice']:'${invoice}'`);
    const payments = await b.get('/v1/payments', {}, { invoice });
    assert.equal(payments.data.length, 1);
  });

  it('an invalid request is permanent: the job is dead with Stripe\'s message kept', async () => {
    const ctx = await setUp();
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    // Below Stripe's smallest charge for usd (50 cents).
    await ctx.b.attempt('/v1/payments', { customer: customer.id, amount: 10, currency: 'usd' });
    const job = await until('the job to be dead', async () => {
      const list = await api.get('/v1/jobs', { token: ctx.T.secret, query: { status: 'dead' } });
      return list.json.data.find((j) => j.type === 'payment.create');
    });
    assert.equal(job.error.code, 'stripe_error');
    assert.match(job.error.message, /at least/i);
    assert.equal((await fake.stats(ctx.key)).charges_total, 0);
  });
});

describe('tenants without Stripe and bad input', () => {
  it('a payment for a tenant with no Stripe account fails clearly', async () => {
    const T = await createTenant(api);
    const customer = await createCustomer(api, T.secret, { default_payment_method: 'pm_card_visa' });
    const b = billingClient(api, T.secret);
    assertError(await b.attempt('/v1/payments', { customer: customer.id, amount: 1000, currency: 'usd' }), 409, 'stripe_not_configured');
  });

  it('bad dunning policies are refused naming the field, and the policy reads back', async () => {
    const ctx = await setUp();
    assertError(await ctx.b.attempt('/v1/settings/dunning', { retry_days: [5, 3] }), 400, 'parameter_invalid', { param: 'retry_days' });
    assertError(await ctx.b.attempt('/v1/settings/dunning', { end_action: 'delete' }), 400, 'parameter_invalid', { param: 'end_action' });
    const set = await ctx.b.post('/v1/settings/dunning', { retry_days: [2, 4], notify: { payment_succeeded: false } });
    assert.deepEqual(set.retry_days, [2, 4]);
    assert.equal(set.end_action, 'cancel');
    assert.equal(set.notify.payment_succeeded, false);
    assert.deepEqual(await ctx.b.get('/v1/settings/dunning'), set);
  });
});

describe('every request Billow sent to Stripe', () => {
  it('carries an Idempotency-Key, the pinned version, and only parameters Stripe\'s spec defines', async () => {
    let checked = 0;
    for (const ctx of tenants) {
      for (const r of await fake.requests(ctx.key)) {
        if (r.headers['user-agent'] !== 'Billow/1') continue; // the test's own stand-in for Stripe.js
        checked += 1;
        assert.equal(r.headers['stripe-version'], '2024-06-20', `${r.method} ${r.path}`);
        if (r.method === 'POST') assert.match(r.headers['idempotency-key'] ?? '', /^billow:/, `${r.method} ${r.path}`);
        assert.deepEqual(checkRequest({ method: r.method, path: r.path, params: r.params }), [], `${r.method} ${r.path} ${JSON.stringify(r.params)}`);
      }
    }
    assert.ok(checked >= 30, `only ${checked} requests were checked`);
  });
});
