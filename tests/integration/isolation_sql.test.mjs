// Tenant isolation in SQL: the roles the api and the workers connect as
// (billow_api through DATABASE_READ_URL, billow_worker through
// DATABASE_URL), with tenant A set, read no row of tenant B from any
// tenant-owned table, whatever query they write by hand; with no tenant
// set they read nothing; the worker cannot write a row of B; and a role
// that may not read a table at all is refused outright.
//
// The tables are found in information_schema (every relation in schema
// public with a tenant_id column, and tenants itself by its id), so a table
// added by a later migration is covered without touching this file; the
// set-up fails if it cannot give both tenants rows in such a new table,
// so the check never passes on empty tables.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createPrice, createProduct, createTenant, login, OWNER_PASSWORD } from './lib/billow.mjs';
import { totpCode } from './lib/crypto.mjs';
import { asRole, lit, superuser, superValue } from './lib/db.mjs';
import { DATABASE_READ_URL, DATABASE_URL, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { newId, until } from './lib/util.mjs';

const S = slot(21);
const stack = new Stack('isolation_sql', S);
let api;

// Every relation of schema public with a tenant_id column, with its kind
// ('BASE TABLE' or 'VIEW'), read when the file loads so that each one gets
// its own tests below.
const RELATIONS = (await superuser(`SELECT c.table_name, t.table_type
    FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
   WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'
   ORDER BY c.table_name`)).map(([name, type]) => ({ name, type, key: 'tenant_id' }));
// tenants is keyed by its id.
const TABLES = [{ name: 'tenants', type: 'BASE TABLE', key: 'id' }, ...RELATIONS];

// The tables this file knows to exist today (a subset check: new ones are
// welcome and covered too).
const KNOWN = ['api_keys', 'audit_events', 'customers', 'metrics_daily', 'notifications', 'outbox',
  'processed_jobs', 'recovery_codes', 'sessions', 'tenants', 'user_tokens', 'users', 'products', 'prices',
  'test_clocks', 'subscriptions', 'subscription_items', 'invoice_sequences', 'invoices', 'invoice_lines',
  'invoice_items', 'customer_balance_transactions', 'stripe_accounts', 'payment_attempts', 'payments',
  'refunds', 'disputes', 'stripe_events', 'stripe_objects'];
// Tables billow_api must not read at all (docs/architecture.md: the api
// never reads recovery codes, tokens, notifications, the outbox, the
// tenants' sealed Stripe secrets or the mirror of Stripe's objects).
const API_UNREADABLE = new Set(['notifications', 'outbox', 'recovery_codes', 'user_tokens', 'stripe_accounts', 'stripe_objects']);

const ROLES = [
  ['billow_api', DATABASE_READ_URL],
  ['billow_worker', DATABASE_URL],
];

let A;
let B;
const outboxRows = [];

// --- SQL helpers ---

function keyOf(t) {
  return TABLES.find((x) => x.name === t).key;
}

// sql run by the role's own connection inside a transaction (rolled back:
// nothing a check tries may stay), with app.tenant_id set for it by
// set_config(…, true) unless tenantId is null. sql must answer one row;
// returns its first cell.
async function inTx(url, tenantId, sql) {
  const set = tenantId ? `SELECT set_config('app.tenant_id', ${lit(tenantId)}, true) IS NULL;\n` : '';
  const rows = await asRole(url, `BEGIN;\n${set}${sql};\nROLLBACK;`);
  assert.ok(rows.length >= 1, `no answer to ${sql}`);
  return rows[rows.length - 1][0];
}

async function superCount(t, tenantId) {
  return Number(await superValue(`SELECT count(*) FROM ${t} WHERE ${keyOf(t)} = ${lit(tenantId)}`));
}

async function privilege(role, t, priv) {
  return (await superValue(`SELECT has_table_privilege(${lit(role)}, ${lit(`public.${t}`)}, ${lit(priv)})`)) === 't';
}

const DENIED = (t) => new RegExp(`permission denied for (table|view|relation) ${t}\\b`);
const RLS_REFUSED = (t) => new RegExp(`new row violates row-level security policy for table "${t}"`);

// --- set-up: two tenants with rows in every tenant-owned table ---

// Gives tenant T rows in every table the API can reach: users, sessions,
// api keys, customers, audit events, processed jobs, metrics, a reset
// token and its notification, recovery codes.
async function populate(T) {
  await createCustomer(api, T.secret, { name: `Customer of ${T.tenant.slug}` });
  const second = await api.post('/v1/users', {
    token: T.secret,
    headers: { Prefer: 'wait=20' },
    json: { email: `billing@${T.tenant.slug}.example`, name: 'Billing', role: 'billing', password: OWNER_PASSWORD },
  });
  assert.equal(second.status, 201, second.text);
  const key = await api.post('/v1/api_keys', { token: T.secret, headers: { Prefer: 'wait=20' }, json: { name: 'second', role: 'analyst' } });
  assert.equal(key.status, 201, key.text);

  // A session, and with it TOTP turned on (which records recovery codes).
  const s = await login(api, { tenant: T.tenant.slug, email: T.owner.email, password: OWNER_PASSWORD });
  const enrol = await api.post('/v1/auth/totp', { token: s.token, json: {} });
  assert.equal(enrol.status, 200, enrol.text);
  const confirm = await api.post('/v1/auth/totp/confirm', { token: s.token, json: { code: totpCode(enrol.json.secret) } });
  assert.equal(confirm.status, 200, confirm.text);
  assert.equal(confirm.json.recovery_codes.length, 10);

  // A password reset: a user token and the notification that carries it.
  const reset = await api.post('/v1/auth/password_reset', { json: { tenant: T.tenant.slug, email: `billing@${T.tenant.slug}.example` } });
  assert.equal(reset.status, 202, reset.text);
  await until(`the reset token and notification of ${T.tenant.id}`, async () =>
    (await superCount('user_tokens', T.tenant.id)) > 0 && (await superCount('notifications', T.tenant.id)) > 0 ? true : undefined);
  // The customer's metrics.refresh follow-up.
  await until(`metrics_daily of ${T.tenant.id}`, async () => ((await superCount('metrics_daily', T.tenant.id)) > 0 ? true : undefined));

  // Billing: a product, two prices, a test clock with a customer on it, a
  // subscription (an invoice with lines, the invoice sequence), a downgrade
  // invoiced at once (a credit: a balance transaction) and a quantity
  // change left pending (an invoice item).
  const product = await createProduct(api, T.secret);
  const big = await createPrice(api, T.secret, { product: product.id, unit_amount: 3000 });
  const small = await createPrice(api, T.secret, { product: product.id, unit_amount: 1000 });
  const wait = { token: T.secret, headers: { Prefer: 'wait=20' } };
  const clock = await api.post('/v1/test_clocks', { ...wait, json: { frozen_time: '2027-01-01T00:00:00Z' } });
  assert.equal(clock.status, 201, clock.text);
  const customer = await createCustomer(api, T.secret, { name: 'Subscriber', test_clock: clock.json.id });
  const sub = await api.post('/v1/subscriptions', { ...wait, json: { customer: customer.id, items: [{ price: big.id }] } });
  assert.equal(sub.status, 201, sub.text);
  const paid = await api.post('/v1/invoices/{id}/pay', { ...wait, params: { id: sub.json.latest_invoice }, json: { paid_out_of_band: true } });
  assert.equal(paid.status, 200, paid.text);
  const item = sub.json.items.data[0].id;
  const down = await api.post('/v1/subscriptions/{id}', { ...wait, params: { id: sub.json.id }, json: { items: [{ id: item, price: small.id }], proration_behavior: 'always_invoice' } });
  assert.equal(down.status, 200, down.text);
  const more = await api.post('/v1/subscriptions/{id}', { ...wait, params: { id: sub.json.id }, json: { items: [{ id: item, quantity: 2 }] } });
  assert.equal(more.status, 200, more.text);

  // Payments: the Stripe account through the API (the api seals it); the
  // rows Stripe's answers and events leave behind are written directly
  // (the payment tests make them the real way, against the Stripe fake):
  // an attempt, the payment, a refund, a dispute, an event and the newest
  // state of its object.
  const stripe = await api.post('/v1/settings/stripe', { ...wait, json: { secret_key: `sk_test_isolation_${T.tenant.slug}`, webhook_secrets: ['whsec_isolation_test_secret'] } });
  assert.equal(stripe.status, 200, stripe.text);
  const t = lit(T.tenant.id);
  const inv = lit(sub.json.latest_invoice);
  const pay = lit(newId('pay'));
  const pi = lit(`pi_isolation_${T.tenant.slug}`);
  await superuser(`INSERT INTO payment_attempts (tenant_id, id, invoice_id, attempt, idempotency_key, amount, currency, status, stripe_payment_intent, created_at)
      VALUES (${t}, ${lit(newId('payatt'))}, ${inv}, 1, 'billow:pi:isolation:1', 3000, 'usd', 'succeeded', ${pi}, now());
    INSERT INTO payments (tenant_id, id, customer_id, invoice_id, amount, currency, status, stripe_payment_intent, stripe_charge, created_at)
      VALUES (${t}, ${pay}, ${lit(customer.id)}, ${inv}, 3000, 'usd', 'succeeded', ${pi}, 'ch_isolation', now());
    INSERT INTO refunds (tenant_id, id, payment_id, amount, currency, status)
      VALUES (${t}, ${lit(newId('refund'))}, ${pay}, 100, 'usd', 'succeeded');
    INSERT INTO disputes (tenant_id, stripe_dispute, payment_id, stripe_charge, amount, currency, status)
      VALUES (${t}, 'dp_isolation', ${pay}, 'ch_isolation', 3000, 'usd', 'needs_response');
    INSERT INTO stripe_events (tenant_id, id, type, object_id, created, outcome, payload)
      VALUES (${t}, 'evt_isolation', 'charge.dispute.created', 'dp_isolation', now(), 'applied', '{}');
    INSERT INTO stripe_objects (tenant_id, id, object, status, rank, event_created, event_id, data)
      VALUES (${t}, 'dp_isolation', 'dispute', 'needs_response', 2, now(), 'evt_isolation', '{}')`);
}

before(async () => {
  api = client(await stack.startAll());
  A = await createTenant(api);
  B = await createTenant(api);
  await populate(A);
  await populate(B);
  // Nothing changes A's or B's rows from here on, so counts compare exactly.
  await stack.stopWorkers();
  // The outbox empties itself as follow-ups are relayed; rows that wait
  // there (a worker died before relaying) are made by hand. No worker runs
  // to relay them, and after() removes them.
  for (const T of [A, B]) {
    const jobId = newId('job');
    outboxRows.push([T.tenant.id, jobId]);
    await superuser(`INSERT INTO outbox (tenant_id, job_id, envelope) VALUES (${lit(T.tenant.id)}, ${lit(jobId)}, '{"note": "isolation_sql test row"}')`);
  }
});

after(async () => {
  for (const [tenantId, jobId] of outboxRows) {
    await superuser(`DELETE FROM outbox WHERE tenant_id = ${lit(tenantId)} AND job_id = ${lit(jobId)}`);
  }
  await stack.stopAll();
});

describe('the tenant-owned tables', () => {
  it('include every table known today', () => {
    const names = TABLES.map((t) => t.name);
    for (const t of KNOWN) assert.ok(names.includes(t), `${t} is found as tenant-owned`);
  });

  it('all have row-level security enabled with the tenant_isolation policy', async () => {
    for (const { name, type, key } of TABLES) {
      assert.equal(type, 'BASE TABLE', `${name} is a table (a view would read as its owner, past row-level security)`);
      const [[rls, owner]] = await superuser(`SELECT relrowsecurity, pg_get_userbyid(relowner) FROM pg_class WHERE oid = ${lit(`public.${name}`)}::regclass`);
      assert.equal(rls, 't', `${name} has row-level security enabled`);
      assert.ok(!['billow_api', 'billow_worker'].includes(owner), `${name} is not owned by a service role (an owner skips row-level security)`);
      const policies = await superuser(`SELECT policyname, cmd, qual, with_check FROM pg_policies WHERE schemaname = 'public' AND tablename = ${lit(name)}`);
      assert.equal(policies.length, 1, `${name} has exactly one policy: ${JSON.stringify(policies)}`);
      const [policy, cmd, qual, check] = policies[0];
      assert.equal(policy, 'tenant_isolation');
      assert.equal(cmd, 'ALL');
      for (const expr of [qual, check]) {
        assert.match(expr, new RegExp(`\\(?${key} = current_setting\\('app\\.tenant_id'::text, true\\)\\)?`), `${name}: ${expr}`);
      }
    }
  });

  it('the service roles cannot bypass row-level security', async () => {
    const rows = await superuser(`SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname IN ('billow_api', 'billow_worker') ORDER BY rolname`);
    assert.deepEqual(rows, [['billow_api', 'f', 'f'], ['billow_worker', 'f', 'f']]);
    for (const [role, url] of ROLES) {
      assert.equal(await inTx(url, null, 'SELECT current_user'), role, `the URL connects as ${role}`);
    }
  });

  it('the service roles open with their drawn passwords only: a role\'s name is not its password', async () => {
    for (const [role, url] of ROLES) {
      const given = new URL(url);
      assert.equal(decodeURIComponent(given.username), role);
      assert.match(decodeURIComponent(given.password), /^[0-9a-f]{48}$/, `${role}'s password was drawn for this data folder`);
      const guessed = new URL(url);
      guessed.password = role;
      await assert.rejects(asRole(guessed.href, 'SELECT 1'), /password authentication failed/, `${role} with its name as password`);
    }
  });

  it('both tenants own rows in every one of them (so hiding them means something)', async () => {
    for (const { name } of TABLES) {
      for (const T of [A, B]) {
        assert.ok((await superCount(name, T.tenant.id)) > 0, `${T.tenant.id} has no row in ${name}: give this table set-up data in populate()`);
      }
    }
  });
});

for (const [role, url] of ROLES) {
  describe(`reading as ${role}`, () => {
    for (const { name: t } of TABLES) {
      it(`${t}: with A set, none of B's rows and exactly A's; with no tenant, none`, async () => {
        const key = keyOf(t);
        const readable = await privilege(role, t, 'SELECT');
        if (KNOWN.includes(t)) {
          const expected = role === 'billow_worker' || !API_UNREADABLE.has(t);
          assert.equal(readable, expected, `${role} ${expected ? 'reads' : 'must not read'} ${t}`);
        }
        const queries = [
          [A.tenant.id, `SELECT count(*) FROM ${t} WHERE ${key} = ${lit(B.tenant.id)}`],
          [A.tenant.id, `SELECT count(*) FROM ${t}`],
          [null, `SELECT count(*) FROM ${t}`],
        ];
        if (!readable) {
          // Refused outright, which hides B's rows no less; asserted, not skipped.
          for (const [tenant, sql] of queries) {
            await assert.rejects(inTx(url, tenant, sql), DENIED(t), `${role}: ${sql}`);
          }
          return;
        }
        const own = await superCount(t, A.tenant.id);
        assert.ok(own > 0);
        assert.equal(await inTx(url, A.tenant.id, queries[0][1]), '0', `${role} with A set sees B's rows in ${t}`);
        assert.equal(Number(await inTx(url, A.tenant.id, queries[1][1])), own, `${role} with A set sees exactly A's ${own} rows of ${t}`);
        assert.equal(await inTx(url, null, queries[2][1]), '0', `${role} with no tenant set sees rows of ${t}`);
        // A hand-written query that does not name a tenant at all.
        assert.equal(await inTx(url, A.tenant.id, `SELECT count(DISTINCT ${key}) FROM ${t}`), '1');
        assert.equal(await inTx(url, A.tenant.id, `SELECT count(*) FROM ${t} x WHERE x.${key} <> ${lit(A.tenant.id)}`), '0');
      });
    }
  });
}

describe('writing as billow_worker with tenant A set', () => {
  const W = DATABASE_URL;
  for (const { name: t } of TABLES) {
    it(`${t}: cannot insert, update or delete a row of B`, async () => {
      const key = keyOf(t);
      const snapshotB = () => superValue(`SELECT count(*) || ':' || coalesce(md5(string_agg(row_to_json(x)::text, ',' ORDER BY row_to_json(x)::text)), '') FROM ${t} x WHERE ${key} = ${lit(B.tenant.id)}`);
      const before = await snapshotB();

      // INSERT: a copy of one of A's rows, moved to B.
      const insert = `INSERT INTO ${t} SELECT (jsonb_populate_record(NULL::${t}, to_jsonb(x) || jsonb_build_object('${key}', ${lit(B.tenant.id)}))).* FROM ${t} x LIMIT 1`;
      if (await privilege('billow_worker', t, 'INSERT')) {
        await assert.rejects(inTx(W, A.tenant.id, insert), RLS_REFUSED(t), insert);
      } else {
        await assert.rejects(inTx(W, A.tenant.id, insert), DENIED(t), insert);
      }

      // UPDATE: B's rows are out of reach, and none of A's may become B's.
      const reach = `WITH w AS (UPDATE ${t} SET ${key} = ${key} WHERE ${key} = ${lit(B.tenant.id)} RETURNING 1) SELECT count(*) FROM w`;
      const move = `UPDATE ${t} SET ${key} = ${lit(B.tenant.id)} WHERE ${key} = ${lit(A.tenant.id)}`;
      if (await privilege('billow_worker', t, 'UPDATE')) {
        assert.equal(await inTx(W, A.tenant.id, reach), '0', `an UPDATE reaches B's rows of ${t}`);
        await assert.rejects(inTx(W, A.tenant.id, move), RLS_REFUSED(t), move);
      } else {
        await assert.rejects(inTx(W, A.tenant.id, reach), DENIED(t), reach);
        await assert.rejects(inTx(W, A.tenant.id, move), DENIED(t), move);
      }

      // DELETE: B's rows are out of reach (or deleting is not allowed at all).
      const del = `WITH w AS (DELETE FROM ${t} WHERE ${key} = ${lit(B.tenant.id)} RETURNING 1) SELECT count(*) FROM w`;
      if (await privilege('billow_worker', t, 'DELETE')) {
        assert.equal(await inTx(W, A.tenant.id, del), '0', `a DELETE reaches B's rows of ${t}`);
      } else {
        await assert.rejects(inTx(W, A.tenant.id, del), DENIED(t), del);
      }
      assert.equal(await snapshotB(), before, `B's rows of ${t} are unchanged`);
    });
  }

  it('cannot delete audit events, not even its own tenant\'s', async () => {
    assert.equal(await privilege('billow_worker', 'audit_events', 'DELETE'), false);
    const own = await superCount('audit_events', A.tenant.id);
    const sql = `DELETE FROM audit_events WHERE tenant_id = ${lit(A.tenant.id)}`;
    await assert.rejects(inTx(DATABASE_URL, A.tenant.id, sql), DENIED('audit_events'));
    // Outside a rolled-back transaction too.
    await assert.rejects(asRole(DATABASE_URL, `SELECT set_config('app.tenant_id', ${lit(A.tenant.id)}, false) IS NULL;\n${sql}`), DENIED('audit_events'));
    assert.equal(await superCount('audit_events', A.tenant.id), own);
  });
});

describe('billow_api writes nothing', () => {
  for (const { name: t } of TABLES) {
    it(`${t}: INSERT, UPDATE and DELETE are refused`, async () => {
      const key = keyOf(t);
      for (const priv of ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) {
        assert.equal(await privilege('billow_api', t, priv), false, `billow_api holds ${priv} on ${t}`);
      }
      const R = DATABASE_READ_URL;
      await assert.rejects(inTx(R, A.tenant.id, `INSERT INTO ${t} (${key}) VALUES (${lit(A.tenant.id)})`), DENIED(t));
      await assert.rejects(inTx(R, A.tenant.id, `UPDATE ${t} SET ${key} = ${key}`), DENIED(t));
      await assert.rejects(inTx(R, A.tenant.id, `DELETE FROM ${t}`), DENIED(t));
    });
  }
});
