// The subscription engine's changes, through the real api and workers, each
// on its own test clock: day-of-month anchors with end-of-month clamping,
// scheduled changes (and changes made now, a cancel at the period end, a
// new anchor or a pause while one is scheduled), a resume that still owes,
// prorated quantity changes, cancellation with and without proration,
// moving the billing cycle anchor, a change of interval (also during a
// trial, and keeping day_of_month), tiered prices on invoices, zero- and
// three-decimal currencies, backdating, the expiry of an incomplete subscription, and the errors of
// these routes (status, code and param).
//
// Every expected amount is worked out by hand from docs/billing.md, in the
// comments beside it: cumulative(t) = round_half_up(amount × (t − start) /
// (end − start)) over the full period [start, end) that contains t, and the
// part [a, b) is cumulative(b) − cumulative(a). Time moves only by
// POST /v1/test_clocks/{id}/advance; the renewal scheduler scans every
// 100 ms here, and advance() waits until the clock is ready again.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createLiveTenant, createTenant } from './lib/billow.mjs';
import { lit, superuser } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError } from './lib/http.mjs';
import { amounts, startBilling } from './lib/billing.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, tag, until } from './lib/util.mjs';

const S = slot(27);
const stack = new Stack('subscription_changes', S);
let api;
let secret;
let tenantId;
let product;
let post;
let attempt;
let get;
let advance;
let invoicesOf;

before(async () => {
  ({ api, secret, tenantId, post, attempt, get, advance, invoicesOf } = await startBilling(stack));
  product = await post('/v1/products', { name: 'Changes plan' }, 201);
});

after(async () => {
  await stack.stopAll();
});

// A monthly usd price of unitAmount unless extra says otherwise.
async function price(unitAmount, extra = {}) {
  return post('/v1/prices', { product: product.id, currency: 'usd', unit_amount: unitAmount, recurring: { interval: 'month' }, ...extra }, 201);
}

// A test clock frozen at iso and a customer on it.
async function onClock(iso) {
  const clock = await post('/v1/test_clocks', { frozen_time: iso, name: tag('clock') }, 201);
  assert.equal(clock.frozen_time, iso);
  const customer = await post('/v1/customers', { email: `${tag('c')}@example.com`, test_clock: clock.id }, 201);
  return { clock, customer };
}

function periods(inv) {
  return inv.lines.data.map((l) => [l.period.start, l.period.end]);
}

// Records an out-of-band payment of inv and returns the paid invoice.
async function pay(inv) {
  const paid = await post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: inv.id });
  assert.equal(paid.status, 'paid');
  assert.equal(paid.amount_remaining, 0);
  return paid;
}

// Subscribes customer to items and pays the first invoice, so the
// subscription is active and may change; returns it, re-read.
async function activeSub(customer, items) {
  const sub = await post('/v1/subscriptions', { customer: customer.id, items }, 201);
  assert.equal(sub.status, 'incomplete');
  const [first] = await invoicesOf(sub);
  await pay(first);
  const now = await get('/v1/subscriptions/{id}', { id: sub.id });
  assert.equal(now.status, 'active');
  return now;
}

// The subscription's invoice items not yet on an invoice, oldest first.
async function pendingOf(sub) {
  const rows = await superuser(`SELECT amount FROM invoice_items WHERE tenant_id = ${lit(tenantId)} AND subscription_id = ${lit(sub.id)} AND invoice_id IS NULL ORDER BY id`);
  return rows.map((r) => Number(r[0]));
}

// Asserts each invoice's totals are the sum of its lines and integers.
function assertSums(inv) {
  for (const a of amounts(inv)) assert.ok(Number.isInteger(a), `line amount ${a} is a whole number of minor units`);
  const sum = amounts(inv).reduce((x, y) => x + y, 0);
  assert.equal(inv.subtotal, sum, `invoice ${inv.number}: subtotal is the sum of the lines`);
  assert.equal(inv.total, sum + inv.rounding, `invoice ${inv.number}: total is the sum of the lines and the rounding`);
}

