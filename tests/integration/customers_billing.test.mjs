// Customers' billing details: address, currency, tax id and default payment
// method (round trip and validation), a test clock (test mode only, must
// exist, never changes), the status rules the worker judges against stored
// rows (closed is final, no closing with a live subscription, no new
// currency once there are subscriptions) and the balance transaction
// ledger. Rows the API cannot make yet (test clocks, subscriptions, ledger
// entries) are written directly as the superuser.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createLiveTenant, createTenant } from './lib/billow.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { newId } from './lib/util.mjs';

const S = slot(24);
const stack = new Stack('customers_billing', S);
let api;
let A; // A tenant in test mode.
let L; // A tenant in live mode.
let B; // Another test-mode tenant.

const EMPTY_ADDRESS = { line1: null, line2: null, city: null, state: null, postal_code: null, country: null };

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  stack.startWorker('domain');
  stack.startWorker('metrics');
  A = await createTenant(api);
  L = await createLiveTenant(api);
  B = await createTenant(api);
});

after(async () => {
  await stack.stopAll();
});

function postWait(route, token, json, params) {
  return api.post(route, { token, params, json, headers: { Prefer: 'wait=20' } });
}

function update(token, id, json) {
  return postWait('/v1/customers/{id}', token, json, { id });
}

async function insertClock(tenant) {
  const id = newId('clock');
  await superuser(`INSERT INTO test_clocks (tenant_id, id, frozen_time) VALUES (${lit(tenant.tenant.id)}, ${lit(id)}, '2026-01-01T00:00:00Z')`);
  return id;
}

async function insertSubscription(tenant, customerId, status, currency = 'usd') {
  const id = newId('sub');
  await superuser(`INSERT INTO subscriptions (tenant_id, id, customer_id, status, currency, interval, interval_count,
      billing_cycle_anchor, start_date, current_period_start, current_period_end)
    VALUES (${lit(tenant.tenant.id)}, ${lit(id)}, ${lit(customerId)}, ${lit(status)}, ${lit(currency)}, 'month', 1,
      now(), now(), now(), now() + interval '1 month')`);
  return id;
}

async function customerRow(id) {
  const [row] = await superuser(`SELECT status, currency, coalesce(address::text, ''), coalesce(tax_id, ''),
      coalesce(default_payment_method, ''), coalesce(test_clock_id, ''), name FROM customers WHERE id = ${lit(id)}`);
  return row;
}

