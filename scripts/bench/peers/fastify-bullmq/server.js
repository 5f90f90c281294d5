// The benchmark peer of Billow's front: POST /v1/customers on fastify with a
// BullMQ queue, doing what billow-api does for that route, so that
// scripts/bench/front compares like with like.
//
// Per request, as Billow: authenticate the bearer key (SHA-256, looked up in
// memory as Billow's auth cache does after its first look-up), parse the JSON
// body (empty = {}), validate the fields as the API contract says (unknown
// keys 400, email, name 1..256, phone E.164, metadata <= 50 keys), make a
// request id, a customer id and a job id, enqueue the job
// (queue.add('customer.create', ...) with the job id, so BullMQ checks that
// the id is new as Billow's billow_enqueue does), answer 202 with a job
// object, a Location and a Request-Id header, and write one access log line.
//
// One Node process (no cluster), as billow-api is one process.
//
// Environment: PEER_PORT (18092), REDIS_PORT (16381), REDISCLI_AUTH (the
// Redis password, if any), PEER_QUEUE (bench-peer), PEER_KEY_SHA256 (hex SHA-256 of the accepted secret key),
// PEER_TENANT_ID, PEER_LOG (1: access log lines on stdout, as Billow's
// LOG_LEVEL=info; 0: none).
import { createHash, randomBytes } from 'node:crypto';

import { Queue } from 'bullmq';
import Fastify from 'fastify';
import IORedis from 'ioredis';

// Largest request body, as Billow's MAX_BODY_BYTES default (1 MiB).
const BODY_MAX = 1024 * 1024;
// The contract's field limits (shared/validate.h in Billow).
const EMAIL_MAX = 254;
const EMAIL_LOCAL_MAX = 64;
const NAME_MAX = 256;
const METADATA_MAX_KEYS = 50;
const METADATA_KEY_MAX = 40;
const METADATA_VALUE_MAX = 500;
const CREATE_KEYS = new Set(['email', 'name', 'phone', 'metadata']);

const port = Number(process.env.PEER_PORT || 18092);
const redisPort = Number(process.env.REDIS_PORT || 16381);
const queueName = process.env.PEER_QUEUE || 'bench-peer';
const tenantId = process.env.PEER_TENANT_ID || 'ten_0000000000000000000000DEM0';
const keys = new Map();
if (process.env.PEER_KEY_SHA256) keys.set(process.env.PEER_KEY_SHA256, tenantId);
const logOn = process.env.PEER_LOG !== '0';

// Ids as Billow makes them: prefix, "_", 10 Crockford base32 characters of
// Unix milliseconds, 16 of 80 random bits.
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
function newId(prefix) {
  let ms = Date.now();
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[ms % 32] + time;
    ms = Math.floor(ms / 32);
  }
  const r = randomBytes(10);
  let rand = '';
  for (let half = 0; half < 2; half++) {
    let v = r.readUIntBE(half * 5, 5);
    let part = '';
    for (let i = 0; i < 8; i++) {
      part = CROCKFORD[v % 32] + part;
      v = Math.floor(v / 32);
    }
    rand += part;
  }
  return `${prefix}_${time}${rand}`;
}

class ApiError extends Error {
  constructor(status, type, code, param, message) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
  }
}

const invalid = (param, message) =>
  new ApiError(400, 'invalid_request_error', 'parameter_invalid', param, message);

// Control characters (C0 and DEL) are refused in every text, as Billow does.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkEmail(s) {
  if (s.length === 0 || Buffer.byteLength(s) > EMAIL_MAX)
    throw invalid('email', `email must be an email address of 1 to ${EMAIL_MAX} characters.`);
  if (s.includes(' ') || CONTROL.test(s))
    throw invalid('email', 'email must not contain spaces or control characters.');
  const at = s.indexOf('@');
  if (at < 0 || s.indexOf('@', at + 1) >= 0)
    throw invalid('email', 'email must contain exactly one "@".');
  if (at === 0 || Buffer.byteLength(s.slice(0, at)) > EMAIL_LOCAL_MAX)
    throw invalid('email', `email must have 1 to ${EMAIL_LOCAL_MAX} characters before the "@".`);
  const domain = s.slice(at + 1);
  if (!domain.includes('.') || domain.startsWith('.') || domain.endsWith('.') || domain.includes('..'))
    throw invalid('email', 'email must have a domain with a dot after the "@".');
}

function checkText(param, s, max) {
  if (s.length === 0 || Buffer.byteLength(s) > max)
    throw invalid(param, `${param} must be 1 to ${max} bytes long.`);
  if (CONTROL.test(s)) throw invalid(param, `${param} must not contain control characters.`);
}

function checkPhone(s) {
  if (!/^\+[1-9][0-9]{7,14}$/.test(s))
    throw invalid('phone', 'phone must be an E.164 number: "+" then 8 to 15 digits.');
}

