// three_decimal: invoices and payments in the three-decimal currencies
// (bhd, jod, kwd, omr, tnd), where Stripe takes only amounts whose last
// digit is 0, against the Stripe fake (which checks that rule as Stripe
// does). An invoice Billow makes is rounded down to whole tens of fils with
// its `rounding` shown and charged; an amount a caller gives is refused at
// the api before any job; an invoice made before the rounding (its amount
// due not ending in 0) fails its charge visibly instead of a dead job.
// Amounts are worked out by hand from docs/billing.md beside each.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createPrice, createProduct, createTenant } from './lib/billow.mjs';
import { billingClient } from './lib/billing.mjs';
import { lit, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError } from './lib/http.mjs';
import { connectStripe, startPaymentsStack } from './lib/payments.mjs';
import { redis } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { until } from './lib/util.mjs';

const S = slot(34);
const stack = new Stack('three_decimal', S);
let api;
let fake;

before(async () => {
  ({ api, fake } = await startPaymentsStack(stack));
});

after(async () => {
  await stack.stopAll();
});

// A tenant connected to the fake, with a monthly kwd price per amount.
async function setUp(amounts) {
  const T = await createTenant(api);
  const { key } = await connectStripe(api, fake, T);
  const b = billingClient(api, T.secret);
  const product = await createProduct(api, T.secret);
  const prices = [];
  for (const unit_amount of amounts) prices.push(await createPrice(api, T.secret, { product: product.id, currency: 'kwd', unit_amount }));
  return { T, key, b, prices };
}

// A customer on a new clock at iso (paying with pm, or with none).
async function customerOnClock(ctx, iso, pm) {
  const clock = await ctx.b.post('/v1/test_clocks', { frozen_time: iso }, 201);
  const body = { email: `c-${clock.id.slice(-6)}@example.com`, test_clock: clock.id };
  if (pm) body.default_payment_method = pm;
  return { clock, customer: await createCustomer(api, ctx.T.secret, body) };
}

async function invoiceWhere(ctx, id, pred, what, timeoutMs = 30000) {
  let last;
  await until(`invoice ${id}: ${what}`, async () => {
    last = await ctx.b.get('/v1/invoices/{id}', { id });
    return pred(last) ? true : undefined;
  }, { timeoutMs, describe: () => JSON.stringify(last) });
  return last;
}

async function latestInvoice(ctx, subId) {
  return (await ctx.b.get('/v1/subscriptions/{id}', { id: subId })).latest_invoice;
}

// The amounts Billow asked Stripe to charge, in order.
async function intentAmounts(ctx) {
  return (await fake.requests(ctx.key)).filter((r) => r.method === 'POST' && r.path === '/v1/payment_intents').map((r) => r.params.amount);
}

// Every total of the invoice follows from the one before it.
function assertAddsUp(inv) {
  const lines = inv.lines.data.reduce((s, l) => s + l.amount, 0);
  assert.equal(inv.subtotal, lines, 'subtotal is the sum of the lines');
  assert.equal(inv.total, inv.subtotal + inv.rounding, 'total is the subtotal plus the rounding');
  assert.equal(inv.starting_balance + inv.total, inv.amount_due + inv.ending_balance, 'the balance and the total make the amount due');
  assert.ok(inv.rounding <= 0 && inv.rounding >= -9, `rounding ${inv.rounding} is at most 9 fils, in the customer's favour`);
  assert.equal(inv.amount_due % 10, 0, `amount due ${inv.amount_due} is one Stripe takes`);
}

