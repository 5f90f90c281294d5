// The Stripe fake (tests/fakes/stripe/server.mjs) against Stripe's published
// API: every endpoint Billow calls, idempotency, the test cards' outcomes,
// refunds, setup intents, signed and retried webhooks (checked with Stripe's
// own npm library), faults, parameter errors, and every request the fake
// received held against Stripe's OpenAPI spec by lib/stripe_spec.mjs.
//
// Needs no Billow process: the slot only gives the fake a port (the slot's
// api port + 200, clear of every file's api port). Each test uses its own
// sk_test_ key, so tests never see each other's objects.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Stripe from 'stripe';

import { LOG_DIR, ROOT, slot } from './lib/env.mjs';
import { checkRequest, findOperation, loadSpec } from './lib/stripe_spec.mjs';
import { until } from './lib/util.mjs';

const S = slot(28);
const PORT = S.port + 200;
const BASE = `http://127.0.0.1:${PORT}`;
const SERVER = path.join(ROOT, 'tests', 'fakes', 'stripe', 'server.mjs');
const stripeLib = new Stripe('sk_test_x');

let fake;
let fakeExit;
let receiver;
let receiverPort;
const received = []; // webhook delivery attempts: {path, headers, body, status}
const failNext = new Map(); // receiver path → how many deliveries to answer 500
const answers = []; // every JSON body the fake answered an API call with

const CLI_KEY = `sk_test_cli_${randomBytes(6).toString('hex')}`;
const ENV_KEY = `sk_test_env_${randomBytes(6).toString('hex')}`;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------
const newKey = (name) => `sk_test_${name}_${randomBytes(6).toString('hex')}`;

// Bracket-notation form encoding, as Stripe's libraries send it.
function encode(params, prefix = '', out = []) {
  for (const [k, v] of Object.entries(params)) {
    const name = prefix ? `${prefix}[${k}]` : k;
    if (Array.isArray(v)) v.forEach((x) => out.push(`${encodeURIComponent(`${name}[]`)}=${encodeURIComponent(x)}`));
    else if (v !== null && typeof v === 'object') encode(v, name, out);
    else out.push(`${encodeURIComponent(name)}=${encodeURIComponent(v)}`);
  }
  return out.join('&');
}