function checkMetadata(md) {
  if (md === null || typeof md !== 'object' || Array.isArray(md))
    throw invalid('metadata', 'metadata must be an object of string keys and string values.');
  const entries = Object.entries(md);
  if (entries.length > METADATA_MAX_KEYS)
    throw invalid('metadata', `metadata may have at most ${METADATA_MAX_KEYS} keys.`);
  for (const [k, v] of entries) {
    const where = `metadata[${k}]`;
    if (k.length === 0 || [...k].length > METADATA_KEY_MAX || CONTROL.test(k))
      throw invalid(where, `Metadata keys must be 1 to ${METADATA_KEY_MAX} characters.`);
    if (typeof v !== 'string') throw invalid(where, 'Metadata values must be strings.');
    if ([...v].length > METADATA_VALUE_MAX || CONTROL.test(v))
      throw invalid(where, `Metadata values must be at most ${METADATA_VALUE_MAX} characters.`);
  }
}

function checkCustomer(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ApiError(400, 'invalid_request_error', 'parameter_invalid', null,
      'The request body must be a JSON object.');
  for (const k of Object.keys(body)) {
    if (!CREATE_KEYS.has(k))
      throw new ApiError(400, 'invalid_request_error', 'parameter_unknown', k,
        `Received unknown parameter: ${k}.`);
  }
  for (const k of ['email', 'name', 'phone']) {
    if (!(k in body)) continue;
    const v = body[k];
    if (typeof v !== 'string') throw invalid(k, `${k} must be a string.`);
    if (k === 'email') checkEmail(v);
    else if (k === 'phone') checkPhone(v);
    else checkText(k, v, NAME_MAX);
  }
  if ('metadata' in body) checkMetadata(body.metadata);
}

function authenticate(header) {
  const m = /^Bearer (sk_[A-Za-z0-9_-]{17,97})$/.exec(header || '');
  const tenant = m && keys.get(createHash('sha256').update(m[1]).digest('hex'));
  if (!tenant)
    throw new ApiError(401, 'authentication_error', 'unauthenticated', null,
      'Invalid or missing API key.');
  return tenant;
}

const connection = new IORedis({ host: '127.0.0.1', port: redisPort, password: process.env.REDISCLI_AUTH || undefined, maxRetriesPerRequest: null });
const queue = new Queue(queueName, { connection });

const app = Fastify({
  logger: logOn ? { level: 'info' } : false,
  disableRequestLogging: true,
  bodyLimit: BODY_MAX,
  genReqId: () => newId('req'),
});

// Billow answers any other content type with 415; fastify would parse
// text/plain into a string.
app.removeContentTypeParser('text/plain');
// Billow accepts an empty body as {} and answers malformed JSON with 400
// invalid_json; fastify's own parser refuses an empty body.
app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, text, done) => {
  if (text.length === 0) return done(null, {});
  try {
    done(null, JSON.parse(text));
  } catch (e) {
    done(new ApiError(400, 'invalid_request_error', 'invalid_json', null, e.message));
  }
});

app.setErrorHandler((err, req, reply) => {
  const status = err instanceof ApiError ? err.status : err.statusCode || 500;
  if (!(err instanceof ApiError)) {
    err.type = status >= 500 ? 'api_error' : 'invalid_request_error';
    err.code = { 413: 'body_too_large', 415: 'unsupported_media_type' }[status] ||
      (status >= 500 ? 'api_error' : 'malformed_request');
  }
  reply.code(status).header('Request-Id', req.id).send({
    error: {
      type: err.type,
      code: err.code,
      message: err.message,
      param: err.param ?? null,
      request_id: req.id,
    },
  });
});

if (logOn) {
  app.addHook('onResponse', (req, reply, done) => {
    req.log.info({
      event: 'http_request', request_id: req.id, method: req.method, path: req.url,
      status: reply.statusCode, duration_us: Math.round(reply.elapsedTime * 1000),
      client: req.ip,
    });
    done();
  });
}

app.get('/healthz', async () => ({ status: 'ok' }));

app.post('/v1/customers', async (req, reply) => {
  const tenant = authenticate(req.headers.authorization);
  checkCustomer(req.body);
  const payload = { ...req.body, id: newId('cus') };
  const jobId = newId('job');
  const now = new Date();
  await queue.add('customer.create',
    { tenant_id: tenant, actor: 'key', payload, trace: req.id, enqueued_at: now.toISOString() },
    { jobId });
  reply.code(202).header('Request-Id', req.id).header('Location', `/v1/jobs/${jobId}`);
  return {
    id: jobId, object: 'job', type: 'customer.create', status: 'queued', tenant_id: tenant,
    attempts: 0, replays: 0, result: null, error: null, request_id: req.id,
    created_at: now.toISOString(), started_at: null, finished_at: null, next_attempt_at: null,
    replayed_by: null, replayed_at: null,
  };
});

const stop = async () => {
  await app.close();
  await queue.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

await app.listen({ host: '127.0.0.1', port });
