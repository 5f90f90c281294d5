// Credits for unused time never pay back time that was not charged: a
// subscription whose first part period was free (`proration_behavior: none`
// at its creation), canceled with prorate, downgraded with proration or
// paused in that part; an item added mid-period without a charge; and an
// anchor moved later without a charge. Each also checks that time that was
// charged (a later period, the part after a prorated change) is still
// credited in full.
//
// Every amount is worked out by hand from docs/billing.md: cumulative(t) =
// round_half_up(amount × (t − start) / (end − start)) over the full period
// [start, end) that contains t, the part [a, b) is cumulative(b) −
// cumulative(a), and a credit for an item is capped by what the period's
// invoices charged for it ("Credits pay back only what was charged").
// April 2027 has 30 days and May 2027 31.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { lit, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { amounts, startBilling } from './lib/billing.mjs';
import { Stack } from './lib/stack.mjs';
import { redisValue } from './lib/redis.mjs';
import { tag, until } from './lib/util.mjs';

const S = slot(41);
const stack = new Stack('subscription_credits', S);
let tenantId;
let product;
let post;
let get;
let advance;
let invoicesOf;

before(async () => {
  ({ tenantId, post, get, advance, invoicesOf } = await startBilling(stack));
  product = await post('/v1/products', { name: 'Credits plan' }, 201);
});

after(async () => {
  await stack.stopAll();
});

async function price(unitAmount) {
  return post('/v1/prices', { product: product.id, currency: 'usd', unit_amount: unitAmount, recurring: { interval: 'month' } }, 201);
}

async function onClock(iso) {
  const clock = await post('/v1/test_clocks', { frozen_time: iso, name: tag('clock') }, 201);
  return { clock, customer: await customerOn(clock) };
}

async function customerOn(clock) {
  return post('/v1/customers', { email: `${tag('c')}@example.com`, test_clock: clock.id }, 201);
}

async function pay(inv) {
  const paid = await post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: inv.id });
  assert.equal(paid.status, 'paid');
  return paid;
}

async function balanceOf(customer) {
  return (await get('/v1/customers/{id}', { id: customer.id })).balance;
}

async function pendingOf(sub) {
  const rows = await superuser(`SELECT amount FROM invoice_items WHERE tenant_id = ${lit(tenantId)} AND subscription_id = ${lit(sub.id)} AND invoice_id IS NULL ORDER BY id`);
  return rows.map((r) => Number(r[0]));
}

function spans(inv) {
  return inv.lines.data.map((l) => [l.period.start, l.period.end, l.amount]);
}

// Advances clock to iso with the invoice worker stopped until the n
// renewals it makes due wait in the invoice stream, so a new worker reads
// them in one batch: the set-based renewal (subscription_cycle_batch)
// writes their invoices, not the job-by-job handler.
async function renewalsInOneBatch(clock, iso, n) {
  for (const p of stack.procs) if (p.name === 'worker-invoice' && p.running) await p.stop();
  await post('/v1/test_clocks/{id}/advance', { frozen_time: iso }, 200, { id: clock.id });
  await until(`${n} renewals to wait in jobs:invoice`, async () => Number(await redisValue(S.redisDb, 'XLEN', 'jobs:invoice')) >= n);
  stack.startWorker('invoice');
  await until(`test clock ${clock.id} to be ready at ${iso}`, async () => (await get('/v1/test_clocks/{id}', { id: clock.id })).status === 'ready');
}

// A subscription of customer to items created on Apr 10 2027 with its first
// part period [Apr 10, May 1) free: the first invoice is a zero line, paid
// at once, and the subscription is active.
async function freeStub(customer, items) {
  const sub = await post('/v1/subscriptions', { customer: customer.id, items, billing_cycle_anchor: '2027-05-01T00:00:00Z', proration_behavior: 'none' }, 201);
  assert.equal(sub.status, 'active');
  assert.equal(sub.current_period_start, '2027-04-10T00:00:00Z');
  assert.equal(sub.current_period_end, '2027-05-01T00:00:00Z');
  const invoices = await invoicesOf(sub);
  assert.deepEqual(invoices.map((i) => [i.billing_reason, amounts(i), i.status]), [['subscription_create', items.map(() => 0), 'paid']]);
  return sub;
}

