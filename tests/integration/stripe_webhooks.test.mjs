// stripe_webhooks: POST /webhooks/stripe/{tenant} — the signature checked
// exactly as Stripe's libraries check it (headers made by the npm `stripe`
// package's own generateTestHeaderString, not only Billow's signer), and
// the webhook processor's promise: Stripe's events, in any order and any
// number of times, end in the same state.
//
// The events are Stripe's seven of tests/fixtures/stripe_events (a renewal
// declined, retried and paid; a refund; a dispute; a subscription deleted).
// Each run gives a fresh tenant Billow objects linked to the story's Stripe
// objects (its customer, subscription, invoice and payment), delivers the
// events in one order, and reads the final state.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Stripe from 'stripe';

import { createCustomer, createPrice, createProduct, createTenant } from './lib/billow.mjs';
import { billingClient } from './lib/billing.mjs';
import { lit, superuser } from './lib/db.mjs';
import { ROOT, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { connectStripe } from './lib/payments.mjs';
import { Stack } from './lib/stack.mjs';
import { newId, until } from './lib/util.mjs';

const S = slot(29);
const stack = new Stack('stripe_webhooks', S);
const stripe = Stripe('sk_test_signer_only');
let api;

const EVENTS_DIR = path.join(ROOT, 'tests/fixtures/stripe_events');
const EVENTS = fs.readdirSync(EVENTS_DIR)
  .filter((f) => f.endsWith('.json') && f !== 'MANIFEST.json')
  .map((f) => fs.readFileSync(path.join(EVENTS_DIR, f), 'utf8'))
  .map((text) => ({ text, event: JSON.parse(text) }))
  .sort((a, b) => a.event.created - b.event.created);
// The story's Stripe objects that Billow objects are linked to.
const STORY = {
  customer: 'cus_QXg1o8vcGmoR32',
  subscription: 'sub_1Pgc6rB7WZ01zgkWNy0Cn5nw',
  invoice: 'in_1Pgc6tB7WZ01zgkWu9fdqL6I',
  paymentIntent: 'pi_1PgafyB7WZ01zgkWSjxsAJo3',
  charge: 'ch_1PgafuB7WZ01zgkWXYmPNZs8',
};

const now = () => Math.floor(Date.now() / 1000);

function sign(payload, secret, timestamp = now()) {
  return stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
}

function deliver(tenant, body, signature) {
  const headers = { 'Content-Type': 'application/json' };
  if (signature !== undefined) headers['Stripe-Signature'] = signature;
  return api.post('/webhooks/stripe/{tenant}', { params: { tenant }, headers, body });
}

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  for (const kind of ['domain', 'access', 'invoice', 'webhook']) stack.startWorker(kind);
  stack.startWorker('renewal', { RENEWAL_SCAN_MS: 100 });
});

after(async () => {
  await stack.stopAll();
});

