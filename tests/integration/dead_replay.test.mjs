// Dead jobs and replays: a poison job (a customer.create for a tenant that
// does not exist, so its insert hits the foreign key: a permanent error)
// goes dead; ops list it, fix the data, and replay it under its own id,
// through the API (one job, or by type and time of death) and through the
// scripts/jobs CLI.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { waitJob } from './lib/billow.mjs';
import { lit, superuser, superValue } from './lib/db.mjs';
import { DEMO_API_KEY, DEMO_TENANT_ID, PLATFORM_ADMIN_TOKEN, ROOT, slot } from './lib/env.mjs';
import { assertError, client } from './lib/http.mjs';
import { hgetall, redis, redisValue } from './lib/redis.mjs';
import { Stack } from './lib/stack.mjs';
import { newId, rfc3339, tag } from './lib/util.mjs';

const S = slot(3);
const stack = new Stack('dead_replay', S);
let api;
let apiUrl;
// The envelope of a real customer.create job the api made, as a template
// for poison jobs (so their payload has the shape the worker expects).
let template;

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// A sealed next_starting_after (shared/seal.h).
const CURSOR_RE = /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

before(async () => {
  await stack.flushRedis();
  const p = await stack.startApi();
  apiUrl = p.url;
  api = client(p);
  const res = await api.post('/v1/customers', {
    token: DEMO_API_KEY,
    json: { email: 'template@example.com', metadata: { role: 'template' } },
  });
  assert.equal(res.status, 202, res.text);
  // A queued job's envelope is in the stream only (its hash gets one when
  // it is retried or dies): read it there before a worker takes it.
  const hash = await hgetall(S.redisDb, `job:${res.json.id}`);
  assert.equal(hash.envelope, undefined, `a queued job's hash holds no envelope: ${JSON.stringify(hash)}`);
  assert.equal(hash.actor, 'key_0000000000000000000000DEM0', JSON.stringify(hash));
  // redis-cli prints an entry as its id, then field and value lines.
  const lines = await redis(S.redisDb, 'XRANGE', 'jobs:domain', '-', '+');
  const text = lines.find((l) => l.startsWith('{') && JSON.parse(l).id === res.json.id);
  assert.ok(text, `jobs:domain holds job ${res.json.id}: ${lines.join(' ').slice(0, 500)}`);
  template = JSON.parse(text);
  stack.startWorker('domain');
  await waitJob(api, res.json.id, DEMO_API_KEY);
});

after(async () => {
  await stack.stopAll();
});

// Customer ids in a payload replaced by fresh ones, should the front have
// chosen the id (a poison job must not collide with the template's customer).
function freshIds(v) {
  if (typeof v === 'string') return /^cus_/.test(v) ? newId('cus') : v;
  if (Array.isArray(v)) return v.map(freshIds);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, freshIds(x)]));
  return v;
}

// Enqueues, straight into Redis with FCALL billow_enqueue (jobq.c), a
// customer.create job for a well-formed tenant id that is in no table.
// Returns {jobId, tenantId, mark}.
async function enqueuePoison() {
  const tenantId = newId('ten');
  const jobId = newId('job');
  const trace = newId('req');
  const mark = tag('poison');
  const env = {
    ...template,
    id: jobId,
    tenant_id: tenantId,
    actor: 'platform',
    idempotency_key: null,
    attempt: 0,
    enqueued_at: new Date().toISOString(),
    trace,
    payload: { ...freshIds(template.payload), email: `${mark}@example.com`, metadata: { poison: mark } },
  };
  const reply = await redis(S.redisDb, 'FCALL', 'billow_enqueue', 2, `job:${jobId}`, 'jobs:domain',
    jobId, JSON.stringify(env), Date.now(), 'domain', 'customer.create', tenantId, trace, '', 86400, 'platform');
  assert.deepEqual(reply, ['enqueued', jobId]);
  return { jobId, tenantId, mark };
}

