// A subscription's life on a test clock, through the real workers: trial →
// active → plan change halfway through a period → pause → resume → cancel
// at period end, checking every invoice (lines, totals, numbers) and
// status on the way. Then credits: a downgrade invoiced at once leaves a
// credit balance that the next invoice uses.
//
// Time moves only by POST /v1/test_clocks/{id}/advance; the renewal
// scheduler scans every 100 ms here, so each advance settles quickly.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { superuser, lit } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError } from './lib/http.mjs';
import { amounts, startBilling } from './lib/billing.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, until } from './lib/util.mjs';

const S = slot(25);
const stack = new Stack('subscription_lifecycle', S);
let api;
let secret;
let tenantId;
let post;
let attempt;
let get;
let advance;
let invoicesOf;

before(async () => {
  ({ api, secret, tenantId, post, attempt, get, advance, invoicesOf } = await startBilling(stack));
});

after(async () => {
  await stack.stopAll();
});

async function price(product, unitAmount, extra = {}) {
  return post('/v1/prices', { product, currency: 'usd', unit_amount: unitAmount, recurring: { interval: 'month' }, ...extra }, 201);
}

describe('a subscription on a test clock', () => {
  let clock;
  let customer;
  let basic;
  let pro;
  let sub;

  before(async () => {
    const product = await post('/v1/products', { name: 'Team plan' }, 201);
    basic = await price(product.id, 1000);
    pro = await price(product.id, 2000);
    clock = await post('/v1/test_clocks', { frozen_time: '2027-01-01T00:00:00Z', name: 'lifecycle' }, 201);
    assert.match(clock.id, ID_RE('clock'));
    assert.equal(clock.status, 'ready');
    customer = await post('/v1/customers', { email: 'lifecycle@example.com', test_clock: clock.id }, 201);
    assert.equal(customer.test_clock, clock.id);
  });

  it('starts trialing with a zero invoice that is paid at once', async () => {
    sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: basic.id }], trial_period_days: 14 }, 201);
    assert.match(sub.id, ID_RE('sub'));
    assert.equal(sub.status, 'trialing');
    assert.equal(sub.trial_start, '2027-01-01T00:00:00Z');
    assert.equal(sub.trial_end, '2027-01-15T00:00:00Z');
    assert.equal(sub.current_period_start, '2027-01-01T00:00:00Z');
    assert.equal(sub.current_period_end, '2027-01-15T00:00:00Z');
    assert.equal(sub.test_clock, clock.id);
    assert.equal(sub.items.data.length, 1);
    assert.equal(sub.items.data[0].price, basic.id);
    const [first] = await invoicesOf(sub);
    assert.equal(first.billing_reason, 'subscription_create');
    assert.equal(first.status, 'paid');
    assert.equal(first.total, 0);
    assert.equal(first.amount_due, 0);
    assert.equal(first.number, 'INV-000001');
    assert.deepEqual(amounts(first), [0]);
    assert.equal(sub.latest_invoice, first.id);
  });

  it('ends the trial into an active period and its first real invoice', async () => {
    await advance(clock, '2027-01-15T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'active');
    assert.equal(sub.current_period_start, '2027-01-15T00:00:00Z');
    assert.equal(sub.current_period_end, '2027-02-15T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 2);
    const inv = invoices[1];
    assert.equal(inv.billing_reason, 'subscription_cycle');
    assert.equal(inv.status, 'open');
    assert.equal(inv.number, 'INV-000002');
    assert.equal(inv.period_start, '2027-01-15T00:00:00Z');
    assert.equal(inv.period_end, '2027-02-15T00:00:00Z');
    assert.deepEqual(amounts(inv), [1000]);
    assert.equal(inv.subtotal, 1000);
    assert.equal(inv.amount_due, 1000);
    assert.equal(inv.amount_remaining, 1000);
    const paid = await post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: inv.id });
    assert.equal(paid.status, 'paid');
    assert.equal(paid.amount_paid, 1000);
    assert.equal(paid.amount_remaining, 0);
    assert.equal(paid.paid_at, '2027-01-15T00:00:00Z');
  });

  it('prorates an upgrade halfway through the period to the second: -500 + 1000', async () => {
    // Jan 15 → Feb 15 is 31 days; halfway is Jan 30 12:00.
    await advance(clock, '2027-01-30T12:00:00Z');
    const item = sub.items.data[0];
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: item.id, price: pro.id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    assert.equal(sub.items.data.length, 1);
    assert.equal(sub.items.data[0].id, item.id, 'the item keeps its id');
    assert.equal(sub.items.data[0].price, pro.id);
    assert.equal(sub.current_period_end, '2027-02-15T00:00:00Z', 'the period does not move');
    const invoices = await invoicesOf(sub);
    const inv = invoices[2];
    assert.equal(inv.billing_reason, 'subscription_update');
    assert.deepEqual(amounts(inv), [-500, 1000]);
    assert.deepEqual(inv.lines.data.map((l) => l.proration), [true, true]);
    assert.equal(inv.total, 500);
    assert.equal(inv.amount_due, 500);
    assert.equal(inv.number, 'INV-000003');
    assert.equal(sub.latest_invoice, inv.id);
    // Collected (by hand: no charger runs in this file), so nothing from
    // before the pause below is owed when it resumes, and it resumes active.
    await post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: inv.id });
  });

  it('pauses: billing stops and the unused time waits as a pending credit', async () => {
    await advance(clock, '2027-02-01T00:00:00Z');
    sub = await post('/v1/subscriptions/{id}/pause', {}, 200, { id: sub.id });
    assert.equal(sub.status, 'paused');
    assert.equal(sub.paused_at, '2027-02-01T00:00:00Z');
    assert.equal(sub.current_period_start, null);
    assert.equal(sub.current_period_end, null);
    // 17 of 31 days of $20 used: round(2000 × 17 / 31) = 1097, so 903 unused.
    const pending = await superuser(`SELECT amount, invoice_id FROM invoice_items WHERE tenant_id = ${lit(tenantId)} AND subscription_id = ${lit(sub.id)}`);
    assert.deepEqual(pending, [['-903', '']]);
    // Nothing renews while paused, however far the clock moves.
    await advance(clock, '2027-02-20T00:00:00Z');
    assert.equal((await invoicesOf(sub)).length, 3);
    const again = await attempt('/v1/subscriptions/{id}/pause', {}, { id: sub.id });
    assertError(again, 409, 'subscription_state');
  });

  it('resumes into a new period anchored at the resume, invoiced with the pending credit', async () => {
    sub = await post('/v1/subscriptions/{id}/resume', {}, 200, { id: sub.id });
    assert.equal(sub.status, 'active');
    assert.equal(sub.paused_at, null);
    assert.equal(sub.billing_cycle_anchor, '2027-02-20T00:00:00Z');
    assert.equal(sub.current_period_start, '2027-02-20T00:00:00Z');
    assert.equal(sub.current_period_end, '2027-03-20T00:00:00Z');
    const invoices = await invoicesOf(sub);
    assert.equal(invoices.length, 4);
    const inv = invoices[3];
    assert.deepEqual(amounts(inv), [2000, -903]);
    assert.equal(inv.total, 1097);
    assert.equal(inv.amount_due, 1097);
    assert.equal(inv.number, 'INV-000004');
  });

  it('cancels at the period end: no renewal invoice, status canceled, undo possible before', async () => {
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: true }, 200, { id: sub.id });
    assert.equal(sub.cancel_at_period_end, true);
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: false }, 200, { id: sub.id });
    assert.equal(sub.cancel_at_period_end, false);
    assert.equal(sub.canceled_at, null);
    sub = await post('/v1/subscriptions/{id}', { cancel_at_period_end: true }, 200, { id: sub.id });
    await advance(clock, '2027-03-25T00:00:00Z');
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'canceled');
    assert.equal(sub.ended_at, '2027-03-20T00:00:00Z');
    assert.equal(sub.current_period_end, null);
    assert.equal((await invoicesOf(sub)).length, 4);
    const res = await attempt('/v1/subscriptions/{id}/resume', {}, { id: sub.id });
    assertError(res, 409, 'subscription_state');
  });

  it('numbered the tenant\'s invoices without gaps', async () => {
    const rows = await superuser(`SELECT number FROM invoices WHERE tenant_id = ${lit(tenantId)} ORDER BY number`);
    assert.deepEqual(rows.map((r) => r[0]), ['INV-000001', 'INV-000002', 'INV-000003', 'INV-000004']);
  });
});