describe('billing details', () => {
  it('a customer created with every billing field answers them normalised and reads back the same', async () => {
    const res = await postWait('/v1/customers', A.secret, {
      email: 'ada@example.com',
      name: 'Ada',
      address: { line1: '12 Saint James\'s Square', city: 'London', postal_code: 'SW1Y 4LB', country: 'GB', state: null },
      currency: 'GBP',
      tax_id: 'GB 123 456 789',
      default_payment_method: 'pm_1QxYzAbCdEfGhIjK',
    });
    assert.equal(res.status, 201, res.text);
    const c = res.json;
    assert.deepEqual(c.address, { ...EMPTY_ADDRESS, line1: '12 Saint James\'s Square', city: 'London', postal_code: 'SW1Y 4LB', country: 'GB' });
    assert.equal(c.currency, 'gbp');
    assert.equal(c.tax_id, 'GB 123 456 789');
    assert.equal(c.default_payment_method, 'pm_1QxYzAbCdEfGhIjK');
    assert.equal(c.balance, 0);
    assert.equal(c.test_clock, null);
    assert.equal(c.status, 'active');
    assert.equal(c.email, 'ada@example.com');
    const got = await api.get('/v1/customers/{id}', { params: { id: c.id }, token: A.secret });
    assert.deepEqual(got.json, c);
    const row = await customerRow(c.id);
    assert.equal(row[1], 'gbp');
    assert.deepEqual(JSON.parse(row[2]), c.address);
  });

  it('a customer created without them has them all null and a zero balance', async () => {
    const c = await createCustomer(api, A.secret, { name: 'Plain' });
    assert.equal(c.address, null);
    assert.equal(c.currency, null);
    assert.equal(c.tax_id, null);
    assert.equal(c.default_payment_method, null);
    assert.equal(c.balance, 0);
    assert.equal(c.test_clock, null);
  });

  it('updates replace the address whole, change the currency, and null clears address, tax_id and payment method', async () => {
    const c = await createCustomer(api, A.secret, {
      name: 'Mover',
      email: 'mover@example.com',
      address: { line1: 'Old street 1', city: 'Oslo', country: 'NO' },
      currency: 'nok',
      tax_id: 'NO999',
      default_payment_method: 'pm_old',
    });
    const moved = await update(A.secret, c.id, { address: { line1: '1 Rue de Rivoli', postal_code: '75001', country: 'FR' }, currency: 'EUR', tax_id: 'FR12345678901' });
    assert.equal(moved.status, 200, moved.text);
    assert.deepEqual(moved.json.address, { ...EMPTY_ADDRESS, line1: '1 Rue de Rivoli', postal_code: '75001', country: 'FR' });
    assert.equal(moved.json.currency, 'eur');
    assert.equal(moved.json.tax_id, 'FR12345678901');
    assert.equal(moved.json.default_payment_method, 'pm_old', 'a field not named stays');
    assert.equal(moved.json.email, 'mover@example.com');
    assert.equal(moved.json.name, 'Mover');

    const cleared = await update(A.secret, c.id, { address: null, tax_id: null, default_payment_method: null });
    assert.equal(cleared.status, 200, cleared.text);
    assert.equal(cleared.json.address, null);
    assert.equal(cleared.json.tax_id, null);
    assert.equal(cleared.json.default_payment_method, null);
    assert.equal(cleared.json.currency, 'eur');
    assert.deepEqual(await customerRow(c.id), ['active', 'eur', '', '', '', '', 'Mover']);

    const pm = await update(A.secret, c.id, { default_payment_method: `pm_${'a'.repeat(250)}` });
    assert.equal(pm.json.default_payment_method, `pm_${'a'.repeat(250)}`);
  });

  const INVALID = [
    ['an address that is a string', { address: '1 Main St' }, 'parameter_invalid', 'address'],
    ['a null address on creation', { address: null }, 'parameter_invalid', 'address'],
    ['an unknown address member', { address: { street: '1 Main St' } }, 'parameter_unknown', 'address.street'],
    ['a lower-case country', { address: { country: 'gb' } }, 'parameter_invalid', 'address.country'],
    ['a three-letter country', { address: { country: 'GBR' } }, 'parameter_invalid', 'address.country'],
    ['an empty line1', { address: { line1: '' } }, 'parameter_invalid', 'address.line1'],
    ['a city over 200 bytes', { address: { city: 'c'.repeat(201) } }, 'parameter_invalid', 'address.city'],
    ['a postal code that is a number', { address: { postal_code: 75001 } }, 'parameter_invalid', 'address.postal_code'],
    ['a state with a control character', { address: { state: 'C\u0007A' } }, 'parameter_invalid', 'address.state'],
    ['an unknown currency', { currency: 'xyz' }, 'parameter_invalid', 'currency'],
    ['a currency that is not a string', { currency: 978 }, 'parameter_invalid', 'currency'],
    ['a null currency', { currency: null }, 'parameter_invalid', 'currency'],
    ['a tax id over 64 bytes', { tax_id: 't'.repeat(65) }, 'parameter_invalid', 'tax_id'],
    ['an empty tax id', { tax_id: '' }, 'parameter_invalid', 'tax_id'],
    ['a null tax id on creation', { tax_id: null }, 'parameter_invalid', 'tax_id'],
    ['a card id as payment method', { default_payment_method: 'card_123' }, 'parameter_invalid', 'default_payment_method'],
    ['a bare pm_', { default_payment_method: 'pm_' }, 'parameter_invalid', 'default_payment_method'],
    ['a payment method with a dash', { default_payment_method: 'pm_abc-def' }, 'parameter_invalid', 'default_payment_method'],
    ['a payment method over 253 characters', { default_payment_method: `pm_${'a'.repeat(251)}` }, 'parameter_invalid', 'default_payment_method'],
    ['a malformed test clock', { test_clock: 'clock_123' }, 'parameter_invalid', 'test_clock'],
    ['a test clock that is not a string', { test_clock: 7 }, 'parameter_invalid', 'test_clock'],
    ['a status on creation', { status: 'active' }, 'parameter_unknown', 'status'],
  ];

  it('refuses every invalid billing field on creation with its code and param, and creates nothing', async () => {
    const before = await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`);
    for (const [what, body, code, param] of INVALID) {
      const res = await postWait('/v1/customers', A.secret, body);
      assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
      assertError(res, 400, code, { param, type: 'invalid_request_error' });
    }
    assert.equal(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`), before);
  });

  it('refuses invalid billing fields on update, and the customer stays as it was', async () => {
    const c = await createCustomer(api, A.secret, { name: 'Steady', currency: 'usd', tax_id: 'US1' });
    const cases = [
      [{ address: { zip: '1' } }, 'parameter_unknown', 'address.zip'],
      [{ address: { country: 'Deutschland' } }, 'parameter_invalid', 'address.country'],
      [{ currency: null }, 'parameter_invalid', 'currency'],
      [{ currency: 'dollars' }, 'parameter_invalid', 'currency'],
      [{ tax_id: 5 }, 'parameter_invalid', 'tax_id'],
      [{ default_payment_method: 'src_1' }, 'parameter_invalid', 'default_payment_method'],
      [{ status: 'deleted' }, 'parameter_invalid', 'status'],
      [{ balance: -100 }, 'parameter_unknown', 'balance'],
    ];
    for (const [body, code, param] of cases) {
      assertError(await update(A.secret, c.id, body), 400, code, { param });
    }
    const got = await api.get('/v1/customers/{id}', { params: { id: c.id }, token: A.secret });
    assert.deepEqual(got.json, c);
  });
});