// A customer.create of the demo tenant whose payload names no customer id:
// the worker refuses it for good, so it dies at its first run. Returns its id.
async function enqueueDemoDead() {
  const jobId = newId('job');
  const trace = newId('req');
  const env = {
    ...template, id: jobId, tenant_id: DEMO_TENANT_ID, actor: 'platform', idempotency_key: null, attempt: 0,
    enqueued_at: new Date().toISOString(), trace, payload: { email: `${tag('nocus')}@example.com` },
  };
  const reply = await redis(S.redisDb, 'FCALL', 'billow_enqueue', 2, `job:${jobId}`, 'jobs:domain',
    jobId, JSON.stringify(env), Date.now(), 'domain', 'customer.create', DEMO_TENANT_ID, trace, '', 86400, 'platform');
  assert.deepEqual(reply, ['enqueued', jobId]);
  await waitJob(api, jobId, PLATFORM_ADMIN_TOKEN, { status: 'dead' });
  return jobId;
}

// Dead jobs as the runtime records them (status hash with the envelope, the
// kind's dead set and the tenant's), made by one script: `count` jobs of
// `type` for `tenantId`, asked for by `actor`, dying a millisecond apart
// after `died` (the last one newest), or all at `died` with `sameMs`. Their
// ids are the stem (10 characters of an id's body; random unless given)
// and a 16-digit count, so the later ones sort higher. Returns the ids,
// oldest first (with sameMs: in the order Redis sorts them, lowest first).
async function seedDead({ count, type, kind, tenantId, actor = 'platform', died, sameMs = false, stem = newId('job').slice(-10) }) {
  stem = `job_${stem}`;
  const trace = newId('req');
  const envelope = JSON.stringify({ ...template, id: 'JOBID', type, tenant_id: tenantId, actor, attempt: 0, trace });
  await redis(S.redisDb, 'EVAL', `
    for i = 1, tonumber(ARGV[1]) do
      local id = ARGV[2] .. string.format('%016d', i)
      local t = tonumber(ARGV[3]) + (ARGV[10] == '1' and 0 or i)
      redis.call('HSET', 'job:' .. id, 'id', id, 'type', ARGV[4], 'kind', ARGV[5], 'tenant_id', ARGV[6],
        'actor', ARGV[7], 'status', 'dead', 'request_id', ARGV[9], 'enqueued_at', t, 'finished_at', t,
        'envelope', (string.gsub(ARGV[8], 'JOBID', id)))
      redis.call('ZADD', 'dead:' .. ARGV[5], t, id)
      redis.call('ZADD', 'dead:' .. ARGV[5] .. ':' .. ARGV[6], t, id)
    end
    return 1`, 0, count, stem, died, type, kind, tenantId, actor, envelope, trace, sameMs ? 1 : 0);
  return Array.from({ length: count }, (_, i) => `${stem}${String(i + 1).padStart(16, '0')}`);
}

// Takes jobs made by seedDead out of Redis again (hashes and dead sets).
async function dropDead(ids, kind, tenantId) {
  for (let i = 0; i < ids.length; i += 5000) {
    const part = ids.slice(i, i + 5000);
    await redis(S.redisDb, 'EVAL', `
      for _, id in ipairs(ARGV) do
        if _ > 2 then
          redis.call('DEL', 'job:' .. id)
          redis.call('ZREM', 'dead:' .. ARGV[1], id)
          redis.call('ZREM', 'dead:' .. ARGV[1] .. ':' .. ARGV[2], id)
        end
      end
      return 1`, 0, kind, tenantId, ...part);
  }
}

// The fix: the missing tenant row, inserted as the superuser.
async function insertTenant(tenantId) {
  await superuser(`INSERT INTO tenants (id, name, slug) VALUES (${lit(tenantId)}, 'Recovered', ${lit(tag('fix'))})`);
}

async function deadIds(query = {}, token = PLATFORM_ADMIN_TOKEN) {
  const res = await api.get('/v1/jobs', { token, query: { status: 'dead', limit: 100, ...query } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.object, 'list');
  return res.json.data;
}

// Asserts the replayed job succeeded once, under its own id, and created its customer.
async function assertRecovered({ jobId, tenantId, mark }) {
  const job = await waitJob(api, jobId, PLATFORM_ADMIN_TOKEN);
  assert.equal(job.id, jobId);
  assert.equal(job.replayed_by, 'platform');
  assert.match(job.replayed_at, RFC3339_RE);
  assert.equal(job.replays, 1);
  assert.equal(job.result.object, 'customer');
  assert.deepEqual(job.result.metadata, { poison: mark });
  const rows = await superuser(`SELECT id FROM customers WHERE tenant_id = ${lit(tenantId)}`);
  assert.deepEqual(rows, [[job.result.id]], 'exactly the replayed job\'s customer exists');
  assert.equal(await superValue(`SELECT count(*) FROM processed_jobs WHERE tenant_id = ${lit(tenantId)} AND job_id = ${lit(jobId)}`), '1');
  assert.ok(!(await deadIds()).some((j) => j.id === jobId), 'no longer listed as dead');
}

function jobsCli(...args) {
  return new Promise((resolve) => {
    execFile(path.join(ROOT, 'scripts', 'jobs'), args, {
      env: { PATH: process.env.PATH, BILLOW_API_URL: apiUrl, PLATFORM_ADMIN_TOKEN },
      timeout: 60000,
    }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr });
    });
  });
}