describe('billing_cycle_anchor_config day_of_month 31', () => {
  it('prorates the first part period to Jan 31, then bills full periods ending Feb 29, Mar 31, Apr 30', async () => {
    const monthly = await price(1000);
    const { clock, customer } = await onClock('2028-01-10T08:30:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }], billing_cycle_anchor_config: { day_of_month: 31 } }, 201);
    assert.match(sub.id, ID_RE('sub'));
    assert.equal(sub.status, 'incomplete');
    assert.equal(sub.start_date, '2028-01-10T08:30:00Z');
    assert.equal(sub.billing_cycle_anchor, '2028-01-31T08:30:00Z');
    assert.deepEqual(sub.billing_cycle_anchor_config, { day_of_month: 31 });
    assert.equal(sub.current_period_start, '2028-01-10T08:30:00Z');
    assert.equal(sub.current_period_end, '2028-01-31T08:30:00Z');
    // The first period is the part [Jan 10, Jan 31) of the full period
    // [Dec 31 08:30, Jan 31 08:30), 31 days. Jan 10 08:30 is 10 days in:
    // cumulative(Jan 10) = round(1000 × 10/31) = round(322.58) = 323,
    // cumulative(Jan 31) = 1000, so the part is 1000 − 323 = 677.
    let [first] = await invoicesOf(sub);
    assert.equal(first.billing_reason, 'subscription_create');
    assert.equal(first.period_start, '2028-01-10T08:30:00Z');
    assert.equal(first.period_end, '2028-01-31T08:30:00Z');
    assert.deepEqual(amounts(first), [677]);
    assert.deepEqual(periods(first), [['2028-01-10T08:30:00Z', '2028-01-31T08:30:00Z']]);
    assert.equal(first.amount_due, 677);
    first = await pay(first);
    assert.equal(first.amount_paid, 677);

    // Jan 31 renews the period that ends on Feb 29 (31 clamped; 2028 is a
    // leap year), invoiced in full.
    await advance(clock, '2028-01-31T08:30:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'active');
    assert.equal(sub.current_period_start, '2028-01-31T08:30:00Z');
    assert.equal(sub.current_period_end, '2028-02-29T08:30:00Z');
    await advance(clock, '2028-02-29T08:30:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.current_period_start, '2028-02-29T08:30:00Z');
    assert.equal(sub.current_period_end, '2028-03-31T08:30:00Z', 'back to the 31st, not Mar 29');
    // Two periods at once: [Mar 31, Apr 30) and [Apr 30, May 31).
    await advance(clock, '2028-04-30T08:30:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.current_period_start, '2028-04-30T08:30:00Z');
    assert.equal(sub.current_period_end, '2028-05-31T08:30:00Z');
    assert.equal(sub.billing_cycle_anchor, '2028-01-31T08:30:00Z', 'the anchor never moves');

    const invoices = await invoicesOf(sub);
    assert.deepEqual(invoices.map((i) => [i.billing_reason, i.period_start, i.period_end, amounts(i)]), [
      ['subscription_create', '2028-01-10T08:30:00Z', '2028-01-31T08:30:00Z', [677]],
      ['subscription_cycle', '2028-01-31T08:30:00Z', '2028-02-29T08:30:00Z', [1000]],
      ['subscription_cycle', '2028-02-29T08:30:00Z', '2028-03-31T08:30:00Z', [1000]],
      ['subscription_cycle', '2028-03-31T08:30:00Z', '2028-04-30T08:30:00Z', [1000]],
      ['subscription_cycle', '2028-04-30T08:30:00Z', '2028-05-31T08:30:00Z', [1000]],
    ]);
    for (const inv of invoices.slice(1)) {
      assert.equal(inv.status, 'open');
      assert.equal(inv.amount_due, 1000);
      assert.deepEqual(inv.lines.data.map((l) => l.proration), [false]);
    }
    const numbers = invoices.map((i) => Number(i.number.slice(4)));
    assert.deepEqual(numbers, [numbers[0], numbers[0] + 1, numbers[0] + 2, numbers[0] + 3, numbers[0] + 4]);
  });
});

describe('a change scheduled for the period end', () => {
  it('waits in pending_update without any proration, then the renewal bills and keeps the new price', async () => {
    const basic = await price(1000);
    const pro = await price(2500);
    const { clock, customer } = await onClock('2028-03-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: basic.id }]);
    const item = sub.items.data[0];
    await advance(clock, '2028-03-10T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], effective_at: 'period_end' }, 200, { id: sub.id });
    assert.deepEqual(sub.pending_update, { items: [{ id: item.id, price: pro.id, quantity: 1 }], requested_at: '2028-03-10T00:00:00Z' });
    assert.deepEqual(sub.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, basic.id, 1]], 'the items change only at the period end');
    assert.equal(sub.current_period_end, '2028-04-01T00:00:00Z');
    assert.equal((await invoicesOf(sub)).length, 1, 'no invoice now');
    assert.deepEqual(await pendingOf(sub), [], 'no proration waits either');

    await advance(clock, '2028-04-01T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.pending_update, null);
    assert.deepEqual(sub.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, pro.id, 1]]);
    assert.equal(sub.current_period_start, '2028-04-01T00:00:00Z');
    assert.equal(sub.current_period_end, '2028-05-01T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const renewal = invoices[1];
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    // The new price, in full, and nothing prorated.
    assert.deepEqual(renewal.lines.data.map((l) => [l.price, l.amount, l.proration]), [[pro.id, 2500, false]]);
    assert.equal(renewal.total, 2500);
    assert.equal(renewal.amount_due, 2500);
  });
});

describe('a change made now while a change is scheduled', () => {
  // Basic at $10 a seat, 5 seats, from Jan 1 2027 (January is 31 days);
  // on Jan 5, 5 → 3 seats scheduled for the period end (Feb 1).
  async function scheduledDowngrade() {
    const basic = await price(1000);
    const pro = await price(3000);
    const { clock, customer } = await onClock('2027-01-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: basic.id, quantity: 5 }]);
    const item = sub.items.data[0];
    await advance(clock, '2027-01-05T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, quantity: 3 }], effective_at: 'period_end' }, 200, { id: sub.id });
    const pending = { items: [{ id: item.id, price: basic.id, quantity: 3 }], requested_at: '2027-01-05T00:00:00Z' };
    assert.deepEqual(sub.pending_update, pending);
    await advance(clock, '2027-01-10T00:00:00Z');
    return { basic, pro, clock, sub, item, pending };
  }

  it('is refused with 409 pending_update_exists, which the renewal would otherwise undo, and changes nothing', async () => {
    const { basic, pro, sub, item, pending } = await scheduledDowngrade();
    const upgrade = await attempt('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], proration_behavior: 'always_invoice' }, { id: sub.id });
    assertError(upgrade, 409, 'pending_update_exists', { param: 'items' });
    assert.match(upgrade.json.error.message, /scheduled for its period end .*requested at 2027-01-05T00:00:00Z/);
    assert.match(upgrade.json.error.message, /"pending_update": null/);
    // A change of interval is refused alike (the snapshot would undo it too).
    const yearly = await price(12000, { recurring: { interval: 'year' } });
    assertError(await attempt('/v1/subscriptions/{id}', { items: [{ id: item.id, price: yearly.id }] }, { id: sub.id }), 409, 'pending_update_exists', { param: 'items' });
    const now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.deepEqual(now.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, basic.id, 5]]);
    assert.deepEqual(now.pending_update, pending);
    assert.deepEqual(now.plan, { interval: 'month', interval_count: 1 });
    assert.equal((await invoicesOf(sub)).length, 1, 'nothing was invoiced');
    assert.deepEqual(await pendingOf(sub), []);
  });

  it('with pending_update: null drops the scheduled change and makes this one; the renewal keeps it', async () => {
    const { pro, clock, sub, item } = await scheduledDowngrade();
    const upgraded = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], proration_behavior: 'always_invoice', pending_update: null }, 200, { id: sub.id });
    assert.equal(upgraded.pending_update, null);
    assert.deepEqual(upgraded.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, pro.id, 5]]);
    // Jan 10 is 9 days into the 31-day January. Old 5 × 1000 = 5000:
    // cumulative = round(5000 × 9/31) = round(1451.61) = 1452, credit
    // −(5000 − 1452) = −3548. New 5 × 3000 = 15000: cumulative =
    // round(15000 × 9/31) = round(4354.84) = 4355, charge 15000 − 4355 =
    // 10645. The customer pays 7097 for the upgrade now.
    let invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    assert.deepEqual(amounts(invoices[1]), [-3548, 10645]);
    assert.equal(invoices[1].amount_due, 7097);

    // Feb 1 renews what the customer paid for: Pro × 5, not Basic × 3.
    await advance(clock, '2027-02-01T00:00:00Z');
    const renewed = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.deepEqual(renewed.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, pro.id, 5]]);
    assert.equal(renewed.pending_update, null);
    invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 3);
    assert.equal(invoices[2].billing_reason, 'subscription_cycle');
    assert.deepEqual(invoices[2].lines.data.map((l) => [l.price, l.quantity, l.amount]), [[pro.id, 5, 15000]]);
  });

  it('pending_update: null alone drops the scheduled change; the renewal bills the items as they are', async () => {
    const { basic, clock, sub, item } = await scheduledDowngrade();
    const dropped = await post('/v1/subscriptions/{id}', { pending_update: null }, 200, { id: sub.id });
    assert.equal(dropped.pending_update, null);
    assert.deepEqual(dropped.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, basic.id, 5]]);
    assert.equal((await invoicesOf(sub)).length, 1, 'dropping it bills nothing');
    // Again, with nothing scheduled: nothing to drop, and nothing changes.
    assert.equal((await post('/v1/subscriptions/{id}', { pending_update: null }, 200, { id: sub.id })).pending_update, null);

    await advance(clock, '2027-02-01T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    assert.deepEqual(invoices[1].lines.data.map((l) => [l.price, l.quantity, l.amount]), [[basic.id, 5, 5000]]);
  });

  it('a new scheduled change replaces the pending one, without pending_update: null', async () => {
    const { pro, sub, item } = await scheduledDowngrade();
    const replaced = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], effective_at: 'period_end' }, 200, { id: sub.id });
    // Built from the items as they are now (5 seats), not from the snapshot.
    assert.deepEqual(replaced.pending_update, { items: [{ id: item.id, price: pro.id, quantity: 5 }], requested_at: '2027-01-10T00:00:00Z' });
  });
});

describe('a change scheduled for the period end, and a cancel at the period end', () => {
  it('cancel_at_period_end: true drops the scheduled change at once; the period end cancels with none left', async () => {
    const basic = await price(1000);
    const pro = await price(2500);
    const { clock, customer } = await onClock('2029-02-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: basic.id }]);
    const item = sub.items.data[0];
    await advance(clock, '2029-02-05T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], effective_at: 'period_end' }, 200, { id: sub.id });
    assert.deepEqual(sub.pending_update, { items: [{ id: item.id, price: pro.id, quantity: 1 }], requested_at: '2029-02-05T00:00:00Z' });
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: true }, 200, { id: sub.id });
    assert.equal(sub.cancel_at_period_end, true);
    assert.equal(sub.pending_update, null, 'the cancel wins, and its answer shows the scheduled change gone');
    // Undoing the cancel does not bring the scheduled change back.
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: false }, 200, { id: sub.id });
    assert.equal(sub.pending_update, null);
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: true }, 200, { id: sub.id });

    await advance(clock, '2029-03-01T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'canceled');
    assert.equal(sub.ended_at, '2029-03-01T00:00:00Z');
    assert.equal(sub.pending_update, null);
    assert.deepEqual(sub.items.data.map((i) => [i.id, i.price]), [[item.id, basic.id]]);
    assert.equal((await invoicesOf(sub)).length, 1, 'no renewal');
  });

  it('a change cannot be scheduled for the end of a subscription that ends then: 409 subscription_state, unless the same request undoes the cancel', async () => {
    const basic = await price(1000);
    const pro = await price(2500);
    const { customer } = await onClock('2029-02-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: basic.id }]);
    const item = sub.items.data[0];
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: true }, 200, { id: sub.id });
    const change = { items: [{ id: item.id, price: pro.id }], effective_at: 'period_end' };
    const refused = await attempt('/v1/subscriptions/{id}', change, { id: sub.id });
    assertError(refused, 409, 'subscription_state', { param: 'effective_at' });
    assert.match(refused.json.error.message, /cancel_at_period_end/);
    // Nor in the request that sets the cancel.
    const both = await attempt('/v1/subscriptions/{id}', { ...change, cancel_at_period_end: true }, { id: sub.id });
    assertError(both, 409, 'subscription_state', { param: 'effective_at' });
    let now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(now.pending_update, null);
    assert.equal(now.cancel_at_period_end, true);
    // Undoing the cancel in the same request schedules it.
    now = await post('/v1/subscriptions/{id}', { ...change, cancel_at_period_end: false }, 200, { id: sub.id });
    assert.equal(now.cancel_at_period_end, false);
    assert.deepEqual(now.pending_update.items, [{ id: item.id, price: pro.id, quantity: 1 }]);
  });
});