describe('credits', () => {
  it('a downgrade invoiced at once becomes credit that the next renewal uses', async () => {
    const product = await post('/v1/products', { name: 'Credit plan' }, 201);
    const big = await price(product.id, 3000);
    const small = await price(product.id, 1000);
    const clock = await post('/v1/test_clocks', { frozen_time: '2028-01-01T00:00:00Z' }, 201);
    const customer = await post('/v1/customers', { email: 'credit@example.com', test_clock: clock.id }, 201);
    let sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: big.id }] }, 201);
    assert.equal(sub.status, 'incomplete', 'an unpaid first invoice leaves it incomplete');
    let [first] = await invoicesOf(sub);
    assert.deepEqual(amounts(first), [3000]);
    first = await post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: first.id });
    sub = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(sub.status, 'active', 'paying the first invoice activates it');

    // Jan 1 → Feb 1 is 31 days; at Jan 16 12:00 (15.5 days) half is used.
    await advance(clock, '2028-01-16T12:00:00Z');
    sub = await post('/v1/subscriptions/{id}', { items: [{ id: sub.items.data[0].id, price: small.id }], proration_behavior: 'always_invoice' }, 200, { id: sub.id });
    const down = (await invoicesOf(sub))[1];
    assert.deepEqual(amounts(down), [-1500, 500]);
    assert.equal(down.total, -1000);
    assert.equal(down.amount_due, 0);
    assert.equal(down.status, 'paid', 'nothing is due: it closes as paid');
    assert.equal(down.starting_balance, 0);
    assert.equal(down.ending_balance, -1000);
    let cust = await get('/v1/customers/{id}', { id: customer.id });
    assert.equal(cust.balance, -1000);

    await advance(clock, '2028-02-01T00:00:00Z');
    const renewal = (await invoicesOf(sub))[2];
    assert.equal(renewal.billing_reason, 'subscription_cycle');
    assert.deepEqual(amounts(renewal), [1000]);
    assert.equal(renewal.total, 1000);
    assert.equal(renewal.starting_balance, -1000);
    assert.equal(renewal.ending_balance, 0);
    assert.equal(renewal.amount_due, 0, 'the credit pays the renewal in full');
    assert.equal(renewal.status, 'paid');
    cust = await get('/v1/customers/{id}', { id: customer.id });
    assert.equal(cust.balance, 0);
    const ledger = await get('/v1/customers/{id}/balance_transactions', { id: customer.id });
    assert.deepEqual(ledger.data.map((t) => [t.type, t.amount, t.ending_balance]), [
      ['applied_to_invoice', 1000, 0],
      ['credit_note', -1000, -1000],
    ]);
  });

  it('refuses a subscription for a closed customer and for an unknown price', async () => {
    const product = await post('/v1/products', { name: 'Refusals' }, 201);
    const p = await price(product.id, 500);
    const customer = await post('/v1/customers', { email: 'closed@example.com' }, 201);
    await post('/v1/customers/{id}', { status: 'closed' }, 200, { id: customer.id });
    let res = await attempt('/v1/subscriptions', { customer: customer.id, items: [{ price: p.id }] });
    assertError(res, 409, 'customer_closed', { param: 'customer' });
    const open = await post('/v1/customers', { email: 'open@example.com' }, 201);
    res = await attempt('/v1/subscriptions', { customer: open.id, items: [{ price: 'price_01JAAAAAAAAAAAAAAAAAAAAAAA' }] });
    assertError(res, 404, 'resource_missing', { param: 'items[0].price' });
  });
});