describe('the signature', () => {
  let T;
  const SECRET = 'whsec_current_signing_secret_0001';
  const OLD = 'whsec_previous_signing_secret_0002';
  const body = JSON.stringify({ id: 'evt_signature_probe_0001', object: 'event', type: 'customer.updated', created: 1720000000, data: { object: { id: 'cus_probe', object: 'customer' } } });

  before(async () => {
    T = await createTenant(api);
    const res = await api.post('/v1/settings/stripe', { token: T.secret, headers: { Prefer: 'wait=20' }, json: { secret_key: 'sk_test_signature_tenant', webhook_secrets: [SECRET, OLD] } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.webhook_secrets.map((w) => w.hint.slice(0, 8)), ['whsec_cu', 'whsec_pr']);
    assert.ok(!res.text.includes(SECRET) && !res.text.includes(OLD), 'the secrets are never shown back');
  });

  it('a valid signature is accepted and the event enqueued, by id or by slug', async () => {
    const res = await deliver(T.tenant.id, body, sign(body, SECRET));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.received, true);
    assert.match(res.json.job, /^job_/);
    const bySlug = await deliver(T.tenant.slug, body, sign(body, SECRET));
    assert.equal(bySlug.status, 200, bySlug.text);
    assert.equal(bySlug.json.job, res.json.job, 'a redelivery of one event is the same job');
  });

  it('the previous secret still verifies during a rotation', async () => {
    const res = await deliver(T.tenant.id, body, sign(body, OLD));
    assert.equal(res.status, 200, res.text);
  });

  it('a tampered body is refused', async () => {
    const header = sign(body, SECRET);
    assertError(await deliver(T.tenant.id, body.replace('customer.updated', 'customer.deleted'), header), 400, 'signature_mismatch');
  });

  it('a signature made with another secret is refused', async () => {
    assertError(await deliver(T.tenant.id, body, sign(body, 'whsec_somebody_else_entirely')), 400, 'signature_mismatch');
  });

  it('a signature 301 s old is refused as expired', async () => {
    assertError(await deliver(T.tenant.id, body, sign(body, SECRET, now() - 301)), 400, 'signature_expired');
  });

  it('a signature exactly 300 s old is accepted', async () => {
    // The api reads the clock itself: the attempt counts only when the
    // request was sent and answered within one wall-clock second, so the
    // api's "now" was that second too; another try otherwise.
    for (let tries = 0; tries < 10; tries++) {
      while (Date.now() % 1000 > 300) await new Promise((r) => setTimeout(r, 20));
      const sent = now();
      const res = await deliver(T.tenant.id, body, sign(body, SECRET, sent - 300));
      if (now() !== sent) continue;
      assert.equal(res.status, 200, res.text);
      return;
    }
    assert.fail('no attempt completed within one second');
  });

  it('a timestamp in the future is accepted (as Stripe\'s libraries do)', async () => {
    const res = await deliver(T.tenant.id, body, sign(body, SECRET, now() + 3600));
    assert.equal(res.status, 200, res.text);
  });

  it('two v1 signatures of which one is valid are accepted', async () => {
    const t = now();
    const good = sign(body, SECRET, t).split(',').find((p) => p.startsWith('v1='));
    const bad = sign(body, 'whsec_not_ours_at_all_000', t).split(',').find((p) => p.startsWith('v1='));
    const res = await deliver(T.tenant.id, body, `t=${t},${bad},${good}`);
    assert.equal(res.status, 200, res.text);
  });

  it('a header with only a v0 signature is refused', async () => {
    const t = now();
    const v1 = sign(body, SECRET, t).split(',').find((p) => p.startsWith('v1='));
    assertError(await deliver(T.tenant.id, body, `t=${t},v0=${v1.slice(3)}`), 400, 'signature_malformed');
  });

  it('malformed and missing headers are refused with their own codes', async () => {
    const t = now();
    const v1 = sign(body, SECRET, t).split(',').find((p) => p.startsWith('v1='));
    assertError(await deliver(T.tenant.id, body, 'garbage'), 400, 'signature_malformed');
    assertError(await deliver(T.tenant.id, body, v1), 400, 'signature_malformed');
    assertError(await deliver(T.tenant.id, body, `t=soon,${v1}`), 400, 'signature_malformed');
    assertError(await deliver(T.tenant.id, body, `t=${t},${v1.toUpperCase().replace('V1=', 'v1=')}`), 400, 'signature_mismatch');
    assertError(await deliver(T.tenant.id, body), 400, 'signature_missing');
  });

  it('an unknown tenant is 404, a tenant without Stripe 400, and a signed non-event 400', async () => {
    assertError(await deliver('no-such-tenant', body, sign(body, SECRET)), 404, 'resource_missing');
    const bare = await createTenant(api);
    assertError(await deliver(bare.tenant.id, body, sign(body, SECRET)), 400, 'stripe_not_configured');
    const notJson = 'this is not json';
    assertError(await deliver(T.tenant.id, notJson, sign(notJson, SECRET)), 400, 'invalid_json');
    const noId = JSON.stringify({ object: 'event', type: 'x' });
    assertError(await deliver(T.tenant.id, noId, sign(noId, SECRET)), 400, 'event_invalid', { param: 'id' });
    const noObject = JSON.stringify({ id: 'evt_no_object', object: 'event', type: 'x', created: now() });
    assertError(await deliver(T.tenant.id, noObject, sign(noObject, SECRET)), 400, 'event_invalid', { param: 'data.object' });
  });

  it('the accepted deliveries of one event are recorded once; the api keeps serving', async () => {
    await until('the probe event to be processed', async () => {
      const [[n]] = await superuser(`SELECT count(*) FROM stripe_events WHERE tenant_id = ${lit(T.tenant.id)}`);
      return n === '1' ? true : undefined;
    });
    const [[type, outcome]] = await superuser(`SELECT type, outcome FROM stripe_events WHERE tenant_id = ${lit(T.tenant.id)}`);
    assert.deepEqual([type, outcome], ['customer.updated', 'recorded']);
    const health = await api.get('/healthz');
    assert.equal(health.status, 200);
  });
});

