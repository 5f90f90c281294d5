// The catalog: products (create, update, archive and restore, list filters,
// feature validation) and prices (per-unit and tiered creation answered
// normalised, every validation error with its param, immutability in the
// api and in the database, the product's existence and state judged by the
// worker, list filters), and both kept apart between tenants.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createPrice, createProduct, createTenant } from './lib/billow.mjs';
import { asRole, lit, superuser, superValue } from './lib/db.mjs';
import { DATABASE_URL, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { ID_RE, newId, tag } from './lib/util.mjs';

const S = slot(23);
const stack = new Stack('catalog', S);
let api;
let A;
let B;

const TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  stack.startWorker('domain');
  A = await createTenant(api);
  B = await createTenant(api);
});

after(async () => {
  await stack.stopAll();
});

// POST with Prefer: wait, so the answer is the job's outcome.
function postWait(route, token, json, params) {
  return api.post(route, { token, params, json, headers: { Prefer: 'wait=20' } });
}

async function countRows(table, tenant) {
  return Number(await superValue(`SELECT count(*) FROM ${table} WHERE tenant_id = ${lit(tenant.tenant.id)}`));
}

describe('products', () => {
  it('creates a product with every field and reads it back the same', async () => {
    const body = {
      name: 'Pro',
      description: 'For growing teams.',
      features: { seats: 10, sso: true, audit_log: false, api_calls: 1000000000000 },
      metadata: { tier: '2' },
    };
    const res = await postWait('/v1/products', A.secret, body);
    assert.equal(res.status, 201, res.text);
    const p = res.json;
    assert.match(p.id, ID_RE('prod'));
    assert.equal(p.object, 'product');
    assert.equal(p.name, 'Pro');
    assert.equal(p.description, 'For growing teams.');
    assert.deepEqual(p.features, body.features);
    assert.deepEqual(p.metadata, { tier: '2' });
    assert.equal(p.active, true);
    assert.match(p.created_at, TIME_RE);
    assert.equal(p.updated_at, p.created_at);
    const got = await api.get('/v1/products/{id}', { params: { id: p.id }, token: A.secret });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, p);
    const rows = await superuser(`SELECT tenant_id, name, features->>'seats', active FROM products WHERE id = ${lit(p.id)}`);
    assert.deepEqual(rows, [[A.tenant.id, 'Pro', '10', 't']]);
  });

  it('a product with only a name has no description, no features, no metadata and is active', async () => {
    const p = await createProduct(api, A.secret, { name: 'Add-on' });
    assert.equal(p.description, null);
    assert.deepEqual(p.features, {});
    assert.deepEqual(p.metadata, {});
    assert.equal(p.active, true);
  });

  it('active: false on creation makes an archived product', async () => {
    const p = await createProduct(api, A.secret, { name: 'Legacy', active: false });
    assert.equal(p.active, false);
  });

  const INVALID_CREATES = [
    ['no name', {}, 'parameter_missing', 'name'],
    ['a name that is not a string', { name: 7 }, 'parameter_invalid', 'name'],
    ['an empty name', { name: '' }, 'parameter_invalid', 'name'],
    ['a name over 256 bytes', { name: 'n'.repeat(257) }, 'parameter_invalid', 'name'],
    ['a description over 4096 bytes', { name: 'P', description: 'd'.repeat(4097) }, 'parameter_invalid', 'description'],
    ['a null description on creation', { name: 'P', description: null }, 'parameter_invalid', 'description'],
    ['features that are not an object', { name: 'P', features: ['sso'] }, 'parameter_invalid', 'features'],
    ['a feature key with capitals', { name: 'P', features: { Seats: 1 } }, 'parameter_invalid', 'features[Seats]'],
    ['a feature key starting with a digit', { name: 'P', features: { '2fa': true } }, 'parameter_invalid', 'features[2fa]'],
    ['a feature key over 64 characters', { name: 'P', features: { ['k'.repeat(65)]: true } }, 'parameter_invalid', `features[${'k'.repeat(50)}]`],
    ['a feature that is a string', { name: 'P', features: { seats: '10' } }, 'parameter_invalid', 'features[seats]'],
    ['a negative feature limit', { name: 'P', features: { seats: -1 } }, 'parameter_invalid', 'features[seats]'],
    ['a feature limit over 10^12', { name: 'P', features: { seats: 1000000000001 } }, 'parameter_invalid', 'features[seats]'],
    ['a fractional feature limit', { name: 'P', features: { seats: 1.5 } }, 'parameter_invalid', 'features[seats]'],
    ['a null feature', { name: 'P', features: { sso: null } }, 'parameter_invalid', 'features[sso]'],
    ['51 features', { name: 'P', features: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`f${i}`, true])) }, 'parameter_invalid', 'features'],
    ['metadata with a number', { name: 'P', metadata: { n: 1 } }, 'parameter_invalid', 'metadata[n]'],
    ['active that is not a boolean', { name: 'P', active: 'yes' }, 'parameter_invalid', 'active'],
    ['an unknown field', { name: 'P', price: 100 }, 'parameter_unknown', 'price'],
  ];

  it('refuses every invalid creation with its code and param, and creates nothing', async () => {
    const before = await countRows('products', A);
    for (const [what, body, code, param] of INVALID_CREATES) {
      const res = await postWait('/v1/products', A.secret, body);
      assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
      assertError(res, 400, code, { param, type: 'invalid_request_error' });
    }
    assert.equal(await countRows('products', A), before);
  });

  it('50 features, each a boolean or a limit up to 10^12, are accepted', async () => {
    const features = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f_${i}`, i % 2 ? true : 1000000000000]));
    const p = await createProduct(api, A.secret, { features });
    assert.deepEqual(p.features, features);
  });

  it('updates name, description, features and metadata; null clears the description and empties the features', async () => {
    const p = await createProduct(api, A.secret, {
      name: 'Team',
      description: 'Old words',
      features: { seats: 5, sso: false },
      metadata: { keep: 'yes', drop: 'soon' },
    });
    const res = await postWait('/v1/products/{id}', A.secret, {
      name: 'Team 2',
      description: null,
      features: { seats: 25 },
      metadata: { drop: '', added: 'new' },
    }, { id: p.id });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, p.id);
    assert.equal(res.json.name, 'Team 2');
    assert.equal(res.json.description, null);
    assert.deepEqual(res.json.features, { seats: 25 }, 'features are replaced whole');
    assert.deepEqual(res.json.metadata, { keep: 'yes', added: 'new' });
    assert.equal(res.json.created_at, p.created_at);
    assert.ok(res.json.updated_at >= p.updated_at);

    const cleared = await postWait('/v1/products/{id}', A.secret, { features: null }, { id: p.id });
    assert.equal(cleared.status, 200, cleared.text);
    assert.deepEqual(cleared.json.features, {});
    assert.equal(cleared.json.name, 'Team 2', 'fields not named stay');
    const got = await api.get('/v1/products/{id}', { params: { id: p.id }, token: A.secret });
    assert.deepEqual(got.json, cleared.json);
  });

  it('archives with active: false and restores with active: true', async () => {
    const p = await createProduct(api, A.secret);
    const archived = await postWait('/v1/products/{id}', A.secret, { active: false }, { id: p.id });
    assert.equal(archived.status, 200, archived.text);
    assert.equal(archived.json.active, false);
    assert.equal(await superValue(`SELECT active FROM products WHERE id = ${lit(p.id)}`), 'f');
    const restored = await postWait('/v1/products/{id}', A.secret, { active: true }, { id: p.id });
    assert.equal(restored.json.active, true);
  });

  it('refuses invalid updates, and a product that does not exist is 404 before any job', async () => {
    const p = await createProduct(api, A.secret, { name: 'Stable', features: { seats: 3 } });
    const cases = [
      [{}, 400, 'parameter_missing', null],
      [{ name: null }, 400, 'parameter_invalid', 'name'],
      [{ features: { Bad: true } }, 400, 'parameter_invalid', 'features[Bad]'],
      [{ active: 0 }, 400, 'parameter_invalid', 'active'],
      [{ nickname: 'x' }, 400, 'parameter_unknown', 'nickname'],
    ];
    for (const [body, status, code, param] of cases) {
      assertError(await postWait('/v1/products/{id}', A.secret, body, { id: p.id }), status, code, { param });
    }
    const got = await api.get('/v1/products/{id}', { params: { id: p.id }, token: A.secret });
    assert.deepEqual(got.json, p, 'the refused updates changed nothing');

    // Without Prefer: wait a job would be answered 202: the 404 proves the
    // route looked the product up before enqueueing anything.
    const missing = newId('prod');
    assertError(await api.post('/v1/products/{id}', { params: { id: missing }, token: A.secret, json: { name: 'Ghost' } }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/products/{id}', { params: { id: missing }, token: A.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/products/{id}', { params: { id: 'prod_nope' }, token: A.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/products/{id}', { params: { id: newId('price') }, token: A.secret }), 404, 'resource_missing', { param: 'id' });
  });

  it('lists newest first, filters by active and pages with starting_after', async () => {
    const T = await createTenant(api);
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await createProduct(api, T.secret, { name: `P${i}`, active: i % 2 === 0 }));
    const newest = [...made].reverse();
    const all = await api.get('/v1/products', { token: T.secret });
    assert.equal(all.status, 200, all.text);
    assert.equal(all.json.url, '/v1/products');
    assert.deepEqual(all.json.data, newest);
    assert.equal(all.json.has_more, false);

    const active = await api.get('/v1/products', { token: T.secret, query: { active: 'true' } });
    assert.deepEqual(active.json.data.map((p) => p.id), newest.filter((p) => p.active).map((p) => p.id));
    const archived = await api.get('/v1/products', { token: T.secret, query: { active: 'false' } });
    assert.deepEqual(archived.json.data.map((p) => p.id), newest.filter((p) => !p.active).map((p) => p.id));

    const page1 = await api.get('/v1/products', { token: T.secret, query: { limit: 2 } });
    assert.deepEqual(page1.json.data.map((p) => p.id), newest.slice(0, 2).map((p) => p.id));
    assert.equal(page1.json.has_more, true);
    const page2 = await api.get('/v1/products', { token: T.secret, query: { limit: 2, starting_after: page1.json.data[1].id } });
    assert.deepEqual(page2.json.data.map((p) => p.id), newest.slice(2, 4).map((p) => p.id));
    const activePage = await api.get('/v1/products', { token: T.secret, query: { active: 'true', limit: 1, starting_after: newest[0].id } });
    assert.deepEqual(activePage.json.data.map((p) => p.id), [newest[2].id]);
    assert.equal(activePage.json.has_more, true);

    assertError(await api.get('/v1/products', { token: T.secret, query: { active: 'yes' } }), 400, 'parameter_invalid', { param: 'active' });
    assertError(await api.get('/v1/products', { token: T.secret, query: { starting_after: newId('cus') } }), 400, 'parameter_invalid', { param: 'starting_after' });
    assertError(await api.get('/v1/products', { token: T.secret, query: { limit: 0 } }), 400, 'parameter_invalid', { param: 'limit' });
    assertError(await api.get('/v1/products', { token: T.secret, query: { currency: 'usd' } }), 400, 'parameter_unknown', { param: 'currency' });
  });
});

describe('prices', () => {
  let product;
  let archivedProduct;

  before(async () => {
    product = await createProduct(api, A.secret, { name: 'Priced' });
    archivedProduct = await createProduct(api, A.secret, { name: 'Gone', active: false });
  });

  it('creates a per-unit price, answered normalised, and reads it back the same', async () => {
    const res = await postWait('/v1/prices', A.secret, {
      product: product.id,
      currency: 'USD',
      unit_amount: 2000,
      recurring: { interval: 'month' },
    });
    assert.equal(res.status, 201, res.text);
    const p = res.json;
    assert.match(p.id, ID_RE('price'));
    assert.deepEqual({ ...p, id: undefined, created_at: undefined, updated_at: undefined }, {
      id: undefined,
      object: 'price',
      product: product.id,
      currency: 'usd',
      billing_scheme: 'per_unit',
      unit_amount: 2000,
      tiers_mode: null,
      tiers: null,
      recurring: { interval: 'month', interval_count: 1, trial_period_days: null },
      nickname: null,
      metadata: {},
      active: true,
      created_at: undefined,
      updated_at: undefined,
    });
    assert.match(p.created_at, TIME_RE);
    const got = await api.get('/v1/prices/{id}', { params: { id: p.id }, token: A.secret });
    assert.deepEqual(got.json, p);
    const rows = await superuser(`SELECT tenant_id, product_id, currency, billing_scheme, unit_amount, tiers IS NULL, interval, interval_count FROM prices WHERE id = ${lit(p.id)}`);
    assert.deepEqual(rows, [[A.tenant.id, product.id, 'usd', 'per_unit', '2000', 't', 'month', '1']]);
  });

  it('a zero-decimal currency, a nickname, metadata, a trial and interval_count are kept', async () => {
    const p = await createPrice(api, A.secret, {
      product: product.id,
      currency: 'jpy',
      unit_amount: 1500,
      recurring: { interval: 'week', interval_count: 2, trial_period_days: 14 },
      nickname: 'Fortnightly',
      metadata: { region: 'jp' },
    });
    assert.equal(p.currency, 'jpy');
    assert.equal(p.unit_amount, 1500);
    assert.deepEqual(p.recurring, { interval: 'week', interval_count: 2, trial_period_days: 14 });
    assert.equal(p.nickname, 'Fortnightly');
    assert.deepEqual(p.metadata, { region: 'jp' });
  });

  it('creates a graduated tiered price with every tier normalised', async () => {
    const p = await createPrice(api, A.secret, {
      product: product.id,
      currency: 'eur',
      billing_scheme: 'tiered',
      tiers_mode: 'graduated',
      tiers: [
        { up_to: 10, unit_amount: 500 },
        { up_to: 100, unit_amount: 400, flat_amount: 1000 },
        { up_to: 'inf', flat_amount: 9900 },
      ],
      recurring: { interval: 'year', interval_count: 3 },
    });
    assert.equal(p.billing_scheme, 'tiered');
    assert.equal(p.tiers_mode, 'graduated');
    assert.equal(p.unit_amount, null);
    assert.deepEqual(p.tiers, [
      { up_to: 10, unit_amount: 500, flat_amount: 0 },
      { up_to: 100, unit_amount: 400, flat_amount: 1000 },
      { up_to: 'inf', unit_amount: 0, flat_amount: 9900 },
    ]);
    assert.deepEqual(p.recurring, { interval: 'year', interval_count: 3, trial_period_days: null });
    const stored = await superValue(`SELECT tiers::text FROM prices WHERE id = ${lit(p.id)}`);
    assert.deepEqual(JSON.parse(stored), p.tiers);
  });

  it('creates a volume tiered price with one unbounded tier', async () => {
    const p = await createPrice(api, A.secret, {
      product: product.id,
      billing_scheme: 'tiered',
      tiers_mode: 'volume',
      tiers: [{ up_to: 'inf', unit_amount: 700 }],
      recurring: { interval: 'day', interval_count: 1095 },
    });
    assert.equal(p.tiers_mode, 'volume');
    assert.deepEqual(p.tiers, [{ up_to: 'inf', unit_amount: 700, flat_amount: 0 }]);
    assert.equal(p.recurring.interval_count, 1095);
  });

  const base = () => ({ product: product.id, currency: 'usd', unit_amount: 100, recurring: { interval: 'month' } });
  const tiered = (tiers, extra = {}) => ({ ...base(), unit_amount: undefined, billing_scheme: 'tiered', tiers_mode: 'graduated', tiers, ...extra });
  // A function: the product exists only once the suite's before() has run.
  const invalidPrices = () => [
    ['no product', { ...base(), product: undefined }, 'parameter_missing', 'product'],
    ['a product that is not a product id', { ...base(), product: 'prod_123' }, 'parameter_invalid', 'product'],
    ['a customer id as product', { ...base(), product: newId('cus') }, 'parameter_invalid', 'product'],
    ['no currency', { ...base(), currency: undefined }, 'parameter_missing', 'currency'],
    ['an unknown currency', { ...base(), currency: 'xyz' }, 'parameter_invalid', 'currency'],
    ['a currency that is not a string', { ...base(), currency: 840 }, 'parameter_invalid', 'currency'],
    ['a four-letter currency', { ...base(), currency: 'usdd' }, 'parameter_invalid', 'currency'],
    ['per unit without unit_amount', { ...base(), unit_amount: undefined }, 'parameter_invalid', 'unit_amount'],
    ['a negative unit_amount', { ...base(), unit_amount: -1 }, 'parameter_invalid', 'unit_amount'],
    ['a fractional unit_amount', { ...base(), unit_amount: 9.99 }, 'parameter_invalid', 'unit_amount'],
    ['a unit_amount over 10^15', { ...base(), unit_amount: 1000000000000001 }, 'parameter_invalid', 'unit_amount'],
    ['an unknown billing_scheme', { ...base(), billing_scheme: 'flat' }, 'parameter_invalid', 'billing_scheme'],
    ['per unit with tiers', { ...base(), tiers: [{ up_to: 'inf', unit_amount: 1 }] }, 'parameter_invalid', 'tiers'],
    ['per unit with tiers_mode', { ...base(), tiers_mode: 'volume' }, 'parameter_invalid', 'tiers_mode'],
    ['tiered with unit_amount', tiered([{ up_to: 'inf', unit_amount: 1 }], { unit_amount: 5 }), 'parameter_invalid', 'unit_amount'],
    ['tiered without tiers_mode', tiered([{ up_to: 'inf', unit_amount: 1 }], { tiers_mode: undefined }), 'parameter_invalid', 'tiers_mode'],
    ['an unknown tiers_mode', tiered([{ up_to: 'inf', unit_amount: 1 }], { tiers_mode: 'stairstep' }), 'parameter_invalid', 'tiers_mode'],
    ['tiered without tiers', tiered(undefined), 'parameter_invalid', 'tiers'],
    ['no tiers at all', tiered([]), 'parameter_invalid', 'tiers'],
    ['26 tiers', tiered([...Array.from({ length: 25 }, (_, i) => ({ up_to: i + 1, unit_amount: 1 })), { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers'],
    ['a tier that is not an object', tiered([5, { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers[0]'],
    ['tiers out of order', tiered([{ up_to: 100, unit_amount: 2 }, { up_to: 50, unit_amount: 1 }, { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers[1].up_to'],
    ['equal bounds', tiered([{ up_to: 10, unit_amount: 2 }, { up_to: 10, unit_amount: 1 }, { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers[1].up_to'],
    ['a last tier that is bounded', tiered([{ up_to: 10, unit_amount: 2 }, { up_to: 20, unit_amount: 1 }]), 'parameter_invalid', 'tiers[1].up_to'],
    ['"inf" before the last tier', tiered([{ up_to: 'inf', unit_amount: 2 }, { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers[0].up_to'],
    ['a tier without up_to', tiered([{ unit_amount: 2 }, { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers[0].up_to'],
    ['an up_to of zero', tiered([{ up_to: 0, unit_amount: 2 }, { up_to: 'inf', unit_amount: 1 }]), 'parameter_invalid', 'tiers[0].up_to'],
    ['a tier with no amount', tiered([{ up_to: 5, unit_amount: 2 }, { up_to: 'inf' }]), 'parameter_invalid', 'tiers[1]'],
    ['a negative tier unit_amount', tiered([{ up_to: 'inf', unit_amount: -2 }]), 'parameter_invalid', 'tiers[0].unit_amount'],
    ['a fractional flat_amount', tiered([{ up_to: 3, unit_amount: 2 }, { up_to: 'inf', flat_amount: 0.5 }]), 'parameter_invalid', 'tiers[1].flat_amount'],
    ['no recurring', { ...base(), recurring: undefined }, 'parameter_missing', 'recurring'],
    ['a recurring that is a string', { ...base(), recurring: 'monthly' }, 'parameter_invalid', 'recurring'],
    ['a recurring without interval', { ...base(), recurring: { interval_count: 1 } }, 'parameter_missing', 'recurring.interval'],
    ['an unknown interval', { ...base(), recurring: { interval: 'fortnight' } }, 'parameter_invalid', 'recurring.interval'],
    ['an interval_count of 0', { ...base(), recurring: { interval: 'month', interval_count: 0 } }, 'parameter_invalid', 'recurring.interval_count'],
    ['37 months', { ...base(), recurring: { interval: 'month', interval_count: 37 } }, 'parameter_invalid', 'recurring.interval_count'],
    ['4 years', { ...base(), recurring: { interval: 'year', interval_count: 4 } }, 'parameter_invalid', 'recurring.interval_count'],
    ['157 weeks', { ...base(), recurring: { interval: 'week', interval_count: 157 } }, 'parameter_invalid', 'recurring.interval_count'],
    ['1096 days', { ...base(), recurring: { interval: 'day', interval_count: 1096 } }, 'parameter_invalid', 'recurring.interval_count'],
    ['an interval_count as text', { ...base(), recurring: { interval: 'month', interval_count: '2' } }, 'parameter_invalid', 'recurring.interval_count'],
    ['a huge interval_count', { ...base(), recurring: { interval: 'day', interval_count: 4294967297 } }, 'parameter_invalid', 'recurring.interval_count'],
    ['a trial of 0 days', { ...base(), recurring: { interval: 'month', trial_period_days: 0 } }, 'parameter_invalid', 'recurring.trial_period_days'],
    ['a trial of 731 days', { ...base(), recurring: { interval: 'month', trial_period_days: 731 } }, 'parameter_invalid', 'recurring.trial_period_days'],
    ['an unknown recurring member', { ...base(), recurring: { interval: 'month', usage_type: 'metered' } }, 'parameter_unknown', 'recurring.usage_type'],
    ['a nickname over 256 bytes', { ...base(), nickname: 'n'.repeat(257) }, 'parameter_invalid', 'nickname'],
    ['metadata that is not an object', { ...base(), metadata: 'x' }, 'parameter_invalid', 'metadata'],
    ['active that is not a boolean', { ...base(), active: 'true' }, 'parameter_invalid', 'active'],
    ['an unknown field', { ...base(), lookup_key: 'pro' }, 'parameter_unknown', 'lookup_key'],
  ];

  it('refuses every invalid price with its code and param, and creates nothing', async () => {
    const before = await countRows('prices', A);
    for (const [what, body, code, param] of invalidPrices()) {
      const res = await postWait('/v1/prices', A.secret, body);
      assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
      assertError(res, 400, code, { param, type: 'invalid_request_error' });
      assert.ok(res.json.error.message.length > 10, `${what}: the message explains (${res.json.error.message})`);
    }
    assert.equal(await countRows('prices', A), before);
  });

  it('the longest intervals and trial are accepted', async () => {
    for (const recurring of [
      { interval: 'month', interval_count: 36 },
      { interval: 'week', interval_count: 156 },
      { interval: 'year', interval_count: 3, trial_period_days: 730 },
    ]) {
      const p = await createPrice(api, A.secret, { product: product.id, recurring });
      assert.deepEqual(p.recurring, { trial_period_days: null, ...recurring });
    }
  });

  it('a product the tenant does not have is 404 with param product; nothing is created', async () => {
    const before = await countRows('prices', A);
    const res = await postWait('/v1/prices', A.secret, { ...base(), product: newId('prod') });
    assertError(res, 404, 'resource_missing', { param: 'product' });
    assert.equal(await countRows('prices', A), before);
  });

  it('an archived product is 409 product_archived; once restored it takes prices again', async () => {
    const before = await countRows('prices', A);
    const res = await postWait('/v1/prices', A.secret, { ...base(), product: archivedProduct.id });
    assertError(res, 409, 'product_archived', { param: 'product', type: 'invalid_request_error' });
    assert.equal(await countRows('prices', A), before);
    const restored = await postWait('/v1/products/{id}', A.secret, { active: true }, { id: archivedProduct.id });
    assert.equal(restored.status, 200, restored.text);
    const p = await createPrice(api, A.secret, { product: archivedProduct.id });
    assert.equal(p.product, archivedProduct.id);
    const again = await postWait('/v1/products/{id}', A.secret, { active: false }, { id: archivedProduct.id });
    assert.equal(again.json.active, false);
    const got = await api.get('/v1/prices/{id}', { params: { id: p.id }, token: A.secret });
    assert.equal(got.json.active, true, 'archiving a product leaves its prices as they are');
  });

  it('a price\'s pricing fields cannot change: 400 naming the field, and the row stays', async () => {
    const p = await createPrice(api, A.secret, { product: product.id, unit_amount: 4200 });
    const attempts = [
      ['unit_amount', { unit_amount: 5000 }],
      ['currency', { currency: 'eur' }],
      ['billing_scheme', { billing_scheme: 'tiered' }],
      ['tiers_mode', { tiers_mode: 'volume' }],
      ['tiers', { tiers: [{ up_to: 'inf', unit_amount: 1 }] }],
      ['recurring', { recurring: { interval: 'year' } }],
      ['product', { product: archivedProduct.id }],
      ['unit_amount', { nickname: 'Cheaper', unit_amount: 1 }],
    ];
    for (const [param, body] of attempts) {
      const res = await postWait('/v1/prices/{id}', A.secret, body, { id: p.id });
      assertError(res, 400, 'parameter_invalid', { param });
      assert.match(res.json.error.message, /immutable/);
      assert.match(res.json.error.message, /[Cc]reate a new price/);
    }
    const got = await api.get('/v1/prices/{id}', { params: { id: p.id }, token: A.secret });
    assert.deepEqual(got.json, p);
  });

  it('the database refuses a direct change of a price\'s amount, even to billow_worker', async () => {
    const p = await createPrice(api, A.secret, { product: product.id, unit_amount: 300 });
    const set = `SET app.tenant_id = ${lit(A.tenant.id)};\n`;
    await assert.rejects(
      asRole(DATABASE_URL, `${set}UPDATE prices SET unit_amount = 1 WHERE id = ${lit(p.id)}`),
      /cannot change; create a new price/,
    );
    await assert.rejects(
      asRole(DATABASE_URL, `${set}UPDATE prices SET interval = 'year' WHERE id = ${lit(p.id)}`),
      /cannot change/,
    );
    // What may change does, through the same role.
    const rows = await asRole(DATABASE_URL, `${set}UPDATE prices SET nickname = 'direct' WHERE id = ${lit(p.id)} RETURNING unit_amount`);
    assert.deepEqual(rows, [['300']]);
    assert.equal(await superValue(`SELECT unit_amount FROM prices WHERE id = ${lit(p.id)}`), '300');
  });

  it('updates nickname (null clears), metadata (merged) and active', async () => {
    const p = await createPrice(api, A.secret, { product: product.id, nickname: 'Old', metadata: { a: '1', b: '2' } });
    const res = await postWait('/v1/prices/{id}', A.secret, { nickname: 'New', metadata: { a: '', c: '3' }, active: false }, { id: p.id });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.nickname, 'New');
    assert.deepEqual(res.json.metadata, { b: '2', c: '3' });
    assert.equal(res.json.active, false);
    assert.equal(res.json.unit_amount, p.unit_amount);
    const cleared = await postWait('/v1/prices/{id}', A.secret, { nickname: null, active: true }, { id: p.id });
    assert.equal(cleared.json.nickname, null);
    assert.equal(cleared.json.active, true);
    const got = await api.get('/v1/prices/{id}', { params: { id: p.id }, token: A.secret });
    assert.deepEqual(got.json, cleared.json);
  });

  it('refuses invalid price updates; a price that does not exist is 404', async () => {
    const p = await createPrice(api, A.secret, { product: product.id });
    assertError(await postWait('/v1/prices/{id}', A.secret, {}, { id: p.id }), 400, 'parameter_missing', { param: null });
    assertError(await postWait('/v1/prices/{id}', A.secret, { lookup_key: 'x' }, { id: p.id }), 400, 'parameter_unknown', { param: 'lookup_key' });
    assertError(await postWait('/v1/prices/{id}', A.secret, { nickname: '' }, { id: p.id }), 400, 'parameter_invalid', { param: 'nickname' });
    assertError(await postWait('/v1/prices/{id}', A.secret, { active: null }, { id: p.id }), 400, 'parameter_invalid', { param: 'active' });
    assertError(await api.post('/v1/prices/{id}', { params: { id: newId('price') }, token: A.secret, json: { nickname: 'x' } }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/prices/{id}', { params: { id: newId('price') }, token: A.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/prices/{id}', { params: { id: product.id }, token: A.secret }), 404, 'resource_missing', { param: 'id' });
  });

  it('lists newest first, filtered by product, active and currency, and pages', async () => {
    const T = await createTenant(api);
    const p1 = await createProduct(api, T.secret, { name: 'One' });
    const p2 = await createProduct(api, T.secret, { name: 'Two' });
    const made = [
      await createPrice(api, T.secret, { product: p1.id, currency: 'usd' }),
      await createPrice(api, T.secret, { product: p1.id, currency: 'eur' }),
      await createPrice(api, T.secret, { product: p2.id, currency: 'usd', active: false }),
      await createPrice(api, T.secret, { product: p2.id, currency: 'usd' }),
    ];
    const newest = [...made].reverse();
    const ids = (res) => {
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.url, '/v1/prices');
      return res.json.data.map((p) => p.id);
    };
    const list = (query) => api.get('/v1/prices', { token: T.secret, query });
    const all = await list({});
    assert.deepEqual(all.json.data, newest);
    assert.deepEqual(ids(await list({ product: p1.id })), [made[1].id, made[0].id]);
    assert.deepEqual(ids(await list({ currency: 'USD' })), [made[3].id, made[2].id, made[0].id]);
    assert.deepEqual(ids(await list({ currency: 'usd', active: 'true' })), [made[3].id, made[0].id]);
    assert.deepEqual(ids(await list({ active: 'false' })), [made[2].id]);
    assert.deepEqual(ids(await list({ product: p2.id, currency: 'eur' })), []);
    assert.deepEqual(ids(await list({ product: newId('prod') })), []);
    const page = await list({ limit: 1, starting_after: made[3].id, currency: 'usd' });
    assert.deepEqual(ids(page), [made[2].id]);
    assert.equal(page.json.has_more, true);

    assertError(await list({ currency: 'xyz' }), 400, 'parameter_invalid', { param: 'currency' });
    assertError(await list({ product: 'prod_1' }), 400, 'parameter_invalid', { param: 'product' });
    assertError(await list({ active: '1' }), 400, 'parameter_invalid', { param: 'active' });
    assertError(await list({ starting_after: p1.id }), 400, 'parameter_invalid', { param: 'starting_after' });
    assertError(await list({ interval: 'month' }), 400, 'parameter_unknown', { param: 'interval' });
  });
});

describe('tenant isolation of the catalog', () => {
  let productA;
  let priceA;
  let rowsA;

  before(async () => {
    productA = await createProduct(api, A.secret, { name: `Of A ${tag('x')}`, features: { seats: 1 } });
    priceA = await createPrice(api, A.secret, { product: productA.id });
    rowsA = await superuser(`SELECT row_to_json(p)::text FROM products p WHERE id = ${lit(productA.id)}
      UNION ALL SELECT row_to_json(p)::text FROM prices p WHERE id = ${lit(priceA.id)}`);
  });

  it('another tenant gets 404 for A\'s product and price, on reads and updates, and A\'s rows stay', async () => {
    assertError(await api.get('/v1/products/{id}', { params: { id: productA.id }, token: B.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await api.get('/v1/prices/{id}', { params: { id: priceA.id }, token: B.secret }), 404, 'resource_missing', { param: 'id' });
    assertError(await postWait('/v1/products/{id}', B.secret, { name: 'Taken', active: false }, { id: productA.id }), 404, 'resource_missing', { param: 'id' });
    assertError(await postWait('/v1/prices/{id}', B.secret, { active: false }, { id: priceA.id }), 404, 'resource_missing', { param: 'id' });
    const rows = await superuser(`SELECT row_to_json(p)::text FROM products p WHERE id = ${lit(productA.id)}
      UNION ALL SELECT row_to_json(p)::text FROM prices p WHERE id = ${lit(priceA.id)}`);
    assert.deepEqual(rows, rowsA);
  });

  it('another tenant cannot price A\'s product: 404 param product, and no row', async () => {
    const before = await countRows('prices', B);
    const res = await postWait('/v1/prices', B.secret, { product: productA.id, currency: 'usd', unit_amount: 1, recurring: { interval: 'month' } });
    assertError(res, 404, 'resource_missing', { param: 'product' });
    assert.equal(await countRows('prices', B), before);
    assert.equal(await superValue(`SELECT count(*) FROM prices WHERE product_id = ${lit(productA.id)}`), '1');
  });

  it('another tenant\'s lists hold none of A\'s products or prices', async () => {
    const products = await api.get('/v1/products', { token: B.secret, query: { limit: 100 } });
    const prices = await api.get('/v1/prices', { token: B.secret, query: { limit: 100, product: productA.id } });
    assert.equal(products.status, 200);
    assert.ok(!products.json.data.some((p) => p.id === productA.id));
    assert.deepEqual(prices.json.data, []);
    const mine = await api.get('/v1/prices', { token: A.secret, query: { product: productA.id } });
    assert.deepEqual(mine.json.data, [priceA]);
  });
});