describe('kwd invoices are rounded to what Stripe can collect', () => {
  it('a proration of 6443 fils is invoiced as 6440 with rounding −3 and paid; a credit leaving 3103 due is rounded to 3100 and paid', async () => {
    const ctx = await setUp([12500, 20750, 8120]);
    const [p12500, p20750, p8120] = ctx.prices;
    const { clock, customer } = await customerOnClock(ctx, '2027-04-01T00:00:00Z', 'pm_card_visa');
    const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: p12500.id }] }, 201);
    const first = await invoiceWhere(ctx, sub.latest_invoice, (i) => i.status === 'paid', 'the first invoice paid');
    assert.deepEqual([first.subtotal, first.rounding, first.total, first.amount_paid], [12500, 0, 12500, 12500], 'an amount ending in 0 is not rounded');
    const item = sub.items.data[0].id;

    // April 2027 is 2,592,000 s; at 567,910 s the old price's cumulative
    // share is 2738.76 → 2739 (credit −9761), the new one's 4546.35 → 4546
    // (charge 20750 − 4546 = 16204): 6443 fils, which Stripe cannot take.
    await ctx.b.advance(clock, '2027-04-07T13:45:10Z');
    await ctx.b.post('/v1/subscriptions/{id}', { items: [{ id: item, price: p20750.id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    const up = await invoiceWhere(ctx, await latestInvoice(ctx, sub.id), (i) => i.status === 'paid', 'the proration invoice paid by the charger');
    assert.deepEqual(up.lines.data.map((l) => l.amount), [-9761, 16204]);
    assert.deepEqual([up.subtotal, up.rounding, up.total, up.amount_due, up.amount_paid, up.amount_remaining], [6443, -3, 6440, 6440, 6440, 0]);
    assertAddsUp(up);

    // At 1,562,400 s: old 20750 → 12507.64 → 12508 (credit −8242), new 8120
    // → 4894.56 → 4895 (charge 3225): −5017, a credit.
    await ctx.b.advance(clock, '2027-04-19T02:00:00Z');
    await ctx.b.post('/v1/subscriptions/{id}', { items: [{ id: item, price: p8120.id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    const down = await invoiceWhere(ctx, await latestInvoice(ctx, sub.id), (i) => i.status === 'paid', 'the credit invoice closed');
    assert.deepEqual([down.subtotal, down.rounding, down.total, down.amount_due, down.ending_balance], [-5017, 0, -5017, 0, -5017], 'a credit is never rounded');

    // May 1: 8120 less the credit of 5017 leaves 3103 due; 3 fils are
    // forgiven and 3100 is charged.
    await ctx.b.advance(clock, '2027-05-01T00:00:00Z');
    const renewal = await invoiceWhere(ctx, await latestInvoice(ctx, sub.id), (i) => i.billing_reason === 'subscription_cycle' && i.status === 'paid', 'the renewal paid');
    assert.deepEqual([renewal.subtotal, renewal.rounding, renewal.total, renewal.starting_balance, renewal.amount_due, renewal.amount_paid, renewal.ending_balance], [8120, -3, 8117, -5017, 3100, 3100, 0]);
    assertAddsUp(renewal);
    assert.equal((await ctx.b.get('/v1/customers/{id}', { id: customer.id })).balance, 0);

    assert.deepEqual(await intentAmounts(ctx), ['12500', '6440', '3100'], 'Stripe was asked for each amount due as it is');
    const attempts = (await ctx.b.get('/v1/invoices/{id}/payment_attempts', { id: renewal.id })).data;
    assert.deepEqual(attempts.map((a) => [a.status, a.amount]), [['succeeded', 3100]]);
  });

  it('a price of 12.345 KWD is invoiced at 12.340, at the start and at each renewal, and paid', async () => {
    const ctx = await setUp([12345]);
    const { clock, customer } = await customerOnClock(ctx, '2027-01-01T00:00:00Z', 'pm_card_visa');
    const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: ctx.prices[0].id }] }, 201);
    const first = await invoiceWhere(ctx, sub.latest_invoice, (i) => i.status === 'paid', 'the first invoice paid');
    assert.deepEqual([first.subtotal, first.rounding, first.total, first.amount_paid], [12345, -5, 12340, 12340]);
    assertAddsUp(first);
    for (const iso of ['2027-02-01T00:00:00Z', '2027-03-01T00:00:00Z']) {
      await ctx.b.advance(clock, iso);
      const inv = await invoiceWhere(ctx, await latestInvoice(ctx, sub.id), (i) => i.period_start === iso && i.status === 'paid', `the renewal of ${iso} paid`);
      assert.deepEqual([inv.billing_reason, inv.subtotal, inv.rounding, inv.total, inv.amount_paid], ['subscription_cycle', 12345, -5, 12340, 12340]);
      assertAddsUp(inv);
    }
    assert.equal((await ctx.b.get('/v1/subscriptions/{id}', { id: sub.id })).status, 'active');
    assert.deepEqual(await intentAmounts(ctx), ['12340', '12340', '12340']);
  });
});

