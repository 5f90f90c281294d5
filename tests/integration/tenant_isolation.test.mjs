// Tenant isolation: through the API (another tenant's customer and job are
// 404 and stay untouched; lists show only one's own) and in Postgres, where
// row-level security binds the roles the api and workers connect as.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createTenant, waitJob } from './lib/billow.mjs';
import { asRole, lit, superuser } from './lib/db.mjs';
import { DATABASE_READ_URL, DATABASE_URL, DEMO_API_KEY, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { tag } from './lib/util.mjs';

const S = slot(6);
const stack = new Stack('tenant_isolation', S);
let api;
let A;
let B;
let customerA;
let customerB;
let jobA;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  stack.startWorker('domain');
  stack.startWorker('metrics');
  A = await createTenant(api);
  B = await createTenant(api);
  customerA = await createCustomer(api, A.secret, { email: `${tag('a')}@example.com`, name: 'Alice of A', metadata: { owner: 'A' } });
  const res = await api.post('/v1/customers', { token: B.secret, json: { email: `${tag('b')}@example.com`, name: 'Bob of B' } });
  assert.equal(res.status, 202, res.text);
  customerB = (await waitJob(api, res.json.id, B.secret)).result;
  const resA = await api.post('/v1/customers', { token: A.secret, json: { name: 'Second of A' } });
  jobA = (await waitJob(api, resA.json.id, A.secret)).id;
});

after(async () => {
  await stack.stopAll();
});

describe('tenant isolation through the API', () => {
  it('tenant B cannot read tenant A\'s customer: 404 resource_missing', async () => {
    const res = await api.get('/v1/customers/{id}', { params: { id: customerA.id }, token: B.secret });
    assertError(res, 404, 'resource_missing', { param: 'id' });
  });

  it('tenant B cannot update tenant A\'s customer: 404, and A\'s row is unchanged', async () => {
    const res = await api.post('/v1/customers/{id}', {
      params: { id: customerA.id },
      token: B.secret,
      headers: { Prefer: 'wait=10' },
      json: { name: 'Hijacked', metadata: { owner: 'B' } },
    });
    assertError(res, 404, 'resource_missing', { param: 'id' });
    const got = await api.get('/v1/customers/{id}', { params: { id: customerA.id }, token: A.secret });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, customerA);
    const rows = await superuser(`SELECT name, metadata->>'owner', updated_at = created_at FROM customers WHERE id = ${lit(customerA.id)}`);
    assert.deepEqual(rows, [['Alice of A', 'A', 't']]);
  });

  it('each tenant\'s list shows only its own customers', async () => {
    const listA = await api.get('/v1/customers', { token: A.secret, query: { limit: 100 } });
    const listB = await api.get('/v1/customers', { token: B.secret, query: { limit: 100 } });
    assert.equal(listA.status, 200);
    assert.equal(listB.status, 200);
    assert.deepEqual(listB.json.data.map((c) => c.id), [customerB.id]);
    assert.ok(listA.json.data.some((c) => c.id === customerA.id));
    assert.ok(!listA.json.data.some((c) => c.id === customerB.id));
    assert.equal(listA.json.data.length, 2);
    const demo = await api.get('/v1/customers', { token: DEMO_API_KEY, query: { limit: 100, email: customerA.email } });
    assert.deepEqual(demo.json.data, [], 'the demo tenant does not find A\'s customer by email');
  });

  it('tenant B cannot see tenant A\'s job: 404', async () => {
    assertError(await api.get('/v1/jobs/{id}', { params: { id: jobA }, token: B.secret }), 404, 'resource_missing');
    assert.equal((await api.get('/v1/jobs/{id}', { params: { id: jobA }, token: A.secret })).status, 200);
  });

  it('an Idempotency-Key belongs to its tenant: the same key and body in two tenants make two jobs', async () => {
    const key = tag('shared-key');
    const a = await api.post('/v1/customers', { token: A.secret, headers: { 'Idempotency-Key': key }, json: { name: 'Same' } });
    const b = await api.post('/v1/customers', { token: B.secret, headers: { 'Idempotency-Key': key }, json: { name: 'Same' } });
    assert.equal(a.status, 202, a.text);
    assert.equal(b.status, 202, b.text);
    assert.notEqual(a.json.id, b.json.id);
    assert.notEqual(b.headers['idempotent-replayed'], 'true');
    assert.equal((await waitJob(api, a.json.id, A.secret)).tenant_id, A.tenant.id);
    assert.equal((await waitJob(api, b.json.id, B.secret)).tenant_id, B.tenant.id);
  });
});