describe('dead jobs and replays', () => {
  it('a poison job goes dead, is listed with its error, and after the fix its replay succeeds under the same id', async () => {
    const poison = await enqueuePoison();
    const dead = await waitJob(api, poison.jobId, PLATFORM_ADMIN_TOKEN, { status: 'dead' });
    assert.equal(dead.tenant_id, poison.tenantId);
    assert.equal(dead.type, 'customer.create');
    assert.equal(dead.result, null);
    assert.ok(dead.error && typeof dead.error.message === 'string' && dead.error.message.length > 0, `dead job has an error: ${JSON.stringify(dead)}`);
    assert.match(dead.finished_at, RFC3339_RE);

    const listed = (await deadIds()).find((j) => j.id === poison.jobId);
    assert.ok(listed, 'GET /v1/jobs?status=dead lists the job');
    assert.equal(listed.status, 'dead');
    assert.deepEqual(listed.error, dead.error);
    assert.ok((await deadIds({ type: 'customer.create' })).some((j) => j.id === poison.jobId), 'type filter keeps it');
    assert.ok((await deadIds({ kind: 'domain' })).some((j) => j.id === poison.jobId), 'kind filter keeps it');
    assert.ok(!(await deadIds({ type: 'tenant.create' })).some((j) => j.id === poison.jobId), 'another type filters it out');
    assert.ok(!(await deadIds({}, DEMO_API_KEY)).some((j) => j.id === poison.jobId), 'another tenant\'s key does not see it');
    assertError(await api.post('/v1/jobs/{id}/replay', { params: { id: poison.jobId }, token: DEMO_API_KEY }), 404, 'resource_missing');

    await insertTenant(poison.tenantId);
    const res = await api.post('/v1/jobs/{id}/replay', { params: { id: poison.jobId }, token: PLATFORM_ADMIN_TOKEN });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, poison.jobId);
    assert.equal(res.json.replayed_by, 'platform');
    assert.equal(res.json.replays, 1);
    assert.ok(['queued', 'running', 'succeeded'].includes(res.json.status), `replayed job status ${res.json.status}`);

    await assertRecovered(poison);
    const again = await api.post('/v1/jobs/{id}/replay', { params: { id: poison.jobId }, token: PLATFORM_ADMIN_TOKEN });
    assertError(again, 409, 'job_not_dead');
  });

  it('an entry whose envelope does not decode is set aside, and the job it names ends dead', async () => {
    // As an api of another version might write it: the job's id and type,
    // and little else the worker needs.
    const jobId = newId('job');
    const trace = newId('req');
    const env = { id: jobId, type: 'customer.create', tenant_id: DEMO_TENANT_ID };
    const reply = await redis(S.redisDb, 'FCALL', 'billow_enqueue', 2, `job:${jobId}`, 'jobs:domain',
      jobId, JSON.stringify(env), Date.now(), 'domain', 'customer.create', DEMO_TENANT_ID, trace, '', 86400, 'platform');
    assert.deepEqual(reply, ['enqueued', jobId]);
    const dead = await waitJob(api, jobId, PLATFORM_ADMIN_TOKEN, { status: 'dead' });
    assert.equal(dead.error.code, 'malformed_envelope');
    assert.ok(dead.finished_at);
    const kept = await redis(S.redisDb, 'LRANGE', 'dead:domain:malformed', 0, -1);
    assert.ok(kept.some((l) => l.includes(jobId)), 'the entry is kept for a human');
    // Not in the dead sets: a replay would only put the same envelope back.
    assert.equal(await redisValue(S.redisDb, 'ZSCORE', 'dead:domain', jobId), '');
  });

  it('POST /v1/jobs/replay replays the dead jobs of a type whose death falls in [since, until]', async () => {
    const before = Date.now() - 2000;
    const poison = await enqueuePoison();
    await waitJob(api, poison.jobId, PLATFORM_ADMIN_TOKEN, { status: 'dead' });
    await insertTenant(poison.tenantId);

    const early = await api.post('/v1/jobs/replay', {
      token: PLATFORM_ADMIN_TOKEN,
      json: { type: 'customer.create', until: rfc3339(before - 60000) },
    });
    assert.equal(early.status, 200, early.text);
    assert.deepEqual(early.json, { object: 'replay', replayed: 0, ids: [], has_more: false, next_starting_after: null });
    assert.equal((await api.get('/v1/jobs/{id}', { params: { id: poison.jobId }, token: PLATFORM_ADMIN_TOKEN })).json.status, 'dead');

    const otherType = await api.post('/v1/jobs/replay', { token: PLATFORM_ADMIN_TOKEN, json: { type: 'tenant.create', since: rfc3339(before) } });
    assert.equal(otherType.status, 200, otherType.text);
    assert.equal(otherType.json.replayed, 0);

    const res = await api.post('/v1/jobs/replay', {
      token: PLATFORM_ADMIN_TOKEN,
      json: { type: 'customer.create', since: rfc3339(before), until: rfc3339(Date.now() + 60000) },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { object: 'replay', replayed: 1, ids: [poison.jobId], has_more: false, next_starting_after: null });
    await assertRecovered(poison);
  });

  it('a tenant lists its own dead jobs however many other tenants\' died since, page by page', async () => {
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await enqueueDemoDead());
    const score = (key, id) => redisValue(S.redisDb, 'ZSCORE', key, id);
    for (const id of mine) assert.match(await score(`dead:domain:${DEMO_TENANT_ID}`, id), /^\d+$/, `${id} is in the tenant's own dead set`);
    // 1,500 newer deaths of other tenants: more than one scan of a kind's set reads.
    const now = Date.now() + 60000;
    const flood = ['ZADD', 'dead:domain'];
    for (let i = 0; i < 1500; i++) flood.push(now + i, newId('job'));
    await redis(S.redisDb, ...flood);

    const seen = [];
    let after;
    for (let page = 0; page < 5; page++) {
      const res = await api.get('/v1/jobs', { token: DEMO_API_KEY, query: { status: 'dead', limit: 1, ...(after ? { starting_after: after } : {}) } });
      assert.equal(res.status, 200, res.text);
      seen.push(...res.json.data.map((j) => j.id));
      if (!res.json.has_more) break;
      after = res.json.data.at(-1).id;
    }
    assert.deepEqual(seen.filter((id) => mine.includes(id)), [...mine].reverse(), 'each of the tenant\'s dead jobs once, the latest death first');

    assertError(await api.get('/v1/jobs', { token: DEMO_API_KEY, query: { status: 'dead', starting_after: 'job_nope' } }), 400, 'parameter_invalid', { param: 'starting_after' });
    assertError(await api.get('/v1/jobs', { token: DEMO_API_KEY, query: { status: 'dead', starting_after: newId('job') } }), 400, 'parameter_invalid', { param: 'starting_after' });

    // The platform reads the kind's whole set: past the flood (ids with no
    // job behind them, which no listing shows) to the tenant's jobs.
    const platform = await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { status: 'dead', kind: 'domain', limit: 100 } });
    assert.equal(platform.status, 200, platform.text);
    assert.deepEqual(platform.json.data.map((j) => j.id).filter((id) => mine.includes(id)), [...mine].reverse());

    await redis(S.redisDb, 'ZREMRANGEBYSCORE', 'dead:domain', now, now + 1500);

    // A replay takes the job out of both sets (no worker runs meanwhile: it
    // would only kill the job again).
    await stack.stopWorkers();
    const replay = await api.post('/v1/jobs/{id}/replay', { params: { id: mine[0] }, token: PLATFORM_ADMIN_TOKEN });
    assert.equal(replay.status, 200, replay.text);
    assert.equal(await score(`dead:domain:${DEMO_TENANT_ID}`, mine[0]), '');
    assert.equal(await score('dead:domain', mine[0]), '');
    assert.match(await score(`dead:domain:${DEMO_TENANT_ID}`, mine[1]), /^\d+$/, 'the others stay');
    stack.startWorker('domain');
  });

  it('scripts/jobs list-dead shows a dead job and scripts/jobs replay ID brings it back', async () => {
    const poison = await enqueuePoison();
    await waitJob(api, poison.jobId, PLATFORM_ADMIN_TOKEN, { status: 'dead' });

    const list = await jobsCli('list-dead');
    assert.equal(list.code, 0, `scripts/jobs list-dead failed: ${list.stderr}`);
    assert.ok(list.stdout.includes(poison.jobId), `list-dead shows ${poison.jobId}:\n${list.stdout}`);
    const byType = await jobsCli('list-dead', '--type', 'customer.create');
    assert.equal(byType.code, 0, byType.stderr);
    assert.ok(byType.stdout.includes(poison.jobId), byType.stdout);
    const otherType = await jobsCli('list-dead', '--type', 'tenant.create');
    assert.equal(otherType.code, 0, otherType.stderr);
    assert.ok(!otherType.stdout.includes(poison.jobId), otherType.stdout);

    await insertTenant(poison.tenantId);
    const replay = await jobsCli('replay', poison.jobId);
    assert.equal(replay.code, 0, `scripts/jobs replay failed: ${replay.stderr}`);
    await assertRecovered(poison);

    const again = await jobsCli('replay', poison.jobId);
    assert.notEqual(again.code, 0, 'replaying a job that is not dead fails');
  });

  it('scripts/jobs replay --type T --since/--until replays by time of death', async () => {
    const before = Date.now() - 2000;
    const poison = await enqueuePoison();
    await waitJob(api, poison.jobId, PLATFORM_ADMIN_TOKEN, { status: 'dead' });
    await insertTenant(poison.tenantId);

    const early = await jobsCli('replay', '--type', 'customer.create', '--until', rfc3339(before - 60000));
    assert.equal(early.code, 0, early.stderr);
    assert.equal((await api.get('/v1/jobs/{id}', { params: { id: poison.jobId }, token: PLATFORM_ADMIN_TOKEN })).json.status, 'dead');

    const res = await jobsCli('replay', '--type', 'customer.create', '--since', rfc3339(before));
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stdout.includes(poison.jobId) || /\b1\b/.test(res.stdout), `the CLI reports what it replayed:\n${res.stdout}`);
    await assertRecovered(poison);
  });

  it('a type filter reaches past 50,500 newer deaths of another type, listing and through scripts/jobs replay', async () => {
    // No worker: the replayed jobs stay queued (their tenant is in no table,
    // so a worker would only kill them again).
    await stack.stopWorkers();
    const tenantId = newId('ten');
    // Two hours ahead: no real death falls among them.
    const base = Date.now() + 7200000;
    const creates = await seedDead({ count: 3, type: 'customer.create', kind: 'domain', tenantId, died: base });
    const updates = await seedDead({ count: 50500, type: 'customer.update', kind: 'domain', tenantId, died: base + 10 });

    // One listing reads at most 50,000 of a kind's deaths: the first page
    // stops among the updates, empty, and says where to go on.
    const query = { status: 'dead', type: 'customer.create', limit: 2 };
    const first = await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json.data, []);
    assert.equal(first.json.has_more, true);
    assert.match(first.json.next_starting_after, CURSOR_RE, 'a sealed place, not a job id');
    const seen = [];
    let after = first.json.next_starting_after;
    for (let page = 0; page < 10 && after; page++) {
      const res = await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { ...query, starting_after: after } });
      assert.equal(res.status, 200, res.text);
      seen.push(...res.json.data.map((j) => j.id));
      after = res.json.next_starting_after;
      assert.equal(res.json.has_more, after !== null);
    }
    assert.equal(after, null, 'the pages come to an end');
    assert.deepEqual(seen.filter((id) => creates.includes(id)), [...creates].reverse(), 'each create once, the latest death first');

    // scripts/jobs replay follows next_starting_after past the updates.
    const res = await jobsCli('replay', '--type', 'customer.create', '--since', rfc3339(base));
    assert.equal(res.code, 0, res.stderr);
    const answers = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(answers.map((a) => [a.replayed, a.has_more, a.next_starting_after === null]),
      [[0, true, false], [3, false, true]], res.stdout.slice(0, 600));
    assert.match(answers[0].next_starting_after, CURSOR_RE);
    assert.deepEqual(answers[1].ids, [...creates].reverse());
    for (const id of creates) assert.equal(await redisValue(S.redisDb, 'HGET', `job:${id}`, 'status'), 'queued');
    assert.equal(await redisValue(S.redisDb, 'HGET', `job:${updates[0]}`, 'status'), 'dead', 'the updates stay dead');

    await dropDead([...creates, ...updates], 'domain', tenantId);
    await redis(S.redisDb, 'DEL', 'jobs:domain');
  });

  it('2,500 deaths in one millisecond are paged through, and replayed, each once', async () => {
    await stack.stopWorkers();
    const tenantId = newId('ten');
    const base = Date.now() + 4 * 3600000;
    // All at one millisecond: 2,400 updates whose ids sort above 100 creates'.
    const updates = await seedDead({ count: 2400, type: 'customer.update', kind: 'domain', tenantId, died: base, sameMs: true, stem: 'ZZZZZZZZZZ' });
    const creates = await seedDead({ count: 100, type: 'customer.create', kind: 'domain', tenantId, died: base, sameMs: true, stem: '0000000000' });

    const seen = [];
    let after = null;
    for (let page = 0; page < 40; page++) {
      const res = await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { status: 'dead', type: 'customer.update', limit: 100, ...(after ? { starting_after: after } : {}) } });
      assert.equal(res.status, 200, res.text);
      seen.push(...res.json.data.map((j) => j.id));
      after = res.json.next_starting_after;
      if (!after) break;
    }
    assert.equal(after, null, 'the pages come to an end');
    assert.deepEqual(seen.filter((id) => updates.includes(id)), [...updates].reverse(), 'each update once, in Redis\'s order');

    // The creates lie behind the 2,400: one listing reads on to them.
    const listed = await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { status: 'dead', type: 'customer.create', limit: 100 } });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.data.map((j) => j.id).filter((id) => creates.includes(id)), [...creates].reverse());
    const replay = await api.post('/v1/jobs/replay', { token: PLATFORM_ADMIN_TOKEN, json: { type: 'customer.create', since: rfc3339(base) } });
    assert.equal(replay.status, 200, replay.text);
    assert.deepEqual([replay.json.replayed, replay.json.has_more, replay.json.next_starting_after], [100, false, null]);
    assert.deepEqual(replay.json.ids, [...creates].reverse());

    await dropDead([...creates, ...updates], 'domain', tenantId);
    await redis(S.redisDb, 'DEL', 'jobs:domain');
  });

  it('a role that may read few dead jobs pages past 50,500 it may not, across kinds', async () => {
    stack.startWorker('access');
    const made = await api.post('/v1/api_keys', { token: DEMO_API_KEY, headers: { Prefer: 'wait=20' }, json: { name: tag('analyst'), role: 'analyst' } });
    assert.equal(made.status, 201, made.text);
    const analyst = made.json;
    await stack.stopWorkers();
    const base = Date.now() + 3 * 3600000;
    // Visible to an analyst: an access job it asked for itself, and a
    // product's job (any role reads those). Hidden: staff users' jobs
    // others asked for, all newer than both.
    const [ownJob] = await seedDead({ count: 1, type: 'user.invite', kind: 'access', tenantId: DEMO_TENANT_ID, actor: analyst.id, died: base + 5000 });
    const [productJob] = await seedDead({ count: 1, type: 'product.create', kind: 'domain', tenantId: DEMO_TENANT_ID, died: base + 7000 });
    const hidden = await seedDead({ count: 50500, type: 'user.invite', kind: 'access', tenantId: DEMO_TENANT_ID, died: base + 10000 });

    // The access set's scan stops after 50,000 hidden deaths. The product's
    // job died before that point, so it waits for the next page: listing it
    // now would pass over any visible access job between the two.
    const first = await api.get('/v1/jobs', { token: analyst.secret, query: { status: 'dead', limit: 20 } });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json.data, []);
    assert.equal(first.json.has_more, true);
    const cursor = first.json.next_starting_after;
    assert.match(cursor, CURSOR_RE);
    const second = await api.get('/v1/jobs', { token: analyst.secret, query: { status: 'dead', limit: 20, starting_after: cursor } });
    assert.equal(second.status, 200, second.text);
    const ids = second.json.data.map((j) => j.id);
    assert.deepEqual(ids.filter((id) => id === ownJob || id === productJob), [productJob, ownJob], 'both, the latest death first');
    assert.ok(!ids.some((id) => hidden.includes(id)), 'no hidden job is listed');
    // No place to start from: a job the caller may not read, another
    // tenant's dead job, a cursor of another tenant or altered.
    const notHere = async (startingAfter) => assertError(
      await api.get('/v1/jobs', { token: analyst.secret, query: { status: 'dead', starting_after: startingAfter } }),
      400, 'parameter_invalid', { param: 'starting_after' });
    await notHere(hidden[500]);
    const otherTenant = newId('ten');
    const elsewhere = await seedDead({ count: 1, type: 'product.create', kind: 'domain', tenantId: otherTenant, died: base });
    await notHere(elsewhere[0]);
    const platformCursor = (await api.get('/v1/jobs', { token: PLATFORM_ADMIN_TOKEN, query: { status: 'dead', limit: 1 } })).json.next_starting_after;
    assert.match(platformCursor, CURSOR_RE);
    await notHere(platformCursor);
    const flipped = cursor.slice(0, -2) + (cursor.at(-2) === 'A' ? 'B' : 'A') + cursor.at(-1);
    await notHere(flipped);
    // The owner's key reads them all: full pages of the newest.
    const owner = await api.get('/v1/jobs', { token: DEMO_API_KEY, query: { status: 'dead', limit: 3 } });
    assert.equal(owner.status, 200, owner.text);
    assert.deepEqual(owner.json.data.map((j) => j.id), hidden.slice(-3).reverse());
    const owner2 = await api.get('/v1/jobs', { token: DEMO_API_KEY, query: { status: 'dead', limit: 3, starting_after: owner.json.next_starting_after } });
    assert.deepEqual(owner2.json.data.map((j) => j.id), hidden.slice(-6, -3).reverse());
    const owner3 = await api.get('/v1/jobs', { token: DEMO_API_KEY, query: { status: 'dead', limit: 3, starting_after: owner2.json.data.at(-1).id } });
    assert.deepEqual(owner3.json.data.map((j) => j.id), hidden.slice(-9, -6).reverse(), 'a listed job\'s id serves as a cursor too');

    await dropDead([ownJob, ...hidden], 'access', DEMO_TENANT_ID);
    await dropDead([productJob], 'domain', DEMO_TENANT_ID);
    await dropDead(elsewhere, 'domain', otherTenant);
  });

  it('scripts/jobs replay calls again while the api says has_more: 1,200 deaths, two calls', async () => {
    // No worker: the replayed jobs stay queued, so none dies again meanwhile.
    await stack.stopWorkers();
    const tenantId = newId('ten');
    // An hour ahead: no real death falls in the range replayed.
    const since = Date.now() + 3600000;
    const ids = Array.from({ length: 1200 }, () => newId('job'));
    const envelope = JSON.stringify({ ...template, id: 'JOBID', tenant_id: tenantId, actor: 'platform', attempt: 0, trace: newId('req') });
    // 1,200 dead jobs as the runtime records them (status hash with the
    // envelope, the kind's dead set and the tenant's), in one script.
    await redis(S.redisDb, 'EVAL', `
      for i, id in ipairs(ARGV) do
        if i > 3 then
          local died = tonumber(ARGV[1]) + i
          redis.call('HSET', 'job:' .. id, 'id', id, 'type', 'customer.create', 'kind', 'domain',
            'tenant_id', ARGV[2], 'status', 'dead', 'finished_at', died,
            'envelope', (string.gsub(ARGV[3], 'JOBID', id)))
          redis.call('ZADD', 'dead:domain', died, id)
          redis.call('ZADD', 'dead:domain:' .. ARGV[2], died, id)
        end
      end
      return 1`, 0, since, tenantId, envelope, ...ids);

    const res = await jobsCli('replay', '--kind', 'domain', '--since', rfc3339(since));
    assert.equal(res.code, 0, res.stderr);
    const answers = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(answers.map((a) => [a.replayed, a.has_more]), [[1000, true], [200, false]], res.stdout.slice(0, 300));
    assert.deepEqual(new Set(answers.flatMap((a) => a.ids)), new Set(ids), 'each of them once');
    assert.equal(await redisValue(S.redisDb, 'ZCOUNT', `dead:domain:${tenantId}`, '-inf', '+inf'), '0');
    assert.ok(Number(await redisValue(S.redisDb, 'XLEN', 'jobs:domain')) >= 1200, 'all of them queued again');

    await redis(S.redisDb, 'DEL', 'jobs:domain', ...ids.map((id) => `job:${id}`));
  });
});