// A tenant whose Billow objects stand for the story's Stripe objects: a
// customer linked to the Stripe customer, an active subscription on a test
// clock linked to the Stripe subscription, its renewal invoice (open)
// linked to the Stripe invoice, and the payment of the Stripe charge.
async function linkedTenant() {
  const T = await createTenant(api);
  const whsec = 'whsec_story_tenant_secret_01';
  await connectStripe(api, null, T, { whsec });
  const b = billingClient(api, T.secret);
  const product = await createProduct(api, T.secret);
  const price = await createPrice(api, T.secret, { product: product.id, unit_amount: 2000 });
  const clock = await b.post('/v1/test_clocks', { frozen_time: '2024-06-01T00:00:00Z' }, 201);
  const customer = await createCustomer(api, T.secret, { email: 'story@example.com', test_clock: clock.id, stripe_customer: STORY.customer });
  assert.equal(customer.stripe_customer, STORY.customer);
  const sub = await b.post('/v1/subscriptions', { customer: customer.id, items: [{ price: price.id }] }, 201);
  await b.post('/v1/invoices/{id}/pay', { paid_out_of_band: true }, 200, { id: sub.latest_invoice });
  await b.advance(clock, '2024-07-01T00:00:00Z');
  const renewed = await b.get('/v1/subscriptions/{id}', { id: sub.id });
  assert.equal(renewed.status, 'active');
  const invoice = renewed.latest_invoice;
  const t = lit(T.tenant.id);
  // The import path's links: a tenant moving its Stripe subscriptions over records
  // which Stripe objects its Billow objects are.
  await superuser(`UPDATE subscriptions SET stripe_subscription_id = ${lit(STORY.subscription)} WHERE tenant_id = ${t} AND id = ${lit(sub.id)};
    UPDATE invoices SET stripe_invoice_id = ${lit(STORY.invoice)} WHERE tenant_id = ${t} AND id = ${lit(invoice)};
    INSERT INTO payments (tenant_id, id, customer_id, invoice_id, amount, currency, status, stripe_payment_intent, stripe_charge, created_at)
      VALUES (${t}, ${lit(newId('pay'))}, ${lit(customer.id)}, ${lit(invoice)}, 2000, 'usd', 'succeeded', ${lit(STORY.paymentIntent)}, ${lit(STORY.charge)}, now())`);
  return { T, whsec, sub, invoice, customer };
}

// Delivers each event text (signed now) and waits until all are processed.
async function deliverAll(L, texts) {
  for (const text of texts) {
    const res = await deliver(L.T.tenant.id, text, sign(text, L.whsec));
    assert.equal(res.status, 200, res.text);
  }
  const distinct = new Set(texts.map((x) => JSON.parse(x).id)).size;
  await until(`${distinct} events of ${L.T.tenant.id} to be processed`, async () => {
    const [[n]] = await superuser(`SELECT count(*) FROM stripe_events WHERE tenant_id = ${lit(L.T.tenant.id)}`);
    return Number(n) === distinct ? true : undefined;
  });
  // The deleted subscription is canceled by a follow-up job of the invoice kind.
  await until('the linked subscription to be canceled', async () => {
    const [[status]] = await superuser(`SELECT status FROM subscriptions WHERE tenant_id = ${lit(L.T.tenant.id)} AND id = ${lit(L.sub.id)}`);
    return status === 'canceled' ? true : undefined;
  });
}