// One Stripe API call; every answer must carry a Request-Id.
async function api(key, method, urlPath, params = {}, { idem, body, headers = {} } = {}) {
  const query = method === 'GET' && Object.keys(params).length ? `?${encode(params)}` : '';
  const res = await fetch(`${BASE}${urlPath}${query}`, {
    method,
    headers: {
      ...(key ? { Authorization: `Bearer ${key}` } : {}),
      'Stripe-Version': '2024-06-20',
      ...(method === 'POST' ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
      ...(idem ? { 'Idempotency-Key': idem } : {}),
      ...headers,
    },
    body: method === 'POST' ? body ?? encode(params) : undefined,
  });
  const text = await res.text();
  assert.match(res.headers.get('request-id') || '', /^req_[A-Za-z0-9]+$/, `Request-Id on ${method} ${urlPath}`);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${urlPath} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  answers.push(json);
  return { status: res.status, headers: res.headers, json, text };
}

async function ctl(method, urlPath, body) {
  const res = await fetch(`${BASE}${urlPath}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json() };
}

// Asserts a Stripe-shaped error.
function assertError(res, status, type, code, param) {
  assert.equal(res.status, status, res.text);
  assert.ok(res.json.error, res.text);
  assert.equal(res.json.error.type, type, res.text);
  if (code !== undefined) assert.equal(res.json.error.code, code, res.text);
  if (param !== undefined) assert.equal(res.json.error.param, param, res.text);
  assert.equal(typeof res.json.error.message, 'string');
}

// Registers the receiver for key's events; returns the signing secret.
async function hook(key) {
  const secret = `whsec_${randomBytes(16).toString('hex')}`;
  const r = await ctl('POST', '/_fake/webhook_endpoints', { api_key: key, url: `http://127.0.0.1:${receiverPort}/hook/${key}`, secret });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return secret;
}

// The events delivered (answered 200) for key, each verified with Stripe's
// library.
function deliveredEvents(key, secret) {
  return received.filter((d) => d.path === `/hook/${key}` && d.status === 200).map((d) => stripeLib.webhooks.constructEvent(d.body, d.headers['stripe-signature'], secret));
}

async function waitForEvents(key, secret, types) {
  return until(`webhook events ${types.join(', ')} for ${key}`, () => {
    const got = deliveredEvents(key, secret).map((e) => e.type);
    return types.every((t) => got.includes(t)) ? deliveredEvents(key, secret) : undefined;
  }, { timeoutMs: 15000, describe: () => JSON.stringify(deliveredEvents(key, secret).map((e) => e.type)) });
}

async function newCustomer(key, extra = {}) {
  const r = await api(key, 'POST', '/v1/customers', { email: 'ada@example.com', name: 'Ada', ...extra }, { idem: `billow:cus:${randomBytes(4).toString('hex')}` });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// A PaymentIntent as Billow's charger creates it (workers/kind_charger.c).
function chargeParams(customer, paymentMethod, amount = 2000) {
  return {
    amount, currency: 'usd', customer, payment_method: paymentMethod, confirm: 'true', off_session: 'true',
    description: 'Invoice INV-0001', metadata: { billow_tenant: 'ten_1', billow_invoice: 'inv_1', billow_attempt: '1' },
  };
}

// ---------------------------------------------------------------------------
// The fake and the webhook receiver
// ---------------------------------------------------------------------------
before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const n = failNext.get(req.url) || 0;
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status: n > 0 ? 500 : 200 });
      if (n > 0) {
        failNext.set(req.url, n - 1);
        res.writeHead(500).end('{"error":"receiver told to fail"}');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"received":true}');
      }
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverPort = receiver.address().port;

  fs.mkdirSync(LOG_DIR, { recursive: true });
  const log = fs.openSync(path.join(LOG_DIR, 'stripe_fake-fake.log'), 'w');
  fake = spawn(process.execPath, [SERVER, '--port', String(PORT), '--webhook', `${CLI_KEY}=http://127.0.0.1:${receiverPort}/hook/${CLI_KEY}|whsec_cli`], {
    stdio: ['ignore', 'pipe', log],
    env: { ...process.env, STRIPE_FAKE_WEBHOOKS: `${ENV_KEY}=http://127.0.0.1:${receiverPort}/hook/${ENV_KEY}|whsec_env` },
  });
  fakeExit = new Promise((resolve) => fake.on('exit', (code, signal) => resolve({ code, signal })));
  let out = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the fake did not start: ${out}`)), 10000);
    fake.stdout.on('data', (c) => {
      out += c;
      fs.writeSync(log, c);
      if (out.includes(`stripe-fake listening on 127.0.0.1:${PORT}\n`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    fake.on('exit', (code) => reject(new Error(`the fake exited (${code}): ${out}`)));
  });
});

after(async () => {
  if (fake && fake.exitCode === null) {
    const t0 = Date.now();
    fake.kill('SIGTERM');
    const { code, signal } = await fakeExit;
    assert.equal(signal, null, 'the fake exits by itself on SIGTERM');
    assert.equal(code, 0, 'the fake exits 0 on SIGTERM');
    assert.ok(Date.now() - t0 < 3000, 'the fake exits promptly on SIGTERM');
  }
  await new Promise((resolve) => receiver?.close(resolve));
});

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------
describe('the Stripe fake', () => {
  it('refuses requests without a test secret key (401, Stripe-shaped)', async () => {
    assertError(await api(null, 'GET', '/v1/customers/cus_x'), 401, 'invalid_request_error');
    assertError(await api('sk_live_abcdef123456', 'POST', '/v1/customers', {}), 401, 'invalid_request_error');
    assertError(await api('pk_test_abcdef', 'POST', '/v1/customers', {}), 401, 'invalid_request_error');
    assertError(await api(null, 'POST', '/v1/customers', {}, { headers: { Authorization: 'Token sk_test_abc' } }), 401, 'invalid_request_error');
  });

  it('creates and reads customers, namespaced per key, brackets decoded even when percent-encoded', async () => {
    const key = newKey('cus');
    const body = 'email=ada%40example.com&name=Ada&metadata%5Bbillow_customer%5D=cus_1&metadata[billow_tenant]=ten_1&address%5Bline1%5D=1+Main+St&address[country]=FR';
    const r = await api(key, 'POST', '/v1/customers', {}, { body, idem: 'billow:cus:cus_1' });
    assert.equal(r.status, 200, r.text);
    const c = r.json;
    assert.match(c.id, /^cus_[A-Za-z0-9]+$/);
    assert.equal(c.object, 'customer');
    assert.equal(c.livemode, false);
    assert.equal(typeof c.created, 'number');
    assert.equal(c.email, 'ada@example.com');
    assert.deepEqual(c.metadata, { billow_customer: 'cus_1', billow_tenant: 'ten_1' });
    assert.deepEqual(c.address, { city: null, country: 'FR', line1: '1 Main St', line2: null, postal_code: null, state: null });
    assert.deepEqual(c.invoice_settings, { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null });

    const got = await api(key, 'GET', `/v1/customers/${c.id}`);
    assert.deepEqual(got.json, c);
    const upd = await api(key, 'POST', `/v1/customers/${c.id}`, { name: 'Ada L.', metadata: { billow_tenant: '', extra: 'x' } });
    assert.equal(upd.json.name, 'Ada L.');
    assert.deepEqual(upd.json.metadata, { billow_customer: 'cus_1', extra: 'x' });

    assertError(await api(newKey('other'), 'GET', `/v1/customers/${c.id}`), 404, 'invalid_request_error', 'resource_missing');
    assertError(await api(key, 'GET', '/v1/customers/cus_doesnotexist'), 404, 'invalid_request_error', 'resource_missing');
  });

  it('replays an idempotent request and refuses the key with other parameters', async () => {
    const key = newKey('idem');
    const params = { email: 'a@example.com', metadata: { billow_customer: 'cus_9' } };
    const first = await api(key, 'POST', '/v1/customers', params, { idem: 'billow:cus:cus_9' });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const again = await api(key, 'POST', '/v1/customers', params, { idem: 'billow:cus:cus_9' });
    assert.equal(again.status, 200);
    assert.equal(again.json.id, first.json.id);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.json, first.json);

    assertError(await api(key, 'POST', '/v1/customers', { ...params, email: 'b@example.com' }, { idem: 'billow:cus:cus_9' }), 400, 'idempotency_error');
    assertError(await api(key, 'POST', '/v1/setup_intents', {}, { idem: 'billow:cus:cus_9' }), 400, 'idempotency_error');
    // The same key under another secret key is another account's key.
    const other = await api(newKey('idem2'), 'POST', '/v1/customers', params, { idem: 'billow:cus:cus_9' });
    assert.equal(other.status, 200);
    assert.notEqual(other.json.id, first.json.id);
    // Without an Idempotency-Key every POST is new.
    const a = await api(key, 'POST', '/v1/customers', params);
    const b = await api(key, 'POST', '/v1/customers', params);
    assert.notEqual(a.json.id, b.json.id);
  });

  it('charges a succeeding card: PaymentIntent succeeded with its charge, events sent', async () => {
    const key = newKey('pi');
    const secret = await hook(key);
    const cus = await newCustomer(key);
    const r = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_visa'), { idem: 'billow:pi:inv_1:1' });
    assert.equal(r.status, 200, r.text);
    const pi = r.json;
    assert.match(pi.id, /^pi_/);
    assert.equal(pi.object, 'payment_intent');
    assert.equal(pi.status, 'succeeded');
    assert.equal(pi.amount_received, 2000);
    assert.equal(pi.currency, 'usd');
    assert.equal(pi.customer, cus.id);
    assert.match(pi.payment_method, /^pm_/);
    assert.match(pi.client_secret, new RegExp(`^${pi.id}_secret_`));
    assert.match(pi.latest_charge, /^ch_/);
    assert.equal(pi.last_payment_error, null);
    assert.deepEqual(pi.metadata, { billow_tenant: 'ten_1', billow_invoice: 'inv_1', billow_attempt: '1' });

    const ch = await api(key, 'GET', `/v1/charges/${pi.latest_charge}`);
    assert.equal(ch.json.object, 'charge');
    assert.equal(ch.json.status, 'succeeded');
    assert.equal(ch.json.paid, true);
    assert.equal(ch.json.captured, true);
    assert.equal(ch.json.payment_intent, pi.id);
    assert.equal(ch.json.payment_method_details.card.last4, '4242');

    const expanded = await api(key, 'GET', `/v1/payment_intents/${pi.id}`, { expand: ['latest_charge', 'customer'] });
    assert.equal(expanded.json.latest_charge.id, pi.latest_charge);
    assert.equal(expanded.json.customer.id, cus.id);
    assertError(await api(key, 'GET', `/v1/payment_intents/${pi.id}`, { expand: ['amount'] }), 400, 'invalid_request_error');

    const events = await waitForEvents(key, secret, ['charge.succeeded', 'payment_intent.succeeded']);
    const piEvent = events.find((e) => e.type === 'payment_intent.succeeded');
    assert.equal(piEvent.data.object.id, pi.id);
    assert.equal(piEvent.api_version, '2024-06-20');
    assert.equal(piEvent.livemode, false);
    assert.match(piEvent.id, /^evt_/);
    assert.equal(piEvent.request.idempotency_key, 'billow:pi:inv_1:1');
    assert.match(piEvent.request.id, /^req_/);
    // Delivered in the order made: the charge, then the intent.
    assert.deepEqual(events.map((e) => e.type), ['charge.succeeded', 'payment_intent.succeeded']);
  });

  it('declines for insufficient funds with 402 card_error and the intent back to requires_payment_method', async () => {
    const key = newKey('decl');
    const secret = await hook(key);
    const cus = await newCustomer(key);
    const r = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_visa_chargeDeclinedInsufficientFunds'), { idem: 'billow:pi:inv_2:1' });
    assertError(r, 402, 'card_error', 'card_declined');
    const err = r.json.error;
    assert.equal(err.decline_code, 'insufficient_funds');
    assert.equal(err.message, 'Your card has insufficient funds.');
    assert.match(err.doc_url, /^https:\/\/stripe\.com\/docs\/error-codes\/card-declined$/);
    assert.match(err.charge, /^ch_/);
    assert.equal(err.payment_intent.status, 'requires_payment_method');
    assert.equal(err.payment_intent.last_payment_error.decline_code, 'insufficient_funds');
    assert.equal(err.payment_intent.latest_charge, err.charge);

    const pi = await api(key, 'GET', `/v1/payment_intents/${err.payment_intent.id}`);
    assert.equal(pi.json.status, 'requires_payment_method');
    assert.equal(pi.json.last_payment_error.code, 'card_declined');
    const ch = await api(key, 'GET', `/v1/charges/${err.charge}`);
    assert.equal(ch.json.status, 'failed');
    assert.equal(ch.json.failure_code, 'card_declined');

    // The alias and the generic decline.
    const alias = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_chargeDeclinedInsufficientFunds'));
    assert.equal(alias.json.error.decline_code, 'insufficient_funds');
    const generic = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_chargeDeclined'));
    assertError(generic, 402, 'card_error', 'card_declined');
    assert.equal(generic.json.error.decline_code, 'generic_decline');
    const expired = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_chargeDeclinedExpiredCard'));
    assertError(expired, 402, 'card_error', 'expired_card');

    await waitForEvents(key, secret, ['charge.failed', 'payment_intent.payment_failed']);
  });

  it('off-session payments needing authentication decline with authentication_required; on-session they wait for 3-D Secure', async () => {
    const key = newKey('auth');
    const secret = await hook(key);
    const cus = await newCustomer(key);
    const off = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_authenticationRequired'), { idem: 'billow:pi:inv_3:1' });
    assertError(off, 402, 'card_error', 'authentication_required');
    assert.equal(off.json.error.decline_code, 'authentication_required');
    assert.equal(off.json.error.payment_intent.status, 'requires_payment_method');
    await waitForEvents(key, secret, ['payment_intent.payment_failed']);

    const onParams = { amount: 1500, currency: 'usd', customer: cus.id, payment_method: 'pm_card_authenticationRequired', confirm: 'true' };
    const on = await api(key, 'POST', '/v1/payment_intents', onParams, { idem: 'billow:pi:inv_4:1' });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.json.status, 'requires_action');
    assert.equal(on.json.next_action.type, 'use_stripe_sdk');
    await waitForEvents(key, secret, ['payment_intent.requires_action']);
    const ok = await ctl('POST', `/_fake/payment_intents/${on.json.id}/authenticate`, { outcome: 'succeed' });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.status, 'succeeded');
    await waitForEvents(key, secret, ['payment_intent.succeeded', 'charge.succeeded']);

    const on2 = await api(key, 'POST', '/v1/payment_intents', onParams);
    const bad = await ctl('POST', `/_fake/payment_intents/${on2.json.id}/authenticate`, { outcome: 'fail' });
    assert.equal(bad.json.status, 'requires_payment_method');
    assert.equal(bad.json.last_payment_error.code, 'payment_intent_authentication_failure');
    const stats = (await ctl('GET', `/_fake/stats?api_key=${key}`)).json;
    assert.equal(stats.charges['billow:pi:inv_4:1'], 1, 'the authenticated payment counts for the request that confirmed it');
  });

  it('refuses an unknown payment method and confirms in two steps', async () => {
    const key = newKey('two');
    const cus = await newCustomer(key);
    assertError(await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_nope')), 400, 'invalid_request_error', 'resource_missing', 'payment_method');
    assertError(await api(key, 'POST', '/v1/payment_intents', { ...chargeParams(cus.id, 'pm_card_visa'), customer: 'cus_nope' }), 400, 'invalid_request_error', 'resource_missing', 'customer');

    const bare = await api(key, 'POST', '/v1/payment_intents', { amount: 900, currency: 'eur' });
    assert.equal(bare.json.status, 'requires_payment_method');
    const pending = await api(key, 'POST', '/v1/payment_intents', { amount: 900, currency: 'eur', customer: cus.id, payment_method: 'pm_card_mastercard' });
    assert.equal(pending.json.status, 'requires_confirmation');
    const done = await api(key, 'POST', `/v1/payment_intents/${pending.json.id}/confirm`, { off_session: 'true' }, { idem: 'confirm-1' });
    assert.equal(done.json.status, 'succeeded', done.text);
    assertError(await api(key, 'POST', `/v1/payment_intents/${pending.json.id}/confirm`, {}), 400, 'invalid_request_error', 'payment_intent_unexpected_state');
    assertError(await api(key, 'POST', `/v1/payment_intents/${bare.json.id}/confirm`, {}), 400, 'invalid_request_error', 'payment_intent_unexpected_state');
    assertError(await api(key, 'POST', '/v1/payment_intents/pi_nope/confirm', {}), 404, 'invalid_request_error', 'resource_missing');
  });

  it('counts one charge per idempotency key however often a request is replayed', async () => {
    const key = newKey('stats');
    const cus = await newCustomer(key);
    const ok = chargeParams(cus.id, 'pm_card_visa', 3000);
    const declined = chargeParams(cus.id, 'pm_card_chargeDeclined', 4000);
    const replies = [];
    for (let i = 0; i < 3; i++) {
      replies.push(await api(key, 'POST', '/v1/payment_intents', ok, { idem: 'billow:pi:inv_a:1' }));
      replies.push(await api(key, 'POST', '/v1/payment_intents', declined, { idem: 'billow:pi:inv_b:1' }));
    }
    assert.deepEqual(replies.map((r) => r.status), [200, 402, 200, 402, 200, 402]);
    assert.equal(new Set(replies.filter((r) => r.status === 200).map((r) => r.json.id)).size, 1);
    assert.equal(replies[3].headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(replies[3].json, replies[1].json, 'a declined answer is replayed as it was');
    const stats = (await ctl('GET', `/_fake/stats?api_key=${key}`)).json;
    assert.deepEqual(stats.charges, { 'billow:pi:inv_a:1': 1, 'billow:pi:inv_b:1': 1 });
    assert.equal(stats.charges_total, 2);
    assert.equal(stats.succeeded_total, 1);
    assert.equal(stats.amount_succeeded, 3000);
  });

  it('searches intents by metadata, and forgets idempotency keys when told (as Stripe does after 24 h)', async () => {
    const key = newKey('search');
    const cus = await newCustomer(key);
    const first = await api(key, 'POST', '/v1/payment_intents', { ...chargeParams(cus.id, 'pm_card_visa'), metadata: { billow_invoice: 'inv_s1' } }, { idem: 'billow:pi:inv_s1:1' });
    assert.equal(first.status, 200, first.text);
    await api(key, 'POST', '/v1/payment_intents', { ...chargeParams(cus.id, 'pm_card_visa'), metadata: { billow_invoice: 'inv_s2' } }, { idem: 'billow:pi:inv_s2:1' });
    const found = await api(key, 'GET', '/v1/payment_intents/search', { query: "metadata['billow_invoice']:'inv_s1'" });
    assert.equal(found.status, 200, found.text);
    assert.equal(found.json.object, 'search_result');
    assert.deepEqual(found.json.data.map((pi) => pi.id), [first.json.id]);
    const both = await api(key, 'GET', '/v1/payment_intents/search', { query: `customer:'${cus.id}' AND status:'succeeded'`, limit: 1 });
    assert.equal(both.json.data.length, 1);
    const none = await api(newKey('other'), 'GET', '/v1/payment_intents/search', { query: "metadata['billow_invoice']:'inv_s1'" });
    assert.deepEqual(none.json.data, [], 'another key sees none of them');
    assertError(await api(key, 'GET', '/v1/payment_intents/search', { query: 'amount>100' }), 400, 'invalid_request_error', 'parameter_invalid_string', 'query');
    assertError(await api(key, 'GET', '/v1/payment_intents/search', {}), 400, 'invalid_request_error', undefined, 'query');

    const expired = await ctl('POST', '/_fake/idempotency/expire', { api_key: key });
    assert.deepEqual([expired.status, expired.json.expired], [200, 3], 'the customer and both intents');
    const again = await api(key, 'POST', '/v1/payment_intents', { ...chargeParams(cus.id, 'pm_card_visa'), metadata: { billow_invoice: 'inv_s1' } }, { idem: 'billow:pi:inv_s1:1' });
    assert.equal(again.headers.get('idempotent-replayed'), null);
    assert.notEqual(again.json.id, first.json.id, 'a forgotten key executes anew');
    assert.equal((await ctl('GET', `/_fake/stats?api_key=${key}`)).json.succeeded_total, 3);
  });

  it('refunds part, refuses more than what remains, then refunds the rest', async () => {
    const key = newKey('re');
    const secret = await hook(key);
    const cus = await newCustomer(key);
    const pi = (await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_visa'), { idem: 'billow:pi:inv_r:1' })).json;
    const refundParams = { payment_intent: pi.id, amount: '500', reason: 'requested_by_customer', metadata: { billow_refund: 'ref_1', billow_tenant: 'ten_1' } };
    const re = await api(key, 'POST', '/v1/refunds', refundParams, { idem: 'billow:re:ref_1' });
    assert.equal(re.status, 200, re.text);
    assert.match(re.json.id, /^re_/);
    assert.equal(re.json.object, 'refund');
    assert.equal(re.json.status, 'succeeded');
    assert.equal(re.json.amount, 500);
    assert.equal(re.json.charge, pi.latest_charge);
    assert.equal(re.json.payment_intent, pi.id);
    assert.equal((await api(key, 'GET', `/v1/refunds/${re.json.id}`)).json.id, re.json.id);
    let ch = (await api(key, 'GET', `/v1/charges/${pi.latest_charge}`)).json;
    assert.equal(ch.amount_refunded, 500);
    assert.equal(ch.refunded, false);

    assertError(await api(key, 'POST', '/v1/refunds', { payment_intent: pi.id, amount: '1600' }), 400, 'invalid_request_error', undefined, 'amount');
    const rest = await api(key, 'POST', '/v1/refunds', { charge: pi.latest_charge });
    assert.equal(rest.json.amount, 1500);
    ch = (await api(key, 'GET', `/v1/charges/${pi.latest_charge}`)).json;
    assert.equal(ch.amount_refunded, 2000);
    assert.equal(ch.refunded, true);
    assertError(await api(key, 'POST', '/v1/refunds', { payment_intent: pi.id }), 400, 'invalid_request_error', 'charge_already_refunded');
    assertError(await api(key, 'POST', '/v1/refunds', { payment_intent: 'pi_nope' }), 400, 'invalid_request_error', 'resource_missing', 'payment_intent');

    const events = await waitForEvents(key, secret, ['charge.refunded', 'refund.created']);
    const refunded = events.filter((e) => e.type === 'charge.refunded');
    assert.equal(refunded[0].data.object.object, 'charge');
    assert.equal(refunded[0].data.object.amount_refunded, 500);
  });

  it('takes isk as a two-decimal currency of whole krónur only, in charges and refunds', async () => {
    const key = newKey('isk');
    const cus = await newCustomer(key);
    const isk = (amount) => ({ ...chargeParams(cus.id, 'pm_card_visa'), amount: String(amount), currency: 'isk' });
    assertError(await api(key, 'POST', '/v1/payment_intents', isk(500050), { idem: 'billow:pi:inv_isk:0' }), 400, 'invalid_request_error', 'invalid_charge_amount_no_decimal_compatible', 'amount');
    const pi = await api(key, 'POST', '/v1/payment_intents', isk(500000), { idem: 'billow:pi:inv_isk:1' });
    assert.deepEqual([pi.status, pi.json.status, pi.json.amount], [200, 'succeeded', 500000], '5,000 kr');
    assertError(await api(key, 'POST', '/v1/refunds', { payment_intent: pi.json.id, amount: '150' }), 400, 'invalid_request_error', 'invalid_charge_amount_no_decimal_compatible', 'amount');
    assert.equal((await api(key, 'POST', '/v1/refunds', { payment_intent: pi.json.id, amount: '100000' })).json.amount, 100000);
  });

  it('lists an intent\'s refunds newest first, paged, with their charges expanded', async () => {
    const key = newKey('rel');
    const cus = await newCustomer(key);
    const pi = (await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_visa'), { idem: 'billow:pi:inv_rl:1' })).json;
    const other = (await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_visa'), { idem: 'billow:pi:inv_rl2:1' })).json;
    const made = [];
    for (const n of [1, 2, 3]) {
      made.push((await api(key, 'POST', '/v1/refunds', { payment_intent: pi.id, amount: '100', metadata: { billow_refund: `ref_${n}` } }, { idem: `billow:re:rl${n}` })).json);
    }
    await api(key, 'POST', '/v1/refunds', { payment_intent: other.id, amount: '100' }, { idem: 'billow:re:rl_other' });
    const first = await api(key, 'GET', '/v1/refunds', { payment_intent: pi.id, limit: '2', expand: ['data.charge'] });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.object, 'list');
    assert.equal(first.json.has_more, true);
    assert.deepEqual(first.json.data.map((r) => r.metadata.billow_refund), ['ref_3', 'ref_2']);
    assert.equal(first.json.data[0].charge.object, 'charge', 'the charge expanded');
    assert.equal(first.json.data[0].charge.amount_refunded, 300);
    const rest = await api(key, 'GET', '/v1/refunds', { payment_intent: pi.id, limit: '2', starting_after: first.json.data[1].id });
    assert.deepEqual([rest.json.has_more, rest.json.data.map((r) => r.id)], [false, [made[0].id]]);
    assert.equal(rest.json.data[0].charge, pi.latest_charge, 'an id unless expanded');
    assertError(await api(key, 'GET', '/v1/refunds', { limit: '101' }), 400, 'invalid_request_error', undefined, 'limit');
    assertError(await api(key, 'GET', '/v1/refunds', { expand: ['data.customer'] }), 400, 'invalid_request_error', undefined, 'expand');
  });

  it('saves a card through a SetupIntent completed by the control endpoint', async () => {
    const key = newKey('seti');
    const secret = await hook(key);
    const cus = await newCustomer(key);
    const si = await api(key, 'POST', '/v1/setup_intents', {
      customer: cus.id, usage: 'off_session', payment_method_types: ['card'], metadata: { billow_customer: 'cus_1', billow_tenant: 'ten_1' },
    }, { idem: 'billow:seti:job_1' });
    assert.equal(si.status, 200, si.text);
    assert.match(si.json.id, /^seti_/);
    assert.equal(si.json.status, 'requires_payment_method');
    assert.match(si.json.client_secret, new RegExp(`^${si.json.id}_secret_`));
    assert.equal(si.json.usage, 'off_session');

    const done = await ctl('POST', `/_fake/setup_intents/${si.json.id}/succeed`, { payment_method: 'pm_card_authenticationRequiredOnSetup' });
    assert.equal(done.status, 200, JSON.stringify(done.json));
    assert.equal(done.json.status, 'succeeded');
    const pm = done.json.payment_method;
    assert.match(pm, /^pm_/);
    assert.equal((await api(key, 'GET', `/v1/setup_intents/${si.json.id}`)).json.status, 'succeeded');
    const events = await waitForEvents(key, secret, ['setup_intent.succeeded']);
    assert.equal(events.find((e) => e.type === 'setup_intent.succeeded').data.object.payment_method, pm);

    const upd = await api(key, 'POST', `/v1/customers/${cus.id}`, { invoice_settings: { default_payment_method: pm } });
    assert.equal(upd.json.invoice_settings.default_payment_method, pm);
    // Saved by a SetupIntent, this card now pays off-session without 3-D Secure.
    const paid = await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, pm));
    assert.equal(paid.json.status, 'succeeded', paid.text);
    const other = await newCustomer(key);
    assertError(await api(key, 'POST', `/v1/customers/${other.id}`, { invoice_settings: { default_payment_method: pm } }), 400, 'invalid_request_error', 'resource_missing');
  });

  it('signs webhooks as Stripe does and retries a delivery the receiver refused', async () => {
    const key = newKey('hook');
    const secret = await hook(key);
    failNext.set(`/hook/${key}`, 2);
    const cus = await newCustomer(key);
    const si = (await api(key, 'POST', '/v1/setup_intents', { customer: cus.id })).json;
    await ctl('POST', `/_fake/setup_intents/${si.id}/succeed`, {});
    const [event] = await waitForEvents(key, secret, ['setup_intent.succeeded']);
    assert.equal(event.request.id, null, 'events from the control endpoints have no API request');
    const deliveries = received.filter((d) => d.path === `/hook/${key}`);
    assert.deepEqual(deliveries.map((d) => d.status), [500, 500, 200], 'two refused attempts, then the delivery');
    assert.ok(deliveries.every((d) => d.body === deliveries[0].body));
    assert.throws(() => stripeLib.webhooks.constructEvent(deliveries[2].body, deliveries[2].headers['stripe-signature'], 'whsec_wrong'));
    assert.match(deliveries[2].headers['stripe-signature'], /^t=\d+,v1=[0-9a-f]{64}$/);
    const log = await until('the delivery recorded', async () => {
      const evs = (await ctl('GET', `/_fake/events?api_key=${key}`)).json;
      return evs[0]?.deliveries[0]?.state === 'delivered' ? evs : undefined;
    });
    assert.equal(log[0].deliveries[0].attempts, 3);
    assert.equal(log[0].event.id, event.id);

    // Endpoints given on the command line and in STRIPE_FAKE_WEBHOOKS.
    for (const [k, s] of [[CLI_KEY, 'whsec_cli'], [ENV_KEY, 'whsec_env']]) {
      const c = await newCustomer(k);
      const pi = await api(k, 'POST', '/v1/payment_intents', chargeParams(c.id, 'pm_card_visa'));
      assert.equal(pi.json.status, 'succeeded');
      await waitForEvents(k, s, ['payment_intent.succeeded']);
    }
  });

  it('opens a dispute on a charge through the control endpoint', async () => {
    const key = newKey('dp');
    const secret = await hook(key);
    const cus = await newCustomer(key);
    const pi = (await api(key, 'POST', '/v1/payment_intents', chargeParams(cus.id, 'pm_card_visa'))).json;
    const dp = await ctl('POST', `/_fake/charges/${pi.latest_charge}/dispute`, { reason: 'fraudulent' });
    assert.equal(dp.status, 200, JSON.stringify(dp.json));
    assert.match(dp.json.id, /^dp_/);
    assert.equal(dp.json.charge, pi.latest_charge);
    assert.equal(dp.json.status, 'needs_response');
    const events = await waitForEvents(key, secret, ['charge.dispute.created']);
    assert.equal(events.find((e) => e.type === 'charge.dispute.created').data.object.reason, 'fraudulent');
    assert.equal((await api(key, 'GET', `/v1/charges/${pi.latest_charge}`)).json.disputed, true);
    assertError(await api(key, 'POST', '/v1/refunds', { payment_intent: pi.id }), 400, 'invalid_request_error', 'charge_disputed');
  });

  it('injects faults before and after the work is done', async () => {
    const gone = newKey('faultgone');
    await ctl('POST', '/_fake/faults', { api_key: gone, path_prefix: '/v1/customers', count: 5, status: 503 });
    assert.deepEqual((await ctl('DELETE', `/_fake/faults?api_key=${gone}`)).json, { deleted: 1 });
    assert.equal((await api(gone, 'POST', '/v1/customers', { email: 'f@example.com' }, { idem: 'gone-1' })).status, 200, 'a deleted fault no longer applies');

    const key = newKey('flt');
    const cus = await newCustomer(key);
    const params = chargeParams(cus.id, 'pm_card_visa');
    const stats = async () => (await ctl('GET', `/_fake/stats?api_key=${key}`)).json;

    // before: nothing happens, the retry does the work.
    let f = await ctl('POST', '/_fake/faults', { api_key: key, path_prefix: '/v1/payment_intents', count: 1, status: 503, mode: 'before' });
    assert.equal(f.status, 200, JSON.stringify(f.json));
    assertError(await api(key, 'POST', '/v1/payment_intents', params, { idem: 'billow:pi:f1:1' }), 503, 'api_error');
    assert.equal((await stats()).charges_total, 0);
    const first = await api(key, 'POST', '/v1/payment_intents', params, { idem: 'billow:pi:f1:1' });
    assert.equal(first.json.status, 'succeeded');
    assert.equal(first.headers.get('idempotent-replayed'), null);

    // after: the charge is made, the answer lost; the retry is a replay.
    f = await ctl('POST', '/_fake/faults', { api_key: key, path_prefix: '/v1/payment_intents', count: 1, status: 500, mode: 'after' });
    assertError(await api(key, 'POST', '/v1/payment_intents', params, { idem: 'billow:pi:f2:1' }), 500, 'api_error');
    assert.equal((await stats()).charges['billow:pi:f2:1'], 1);
    const replay = await api(key, 'POST', '/v1/payment_intents', params, { idem: 'billow:pi:f2:1' });
    assert.equal(replay.json.status, 'succeeded');
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');

    // drop after: the connection closes unanswered, the work is done.
    await ctl('POST', '/_fake/faults', { api_key: key, count: 1, status: 'drop', mode: 'after' });
    await assert.rejects(api(key, 'POST', '/v1/payment_intents', params, { idem: 'billow:pi:f3:1' }));
    assert.equal((await stats()).charges['billow:pi:f3:1'], 1);

    // 429, then a delay.
    await ctl('POST', '/_fake/faults', { api_key: key, count: 1, status: 429 });
    assertError(await api(key, 'GET', `/v1/customers/${cus.id}`), 429, 'invalid_request_error', 'rate_limit');
    await ctl('POST', '/_fake/faults', { api_key: key, count: 1, delay_ms: 300 });
    const t0 = Date.now();
    assert.equal((await api(key, 'GET', `/v1/customers/${cus.id}`)).status, 200);
    assert.ok(Date.now() - t0 >= 290, 'the answer was delayed');
    assert.equal((await api(key, 'GET', `/v1/customers/${cus.id}`)).status, 200, 'the faults are used up');
    const s = await stats();
    assert.deepEqual(s.charges, { 'billow:pi:f1:1': 1, 'billow:pi:f2:1': 1, 'billow:pi:f3:1': 1 });
  });

  it('answers bad parameters and bodies the way Stripe does', async () => {
    const key = newKey('bad');
    assertError(await api(key, 'POST', '/v1/customers', { emale: 'x@example.com' }), 400, 'invalid_request_error', 'parameter_unknown', 'emale');
    assertError(await api(key, 'POST', '/v1/customers', { address: { line9: 'x' } }), 400, 'invalid_request_error', 'parameter_unknown', 'address[line9]');
    assertError(await api(key, 'POST', '/v1/payment_intents', { currency: 'usd' }), 400, 'invalid_request_error', 'parameter_missing', 'amount');
    assertError(await api(key, 'POST', '/v1/payment_intents', { amount: '12.5', currency: 'usd' }), 400, 'invalid_request_error', 'parameter_invalid_integer', 'amount');
    assertError(await api(key, 'POST', '/v1/payment_intents', { amount: '0', currency: 'usd' }), 400, 'invalid_request_error', 'parameter_invalid_integer', 'amount');
    assertError(await api(key, 'POST', '/v1/payment_intents', { amount: '100', currency: 'usd', confirm: 'maybe' }), 400, 'invalid_request_error', undefined, 'confirm');
    assertError(await api(key, 'POST', '/v1/refunds', { payment_intent: 'pi_x', reason: 'bored' }), 400, 'invalid_request_error', undefined, 'reason');
    assertError(await api(key, 'GET', '/v1/customers/cus_x', { limit: '3' }), 400, 'invalid_request_error', 'parameter_unknown', 'limit');
    assertError(await api(key, 'POST', '/v1/customers', {}, { body: 'email=%zz' }), 400, 'invalid_request_error');
    assertError(await api(key, 'POST', '/v1/customers', {}, { body: 'metadata=1&metadata[a]=2' }), 400, 'invalid_request_error');
    assertError(await api(key, 'POST', '/v1/customers', {}, { body: 'a]b=1' }), 400, 'invalid_request_error');
    assertError(await api(key, 'POST', '/v1/customers', {}, { body: '__proto__[x]=1' }), 400, 'invalid_request_error', 'parameter_unknown');
    assertError(await api(key, 'POST', '/v1/customers', {}, { body: `metadata${'[a]'.repeat(5000)}=1` }), 400, 'invalid_request_error');
    assertError(await api(key, 'POST', '/v1/customers', {}, { body: `description=${'x'.repeat(1024 * 1024)}` }), 413, 'invalid_request_error');
    assertError(await api(key, 'POST', '/v1/subscriptions', {}), 404, 'invalid_request_error');
    assertError(await api(key, 'DELETE', '/v1/customers/cus_x'), 404, 'invalid_request_error');
    // Still answering after all of that.
    assert.equal((await api(key, 'POST', '/v1/customers', { email: 'ok@example.com' })).status, 200);
  });

  it('every request the fake received is checked against the spec, and the checker agrees with the fake', async () => {
    const spec = loadSpec();
    const log = (await ctl('GET', '/_fake/requests')).json;
    assert.ok(log.length > 50, `the log holds this file's requests (${log.length})`);
    let refused = 0;
    for (const r of log) {
      for (const h of Object.keys(r.headers)) assert.equal(h, h.toLowerCase());
      if (r.status === 401 || r.status === 413 || r.params === null || !findOperation(spec, r.method, r.path)) continue;
      const problems = checkRequest({ method: r.method, path: r.path, params: r.params });
      // (A fault in mode "before" answers before the parameters are checked.)
      if (problems.length && !r.fault) {
        assert.ok(r.status === 400, `the fake accepted ${r.method} ${r.path} ${r.raw_body || r.query}: ${JSON.stringify(problems)}`);
        assert.equal(r.error.param, problems[0].param);
        refused++;
      }
    }
    assert.ok(refused >= 5, `the bad requests of this file were among them (${refused})`);
    // And the other way round: what the fake called unknown, the checker does too.
    for (const r of log.filter((x) => x.error?.code === 'parameter_unknown')) {
      assert.ok(checkRequest(r).some((p) => p.code === 'parameter_unknown' && p.param === r.error.param), `${r.method} ${r.path} ${r.raw_body}`);
    }
    // The requests Billow's contract sends pass.
    const contract = log.filter((r) => r.headers['idempotency-key']?.startsWith('billow:') && r.status !== 400);
    assert.ok(contract.length > 10);
    for (const r of contract) assert.deepEqual(checkRequest(r), [], `${r.method} ${r.path} ${r.raw_body}`);
  });

  it('answers with objects that have the fields of Stripe\'s, no more and none missing', async () => {
    const { objects } = loadSpec();
    // Fields API 2024-06-20 has that the 2023-08-16 spec lacks (they are in
    // Stripe's 2024-09-05 fixtures and stripe-node 15.12.0's types).
    const added = {
      payment_intent: ['payment_method_configuration_details', 'source'],
      setup_intent: ['payment_method_configuration_details'],
      refund: ['destination_details'],
      charge: ['source'],
      payment_method: ['allow_redisplay'],
    };
    const events = received.filter((d) => d.status === 200).map((d) => JSON.parse(d.body));
    const seen = new Set();
    const visit = (v, where) => {
      if (Array.isArray(v)) return v.forEach((x) => visit(x, where));
      if (v === null || typeof v !== 'object') return;
      const schema = objects[v.object];
      if (schema) {
        seen.add(v.object);
        for (const k of Object.keys(v)) {
          assert.ok(schema.fields.includes(k) || added[v.object]?.includes(k), `${where}: ${v.object} has a field Stripe's does not: ${k}`);
        }
        for (const k of schema.required) assert.ok(Object.hasOwn(v, k), `${where}: ${v.object} lacks ${k}`);
      }
      if (v.error && typeof v.error === 'object') {
        for (const k of Object.keys(v.error)) assert.ok(objects.api_errors.fields.includes(k), `${where}: the error has a field Stripe's does not: ${k}`);
      }
      for (const [k, x] of Object.entries(v)) visit(x, `${where}.${k}`);
    };
    answers.forEach((a) => visit(a, 'answer'));
    events.forEach((e) => visit(e, 'event'));
    for (const t of ['customer', 'payment_intent', 'charge', 'refund', 'setup_intent', 'payment_method', 'dispute', 'event']) {
      assert.ok(seen.has(t), `a ${t} was seen`);
    }
  });

  it('checkRequest finds unknown nested parameters, wrong types, bad enums and missing ones', () => {
    const pi = (params) => checkRequest({ method: 'POST', path: '/v1/payment_intents', params });
    assert.deepEqual(pi({ amount: '100', currency: 'usd', metadata: { a: 'b' }, payment_method_types: ['card'] }), []);
    const nested = pi({ amount: '100', currency: 'usd', payment_method_options: { card: { request_three_d_secure: 'any', colour: 'red' } } });
    assert.deepEqual(nested.map((p) => [p.param, p.code]), [['payment_method_options[card][colour]', 'parameter_unknown']]);
    const types = pi({ amount: 'ten', currency: 'usd', confirm: 'yes', off_session: 'sometimes', capture_method: 'later' });
    assert.deepEqual(types.map((p) => [p.param, p.kind]), [['amount', 'integer'], ['confirm', 'type'], ['off_session', 'type'], ['capture_method', 'enum']]);
    assert.equal(types[0].code, 'parameter_invalid_integer');
    assert.deepEqual(pi({ currency: 'usd', metadata: { a: { b: 'c' } } }).map((p) => p.param), ['metadata[a]', 'amount']);
    const confirm = checkRequest({ method: 'POST', path: '/v1/payment_intents/pi_123/confirm', params: { payment_method: 'pm_card_visa', bogus: '1' } });
    assert.deepEqual(confirm.map((p) => p.param), ['bogus']);
    assert.equal(checkRequest({ method: 'POST', path: '/v1/payment_intents/pi_123/capture', params: {} })[0].kind, 'operation');
    assert.deepEqual(checkRequest({ method: 'GET', path: '/v1/payment_intents/pi_123', params: { expand: ['latest_charge'] } }), []);
  });

  it('resets one key and keeps the others', async () => {
    const a = newKey('ra');
    const b = newKey('rb');
    const ca = await newCustomer(a);
    const cb = await newCustomer(b);
    assert.equal((await ctl('POST', '/_fake/reset', { api_key: a })).status, 200);
    assert.equal((await api(a, 'GET', `/v1/customers/${ca.id}`)).status, 404);
    assert.equal((await api(b, 'GET', `/v1/customers/${cb.id}`)).status, 200);
  });
});