describe('billing settings', () => {
  it('a new invoice prefix numbers the next invoices, and the sequence goes on without a gap', async () => {
    const before = await get('/v1/settings/billing');
    assert.equal(before.object, 'billing_settings');
    assert.equal(before.invoice_prefix, 'INV');
    const [[last]] = await superuser(`SELECT last FROM invoice_sequences WHERE tenant_id = ${lit(tenantId)}`);
    const next = String(Number(last) + 1).padStart(6, '0');
    assert.equal(before.next_invoice_number, `INV-${next}`);

    const bad = await api.post('/v1/settings/billing', { token: secret, json: { invoice_prefix: 'acme' } });
    assertError(bad, 400, 'parameter_invalid', { param: 'invoice_prefix' });
    const set = await post('/v1/settings/billing', { invoice_prefix: 'ACME' });
    assert.deepEqual(set, { object: 'billing_settings', invoice_prefix: 'ACME', next_invoice_number: `ACME-${next}` });

    const product = await post('/v1/products', { name: 'Prefix plan' }, 201);
    const p = await price(product.id, 700);
    const customer = await post('/v1/customers', { email: 'prefix@example.com' }, 201);
    const sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: p.id }] }, 201);
    const inv = await get('/v1/invoices/{id}', { id: sub.latest_invoice });
    assert.equal(inv.number, `ACME-${next}`);
    assert.deepEqual(amounts(inv), [700]);
  });
});