describe('test clocks', () => {
  it('a test-mode tenant creates a customer on its own clock', async () => {
    const clock = await insertClock(A);
    const c = await createCustomer(api, A.secret, { name: 'On the clock', test_clock: clock });
    assert.equal(c.test_clock, clock);
    assert.equal((await customerRow(c.id))[5], clock);
  });

  it('a clock the tenant does not have is 404 param test_clock, even another tenant\'s', async () => {
    const before = await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`);
    assertError(await postWait('/v1/customers', A.secret, { test_clock: newId('clock') }), 404, 'resource_missing', { param: 'test_clock' });
    const clockOfB = await insertClock(B);
    assertError(await postWait('/v1/customers', A.secret, { test_clock: clockOfB }), 404, 'resource_missing', { param: 'test_clock' });
    assert.equal(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`), before);
  });

  it('a live tenant is refused a test clock: 403 test_mode_only param test_clock, before any job', async () => {
    const clock = await insertClock(L);
    // No Prefer: wait, so a job would be 202: the 403 is the front's.
    for (const body of [{ test_clock: clock }, { name: 'Live', test_clock: newId('clock') }]) {
      const res = await api.post('/v1/customers', { token: L.secret, json: body });
      assertError(res, 403, 'test_mode_only', { param: 'test_clock', type: 'permission_error' });
    }
    assert.equal(await superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(L.tenant.id)}`), '0');
    const plain = await createCustomer(api, L.secret, { name: 'Live without a clock', currency: 'usd' });
    assert.equal(plain.test_clock, null);
  });

  it('a customer\'s test clock cannot change on update', async () => {
    const clock = await insertClock(A);
    const c = await createCustomer(api, A.secret, { name: 'Clocked', test_clock: clock });
    const other = await insertClock(A);
    assertError(await update(A.secret, c.id, { test_clock: other }), 400, 'parameter_invalid', { param: 'test_clock' });
    assertError(await update(A.secret, c.id, { test_clock: null }), 400, 'parameter_invalid', { param: 'test_clock' });
    const plain = await createCustomer(api, A.secret, { name: 'Unclocked' });
    assertError(await update(A.secret, plain.id, { test_clock: clock }), 400, 'parameter_invalid', { param: 'test_clock' });
    assert.equal((await customerRow(c.id))[5], clock);
    assert.equal((await customerRow(plain.id))[5], '');
  });
});

describe('status and currency rules', () => {
  it('suspends and reactivates as before', async () => {
    const c = await createCustomer(api, A.secret, { name: 'Sleeper' });
    assert.equal((await update(A.secret, c.id, { status: 'suspended' })).json.status, 'suspended');
    assert.equal((await update(A.secret, c.id, { status: 'active' })).json.status, 'active');
  });

  it('closing is final: every later update is 409 customer_closed and changes nothing', async () => {
    const c = await createCustomer(api, A.secret, { name: 'Leaving', currency: 'usd' });
    const closed = await update(A.secret, c.id, { status: 'closed' });
    assert.equal(closed.status, 200, closed.text);
    assert.equal(closed.json.status, 'closed');
    const before = await customerRow(c.id);
    for (const body of [{ status: 'active' }, { name: 'Back again' }, { status: 'closed' }, { metadata: { a: 'b' } }, { currency: 'eur' }]) {
      const res = await update(A.secret, c.id, body);
      assertError(res, 409, 'customer_closed', { param: null, type: 'invalid_request_error' });
    }
    assert.deepEqual(await customerRow(c.id), before);
    const got = await api.get('/v1/customers/{id}', { params: { id: c.id }, token: A.secret });
    assert.deepEqual(got.json, closed.json);
  });

  it('closing a customer with a subscription that is not canceled is 409 customer_has_subscriptions', async () => {
    const c = await createCustomer(api, A.secret, { name: 'Subscriber', currency: 'usd' });
    const sub = await insertSubscription(A, c.id, 'active');
    assertError(await update(A.secret, c.id, { status: 'closed' }), 409, 'customer_has_subscriptions', { param: 'status' });
    assert.equal((await customerRow(c.id))[0], 'active');
    for (const status of ['past_due', 'trialing', 'paused', 'unpaid', 'incomplete']) {
      await superuser(`UPDATE subscriptions SET status = ${lit(status)} WHERE id = ${lit(sub)}`);
      assertError(await update(A.secret, c.id, { status: 'closed', name: 'Closing' }), 409, 'customer_has_subscriptions', { param: 'status' });
    }
    assert.equal((await customerRow(c.id))[6], 'Subscriber', 'a refused update changes no field');
    // Other changes go through while the subscription lives.
    const renamed = await update(A.secret, c.id, { name: 'Still subscribed' });
    assert.equal(renamed.status, 200, renamed.text);
    await superuser(`UPDATE subscriptions SET status = 'canceled', current_period_start = NULL, current_period_end = NULL WHERE id = ${lit(sub)}`);
    const closed = await update(A.secret, c.id, { status: 'closed' });
    assert.equal(closed.status, 200, closed.text);
    assert.equal(closed.json.status, 'closed');
  });

  it('a customer with any subscription keeps its currency: 409 currency_locked; the same currency is no change', async () => {
    const c = await createCustomer(api, A.secret, { name: 'Locked', currency: 'usd' });
    const free = await update(A.secret, c.id, { currency: 'cad' });
    assert.equal(free.json.currency, 'cad', 'without subscriptions the currency may change');
    await insertSubscription(A, c.id, 'canceled', 'cad');
    assertError(await update(A.secret, c.id, { currency: 'eur' }), 409, 'currency_locked', { param: 'currency' });
    assertError(await update(A.secret, c.id, { currency: 'usd', name: 'Renamed' }), 409, 'currency_locked', { param: 'currency' });
    assert.deepEqual((await customerRow(c.id)).slice(1, 2), ['cad']);
    assert.equal((await customerRow(c.id))[6], 'Locked');
    const same = await update(A.secret, c.id, { currency: 'CAD', name: 'Same money' });
    assert.equal(same.status, 200, same.text);
    assert.equal(same.json.currency, 'cad');
    assert.equal(same.json.name, 'Same money');
  });

  it('a customer without a currency that has a subscription cannot take one either', async () => {
    const c = await createCustomer(api, A.secret, { name: 'No currency yet' });
    await insertSubscription(A, c.id, 'active', 'usd');
    assertError(await update(A.secret, c.id, { currency: 'usd' }), 409, 'currency_locked', { param: 'currency' });
    assert.equal((await customerRow(c.id))[1], '', 'the currency is still unset (psql shows NULL as empty)');
  });
});

describe('balance transactions', () => {
  let customer;
  let txns;

  before(async () => {
    customer = await createCustomer(api, A.secret, { name: 'Ledger', currency: 'usd' });
    txns = [];
    const entries = [
      ['credit_note', -2000, -2000, 'Unused time on Pro'],
      ['applied_to_invoice', 1500, -500, 'Applied to an invoice'],
      ['adjustment', 500, 0, null],
    ];
    let ms = Date.parse('2026-01-01T00:00:00Z');
    for (const [type, amount, ending, description] of entries) {
      const id = newId('cbtxn', ms);
      ms += 60000;
      await superuser(`INSERT INTO customer_balance_transactions
          (tenant_id, id, customer_id, type, amount, currency, ending_balance, description, created_at)
        VALUES (${lit(A.tenant.id)}, ${lit(id)}, ${lit(customer.id)}, ${lit(type)}, ${amount}, 'usd', ${ending},
          ${description === null ? 'NULL' : lit(description)}, to_timestamp(${ms / 1000}))`);
      txns.push({ id, type, amount, ending_balance: ending, description });
    }
    txns.reverse();
  });

  function listFor(id, query) {
    return api.get('/v1/customers/{id}/balance_transactions', { params: { id }, token: A.secret, query });
  }

  it('lists the customer\'s ledger newest first, each entry in full', async () => {
    const res = await listFor(customer.id);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'list');
    assert.equal(res.json.url, `/v1/customers/${customer.id}/balance_transactions`);
    assert.equal(res.json.has_more, false);
    assert.deepEqual(res.json.data.map((t) => [t.id, t.type, t.amount, t.ending_balance, t.description]),
      txns.map((t) => [t.id, t.type, t.amount, t.ending_balance, t.description]));
    for (const t of res.json.data) {
      assert.equal(t.object, 'customer_balance_transaction');
      assert.equal(t.customer, customer.id);
      assert.equal(t.currency, 'usd');
      assert.equal(t.invoice, null);
    }
  });

  it('pages with limit and starting_after', async () => {
    const first = await listFor(customer.id, { limit: 2 });
    assert.deepEqual(first.json.data.map((t) => t.id), [txns[0].id, txns[1].id]);
    assert.equal(first.json.has_more, true);
    const rest = await listFor(customer.id, { limit: 2, starting_after: txns[1].id });
    assert.deepEqual(rest.json.data.map((t) => t.id), [txns[2].id]);
    assert.equal(rest.json.has_more, false);
  });

  it('a customer with no transactions has an empty list', async () => {
    const c = await createCustomer(api, A.secret, { name: 'No ledger' });
    const res = await listFor(c.id);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.data, []);
    assert.equal(res.json.has_more, false);
  });

  it('a customer that does not exist, or is another tenant\'s, is 404', async () => {
    assertError(await listFor(newId('cus')), 404, 'resource_missing', { param: 'id' });
    assertError(await listFor('cus_nope'), 404, 'resource_missing', { param: 'id' });
    const res = await api.get('/v1/customers/{id}/balance_transactions', { params: { id: customer.id }, token: B.secret });
    assertError(res, 404, 'resource_missing', { param: 'id' });
  });

  it('refuses bad query parameters', async () => {
    assertError(await listFor(customer.id, { starting_after: customer.id }), 400, 'parameter_invalid', { param: 'starting_after' });
    assertError(await listFor(customer.id, { limit: 101 }), 400, 'parameter_invalid', { param: 'limit' });
    assertError(await listFor(customer.id, { type: 'credit_note' }), 400, 'parameter_unknown', { param: 'type' });
  });
});
