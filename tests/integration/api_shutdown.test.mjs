// Graceful stop of the api: SIGTERM lets a request that is waiting for its
// job (Prefer: wait) finish with a complete answer, and the process then
// exits 0 (no sanitizer report, nothing left behind).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { waitJob } from './lib/billow.mjs';
import { DEMO_API_KEY, slot } from './lib/env.mjs';
import { client } from './lib/http.mjs';
import { redis } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { tag, until } from './lib/util.mjs';

const S = slot(8);
const stack = new Stack('api_shutdown', S);

before(async () => {
  await stack.flushRedis();
});

after(async () => {
  await stack.stopAll();
});

// The id of the job the api just enqueued (the file's Redis database is
// otherwise empty of new jobs, so the newest job:* key not in `known`).
async function newJobId(known) {
  return until('the api to enqueue the job', async () => {
    const keys = (await redis(S.redisDb, '--scan', '--pattern', 'job:*')).filter((k) => k && !known.has(k));
    return keys.length === 1 ? keys[0].slice('job:'.length) : undefined;
  }, { intervalMs: 20 });
}

async function jobKeys() {
  return new Set((await redis(S.redisDb, '--scan', '--pattern', 'job:*')).filter(Boolean));
}

describe('api SIGTERM', () => {
  it('finishes an in-flight Prefer: wait request with its outcome, then exits 0', { timeout: 120000 }, async () => {
    const p = await stack.startApi();
    const api = client(p);
    const known = await jobKeys();
    const name = tag('drain');
    const inFlight = api.post('/v1/customers', { token: DEMO_API_KEY, headers: { Prefer: 'wait=15' }, json: { name } });
    const jobId = await newJobId(known);

    p.term();
    // The job can now finish while the api drains.
    const worker = stack.startWorker('domain');
    const res = await inFlight;
    assert.ok([201, 202].includes(res.status), `the waiting request is answered (${res.status} ${res.text})`);
    if (res.status === 201) {
      assert.equal(res.json.object, 'customer');
      assert.equal(res.json.name, name);
    } else {
      assert.equal(res.json.id, jobId);
    }
    await p.stop();

    // The job itself is done, whatever the drained answer said.
    const p2 = await stack.startApi();
    const job = await waitJob(client(p2), jobId, DEMO_API_KEY);
    assert.equal(job.result.name, name);
    await worker.stop();
    await p2.stop();
  });

  it('answers a request still waiting for a job no worker runs, then exits 0', { timeout: 120000 }, async () => {
    const p = await stack.startApi();
    const api = client(p);
    const known = await jobKeys();
    const inFlight = api.post('/v1/customers', { token: DEMO_API_KEY, headers: { Prefer: 'wait=5' }, json: { name: tag('nowork') } });
    const jobId = await newJobId(known);
    p.term();
    const res = await inFlight;
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.id, jobId);
    assert.equal(res.json.status, 'queued');
    await p.stop();
  });

  it('exits 0 on SIGTERM with idle keep-alive connections open', async () => {
    const p = await stack.startApi();
    const api = client(p);
    for (let i = 0; i < 5; i++) assert.equal((await api.get('/healthz')).status, 200);
    await p.stop();
  });
});

describe('api start-up failure', () => {
  it('a port already taken: exits 1 saying so, having let go of everything it made', async () => {
    const first = await stack.startApi();
    const second = await stack.startApi({}, { port: first.port, waitReady: false });
    second.expectDeath();
    const exit = await second.waitExit();
    assert.equal(exit.code, 1, JSON.stringify(exit));
    const log = fs.readFileSync(second.logFile, 'utf8');
    assert.match(log, /"event":"listen_failed".*"error":"address already in use"/);
    // The sanitizer build reports any leak at exit: the log must hold none.
    second.assertNoSanitizerReport();
    assert.equal((await client(first).get('/healthz')).status, 200, 'the first api serves on');
    await first.stop();
  });
});
