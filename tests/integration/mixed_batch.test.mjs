// One batch, some jobs succeed and some are rejected: each rejected job
// undoes only itself. The worker first runs a batch without savepoints and,
// at the first failure, rolls back and runs it again with a savepoint per
// job; this checks that the second run keeps every success exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { FINAL_STATUSES } from './lib/billow.mjs';
import { lit, superValue } from './lib/db.mjs';
import { PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { tag, until } from './lib/util.mjs';

const S = slot(13);
const stack = new Stack('mixed_batch', S);
let api;

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
});

after(async () => {
  await stack.stopAll();
});

describe('a batch mixing successes and rejections', () => {
  it('rejects only the jobs that must fail and commits every other one once', async () => {
    const base = tag('mix').slice(0, 30);
    // 12 tenant creations while no worker runs, so one worker reads them as
    // one batch: slugs a, b, c, d each asked for three times.
    const slugs = ['a', 'b', 'c', 'd'].flatMap((s) => [s, s, s]).map((s) => `${base}-${s}`);
    const ids = [];
    for (const [i, slug] of slugs.entries()) {
      const res = await api.post('/v1/tenants', { token: PLATFORM_ADMIN_TOKEN, json: { name: `Mixed ${i}`, slug, owner: { email: `owner${i}@example.com`, name: 'Owner' } } });
      assert.equal(res.status, 202, res.text);
      ids.push(res.json.id);
    }
    stack.startWorker('domain', { WORKER_BATCH: 64 });
    let final = [];
    await until(
      'every job to reach a final status',
      async () => {
        final = await Promise.all(
          ids.map(async (id) => (await api.get('/v1/jobs/{id}', { params: { id }, token: PLATFORM_ADMIN_TOKEN })).json),
        );
        return final.every((j) => FINAL_STATUSES.has(j.status)) ? true : undefined;
      },
      { timeoutMs: 30000, describe: () => JSON.stringify(final.map((j) => j.status)) },
    );
    const succeeded = final.filter((j) => j.status === 'succeeded');
    const failed = final.filter((j) => j.status === 'failed');
    assert.equal(succeeded.length, 4, `one creation per slug succeeds: ${JSON.stringify(final.map((j) => j.status))}`);
    assert.equal(failed.length, 8);
    for (const j of failed) {
      assert.equal(j.error.code, 'slug_taken');
      assert.equal(j.error.param, 'slug');
    }
    assert.equal(new Set(succeeded.map((j) => j.result.tenant.slug)).size, 4);
    const rows = Number(await superValue(`SELECT count(*) FROM tenants WHERE slug LIKE ${lit(`${base}-%`)}`));
    assert.equal(rows, 4, 'one tenant per slug in Postgres');
    const keys = Number(await superValue(`SELECT count(*) FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE t.slug LIKE ${lit(`${base}-%`)}`));
    assert.equal(keys, 4, 'one API key per created tenant, none from the rejected ones');
    const processed = Number(await superValue(`SELECT count(*) FROM processed_jobs WHERE job_id = ANY(ARRAY[${ids.map(lit).join(',')}]::text[])`));
    assert.equal(processed, 12, 'every job, succeeded or rejected, is recorded once');
  });
});