// A subscription of customer to items, its first invoice paid.
async function paidSub(customer, items) {
  const sub = await post('/v1/subscriptions', { customer: customer.id, items }, 201);
  const [first] = await invoicesOf(sub);
  await pay(first);
  return get('/v1/subscriptions/{id}', { id: sub.id });
}

describe('a subscription whose first part period was free', () => {
  it('is free however little of the period the part misses: five minutes short of March still rounds to the full 1000', async () => {
    const { customer } = await onClock('2027-03-01T00:05:00Z');
    const p = await price(1000);
    // [Mar 1 00:05, Apr 1) is 1000 × (44,640 − 5) / 44,640 minutes = 999.89, which rounds to
    // the full price; it is still a part period, and free.
    const sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: p.id }], billing_cycle_anchor: '2027-04-01T00:00:00Z', proration_behavior: 'none' }, 201);
    const invoices = await invoicesOf(sub);
    assert.deepEqual(invoices.map((i) => [i.billing_reason, amounts(i), i.status]), [['subscription_create', [0], 'paid']]);
  });

  it('canceled with prorate in that part gets no credit; canceled in a charged period later, the unused time in full', async () => {
    const monthly = await price(3000);
    const { clock, customer } = await onClock('2027-04-10T00:00:00Z');
    const early = await freeStub(customer, [{ price: monthly.id }]);
    // Two that renew together: renewalsInOneBatch() makes the invoice
    // worker take both in one batch, so they go the set-based way.
    const laterCustomers = [await customerOn(clock), await customerOn(clock)];
    const laters = [];
    for (const c of laterCustomers) laters.push(await freeStub(c, [{ price: monthly.id }]));

    // Apr 16 is 15 days into the full period [Apr 1, May 1). The list
    // price's unused [Apr 16, May 1) is 3000 − round(3000 × 15/30) = 1500,
    // but nothing of [Apr 10, May 1) was charged: no credit, and with
    // nothing pending no final invoice either.
    await advance(clock, '2027-04-16T00:00:00Z');
    const canceled = await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: early.id });
    assert.equal(canceled.status, 'canceled');
    assert.deepEqual((await invoicesOf(early)).map((i) => [i.billing_reason, amounts(i)]), [['subscription_create', [0]]]);
    assert.equal(await balanceOf(customer), 0);

    // The renewal on May 1 charges [May 1, Jun 1) in full (3000). On
    // May 16, 15 of May's 31 days are gone: round(3000 × 15/31) =
    // round(1451.61) = 1452, so the unused time is 3000 − 1452 = 1548.
    await renewalsInOneBatch(clock, '2027-05-01T00:00:00Z', laters.length);
    for (const later of laters) {
      const invoices = await invoicesOf(later);
      assert.deepEqual(invoices.map((i) => [i.billing_reason, amounts(i)]), [['subscription_create', [0]], ['subscription_cycle', [3000]]]);
      await pay(invoices[1]);
    }
    await advance(clock, '2027-05-16T00:00:00Z');
    for (const [k, later] of laters.entries()) {
      await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: later.id });
      const invoices = await invoicesOf(later);
      assert.equal(invoices.length, 3);
      assert.equal(invoices[2].billing_reason, 'subscription_cancel');
      assert.deepEqual(spans(invoices[2]), [['2027-05-16T00:00:00Z', '2027-06-01T00:00:00Z', -1548]]);
      assert.equal(await balanceOf(laterCustomers[k]), -1548);
    }
  });

  it('downgraded with always_invoice in that part is charged the new price for the rest of it and credited nothing for the old; a cancel then credits only what the change charged', async () => {
    const pro = await price(3000);
    const basic = await price(1000);
    const { clock, customer } = await onClock('2027-04-10T00:00:00Z');
    let sub = await freeStub(customer, [{ price: pro.id }]);
    const item = sub.items.data[0];

    // Apr 16: the unused Pro time [Apr 16, May 1) (1500 at list price) was
    // never charged, so it is not credited. Basic's remaining part is
    // 1000 − round(1000 × 15/30) = 500, charged at once.
    await advance(clock, '2027-04-16T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: basic.id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    let invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const change = invoices[1];
    assert.equal(change.billing_reason, 'subscription_update');
    assert.deepEqual(change.lines.data.map((l) => [l.price, l.amount]), [[basic.id, 500]]);
    assert.equal(change.amount_due, 500);
    assert.equal(await balanceOf(customer), 0);
    await pay(change);

    // Apr 21, 20 days in: Basic's unused [Apr 21, May 1) is 1000 −
    // round(1000 × 20/30) = 1000 − 667 = 333, within the 500 charged.
    await advance(clock, '2027-04-21T00:00:00Z');
    await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: sub.id });
    invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 3);
    assert.deepEqual(invoices[2].lines.data.map((l) => [l.price, l.amount]), [[basic.id, -333]]);
    assert.equal(await balanceOf(customer), -333);
  });

  it('paused in that part gets no credit; the resume bills a full period, and a pause in it credits its unused time', async () => {
    const monthly = await price(3000);
    const { clock, customer } = await onClock('2027-04-10T00:00:00Z');
    let sub = await freeStub(customer, [{ price: monthly.id }]);

    // Apr 16: create_prorations would keep −1500 pending; nothing was
    // charged, so nothing is.
    await advance(clock, '2027-04-16T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}/pause', {}, 200, { id: sub.id });
    assert.equal(sub.status, 'paused');
    assert.deepEqual(await pendingOf(sub), []);

    // Resumed on Apr 20: [Apr 20, May 20) in full, with no credit taken in.
    await advance(clock, '2027-04-20T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}/resume', {}, 200, { id: sub.id });
    let invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    assert.equal(invoices[1].billing_reason, 'subscription_resume');
    assert.deepEqual(amounts(invoices[1]), [3000]);
    assert.equal(invoices[1].amount_due, 3000);
    await pay(invoices[1]);

    // May 5 is 15 of the period's 30 days: 3000 − round(3000 × 15/30) = 1500.
    await advance(clock, '2027-05-05T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}/pause', { proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 3);
    assert.deepEqual(spans(invoices[2]), [['2027-05-05T00:00:00Z', '2027-05-20T00:00:00Z', -1500]]);
    assert.equal(await balanceOf(customer), -1500);
  });
});