describe('moving the anchor or pausing while a change is scheduled', () => {
  // Basic $10 from Apr 1 2029 (April is 30 days); on Apr 5 Pro $25 is
  // scheduled for the period end (May 1); the clock then stands at Apr 10.
  async function scheduled() {
    const basic = await price(1000);
    const pro = await price(2500);
    const { clock, customer } = await onClock('2029-04-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: basic.id }]);
    const item = sub.items.data[0];
    await advance(clock, '2029-04-05T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], effective_at: 'period_end' }, 200, { id: sub.id });
    assert.notEqual(sub.pending_update, null);
    await advance(clock, '2029-04-10T00:00:00Z');
    return { basic, pro, clock, sub, item, pending: sub.pending_update };
  }

  it('a new billing_cycle_anchor (now or a time) is refused with 409 pending_update_exists; with pending_update: null it moves and the change is dropped', async () => {
    const { basic, sub, item, pending } = await scheduled();
    for (const anchor of ['now', '2029-04-20T00:00:00Z']) {
      const res = await attempt('/v1/subscriptions/{id}', { billing_cycle_anchor: anchor }, { id: sub.id });
      assertError(res, 409, 'pending_update_exists', { param: 'billing_cycle_anchor' });
      assert.match(res.json.error.message, /requested at 2029-04-05T00:00:00Z/);
      assert.match(res.json.error.message, /"pending_update": null/);
    }
    const now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(now.billing_cycle_anchor, '2029-04-01T00:00:00Z');
    assert.equal(now.current_period_end, '2029-05-01T00:00:00Z');
    assert.deepEqual(now.pending_update, pending);
    assert.deepEqual(now.items.data.map((i) => [i.id, i.price]), [[item.id, basic.id]]);
    assert.equal((await invoicesOf(sub)).length, 1, 'nothing was invoiced');
    assert.deepEqual(await pendingOf(sub), []);

    // The caller says which wins: dropping it in the same request moves the
    // anchor.
    const moved = await post('/v1/subscriptions/{id}', { billing_cycle_anchor: 'now', pending_update: null }, 200, { id: sub.id });
    assert.equal(moved.pending_update, null);
    assert.equal(moved.billing_cycle_anchor, '2029-04-10T00:00:00Z');
    assert.equal(moved.current_period_end, '2029-05-10T00:00:00Z');
    assert.deepEqual(moved.items.data.map((i) => [i.id, i.price]), [[item.id, basic.id]]);
    // Apr 10 is 9 of April's 30 days in: cumulative = round(1000 × 9/30) =
    // 300, credit −(1000 − 300) = −700; then a full period of Basic, 1000.
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    assert.deepEqual(invoices[1].lines.data.map((l) => [l.price, l.amount]), [[basic.id, -700], [basic.id, 1000]]);
  });

  it('pause is refused with 409 pending_update_exists; with pending_update: null it pauses, and the resume bills the items as they are', async () => {
    const { basic, clock, sub, item, pending } = await scheduled();
    const refused = await attempt('/v1/subscriptions/{id}/pause', {}, { id: sub.id });
    assertError(refused, 409, 'pending_update_exists', { param: 'pending_update' });
    let now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(now.status, 'active');
    assert.deepEqual(now.pending_update, pending);
    assertError(await attempt('/v1/subscriptions/{id}/pause', { pending_update: {} }, { id: sub.id }), 400, 'parameter_invalid', { param: 'pending_update' });

    now = await post('/v1/subscriptions/{id}/pause', { pending_update: null }, 200, { id: sub.id });
    assert.equal(now.status, 'paused');
    assert.equal(now.pending_update, null);
    // The unused [Apr 10, May 1) of Basic waits as a credit: −700.
    assert.deepEqual(await pendingOf(sub), [-700]);
    await advance(clock, '2029-04-20T00:00:00Z');
    now = await post('/v1/subscriptions/{id}/resume', {}, 200, { id: sub.id });
    assert.equal(now.status, 'active');
    assert.deepEqual(now.items.data.map((i) => [i.id, i.price]), [[item.id, basic.id]]);
    const invoices = await invoicesOf(sub);
    assert.deepEqual(invoices[1].lines.data.map((l) => [l.price, l.amount]), [[basic.id, 1000], [basic.id, -700]]);
  });
});

describe('a change of interval keeps billing_cycle_anchor_config.day_of_month', () => {
  it('scheduled for a period end on Apr 30, monthly → quarterly renews on Jul 31, not Jul 30', async () => {
    const monthly = await price(1000);
    const quarterly = await price(3000, { recurring: { interval: 'month', interval_count: 3 } });
    const { clock, customer } = await onClock('2029-03-10T00:00:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }], billing_cycle_anchor_config: { day_of_month: 31 } }, 201);
    await pay((await invoicesOf(sub))[0]);
    await advance(clock, '2029-03-31T00:00:00Z');
    await advance(clock, '2029-04-15T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.current_period_end, '2029-04-30T00:00:00Z', '31 clamped to April\'s 30');
    const item = sub.items.data[0];
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: quarterly.id }], effective_at: 'period_end' }, 200, { id: sub.id });

    await advance(clock, '2029-04-30T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.deepEqual(sub.plan, { interval: 'month', interval_count: 3 });
    assert.equal(sub.billing_cycle_anchor, '2029-04-30T00:00:00Z');
    assert.deepEqual(sub.billing_cycle_anchor_config, { day_of_month: 31 });
    assert.equal(sub.current_period_start, '2029-04-30T00:00:00Z');
    assert.equal(sub.current_period_end, '2029-07-31T00:00:00Z', 'back on the 31st');
    const renewal = (await invoicesOf(sub)).at(-1);
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    assert.equal(renewal.period_end, '2029-07-31T00:00:00Z');
    assert.deepEqual(renewal.lines.data.map((l) => [l.price, l.amount]), [[quarterly.id, 3000]]);
  });

  it('made now, monthly → yearly starts the year on the next 31st (Jun 30) with the part before it prorated', async () => {
    const monthly = await price(1000);
    const yearly = await price(12000, { recurring: { interval: 'year' } });
    const { clock, customer } = await onClock('2029-05-31T00:00:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }], billing_cycle_anchor_config: { day_of_month: 31 } }, 201);
    await pay((await invoicesOf(sub))[0]);
    await advance(clock, '2029-06-10T00:00:00Z');
    const item = sub.items.data[0];
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: yearly.id }] }, 200, { id: sub.id });
    assert.deepEqual(sub.plan, { interval: 'year', interval_count: 1 });
    assert.deepEqual(sub.billing_cycle_anchor_config, { day_of_month: 31 });
    assert.equal(sub.billing_cycle_anchor, '2029-06-30T00:00:00Z');
    assert.equal(sub.current_period_start, '2029-06-10T00:00:00Z');
    assert.equal(sub.current_period_end, '2029-06-30T00:00:00Z');
    const inv = (await invoicesOf(sub)).at(-1);
    assert.equal(inv.billing_reason, 'subscription_update');
    // Monthly [May 31, Jun 30) is 30 days; Jun 10 is 10 in: cumulative =
    // round(1000 × 10/30) = 333, credit −667. Yearly: the full period that
    // holds Jun 10 is [Jun 30 2028, Jun 30 2029), 365 days, Jun 10 is 345
    // in: cumulative = round(12000 × 345/365) = round(11342.47) = 11342,
    // so [Jun 10, Jun 30) is 12000 − 11342 = 658.
    assert.deepEqual(inv.lines.data.map((l) => [l.price, l.amount]), [[monthly.id, -667], [yearly.id, 658]]);
    assert.deepEqual(periods(inv), [['2029-06-10T00:00:00Z', '2029-06-30T00:00:00Z'], ['2029-06-10T00:00:00Z', '2029-06-30T00:00:00Z']]);

    await advance(clock, '2029-06-30T00:00:00Z');
    const renewal = (await invoicesOf(sub)).at(-1);
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    assert.equal(renewal.period_start, '2029-06-30T00:00:00Z');
    assert.equal(renewal.period_end, '2030-06-30T00:00:00Z');
    assert.deepEqual(amounts(renewal), [12000]);
  });
});