describe('a period end that fails for good', () => {
  it('stops its test clock at internal_failure instead of leaving it advancing', async () => {
    const product = await post('/v1/products', { name: 'Broken plan' }, 201);
    const tiered = await post('/v1/prices', {
      product: product.id, currency: 'usd', billing_scheme: 'tiered', tiers_mode: 'graduated',
      tiers: [{ up_to: 'inf', unit_amount: 400 }], recurring: { interval: 'month' },
    }, 201);
    const clock = await post('/v1/test_clocks', { frozen_time: '2029-03-01T00:00:00Z' }, 201);
    const customer = await post('/v1/customers', { email: 'broken@example.com', test_clock: clock.id }, 201);
    const sub = await post('/v1/subscriptions', { customer: customer.id, items: [{ price: tiered.id }], backdate_start_date: '2029-03-01T00:00:00Z' }, 201);
    // A stored price that no longer reads (written past the immutability
    // trigger, as only a broken migration could): its renewal can never run.
    await superuser(`ALTER TABLE prices DISABLE TRIGGER immutable;
      UPDATE prices SET tiers = '[]'::jsonb WHERE id = ${lit(tiered.id)};
      ALTER TABLE prices ENABLE TRIGGER immutable;`);
    await post('/v1/test_clocks/{id}/advance', { frozen_time: '2029-04-02T00:00:00Z' }, 200, { id: clock.id });
    const stopped = await until('the clock to stop at internal_failure', async () => {
      const c = await get('/v1/test_clocks/{id}', { id: clock.id });
      return c.status === 'internal_failure' ? c : undefined;
    }, { timeoutMs: 30000, intervalMs: 100 });
    assert.equal(stopped.frozen_time, '2029-04-02T00:00:00Z');
    const dead = await get('/v1/jobs', {}, { status: 'dead', type: 'subscription.cycle' });
    const job = dead.data.find((j) => j.result === null && j.error && j.error.message.includes(tiered.id));
    assert.ok(job, `the renewal is dead with its reason: ${JSON.stringify(dead.data)}`);
    const still = await get('/v1/subscriptions/{id}', { id: sub.id });
    assert.equal(still.current_period_end, '2029-04-01T00:00:00Z', 'the period did not move');
  });
});
