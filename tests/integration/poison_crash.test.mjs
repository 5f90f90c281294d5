// A job that crashes its worker every time it runs (a poison job) must not
// take the workers down forever: each crash leaves it pending, another
// consumer takes it over, and once it has been delivered more than
// MAX_DELIVERIES times it goes dead without running again, as
// too_many_deliveries. After the fix (here: workers without the crash) its
// replay succeeds under the same id.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createTenant, waitJob } from './lib/billow.mjs';
import { lit, superValue } from './lib/db.mjs';
import { PLATFORM_ADMIN_TOKEN, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { Stack } from './lib/stack.mjs';
import { tag } from './lib/util.mjs';

const S = slot(12);
const stack = new Stack('poison_crash', S);
let api;

// Dead consumers' entries are taken over quickly, and two deliveries are
// allowed; BILLOW_FAULTS kills a worker the first time it is about to run a
// handler.
const CRASHING = { VISIBILITY_TIMEOUT_MS: 300, MAX_DELIVERIES: 2, BILLOW_FAULTS: 'worker.run_job' };

before(async () => {
  await stack.flushRedis();
  api = client(await stack.startApi());
});

after(async () => {
  await stack.stopAll();
});

describe('a job that crashes its worker', () => {
  it('goes dead after MAX_DELIVERIES crashes, without running again, and a replay after the fix succeeds', async () => {
    const w0 = stack.startWorker('domain');
    const { tenant, secret } = await createTenant(api);
    await w0.stop();

    const name = tag('poison');
    const res = await api.post('/v1/customers', { token: secret, json: { name } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.id;

    // Each crashing worker dies on its first handler call: two deliveries.
    for (let i = 0; i < 2; i++) {
      const w = stack.startWorker('domain', CRASHING);
      w.expectDeath();
      const { signal } = await w.waitExit(60000);
      assert.equal(signal, 'SIGKILL', `crashing worker ${i + 1} was killed by its fault point`);
    }
    // The third delivery is over the limit: the job is buried without
    // running, so even a crashing worker survives it.
    const survivor = stack.startWorker('domain', CRASHING);
    const dead = await waitJob(api, id, secret, { status: 'dead', timeoutMs: 60000 });
    assert.equal(dead.error.code, 'too_many_deliveries');
    assert.ok(survivor.running, 'the worker that buried the job is still running');
    await survivor.stop();
    const count = () => superValue(`SELECT count(*) FROM customers WHERE tenant_id = ${lit(tenant.id)} AND name = ${lit(name)}`).then(Number);
    assert.equal(await count(), 0);

    const fixed = stack.startWorker('domain');
    const replay = await api.post('/v1/jobs/{id}/replay', { params: { id }, token: PLATFORM_ADMIN_TOKEN });
    assert.equal(replay.status, 200, replay.text);
    const done = await waitJob(api, id, secret, { timeoutMs: 30000 });
    assert.equal(done.result.name, name);
    assert.equal(await count(), 1);
    await fixed.stop();
  });

  it('a batch taken over after a crash runs one job at a time: only the job it died on goes dead', async () => {
    const w0 = stack.startWorker('domain');
    const { secret } = await createTenant(api);
    await w0.stop();

    // Five jobs read as one batch by a worker that dies on its third
    // handler call, and so does every worker after it.
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const res = await api.post('/v1/customers', { token: secret, json: { name: tag(`batch-${i}`) } });
      assert.equal(res.status, 202, res.text);
      ids.push(res.json.id);
    }
    const dying = { ...CRASHING, BILLOW_FAULTS: 'worker.run_job:3' };
    for (let i = 0; i < 2; i++) {
      const w = stack.startWorker('domain', dying);
      w.expectDeath();
      const { signal } = await w.waitExit(60000);
      assert.equal(signal, 'SIGKILL', `worker ${i + 1} died on its third job`);
    }
    // The first died inside its batch of five (nothing committed); the
    // second, taking them over one at a time, did two and died on the
    // third. The third worker buries that one (a third delivery) and runs
    // the last two. In one batch, all five would have been counted at each
    // takeover and buried unrun.
    const survivor = stack.startWorker('domain', dying);
    const final = [];
    for (const id of ids) {
      const job = await waitJob(api, id, secret, { status: id === ids[2] ? 'dead' : 'succeeded', timeoutMs: 60000 });
      final.push(job.status);
    }
    assert.deepEqual(final, ['succeeded', 'succeeded', 'dead', 'succeeded', 'succeeded']);
    assert.ok(survivor.running, 'the third worker is still running');
    await survivor.stop();
  });
});