// Tables that belong to a tenant: every public table with a tenant_id
// column (so a new migration's tables are covered), and tenants by its id.
async function tenantTables() {
  const rows = await superuser(`SELECT table_name FROM information_schema.columns
    WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name`);
  return rows.map((r) => r[0]);
}

// Each service role and the URL it connects with.
const ROLES = [
  ['billow_api', DATABASE_READ_URL],
  ['billow_worker', DATABASE_URL],
];

// Runs sql as the role with app.tenant_id set to tenantId (or unset);
// returns the single value, or null when the role may not read the table
// at all (which hides its rows no less).
async function roleValue(url, tenantId, sql) {
  const set = tenantId ? `SET app.tenant_id = ${lit(tenantId)};\n` : '';
  try {
    const rows = await asRole(url, `${set}${sql}`);
    return rows[0][0];
  } catch (e) {
    if (/permission denied/.test(e.message)) return null;
    throw e;
  }
}

describe('tenant isolation in Postgres (row-level security)', () => {
  it('every tenant-owned table is covered, and B owns rows in them', async () => {
    const tables = await tenantTables();
    for (const t of ['api_keys', 'customers', 'processed_jobs', 'outbox', 'metrics_daily']) {
      assert.ok(tables.includes(t), `${t} has a tenant_id column`);
    }
    for (const t of ['api_keys', 'customers', 'processed_jobs']) {
      const [[n]] = await superuser(`SELECT count(*) FROM ${t} WHERE tenant_id = ${lit(B.tenant.id)}`);
      assert.ok(Number(n) > 0, `B has rows in ${t}, so hiding them means something`);
    }
  });

  for (const [role, url] of ROLES) {
    it(`as ${role} with app.tenant_id = A, no row of B is visible in any tenant-owned table`, async () => {
      // The connection works and sees A's own rows.
      const own = await roleValue(url, A.tenant.id, `SELECT count(*) FROM customers WHERE tenant_id = ${lit(A.tenant.id)}`);
      assert.ok(Number(own) >= 2, `${role} sees A's own customers (${own})`);
      assert.equal(await roleValue(url, A.tenant.id, 'SELECT current_user'), role);
      for (const t of await tenantTables()) {
        const n = await roleValue(url, A.tenant.id, `SELECT count(*) FROM ${t} WHERE tenant_id = ${lit(B.tenant.id)}`);
        assert.ok(n === null || n === '0', `${role} sees ${n} of B's rows in ${t}`);
      }
      assert.equal(await roleValue(url, A.tenant.id, `SELECT count(*) FROM tenants WHERE id = ${lit(B.tenant.id)}`), '0');
    });

    it(`as ${role} with no tenant set, every tenant-owned table shows no rows`, async () => {
      for (const t of [...(await tenantTables()), 'tenants']) {
        const n = await roleValue(url, null, `SELECT count(*) FROM ${t}`);
        assert.ok(n === null || n === '0', `${role} sees ${n} rows of ${t} with no tenant set`);
      }
    });
  }

  it('as billow_worker with app.tenant_id = A, writing a row for B is refused', async () => {
    const sql = `INSERT INTO customers (tenant_id, id, name) VALUES (${lit(B.tenant.id)}, 'cus_00000000000000000000000000', 'Forged')`;
    await assert.rejects(asRole(DATABASE_URL, `SET app.tenant_id = ${lit(A.tenant.id)};\n${sql}`), /row-level security/);
    const upd = await asRole(DATABASE_URL, `SET app.tenant_id = ${lit(A.tenant.id)};\nUPDATE customers SET name = 'Forged' WHERE tenant_id = ${lit(B.tenant.id)} RETURNING id`);
    assert.deepEqual(upd, [], 'no row of B is updated');
  });
});