describe('amounts a caller gives', () => {
  // The jobs this file's Redis database has a status for: one per job made,
  // whatever became of it.
  async function jobCount() {
    return (await redis(S.redisDb, 'KEYS', 'job:*')).filter((k) => k !== '').length;
  }

  it('a one-time payment or a refund Stripe cannot take is refused at the api, naming the rule, before any job', async () => {
    const ctx = await setUp([]);
    const customer = await createCustomer(api, ctx.T.secret, { default_payment_method: 'pm_card_visa' });
    const ok = await ctx.b.post('/v1/payments', { customer: customer.id, amount: 5120, currency: 'kwd' }, 201);
    assert.equal(ok.invoice.status, 'paid');
    const jobs = await jobCount();

    // No Prefer: wait: the answer is the api's own, not a job's outcome.
    const pay = await api.post('/v1/payments', { token: ctx.T.secret, json: { customer: customer.id, amount: 5125, currency: 'kwd' } });
    assertError(pay, 400, 'stripe_amount_unsupported', { param: 'amount' });
    assert.match(pay.json.error.message, /kwd amounts only in whole tens/);
    assert.match(pay.json.error.message, /5120 or 5130/, 'the message offers the nearest amounts Stripe takes');
    const refund = await api.post('/v1/payments/{id}/refunds', { token: ctx.T.secret, json: { amount: 1005 }, params: { id: ok.payment.id } });
    assertError(refund, 400, 'stripe_amount_unsupported', { param: 'amount' });
    assert.match(refund.json.error.message, /1000 or 1010/);
    const bhd = await api.post('/v1/payments', { token: ctx.T.secret, json: { customer: customer.id, amount: 7, currency: 'BHD' } });
    assertError(bhd, 400, 'stripe_amount_unsupported', { param: 'amount' });

    assert.equal(await jobCount(), jobs, 'no job was made for a refused amount');
    assert.equal((await fake.stats(ctx.key)).refunds_total, 0);
    const [[invoices]] = await superuser(`SELECT count(*) FROM invoices WHERE tenant_id = ${lit(ctx.T.tenant.id)}`);
    assert.equal(invoices, '1', 'only the accepted payment made an invoice');

    // The same amounts in a two-decimal currency are fine, and a refund
    // ending in 0 goes through.
    const usd = await api.post('/v1/payments', { token: ctx.T.secret, json: { customer: customer.id, amount: 5125, currency: 'usd' } });
    assert.equal(usd.status, 202, usd.text);
    const re = await ctx.b.post('/v1/payments/{id}/refunds', { amount: 1000 }, 201, { id: ok.payment.id });
    assert.equal(re.amount, 1000);
  });
});

describe('an invoice made before the rounding', () => {
  it('fails its charge with amount_unsupported on the invoice, nothing sent to Stripe and nothing scheduled', async () => {
    const ctx = await setUp([5000]);
    // No payment method yet: the first attempt fails without Stripe, and
    // the invoice is then made into one of the old kind (5484 fils due).
    const { customer } = await customerOnClock(ctx, '2027-01-01T00:00:00Z', null);
    const sub = await ctx.b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: ctx.prices[0].id }] }, 201);
    const inv = await invoiceWhere(ctx, sub.latest_invoice, (i) => i.attempt_count === 1, 'the first attempt, without a card');
    assert.equal(inv.last_payment_error.code, 'payment_method_missing');
    const t = lit(ctx.T.tenant.id);
    const id = lit(inv.id);
    await superuser(`UPDATE invoice_lines SET amount = 5484 WHERE tenant_id = ${t} AND invoice_id = ${id}`);
    await superuser(`UPDATE invoices SET subtotal = 5484, total = 5484, amount_due = 5484, amount_remaining = 5484 WHERE tenant_id = ${t} AND id = ${id}`);

    // A new card retries the invoice at once.
    await ctx.b.post('/v1/customers/{id}', { default_payment_method: 'pm_card_visa' }, 200, { id: customer.id });
    const failed = await invoiceWhere(ctx, inv.id, (i) => i.attempt_count === 2, 'the retry recorded as an attempt', 15000);
    assert.equal(failed.status, 'open');
    assert.equal(failed.amount_remaining, 5484);
    assert.equal(failed.last_payment_error.code, 'amount_unsupported');
    assert.match(failed.last_payment_error.message, /5484/);
    assert.equal(failed.next_payment_attempt, null, 'no automatic retry: the same amount cannot succeed');
    assert.equal(failed.payment_method_required, false, 'a new card would not help either');
    const attempts = (await ctx.b.get('/v1/invoices/{id}/payment_attempts', { id: inv.id })).data;
    assert.deepEqual(attempts.map((a) => [a.attempt, a.status, a.failure_code, a.amount, a.stripe_payment_intent]), [
      [1, 'failed', 'payment_method_missing', 5000, null],
      [2, 'failed', 'amount_unsupported', 5484, null],
    ]);
    const [[ends]] = await superuser(`SELECT coalesce(dunning_ends_at::text, 'none') FROM invoices WHERE tenant_id = ${t} AND id = ${id}`);
    assert.equal(ends, 'none', 'the policy\'s end is not scheduled either: staff decide');
    assert.deepEqual(await intentAmounts(ctx), [], 'nothing was sent to Stripe');
    const [[dead]] = await superuser(`SELECT count(*) FROM invoices WHERE tenant_id = ${t} AND id = ${id} AND status = 'open'`);
    assert.equal(dead, '1');
    assert.deepEqual((await redis(S.redisDb, 'KEYS', 'dead:*')).filter((k) => k !== ''), [], 'the charge job did not die');

    // Another card does not retry it either: the amount, not the card, is
    // what Stripe refuses. What a card change moves, asked directly (the
    // API's change runs the same function inside its job).
    const [[moved]] = await superuser(`SELECT customer_payment_method_changed(${lit(customer.id)})`);
    assert.equal(moved, '0', 'a new card schedules no retry of an amount Stripe cannot take');
    const [[next]] = await superuser(`SELECT coalesce(next_payment_attempt::text, 'none') FROM invoices WHERE tenant_id = ${t} AND id = ${id}`);
    assert.equal(next, 'none');
  });
});