describe('time added without a charge', () => {
  it('an item added with proration_behavior none is not credited at a cancel; the paid item is', async () => {
    const monthly = await price(3000);
    const extra = await price(1000);
    const { clock, customer } = await onClock('2027-04-01T00:00:00Z');
    let sub = await paidSub(customer, [{ price: monthly.id }]);

    await advance(clock, '2027-04-11T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ price: extra.id }], proration_behavior: 'none' }, 200, { id: sub.id });
    assert.equal(sub.items.data.length, 2);
    assert.equal((await invoicesOf(sub)).length, 1, 'none makes no invoice');

    // Apr 16: the paid item's unused part is 3000 − round(3000 × 15/30) =
    // 1500; the added one (1000 − 500 = 500 at list price) was never charged.
    await advance(clock, '2027-04-16T00:00:00Z');
    await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: sub.id });
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    assert.deepEqual(invoices[1].lines.data.map((l) => [l.price, l.amount]), [[monthly.id, -1500]]);
    assert.equal(await balanceOf(customer), -1500);
  });

  it('an anchor moved later with proration_behavior none: a cancel credits the charged days only, not the days the move added', async () => {
    const monthly = await price(3000);
    const { clock, customer } = await onClock('2027-04-01T00:00:00Z');
    let sub = await paidSub(customer, [{ price: monthly.id }]);

    // [Apr 1, May 1) was charged 3000. The period now ends on May 11 and
    // [May 1, May 11) is not charged.
    await advance(clock, '2027-04-11T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { billing_cycle_anchor: '2027-05-11T00:00:00Z', proration_behavior: 'none' }, 200, { id: sub.id });
    assert.equal(sub.current_period_end, '2027-05-11T00:00:00Z');
    assert.equal((await invoicesOf(sub)).length, 1);

    // Apr 16, in the full period [Apr 11, May 11) of the new schedule (30
    // days): the list price's unused [Apr 16, May 11) is 3000 − 500 = 2500,
    // of which only [Apr 16, May 1) was charged: round(3000 × 20/30) −
    // round(3000 × 5/30) = 2000 − 500 = 1500.
    await advance(clock, '2027-04-16T00:00:00Z');
    await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: sub.id });
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    assert.deepEqual(spans(invoices[1]), [['2027-04-16T00:00:00Z', '2027-05-01T00:00:00Z', -1500]]);
    assert.equal(await balanceOf(customer), -1500);
  });
});