describe('a change of interval keeps the anchor\'s own day when day_of_month is 0', () => {
  it('a subscription started on Jan 31, moved to quarterly at its Apr 30 period end, renews on Jul 31, Oct 31, Jan 31', async () => {
    const monthly = await price(1000);
    const quarterly = await price(3000, { recurring: { interval: 'month', interval_count: 3 } });
    const { clock, customer } = await onClock('2027-01-31T00:00:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }] }, 201);
    assert.equal(sub.billing_cycle_anchor_config, null, 'no day_of_month: the schedule bills on its anchor\'s day, the 31st');
    await pay((await invoicesOf(sub))[0]);
    await advance(clock, '2027-04-15T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.current_period_end, '2027-04-30T00:00:00Z', '31 clamped to April\'s 30');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: sub.items.data[0].id, price: quarterly.id }], effective_at: 'period_end' }, 200, { id: sub.id });

    await advance(clock, '2028-01-31T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.deepEqual(sub.plan, { interval: 'month', interval_count: 3 });
    assert.equal(sub.current_period_start, '2028-01-31T00:00:00Z');
    assert.equal(sub.current_period_end, '2028-04-30T00:00:00Z');
    const renewals = (await invoicesOf(sub)).filter((i) => i.billing_reason === 'subscription_cycle' && i.period_start >= '2027-04-30');
    assert.deepEqual(renewals.map((i) => [i.period_start, i.period_end, amounts(i)]), [
      ['2027-04-30T00:00:00Z', '2027-07-31T00:00:00Z', [3000]],
      ['2027-07-31T00:00:00Z', '2027-10-31T00:00:00Z', [3000]],
      ['2027-10-31T00:00:00Z', '2028-01-31T00:00:00Z', [3000]],
      ['2028-01-31T00:00:00Z', '2028-04-30T00:00:00Z', [3000]],
    ]);
    assert.equal(sub.billing_cycle_anchor, '2027-04-30T00:00:00Z');
    assert.deepEqual(sub.billing_cycle_anchor_config, { day_of_month: 31 }, 'the day the anchor no longer shows is kept as the schedule\'s day');
  });

  it('a yearly subscription anchored on Feb 29 2028, moved to monthly at its Feb 28 2029 end, renews on the 29th', async () => {
    const yearly = await price(12000, { recurring: { interval: 'year' } });
    const monthly = await price(1000);
    const { clock, customer } = await onClock('2028-02-29T00:00:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: yearly.id }] }, 201);
    await pay((await invoicesOf(sub))[0]);
    await advance(clock, '2029-01-10T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.current_period_end, '2029-02-28T00:00:00Z', '29 clamped to 2029\'s Feb 28');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: sub.items.data[0].id, price: monthly.id }], effective_at: 'period_end' }, 200, { id: sub.id });

    await advance(clock, '2029-04-29T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.deepEqual(sub.plan, { interval: 'month', interval_count: 1 });
    assert.equal(sub.current_period_end, '2029-05-29T00:00:00Z');
    const renewals = (await invoicesOf(sub)).filter((i) => i.billing_reason === 'subscription_cycle');
    assert.deepEqual(renewals.map((i) => [i.period_start, i.period_end, amounts(i)]), [
      ['2029-02-28T00:00:00Z', '2029-03-29T00:00:00Z', [1000]],
      ['2029-03-29T00:00:00Z', '2029-04-29T00:00:00Z', [1000]],
      ['2029-04-29T00:00:00Z', '2029-05-29T00:00:00Z', [1000]],
    ]);
    assert.equal(sub.billing_cycle_anchor, '2029-02-28T00:00:00Z');
    assert.deepEqual(sub.billing_cycle_anchor_config, { day_of_month: 29 });
  });
});