// Everything the events decide, for comparing runs (ids of Billow rows
// differ between tenants; only what the events set is read).
async function finalState(L) {
  const t = lit(L.T.tenant.id);
  return {
    objects: await superuser(`SELECT id, object, status, event_id FROM stripe_objects WHERE tenant_id = ${t} ORDER BY id`),
    events: await superuser(`SELECT id, type FROM stripe_events WHERE tenant_id = ${t} ORDER BY id`),
    invoice: await superuser(`SELECT status, amount_refunded FROM invoices WHERE tenant_id = ${t} AND id = ${lit(L.invoice)}`),
    subscription: await superuser(`SELECT status FROM subscriptions WHERE tenant_id = ${t} AND id = ${lit(L.sub.id)}`),
    payment: await superuser(`SELECT status, amount_refunded, disputed FROM payments WHERE tenant_id = ${t}`),
    disputes: await superuser(`SELECT stripe_dispute, stripe_charge, amount, reason, status, payment_id IS NULL FROM disputes WHERE tenant_id = ${t}`),
  };
}

describe('the seven events', () => {
  let inOrder;

  it('delivered in order, end as the story ends', async () => {
    const L = await linkedTenant();
    await deliverAll(L, EVENTS.map((e) => e.text));
    inOrder = await finalState(L);
    assert.equal(inOrder.events.length, 7);
    const objects = Object.fromEntries(inOrder.objects.map(([id, , status]) => [id, status]));
    assert.equal(objects[STORY.paymentIntent], 'succeeded');
    assert.equal(objects[STORY.invoice], 'paid');
    assert.equal(objects[STORY.subscription], 'canceled');
    assert.equal(objects[STORY.charge], 'succeeded');
    assert.deepEqual(inOrder.invoice, [['paid', '2000']]);
    assert.deepEqual(inOrder.subscription, [['canceled']]);
    assert.deepEqual(inOrder.payment, [['refunded', '2000', 'f']]);
    assert.deepEqual(inOrder.disputes, [['dp_1Pgc71B7WZ01zgkWMevJiAUx', 'ch_3PhHd2B7WZ01zgkW0Rk7Dspt', '2000', 'fraudulent', 'needs_response', 't']]);
  });

  it('delivered in reverse, end in the same state', async () => {
    const L = await linkedTenant();
    await deliverAll(L, EVENTS.map((e) => e.text).reverse());
    assert.deepEqual(await finalState(L), inOrder);
  });

  it('each delivered twice, shuffled, ends in the same state', async () => {
    const L = await linkedTenant();
    const texts = [...EVENTS, ...EVENTS].map((e) => e.text);
    // A fixed shuffle (reproducible): interleave from both ends.
    const mixed = [];
    while (texts.length) mixed.push(texts.length % 2 ? texts.shift() : texts.pop());
    await deliverAll(L, mixed);
    assert.deepEqual(await finalState(L), inOrder);
  });
});

describe('events of one object, of another type, in the way', () => {
  // Newness is judged per object across its event types; an effect of one
  // type must not be lost because another type's event of the same object
  // came first.
  async function deliverEach(L, texts) {
    for (const text of texts) {
      const res = await deliver(L.T.tenant.id, text, sign(text, L.whsec));
      assert.equal(res.status, 200, res.text);
    }
    await until(`${texts.length} events of ${L.T.tenant.id} to be processed`, async () => {
      const [[n]] = await superuser(`SELECT count(*) FROM stripe_events WHERE tenant_id = ${lit(L.T.tenant.id)}`);
      return Number(n) === texts.length ? true : undefined;
    });
  }

  it('a dispute is recorded when a later-status event of it came first, with the newest status', async () => {
    const L = await linkedTenant();
    const created = EVENTS.find((e) => e.event.type === 'charge.dispute.created');
    // The same dispute, the same second, further along: it moves the
    // dispute first, and charge.dispute.created is then the stale one.
    const updated = JSON.parse(created.text);
    updated.id = 'evt_1PhHdAB7WZ01zgkWUpdat3d0';
    updated.type = 'charge.dispute.updated';
    updated.data.object.status = 'under_review';
    await deliverEach(L, [JSON.stringify(updated), created.text]);
    const t = lit(L.T.tenant.id);
    const outcomes = Object.fromEntries(await superuser(`SELECT type, outcome FROM stripe_events WHERE tenant_id = ${t}`));
    assert.equal(outcomes['charge.dispute.created'], 'stale');
    assert.deepEqual(await superuser(`SELECT stripe_dispute, amount, reason, status FROM disputes WHERE tenant_id = ${t}`),
      [[created.event.data.object.id, '2000', 'fraudulent', 'under_review']]);
  });
});
