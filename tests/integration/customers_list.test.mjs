// The customer list: newest first, paged by limit and starting_after with
// has_more, and filtered by email; in a tenant made for the test so the
// list holds exactly what the test created.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createCustomer, createTenant } from './lib/billow.mjs';
import { slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { tag } from './lib/util.mjs';

const S = slot(10);
const stack = new Stack('customers_list', S);
let api;
let secret;
// The tenant's customers, newest first (ids sort by creation time).
let created = [];

const COUNT = 7;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
  stack.startWorker('domain');
  ({ secret } = await createTenant(api));
  for (let i = 0; i < COUNT; i++) {
    created.push(await createCustomer(api, secret, { email: `${tag(`c${i}`)}@example.com`, name: `Customer ${i}` }));
  }
  created = created.sort((a, b) => (a.id < b.id ? 1 : -1));
});

after(async () => {
  await stack.stopAll();
});

async function list(query) {
  const res = await api.get('/v1/customers', { token: secret, query });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.object, 'list');
  assert.equal(res.json.url, '/v1/customers');
  return res.json;
}

describe('GET /v1/customers', () => {
  it('lists newest first with the default limit of 10', async () => {
    const page = await list({});
    assert.deepEqual(page.data, created);
    assert.equal(page.has_more, false);
  });

  it('pages with limit and starting_after until has_more is false', async () => {
    const seen = [];
    let cursor;
    let pages = 0;
    for (;;) {
      const page = await list({ limit: 3, starting_after: cursor });
      pages += 1;
      assert.ok(page.data.length <= 3);
      seen.push(...page.data);
      if (!page.has_more) break;
      assert.equal(page.data.length, 3, 'a page before the last is full');
      cursor = page.data[page.data.length - 1].id;
      assert.ok(pages < 10, 'paging ends');
    }
    assert.equal(pages, Math.ceil(COUNT / 3));
    assert.deepEqual(seen.map((c) => c.id), created.map((c) => c.id));
  });

  it('has_more is false when the last page is exactly full', async () => {
    const page = await list({ limit: COUNT });
    assert.equal(page.data.length, COUNT);
    assert.equal(page.has_more, false);
    const short = await list({ limit: COUNT - 1 });
    assert.equal(short.has_more, true);
  });

  it('starting_after the oldest customer is an empty page', async () => {
    const page = await list({ starting_after: created[created.length - 1].id });
    assert.deepEqual(page.data, []);
    assert.equal(page.has_more, false);
  });

  it('filters by email', async () => {
    const target = created[2];
    const page = await list({ email: target.email });
    assert.deepEqual(page.data, [target]);
    assert.deepEqual((await list({ email: 'nobody@example.com' })).data, []);
  });
});