describe('resume while an invoice from before the pause is open', () => {
  it('comes back past_due, not active, and is active once every open invoice is paid', async () => {
    const monthly = await price(1000);
    const { clock, customer } = await onClock('2029-07-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: monthly.id }]);
    await advance(clock, '2029-08-01T00:00:00Z');
    const renewal = (await invoicesOf(sub))[1];
    assert.equal(renewal.status, 'open');
    // Its charge failed: the subscription is past due, as the dunning kind
    // leaves it (no charger runs in this file).
    await superuser(`UPDATE subscriptions SET status = 'past_due' WHERE tenant_id = ${lit(tenantId)} AND id = ${lit(sub.id)}`);
    await advance(clock, '2029-08-05T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}/pause', {}, 200, { id: sub.id });
    assert.equal(sub.status, 'paused');
    await advance(clock, '2029-08-10T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}/resume', {}, 200, { id: sub.id });
    assert.equal(sub.status, 'past_due', 'the renewal of Aug 1 is still owed');
    assert.equal(sub.current_period_start, '2029-08-10T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 3);
    // August is 31 days; Aug 5 is 4 in: cumulative = round(1000 × 4/31) =
    // 129, so the pause credited −871; the resume bills 1000 − 871 = 129.
    assert.deepEqual(amounts(invoices[2]), [1000, -871]);
    assert.equal(invoices[2].status, 'open');

    await pay(renewal);
    assert.equal((await get('/v1/subscriptions/{id}', { id: sub.id })).status, 'past_due', 'the resume\'s invoice is open too');
    await pay(invoices[2]);
    assert.equal((await get('/v1/subscriptions/{id}', { id: sub.id })).status, 'active');
  });
});

describe('a quantity increase with the default proration_behavior', () => {
  it('makes no invoice at once; the renewal holds the full period and both proration lines', async () => {
    const seat = await price(1000);
    const { clock, customer } = await onClock('2028-04-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: seat.id, quantity: 1 }]);
    const item = sub.items.data[0];
    // April is 30 days (2,592,000 s); Apr 11 06:00 is 885,600 s in.
    await advance(clock, '2028-04-11T06:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, quantity: 3 }] }, 200, { id: sub.id });
    assert.deepEqual(sub.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, seat.id, 3]]);
    assert.equal((await invoicesOf(sub)).length, 1, 'create_prorations makes no invoice now');
    // Old: 1 × 1000; cumulative = round(1000 × 885600/2592000) = round(341.67)
    //   = 342, credit −(1000 − 342) = −658.
    // New: 3 × 1000 = 3000; cumulative = round(3000 × 885600/2592000) =
    //   round(1025.0) = 1025, charge 3000 − 1025 = 1975.
    assert.deepEqual(await pendingOf(sub), [-658, 1975]);

    await advance(clock, '2028-05-01T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const renewal = invoices[1];
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    // The full period [May 1, Jun 1) at 3 × 1000, then the two prorations.
    assert.deepEqual(amounts(renewal), [3000, -658, 1975]);
    assert.deepEqual(renewal.lines.data.map((l) => l.proration), [false, true, true]);
    assert.deepEqual(periods(renewal), [
      ['2028-05-01T00:00:00Z', '2028-06-01T00:00:00Z'],
      ['2028-04-11T06:00:00Z', '2028-05-01T00:00:00Z'],
      ['2028-04-11T06:00:00Z', '2028-05-01T00:00:00Z'],
    ]);
    assert.deepEqual(renewal.lines.data.map((l) => l.quantity), [3, 1, 3]);
    // 3000 − 658 + 1975 = 4317.
    assert.equal(renewal.total, 4317);
    assert.equal(renewal.amount_due, 4317);
    assertSums(renewal);
    assert.deepEqual(await pendingOf(sub), [], 'the renewal took the pending items in');
  });
});

describe('cancel now', () => {
  // May 2028 is 31 days (2,678,400 s); May 21 12:00 is 1,771,200 s in.
  const T = '2028-05-21T12:00:00Z';
  let clock;
  let withProrate;
  let plain;
  let pendingOnly;
  let seat;

  before(async () => {
    seat = await price(1000);
    const c = await onClock('2028-05-01T00:00:00Z');
    clock = c.clock;
    withProrate = { customer: c.customer, sub: await activeSub(c.customer, [{ price: seat.id }]) };
    for (const holder of [(plain = {}), (pendingOnly = {})]) {
      holder.customer = await post('/v1/customers', { email: `${tag('c')}@example.com`, test_clock: clock.id }, 201);
      holder.sub = await activeSub(holder.customer, [{ price: seat.id }]);
    }
    await advance(clock, T);
  });

  it('with prorate: true credits the unused time on a final invoice; the balance holds the credit', async () => {
    const { customer } = withProrate;
    const sub = await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: withProrate.sub.id });
    assert.equal(sub.status, 'canceled');
    assert.equal(sub.canceled_at, T);
    assert.equal(sub.ended_at, T);
    assert.equal(sub.current_period_start, null);
    assert.equal(sub.current_period_end, null);
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const last = invoices[1];
    assert.equal(last.billing_reason, 'subscription_cancel');
    // cumulative(T) = round(1000 × 1771200/2678400) = round(661.29) = 661,
    // so the unused [T, Jun 1) is 1000 − 661 = 339: a credit of −339.
    assert.deepEqual(amounts(last), [-339]);
    assert.deepEqual(periods(last), [[T, '2028-06-01T00:00:00Z']]);
    assert.equal(last.lines.data[0].proration, true);
    assert.equal(last.total, -339);
    assert.equal(last.amount_due, 0);
    assert.equal(last.status, 'paid', 'nothing is due');
    assert.equal(last.starting_balance, 0);
    assert.equal(last.ending_balance, -339);
    assert.equal(sub.latest_invoice, last.id);
    const cust = await get('/v1/customers/{id}', { id: customer.id });
    assert.equal(cust.balance, -339);
    const ledger = await get('/v1/customers/{id}/balance_transactions', { id: customer.id });
    assert.deepEqual(ledger.data.map((t) => [t.type, t.amount, t.ending_balance, t.invoice]), [['credit_note', -339, -339, last.id]]);
  });

  it('without prorate credits nothing and, with nothing pending, makes no invoice', async () => {
    const sub = await post('/v1/subscriptions/{id}/cancel', {}, 200, { id: plain.sub.id });
    assert.equal(sub.status, 'canceled');
    assert.equal(sub.ended_at, T);
    assert.equal(sub.canceled_at, T);
    const invoices = await invoicesOf(sub);
    assert.deepEqual(invoices.map((i) => i.billing_reason), ['subscription_create']);
    assert.equal(sub.latest_invoice, invoices[0].id);
    const cust = await get('/v1/customers/{id}', { id: plain.customer.id });
    assert.equal(cust.balance, 0);
  });

  it('without prorate still puts pending prorations on a final invoice, with no credit for the unused time', async () => {
    let sub = await post('/v1/subscriptions/{id}', { items: [{ id: pendingOnly.sub.items.data[0].id, quantity: 2 }] }, 200, { id: pendingOnly.sub.id });
    // Credit of the old quantity: −(1000 − 661) = −339. Charge of the new:
    // cumulative = round(2000 × 1771200/2678400) = round(1322.58) = 1323,
    // 2000 − 1323 = 677.
    assert.deepEqual(await pendingOf(sub), [-339, 677]);
    sub = await post('/v1/subscriptions/{id}/cancel', { prorate: false }, 200, { id: sub.id });
    assert.equal(sub.status, 'canceled');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const last = invoices[1];
    assert.equal(last.billing_reason, 'subscription_cancel');
    assert.deepEqual(amounts(last), [-339, 677]);
    assert.equal(last.total, 338);
    assert.equal(last.amount_due, 338);
    assert.equal(last.status, 'open');
    assert.deepEqual(await pendingOf(sub), []);
  });
});

describe('a change made after a period ended, before its renewal ran', () => {
  // $10/month from Jan 1 2027; the clock then stands at Jun 15 with the
  // renewals of Feb 1 to Jun 1 not yet made. The clock is moved in the
  // database, not advanced: the scheduler only looks under an advancing
  // clock, so no cycle job runs until the change has been made (in real
  // time, the renewal backlog at the start of a month or after an outage).
  // What was owed is billed first, each period as its renewal would, then
  // the change is made at Jun 15. June 2027 is 30 days; Jun 15 is 14 in:
  // cumulative of 1000 = round(466.67) = 467, of 2000 = round(933.33) = 933.
  const LATE = '2027-06-15T00:00:00Z';
  // The months January to June: the first period and the five renewals.
  const MONTHS = [1, 2, 3, 4, 5, 6].map((m) => [`2027-0${m}-01T00:00:00Z`, `2027-0${m + 1}-01T00:00:00Z`]);
  let ten;
  let twenty;

  before(async () => {
    ten = await price(1000);
    twenty = await price(2000);
  });

  // A $10 subscription paid for January, its clock moved to LATE unseen.
  async function lateSub() {
    const { clock, customer } = await onClock('2027-01-01T00:00:00Z');
    const sub = await activeSub(customer, [{ price: ten.id }]);
    await superuser(`UPDATE test_clocks SET frozen_time = ${lit(LATE)} WHERE tenant_id = ${lit(tenantId)} AND id = ${lit(clock.id)}`);
    const c = await get('/v1/test_clocks/{id}', { id: clock.id });
    assert.deepEqual([c.frozen_time, c.status], [LATE, 'ready']);
    const stale = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(stale.current_period_end, '2027-02-01T00:00:00Z', 'the renewals have not run yet');
    assert.equal((await invoicesOf(sub)).length, 1);
    return { clock, customer, sub };
  }

  // The subscription's invoices in the order they were numbered.
  async function numbered(sub) {
    return (await invoicesOf(sub)).sort((a, b) => a.number.localeCompare(b.number));
  }

  // The first invoice and the five renewals Feb 1 .. Jun 1, at $10 each.
  function owedFirst(invoices) {
    assert.deepEqual(invoices.slice(0, 6).map((i) => [i.billing_reason, i.period_start, i.period_end, amounts(i)]), [
      ['subscription_create', ...MONTHS[0], [1000]],
      ...MONTHS.slice(1).map((p) => ['subscription_cycle', ...p, [1000]]),
    ]);
  }

  it('a price change renews Feb 1 to Jun 1 at the old price, then prorates Jun 15 to Jul 1; Jul 1 renews at the new price', async () => {
    const { clock, sub } = await lateSub();
    const changed = await post('/v1/subscriptions/{id}', { items: [{ id: sub.items.data[0].id, price: twenty.id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    assert.equal(changed.current_period_start, '2027-06-01T00:00:00Z');
    assert.equal(changed.current_period_end, '2027-07-01T00:00:00Z');
    let invoices = await numbered(sub);
    assert.equal(invoices.length, 7);
    owedFirst(invoices);
    // Credit −(1000 − 467) = −533, charge 2000 − 933 = 1067: 534.
    const update = invoices[6];
    assert.equal(update.billing_reason, 'subscription_update');
    assert.deepEqual(update.lines.data.map((l) => [l.price, l.amount]), [[ten.id, -533], [twenty.id, 1067]]);
    assert.deepEqual(periods(update), [[LATE, '2027-07-01T00:00:00Z'], [LATE, '2027-07-01T00:00:00Z']]);
    assert.equal(update.total, 534);
    assertSums(update);

    // The scheduler then finds only Jul 1 due: nothing is billed twice.
    await advance(clock, '2027-07-01T00:00:00Z');
    invoices = await numbered(sub);
    assert.deepEqual(invoices.slice(7).map((i) => [i.billing_reason, i.period_start, i.period_end, amounts(i)]), [
      ['subscription_cycle', '2027-07-01T00:00:00Z', '2027-08-01T00:00:00Z', [2000]],
    ]);
    assert.equal(invoices.length, 8);
  });

  it('a cancel with prorate renews Feb 1 to Jun 1, then credits Jun 15 to Jul 1', async () => {
    const { customer, sub } = await lateSub();
    const canceled = await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: sub.id });
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.ended_at, LATE);
    const invoices = await numbered(sub);
    assert.equal(invoices.length, 7);
    owedFirst(invoices);
    const last = invoices[6];
    assert.equal(last.billing_reason, 'subscription_cancel');
    assert.deepEqual(amounts(last), [-533]);
    assert.deepEqual(periods(last), [[LATE, '2027-07-01T00:00:00Z']]);
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, -533);
  });

  it('a pause renews Feb 1 to Jun 1, then leaves Jun 15 to Jul 1 as a pending credit', async () => {
    const { sub } = await lateSub();
    const paused = await post('/v1/subscriptions/{id}/pause', {}, 200, { id: sub.id });
    assert.equal(paused.status, 'paused');
    const invoices = await numbered(sub);
    assert.equal(invoices.length, 6);
    owedFirst(invoices);
    assert.deepEqual(await pendingOf(sub), [-533]);
  });
});

describe('billing_cycle_anchor: "now"', () => {
  it('credits the unused time and invoices a full new period at once, anchored at the clock time', async () => {
    const monthly = await price(1000);
    const { clock, customer } = await onClock('2028-06-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: monthly.id }]);
    // June is 30 days (2,592,000 s); Jun 13 13:00 is 1,083,600 s in.
    const T = '2028-06-13T13:00:00Z';
    await advance(clock, T);
    sub = await post('/v1/subscriptions/{id}', { billing_cycle_anchor: 'now' }, 200, { id: sub.id });
    assert.equal(sub.billing_cycle_anchor, T);
    assert.equal(sub.billing_cycle_anchor_config, null);
    assert.equal(sub.current_period_start, T);
    assert.equal(sub.current_period_end, '2028-07-13T13:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const inv = invoices[1];
    assert.equal(inv.billing_reason, 'subscription_update');
    // cumulative(T) = round(1000 × 1083600/2592000) = round(418.06) = 418:
    // credit −(1000 − 418) = −582; then the full [T, Jul 13 13:00) = 1000.
    assert.deepEqual(amounts(inv), [-582, 1000]);
    assert.deepEqual(inv.lines.data.map((l) => l.proration), [true, false]);
    assert.deepEqual(periods(inv), [[T, '2028-07-01T00:00:00Z'], [T, '2028-07-13T13:00:00Z']]);
    assert.equal(inv.period_start, T);
    assert.equal(inv.period_end, '2028-07-13T13:00:00Z');
    assert.equal(inv.total, 418);
    assert.equal(inv.amount_due, 418);
    assert.equal(sub.latest_invoice, inv.id);

    // The next renewal follows the new anchor.
    await advance(clock, '2028-07-13T13:00:00Z');
    const renewal = (await invoicesOf(sub))[2];
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    assert.equal(renewal.period_start, '2028-07-13T13:00:00Z');
    assert.equal(renewal.period_end, '2028-08-13T13:00:00Z');
    assert.deepEqual(amounts(renewal), [1000]);
  });
});

describe('moving the anchor to a later moment of the current period', () => {
  it('credits [T, old end) on an invoice (always_invoice), ends the period at T, and renews a full period from T', async () => {
    const monthly = await price(1000);
    const { clock, customer } = await onClock('2028-07-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: monthly.id }]);
    await advance(clock, '2028-07-05T00:00:00Z');
    // July is 31 days (2,678,400 s); T = Jul 20 09:15 is 1,674,900 s in.
    const T = '2028-07-20T09:15:00Z';
    sub = await post('/v1/subscriptions/{id}', { billing_cycle_anchor: T, proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    assert.equal(sub.billing_cycle_anchor, T);
    assert.equal(sub.current_period_start, '2028-07-01T00:00:00Z');
    assert.equal(sub.current_period_end, T);
    let invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const credit = invoices[1];
    assert.equal(credit.billing_reason, 'subscription_update');
    // cumulative(T) = round(1000 × 1674900/2678400) = round(625.34) = 625:
    // the lost [T, Aug 1) is 1000 − 625 = 375, credited.
    assert.deepEqual(amounts(credit), [-375]);
    assert.deepEqual(periods(credit), [[T, '2028-08-01T00:00:00Z']]);
    assert.equal(credit.period_start, T);
    assert.equal(credit.period_end, '2028-08-01T00:00:00Z');
    assert.equal(credit.total, -375);
    assert.equal(credit.amount_due, 0);
    assert.equal(credit.status, 'paid');
    assert.equal(credit.ending_balance, -375);
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, -375);

    await advance(clock, T);
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.current_period_start, T);
    assert.equal(sub.current_period_end, '2028-08-20T09:15:00Z');
    invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 3);
    const renewal = invoices[2];
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    assert.equal(renewal.period_start, T);
    assert.equal(renewal.period_end, '2028-08-20T09:15:00Z');
    // A full period from T, less the credit: 1000 − 375 = 625 due.
    assert.deepEqual(amounts(renewal), [1000]);
    assert.equal(renewal.starting_balance, -375);
    assert.equal(renewal.ending_balance, 0);
    assert.equal(renewal.amount_due, 625);
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, 0);
  });
});

describe('a change of interval (monthly → yearly)', () => {
  it('credits the unused monthly time and invoices a full year at once; the period restarts now', async () => {
    const monthly = await price(1000);
    const yearly = await price(10000, { recurring: { interval: 'year' } });
    const { clock, customer } = await onClock('2028-08-01T00:00:00Z');
    let sub = await activeSub(customer, [{ price: monthly.id }]);
    const item = sub.items.data[0];
    await advance(clock, '2028-08-11T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: yearly.id }] }, 200, { id: sub.id });
    assert.deepEqual(sub.plan, { interval: 'year', interval_count: 1 });
    assert.deepEqual(sub.items.data.map((i) => [i.id, i.price, i.quantity]), [[item.id, yearly.id, 1]]);
    assert.equal(sub.billing_cycle_anchor, '2028-08-11T00:00:00Z');
    assert.equal(sub.current_period_start, '2028-08-11T00:00:00Z');
    assert.equal(sub.current_period_end, '2029-08-11T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const inv = invoices[1];
    assert.equal(inv.billing_reason, 'subscription_update');
    // August is 31 days; Aug 11 is 10 days in: cumulative = round(1000 ×
    // 10/31) = round(322.58) = 323, credit −(1000 − 323) = −677; then the
    // year [Aug 11 2028, Aug 11 2029) in full: 10000. Total 9323.
    assert.deepEqual(inv.lines.data.map((l) => [l.price, l.amount, l.proration]), [[monthly.id, -677, true], [yearly.id, 10000, false]]);
    assert.deepEqual(periods(inv), [['2028-08-11T00:00:00Z', '2028-09-01T00:00:00Z'], ['2028-08-11T00:00:00Z', '2029-08-11T00:00:00Z']]);
    assert.equal(inv.period_start, '2028-08-11T00:00:00Z');
    assert.equal(inv.period_end, '2029-08-11T00:00:00Z');
    assert.equal(inv.total, 9323);
    assert.equal(inv.amount_due, 9323);
    assert.deepEqual(await pendingOf(sub), []);
  });
});

describe('a change of interval during a trial', () => {
  it('anchors the new schedule at the trial end: the first invoice is a full year and renewals fall on that day', async () => {
    const monthly = await price(1000);
    const yearly = await price(120000, { recurring: { interval: 'year' } });
    const { clock, customer } = await onClock('2027-01-01T00:00:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }], trial_period_days: 14 }, 201);
    assert.equal(sub.status, 'trialing');
    assert.equal(sub.trial_end, '2027-01-15T00:00:00Z');
    const item = sub.items.data[0];

    await advance(clock, '2027-01-05T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: yearly.id }] }, 200, { id: sub.id });
    assert.equal(sub.status, 'trialing');
    assert.deepEqual(sub.plan, { interval: 'year', interval_count: 1 });
    // Billing starts when the trial ends, so the new schedule does too; the
    // trial keeps its end, and nothing is prorated (a trial is free).
    assert.equal(sub.billing_cycle_anchor, '2027-01-15T00:00:00Z');
    assert.equal(sub.current_period_end, '2027-01-15T00:00:00Z');
    assert.equal(sub.trial_end, '2027-01-15T00:00:00Z');
    assert.equal((await invoicesOf(sub)).length, 1, 'only the trial\'s zero invoice');
    assert.deepEqual(await pendingOf(sub), []);

    // The trial's end bills the first year in full: [Jan 15 2027, Jan 15
    // 2028) at 120000. Anchored on Jan 5 instead, it would be the part up
    // to Jan 5 2028: 120000 − round(120000 × 10/365) = 120000 − 3288 =
    // 116712.
    await advance(clock, '2027-01-15T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'active');
    assert.equal(sub.current_period_start, '2027-01-15T00:00:00Z');
    assert.equal(sub.current_period_end, '2028-01-15T00:00:00Z');
    let invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const first = invoices[1];
    assert.equal(first.billing_reason, 'subscription_cycle');
    assert.equal(first.period_start, '2027-01-15T00:00:00Z');
    assert.equal(first.period_end, '2028-01-15T00:00:00Z');
    assert.deepEqual(first.lines.data.map((l) => [l.price, l.amount, l.proration]), [[yearly.id, 120000, false]]);
    assert.equal(first.amount_due, 120000);
    await pay(first);

    // The renewal falls on Jan 15, a year on.
    await advance(clock, '2028-01-15T00:00:00Z');
    invoices = await invoicesOf(sub);
    assert.deepEqual(invoices.slice(2).map((i) => [i.billing_reason, i.period_start, i.period_end, amounts(i)]), [
      ['subscription_cycle', '2028-01-15T00:00:00Z', '2029-01-15T00:00:00Z', [120000]],
    ]);
  });
});

describe('tiered prices on invoices', () => {
  const tiers = [{ up_to: 5, unit_amount: 1000 }, { up_to: 'inf', unit_amount: 800 }];
  const flatTiers = [{ up_to: 5, flat_amount: 1000 }, { up_to: 'inf', unit_amount: 400, flat_amount: 200 }];
  let clock;

  before(async () => {
    clock = await post('/v1/test_clocks', { frozen_time: '2028-10-01T00:00:00Z' }, 201);
  });

  async function firstInvoice(items) {
    const customer = await post('/v1/customers', { email: `${tag('c')}@example.com`, test_clock: clock.id }, 201);
    const sub = await post('/v1/subscriptions', { customer: customer.id, items }, 201);
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 1);
    return invoices[0];
  }

  it('graduated: 12 units are 5 × 1000 + 7 × 800 = 10600', async () => {
    const p = await price(undefined, { billing_scheme: 'tiered', tiers_mode: 'graduated', tiers });
    const inv = await firstInvoice([{ price: p.id, quantity: 12 }]);
    assert.deepEqual(inv.lines.data.map((l) => [l.price, l.quantity, l.amount]), [[p.id, 12, 10600]]);
    assert.equal(inv.total, 10600);
    assert.equal(inv.amount_due, 10600);
  });

  it('volume: 12 units are all at the tier of 12, 12 × 800 = 9600', async () => {
    const p = await price(undefined, { billing_scheme: 'tiered', tiers_mode: 'volume', tiers });
    const inv = await firstInvoice([{ price: p.id, quantity: 12 }]);
    assert.deepEqual(inv.lines.data.map((l) => [l.price, l.quantity, l.amount]), [[p.id, 12, 9600]]);
    assert.equal(inv.total, 9600);
  });

  it('flat amounts per tier reached, two tiered items on one invoice', async () => {
    const grad = await price(undefined, { billing_scheme: 'tiered', tiers_mode: 'graduated', tiers: flatTiers });
    const vol = await price(undefined, { billing_scheme: 'tiered', tiers_mode: 'volume', tiers: flatTiers });
    const inv = await firstInvoice([{ price: grad.id, quantity: 8 }, { price: vol.id, quantity: 6 }]);
    // Graduated, 8 seats: 1000 (first tier's flat) + 200 (second tier's
    // flat) + 3 × 400 = 2400. Volume, 6 seats: 6 × 400 + 200 = 2600.
    assert.deepEqual(inv.lines.data.map((l) => [l.price, l.quantity, l.amount]), [[grad.id, 8, 2400], [vol.id, 6, 2600]]);
    assert.equal(inv.total, 5000);
    assertSums(inv);
  });
});

describe('currencies with 0 and 3 decimals', () => {
  // docs/billing.md's worked examples, each change invoiced at once.
  async function run(currency, startIso, [p0, p1, p2], [t1, t2]) {
    const prices = [];
    for (const a of [p0, p1, p2]) prices.push(await price(a, { currency }));
    const { clock, customer } = await onClock(startIso);
    let sub = await activeSub(customer, [{ price: prices[0].id }]);
    const itemId = sub.items.data[0].id;
    await advance(clock, t1);
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: itemId, price: prices[1].id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    await advance(clock, t2);
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: itemId, price: prices[2].id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    const invoices = await invoicesOf(sub);
    for (const inv of invoices) {
      assert.equal(inv.currency, currency);
      assertSums(inv);
    }
    return { invoices, customer };
  }

  it('jpy: ¥9,800 → ¥14,800 → ¥4,800 bills ¥10,300 in all, to the yen', async () => {
    const { invoices, customer } = await run('jpy', '2027-03-01T00:00:00Z', [9800, 14800, 4800], ['2027-03-10T09:30:00Z', '2027-03-22T18:00:00Z']);
    // March 2027 is 2,678,400 s. At 811,800 s: old 9800 × 811800/2678400 =
    // 2970.30 → 2970, credit −6830; new 14800 × … = 4485.75 → 4486, charge
    // 10314. At 1,879,200 s: old 14800 × 1879200/2678400 = 10383.87 → 10384,
    // credit −4416; new 4800 × … = 3367.74 → 3368, charge 1432.
    assert.deepEqual(invoices.map(amounts), [[9800], [-6830, 10314], [-4416, 1432]]);
    assert.deepEqual(invoices.map((i) => i.total), [9800, 3484, -2984]);
    assert.equal(invoices.reduce((s, i) => s + i.total, 0), 10300);
    assert.equal(invoices[1].amount_due, 3484);
    assert.equal(invoices[2].amount_due, 0);
    assert.equal(invoices[2].ending_balance, -2984);
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, -2984);
  });

  it('kwd: 12.500 → 20.750 → 8.125 KWD bills 13.928 KWD in all, to the fils', async () => {
    const { invoices } = await run('kwd', '2027-04-01T00:00:00Z', [12500, 20750, 8125], ['2027-04-07T13:45:10Z', '2027-04-19T02:00:00Z']);
    // April 2027 is 2,592,000 s. At 567,910 s: old 2738.76 → 2739, credit
    // −9761; new 4546.35 → 4546, charge 16204. At 1,562,400 s: old
    // 12507.64 → 12508, credit −8242; new 4897.57 → 4898, charge 3227.
    assert.deepEqual(invoices.map(amounts), [[12500], [-9761, 16204], [-8242, 3227]]);
    assert.deepEqual(invoices.map((i) => i.subtotal), [12500, 6443, -5015]);
    assert.equal(invoices.reduce((s, i) => s + i.subtotal, 0), 13928);
    // 6443 fils due is more precise than Stripe takes in kwd: the invoice
    // asks for 6440, and the 3 fils are the customer's (docs/billing.md).
    assert.deepEqual(invoices.map((i) => [i.rounding, i.total, i.amount_due]), [[0, 12500, 12500], [-3, 6440, 6440], [0, -5015, 0]]);
  });
});

describe('backdate_start_date', () => {
  it('invoices the first period and renews every period since at once, one invoice each, numbered without gaps', async () => {
    const monthly = await price(1000);
    // The start is judged by the customer's clock, not by real time: a
    // clock in the future takes a backdate that is still ahead of now.
    const { customer } = await onClock('2031-09-20T00:00:00Z');
    const created = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }], backdate_start_date: '2031-06-20T00:00:00Z' }, 201);
    assert.equal(created.start_date, '2031-06-20T00:00:00Z');
    assert.equal(created.status, 'active', 'a backdated subscription was already running: it does not wait for a first payment');
    // The catch-up runs as follow-up jobs: wait until the period is the
    // current one (or the subscription ended).
    const sub = await until('the backdated subscription to catch up', async () => {
      const s = await get('/v1/subscriptions/{id}', { id: created.id });
      return s.status === 'canceled' || s.current_period_start === '2031-09-20T00:00:00Z' ? s : undefined;
    }, { timeoutMs: 30000, intervalMs: 100 });
    assert.equal(sub.current_period_start, '2031-09-20T00:00:00Z', `the current period, got ${JSON.stringify(sub)}`);
    assert.equal(sub.current_period_end, '2031-10-20T00:00:00Z');
    assert.equal(sub.status, 'active');
    const invoices = await invoicesOf(sub);
    assert.deepEqual(invoices.map((i) => [i.billing_reason, i.period_start, i.period_end, amounts(i)]), [
      ['subscription_create', '2031-06-20T00:00:00Z', '2031-07-20T00:00:00Z', [1000]],
      ['subscription_cycle', '2031-07-20T00:00:00Z', '2031-08-20T00:00:00Z', [1000]],
      ['subscription_cycle', '2031-08-20T00:00:00Z', '2031-09-20T00:00:00Z', [1000]],
      ['subscription_cycle', '2031-09-20T00:00:00Z', '2031-10-20T00:00:00Z', [1000]],
    ]);
    const numbers = invoices.map((i) => Number(i.number.slice(4)));
    assert.deepEqual(numbers, [numbers[0], numbers[0] + 1, numbers[0] + 2, numbers[0] + 3]);
  });

  it('catches up the same way when a credit balance pays the first invoice (active at once)', async () => {
    const big = await price(1000);
    const small = await price(250);
    const { customer } = await onClock('2026-09-20T00:00:00Z');
    // A credit of 1000: a paid subscription canceled with prorate at the
    // instant it started credits its whole period, 1000 − cumulative(start)
    // = 1000 − 0.
    const donor = await activeSub(customer, [{ price: big.id }]);
    await post('/v1/subscriptions/{id}/cancel', { prorate: true }, 200, { id: donor.id });
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, -1000);

    const created = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: small.id }], backdate_start_date: '2026-06-20T00:00:00Z' }, 201);
    assert.equal(created.status, 'active', 'nothing was due on the first invoice');
    const sub = await until('the backdated subscription to catch up', async () => {
      const s = await get('/v1/subscriptions/{id}', { id: created.id });
      return s.status === 'canceled' || s.current_period_start === '2026-09-20T00:00:00Z' ? s : undefined;
    }, { timeoutMs: 30000, intervalMs: 100 });
    assert.equal(sub.status, 'active');
    assert.equal(sub.current_period_end, '2026-10-20T00:00:00Z');
    const invoices = await invoicesOf(sub);
    // Four periods at 250 each, the credit of 1000 used up: the balance goes
    // −1000 → −750 → −500 → −250 → 0 and nothing is due on any of them.
    assert.deepEqual(invoices.map((i) => [i.billing_reason, i.period_start, amounts(i), i.starting_balance, i.ending_balance, i.amount_due, i.status]), [
      ['subscription_create', '2026-06-20T00:00:00Z', [250], -1000, -750, 0, 'paid'],
      ['subscription_cycle', '2026-07-20T00:00:00Z', [250], -750, -500, 0, 'paid'],
      ['subscription_cycle', '2026-08-20T00:00:00Z', [250], -500, -250, 0, 'paid'],
      ['subscription_cycle', '2026-09-20T00:00:00Z', [250], -250, 0, 0, 'paid'],
    ]);
    const numbers = invoices.map((i) => Number(i.number.slice(4)));
    assert.deepEqual(numbers, [numbers[0], numbers[0] + 1, numbers[0] + 2, numbers[0] + 3]);
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, 0);
  });
});

describe('an incomplete subscription', () => {
  it('is canceled at its first period end with its unpaid first invoice voided, and never renews', async () => {
    const monthly = await price(1000);
    const { clock, customer } = await onClock('2028-09-01T00:00:00Z');
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: monthly.id }] }, 201);
    assert.equal(sub.status, 'incomplete');
    await advance(clock, '2028-10-01T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'canceled');
    assert.equal(sub.ended_at, '2028-10-01T00:00:00Z');
    assert.equal(sub.canceled_at, '2028-10-01T00:00:00Z');
    assert.equal(sub.current_period_end, null);
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 1, 'no renewal invoice');
    assert.equal(invoices[0].billing_reason, 'subscription_create');
    assert.equal(invoices[0].status, 'void');
    assert.equal(invoices[0].voided_at, '2028-10-01T00:00:00Z');
    assert.equal((await get('/v1/customers/{id}', { id: customer.id })).balance, 0);
    // Later advances do nothing to it.
    await advance(clock, '2028-11-15T00:00:00Z');
    assert.equal((await invoicesOf(sub)).length, 1);
  });
});

describe('errors', () => {
  let usd;
  let eur;
  let yearly;
  let customer;
  let sub;
  let paidInvoice;
  let clock;

  before(async () => {
    usd = await price(1000);
    eur = await price(1000, { currency: 'eur' });
    yearly = await price(12000, { recurring: { interval: 'year' } });
    const c = await onClock('2029-01-01T00:00:00Z');
    clock = c.clock;
    customer = c.customer;
    sub = await activeSub(customer, [{ price: usd.id }]);
    [paidInvoice] = await invoicesOf(sub);
    assert.equal(paidInvoice.status, 'paid');
  });

  const create = (extra) => attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: usd.id }], ...extra });
  const update = (body) => attempt('/v1/subscriptions/{id}', body, { id: sub.id });

  it('an unknown body key: 400 parameter_unknown naming it', async () => {
    assertError(await create({ colour: 'red' }), 400, 'parameter_unknown', { param: 'colour' });
    assertError(await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: usd.id, colour: 'red' }] }), 400, 'parameter_unknown', { param: 'items[0].colour' });
    assertError(await update({ colour: 'red' }), 400, 'parameter_unknown', { param: 'colour' });
  });

  it('billing_cycle_anchor with billing_cycle_anchor_config: 400', async () => {
    const res = await create({ billing_cycle_anchor: '2029-01-15T00:00:00Z', billing_cycle_anchor_config: { day_of_month: 15 } });
    assertError(res, 400, 'parameter_invalid', { param: 'billing_cycle_anchor_config' });
  });

  it('effective_at without items: 400 param effective_at', async () => {
    assertError(await update({ effective_at: 'period_end', cancel_at_period_end: true }), 400, 'parameter_invalid', { param: 'effective_at' });
    assertError(await update({ effective_at: 'period_end', metadata: { plan: 'x' } }), 400, 'parameter_invalid', { param: 'effective_at' });
    // Alone it names nothing to change at all.
    assertError(await update({ effective_at: 'period_end' }), 400, 'parameter_missing', { param: null });
    const now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(now.cancel_at_period_end, false);
    assert.deepEqual(now.metadata, {});
  });

  it('items with billing_cycle_anchor in one request: 400 param billing_cycle_anchor', async () => {
    const res = await update({ items: [{ id: sub.items.data[0].id, quantity: 2 }], billing_cycle_anchor: 'now' });
    assertError(res, 400, 'parameter_invalid', { param: 'billing_cycle_anchor' });
  });

  it('pending_update other than null, or with effective_at period_end: 400 param pending_update', async () => {
    assertError(await update({ pending_update: {} }), 400, 'parameter_invalid', { param: 'pending_update' });
    assertError(await update({ pending_update: false }), 400, 'parameter_invalid', { param: 'pending_update' });
    assertError(await update({ items: [{ id: sub.items.data[0].id, quantity: 2 }], effective_at: 'period_end', pending_update: null }), 400, 'parameter_invalid', { param: 'pending_update' });
    const now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(now.pending_update, null);
    assert.equal(now.items.data[0].quantity, 1);
  });

  it('a bad proration_behavior: 400 param proration_behavior', async () => {
    assertError(await update({ items: [{ id: sub.items.data[0].id, quantity: 2 }], proration_behavior: 'sometimes' }), 400, 'parameter_invalid', { param: 'proration_behavior' });
    assertError(await create({ proration_behavior: 'sometimes' }), 400, 'parameter_invalid', { param: 'proration_behavior' });
  });

  it('items[0].price that is not a price id: 400 param items[0].price', async () => {
    assertError(await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: product.id }] }), 400, 'parameter_invalid', { param: 'items[0].price' });
    assertError(await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: 'price_123' }] }), 400, 'parameter_invalid', { param: 'items[0].price' });
  });

  it('invoice pay without paid_out_of_band: 400', async () => {
    assertError(await attempt('/v1/invoices/{id}/pay', {}, { id: paidInvoice.id }), 400, 'parameter_missing', { param: 'paid_out_of_band' });
    assertError(await attempt('/v1/invoices/{id}/pay', { paid_out_of_band: false }, { id: paidInvoice.id }), 400, 'parameter_invalid', { param: 'paid_out_of_band' });
  });

  it('pay or void of a paid invoice: 409 invoice_state, and it stays paid', async () => {
    assertError(await attempt('/v1/invoices/{id}/pay', { paid_out_of_band: true }, { id: paidInvoice.id }), 409, 'invoice_state');
    assertError(await attempt('/v1/invoices/{id}/void', {}, { id: paidInvoice.id }), 409, 'invoice_state');
    const inv = await get('/v1/invoices/{id}', { id: paidInvoice.id });
    assert.equal(inv.status, 'paid');
    assert.equal(inv.voided_at, null);
  });

  it('advancing a clock backwards, to its own time or by more than two years: 400 param frozen_time', async () => {
    assertError(await attempt('/v1/test_clocks/{id}/advance', { frozen_time: '2028-12-31T00:00:00Z' }, { id: clock.id }), 400, 'parameter_invalid', { param: 'frozen_time' });
    assertError(await attempt('/v1/test_clocks/{id}/advance', { frozen_time: '2029-01-01T00:00:00Z' }, { id: clock.id }), 400, 'parameter_invalid', { param: 'frozen_time' });
    // Nor more than two years at once (each period under it is a job).
    const far = await attempt('/v1/test_clocks/{id}/advance', { frozen_time: '2031-01-02T00:00:00Z' }, { id: clock.id });
    assertError(far, 400, 'parameter_invalid', { param: 'frozen_time' });
    assert.match(far.json.error.message, /at most 2 years at a time/);
    const c = await get('/v1/test_clocks/{id}', { id: clock.id });
    assert.equal(c.frozen_time, '2029-01-01T00:00:00Z');
    assert.equal(c.status, 'ready');
  });

  it('a live tenant: 403 test_mode_only on POST and GET of test clocks', async () => {
    const live = await createLiveTenant(api);
    let res = await attempt('/v1/test_clocks', { frozen_time: '2029-01-01T00:00:00Z' }, {}, live.secret);
    assertError(res, 403, 'test_mode_only');
    res = await api.get('/v1/test_clocks', { token: live.secret });
    assertError(res, 403, 'test_mode_only');
    res = await api.get('/v1/test_clocks/{id}', { token: live.secret, params: { id: clock.id } });
    assertError(res, 403, 'test_mode_only');
    res = await attempt('/v1/test_clocks/{id}/advance', { frozen_time: '2029-02-01T00:00:00Z' }, { id: clock.id }, live.secret);
    assertError(res, 403, 'test_mode_only');
  });

  it('prices of two currencies or two intervals: 400 price_mismatch naming the second', async () => {
    assertError(await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: usd.id }, { price: eur.id }] }), 400, 'price_mismatch', { param: 'items[1].price' });
    assertError(await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: usd.id }, { price: yearly.id }] }), 400, 'price_mismatch', { param: 'items[1].price' });
    // A change to another currency is refused too, naming the request's
    // item as a create would.
    assertError(await update({ items: [{ id: sub.items.data[0].id, price: eur.id }] }), 400, 'price_mismatch', { param: 'items[0].price' });
  });

  it('an archived price: 409 price_inactive, for a new subscription and a change', async () => {
    const old = await price(700);
    const archived = await post('/v1/prices/{id}', { active: false }, 200, { id: old.id });
    assert.equal(archived.active, false);
    assertError(await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: old.id }] }), 409, 'price_inactive', { param: 'items[0].price' });
    assertError(await update({ items: [{ id: sub.items.data[0].id, price: old.id }] }), 409, 'price_inactive', { param: 'items[0].price' });
    const now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.deepEqual(now.items.data.map((i) => [i.price, i.quantity]), [[usd.id, 1]]);
    assert.equal((await invoicesOf(sub)).length, 1);
  });

  it('another tenant\'s subscription: 404 resource_missing on read, change and cancel', async () => {
    const other = await createTenant(api);
    let res = await api.get('/v1/subscriptions/{id}', { token: other.secret, params: { id: sub.id } });
    assertError(res, 404, 'resource_missing', { param: 'id' });
    res = await attempt('/v1/subscriptions/{id}', { cancel_at_period_end: true }, { id: sub.id }, other.secret);
    assertError(res, 404, 'resource_missing', { param: 'id' });
    res = await attempt('/v1/subscriptions/{id}/cancel', { prorate: true }, { id: sub.id }, other.secret);
    assertError(res, 404, 'resource_missing', { param: 'id' });
    res = await api.get('/v1/invoices/{id}', { token: other.secret, params: { id: paidInvoice.id } });
    assertError(res, 404, 'resource_missing', { param: 'id' });
    const now = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(now.status, 'active');
    assert.equal(now.cancel_at_period_end, false);
  });
});

describe('invoice numbers', () => {
  it('the tenant\'s invoices are numbered 1..n without a gap', async () => {
    const rows = await superuser(`SELECT number FROM invoices WHERE tenant_id = ${lit(tenantId)} ORDER BY number`);
    assert.ok(rows.length > 30, `only ${rows.length} invoices`);
    assert.deepEqual(rows.map((r) => r[0]), rows.map((_, i) => `INV-${String(i + 1).padStart(6, '0')}`));
  });
});
