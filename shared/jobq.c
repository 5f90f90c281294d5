/* jobq: the job queue protocol in Redis (see jobq.h for the keys).
 *
 * The three atomic steps live in one Redis function library, loaded by every
 * process at start. Functions, unlike EVALSHA scripts, persist with the data
 * (AOF), so a restarted Redis needs no NOSCRIPT dance.
 *
 * Design: the Lua code never decodes an envelope. Lua's cjson prints large
 * integers in exponent form, which would corrupt amounts in minor units; the
 * envelope is kept as the exact bytes the front encoded, and a replay that
 * must reset the attempt count sends it beside the envelope as a stream
 * field ("attempt") instead of rewriting it.
 */
#include "jobq.h"

#include <stdio.h>
#include <string.h>

#include "mem.h"
#include "timeutil.h"

const char *const JOBQ_KINDS[] = {"domain",  "access",  "metrics",  "invoice", "renewal", "charger",
                                  "webhook", "dunning", "notifier", "report",  NULL};

/* Job type prefixes and the kind that runs them: the single routing table.
 * A type is "<prefix><verb>"; the first matching prefix wins, so a more
 * specific prefix goes before a shorter one it begins with. */
static const struct {
    const char *prefix; /* Type prefix including the dot. */
    const char *kind;   /* Worker kind. */
} routes[] = {
    /* Sign-in, sessions, staff and keys have their own kind, so a sign-in
     * or a revocation never waits behind a bulk import of customers. */
    {"tenant.settings_", "access"},
    {"user.", "access"},
    {"session.", "access"},
    {"api_key.", "access"},
    {"tenant.", "domain"},
    {"customer.", "domain"},
    {"system.", "domain"},
    {"metrics.", "metrics"},
    {"product.", "domain"},
    {"price.", "domain"},
    /* Subscriptions and invoices share the invoice kind: a subscription
     * change and the invoice it makes commit together. Test clocks belong
     * to the kind that owns time. */
    {"subscription.", "invoice"},
    {"invoice.", "invoice"},
    {"test_clock.", "renewal"},
    {"payment.", "charger"},
    {"stripe.", "webhook"},
    {"dunning.", "dunning"},
};

const char *jobq_kind_for_type(const char *type)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t n = strlen(routes[i].prefix);
        if (strncmp(type, routes[i].prefix, n) == 0 && type[n] != '\0')
            return routes[i].kind;
    }
    return NULL;
}

bool jobq_kind_valid(const char *kind)
{
    for (size_t i = 0; JOBQ_KINDS[i]; i++)
        if (strcmp(JOBQ_KINDS[i], kind) == 0)
            return true;
    return false;
}

static const char *const status_names[] = {
    [JOBQ_QUEUED] = "queued", [JOBQ_RUNNING] = "running", [JOBQ_SUCCEEDED] = "succeeded",
    [JOBQ_FAILED] = "failed", [JOBQ_DEAD] = "dead",
};

const char *jobq_status_name(jobq_status_t s)
{
    return status_names[s];
}

int jobq_status_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (strcmp(status_names[i], s) == 0)
            return (int)i;
    return -1;
}

const char JOBQ_LIBRARY[] =
    "#!lua name=billow\n"
    /* KEYS: status, stream[, idem]. ARGV: id, envelope, now_ms, kind, type,
     * tenant, trace, fingerprint, idem_ttl, actor. The envelope goes into
     * the stream only: the hash gets it when the job is retried or dies,
     * the two states that put it back in a stream (billow_promote,
     * billow_replay). A job's bytes are written (and fsynced, and carried
     * through every AOF rewrite) once, not twice. Attempts and deliveries
     * start absent (0). */
    "local function enqueue(keys, args)\n"
    "  local id = args[1]\n"
    "  if keys[3] then\n"
    "    local v = redis.call('GET', keys[3])\n"
    "    if v then\n"
    "      local sp = string.find(v, ' ', 1, true)\n"
    "      local oid = string.sub(v, sp + 1)\n"
    "      if string.sub(v, 1, sp - 1) == args[8] then return {'replayed', oid} end\n"
    "      return {'conflict', oid}\n"
    "    end\n"
    "  end\n"
    "  if redis.call('EXISTS', keys[1]) == 1 then return {'exists', id} end\n"
    "  if keys[3] then redis.call('SET', keys[3], args[8] .. ' ' .. id, 'EX', args[9]) end\n"
    "  redis.call('HSET', keys[1], 'id', id, 'type', args[5], 'kind', args[4],\n"
    "    'tenant_id', args[6], 'actor', args[10] or '', 'status', 'queued',\n"
    "    'request_id', args[7], 'enqueued_at', args[3])\n"
    "  redis.call('XADD', keys[2], '*', 'job', args[2])\n"
    "  return {'enqueued', id}\n"
    "end\n"
    /* KEYS: delayed, stream. ARGV: now_ms, limit. Only a job still waiting
     * for its retry (queued, with next_attempt_at) goes back: one that
     * finished meanwhile (a takeover ran it again and it succeeded, or it
     * went dead) stays as it ended, and its stale entry is only dropped. */
    "local function promote(keys, args)\n"
    "  local ids = redis.call('ZRANGEBYSCORE', keys[1], '-inf', args[1], 'LIMIT', 0, args[2])\n"
    "  for _, id in ipairs(ids) do\n"
    "    redis.call('ZREM', keys[1], id)\n"
    "    local sk = 'job:' .. id\n"
    "    local st = redis.call('HMGET', sk, 'envelope', 'status', 'next_attempt_at')\n"
    "    local env = st[1]\n"
    "    if env and st[2] == 'queued' and st[3] then\n"
    "      redis.call('HDEL', sk, 'next_attempt_at')\n"
    "      redis.call('XADD', keys[2], '*', 'job', env)\n"
    "    end\n"
    "  end\n"
    "  return #ids\n"
    "end\n"
    /* KEYS: status. ARGV: actor, now_ms. */
    "local function replay(keys, args)\n"
    "  local st = redis.call('HMGET', keys[1], 'status', 'envelope', 'kind', 'id', 'tenant_id')\n"
    "  if not st[1] then return -1 end\n"
    "  if st[1] ~= 'dead' then return 0 end\n"
    "  redis.call('ZREM', 'dead:' .. st[3], st[4])\n"
    "  if st[5] and st[5] ~= '' then redis.call('ZREM', 'dead:' .. st[3] .. ':' .. st[5], st[4]) "
    "end\n"
    "  redis.call('HSET', keys[1], 'status', 'queued', 'replayed_by', args[1],\n"
    "    'replayed_at', args[2], 'attempts', '0', 'deliveries', '0')\n"
    "  redis.call('HINCRBY', keys[1], 'replays', 1)\n"
    "  redis.call('HDEL', keys[1], 'finished_at', 'next_attempt_at')\n"
    "  redis.call('PERSIST', keys[1])\n"
    "  redis.call('XADD', 'jobs:' .. st[3], '*', 'job', st[2], 'attempt', '0')\n"
    "  return 1\n"
    "end\n"
    /* Staff sessions and sign-in counters live in the same library so that
     * every api loads them with it. KEYS: sess:<id>. ARGV: now_ms, idle_ms.
     * The previous use (ms) when the session was used within idle_ms (and
     * is now touched), 0 when it sat idle longer or is unknown (then it is
     * forgotten, so a later request cannot revive it). */
    "local function session_touch(keys, args)\n"
    "  local last = tonumber(redis.call('GET', keys[1]))\n"
    "  if not last then return 0 end\n"
    "  if tonumber(args[1]) - last > tonumber(args[2]) then\n"
    "    redis.call('DEL', keys[1])\n"
    "    return 0\n"
    "  end\n"
    "  redis.call('SET', keys[1], args[1], 'PX', args[2])\n"
    "  return last\n"
    "end\n"
    /* Attempt counters (sign-in failures, reset requests). KEYS: the
     * counters. ARGV: the limit of each, then window_ms. Counts this attempt
     * in every counter at once, before it is judged, so a burst of
     * simultaneous attempts cannot all pass one check; if any counter is
     * then past its limit the attempt is refused and taken back out, and
     * the answer is the milliseconds until the longest window ends, else 0.
     * A counter's window starts at its first attempt. */
    "local function attempt(keys, args)\n"
    "  local window = args[#keys + 1]\n"
    "  local wait = 0\n"
    "  for i, k in ipairs(keys) do\n"
    "    local n = redis.call('INCR', k)\n"
    "    if n == 1 then redis.call('PEXPIRE', k, window) end\n"
    "    if n > tonumber(args[i]) then\n"
    "      local ttl = redis.call('PTTL', k)\n"
    "      if ttl < 1 then ttl = 1 end\n"
    "      if ttl > wait then wait = ttl end\n"
    "    end\n"
    "  end\n"
    "  if wait > 0 then\n"
    "    for _, k in ipairs(keys) do redis.call('DECR', k) end\n"
    "  end\n"
    "  return wait\n"
    "end\n"
    /* KEYS: attempt counters. Takes back one attempt from each (one that
     * turned out not to be a failure). */
    "local function attempt_undo(keys, args)\n"
    "  for _, k in ipairs(keys) do\n"
    "    if tonumber(redis.call('GET', k) or '0') > 0 then redis.call('DECR', k) end\n"
    "  end\n"
    "  return #keys\n"
    "end\n"
    "redis.register_function('billow_enqueue', enqueue)\n"
    "redis.register_function('billow_session_touch', session_touch)\n"
    "redis.register_function('billow_attempt', attempt)\n"
    "redis.register_function('billow_attempt_undo', attempt_undo)\n"
    "redis.register_function('billow_promote', promote)\n"
    "redis.register_function('billow_replay', replay)\n";

static void arg(jobq_cmd_t *cmd, const char *s)
{
    cmd->argv[cmd->argc] = s;
    cmd->argvlen[cmd->argc] = strlen(s);
    cmd->argc++;
}

void jobq_load_library_cmd(jobq_cmd_t *cmd)
{
    cmd->argc = 0;
    arg(cmd, "FUNCTION");
    arg(cmd, "LOAD");
    arg(cmd, "REPLACE");
    arg(cmd, JOBQ_LIBRARY);
}

int jobq_load_library(redisContext *c)
{
    jobq_cmd_t cmd;
    jobq_load_library_cmd(&cmd);
    redisReply *r = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen);
    if (r == NULL)
        return BILLOW_EUNAVAILABLE;
    int rc = r->type == REDIS_REPLY_ERROR ? BILLOW_EINTERNAL : 0;
    freeReplyObject(r);
    return rc;
}

void jobq_stream_key(const char *kind, char out[JOBQ_KEY_MAX])
{
    snprintf(out, JOBQ_KEY_MAX, "jobs:%s", kind);
}

void jobq_status_key(const char *job_id, char out[JOBQ_KEY_MAX])
{
    snprintf(out, JOBQ_KEY_MAX, "job:%s", job_id);
}

void jobq_delayed_key(const char *kind, char out[JOBQ_KEY_MAX])
{
    snprintf(out, JOBQ_KEY_MAX, "delayed:%s", kind);
}

void jobq_dead_key(const char *kind, char out[JOBQ_KEY_MAX])
{
    snprintf(out, JOBQ_KEY_MAX, "dead:%s", kind);
}

void jobq_dead_tenant_key(const char *kind, const char *tenant_id, char out[JOBQ_KEY_MAX])
{
    snprintf(out, JOBQ_KEY_MAX, "dead:%s:%s", kind, tenant_id);
}

void jobq_idem_key(const char *scope, const char *key, char out[JOBQ_KEY_MAX])
{
    snprintf(out, JOBQ_KEY_MAX, "idem:%s:%s", scope, key);
}

int jobq_enqueue_cmd(jobq_cmd_t *cmd, const envelope_t *env, const char *envelope_json,
                     const char *idem_scope, const char *idem_key, const char *fingerprint,
                     int64_t now_ms)
{
    const char *kind = jobq_kind_for_type(env->type);
    cmd->argc = 0;
    if (kind == NULL)
        return BILLOW_EPARAM_INVALID;
    jobq_status_key(env->id, cmd->keys[0]);
    jobq_stream_key(kind, cmd->keys[1]);
    snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%lld", (long long)now_ms);
    snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%d", JOBQ_IDEMPOTENCY_TTL_S);
    arg(cmd, "FCALL");
    arg(cmd, "billow_enqueue");
    if (idem_key) {
        jobq_idem_key(idem_scope ? idem_scope : env->tenant_id, idem_key, cmd->keys[2]);
        arg(cmd, "3");
    } else {
        arg(cmd, "2");
    }
    arg(cmd, cmd->keys[0]);
    arg(cmd, cmd->keys[1]);
    if (idem_key)
        arg(cmd, cmd->keys[2]);
    arg(cmd, env->id);
    arg(cmd, envelope_json);
    arg(cmd, cmd->nums[0]);
    arg(cmd, kind);
    arg(cmd, env->type);
    arg(cmd, env->tenant_id);
    arg(cmd, env->trace);
    arg(cmd, fingerprint ? fingerprint : "");
    arg(cmd, cmd->nums[1]);
    arg(cmd, env->actor);
    return 0;
}

int jobq_enqueue_reply(const redisReply *r, jobq_outcome_t *outcome, char job_id[IDS_MAX])
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[1]->len >= IDS_MAX)
        return BILLOW_EUNAVAILABLE;
    const char *what = r->element[0]->str;
    if (strcmp(what, "enqueued") == 0)
        *outcome = JOBQ_ENQUEUED;
    else if (strcmp(what, "replayed") == 0)
        *outcome = JOBQ_REPLAYED;
    else if (strcmp(what, "conflict") == 0)
        *outcome = JOBQ_CONFLICT;
    else if (strcmp(what, "exists") == 0)
        *outcome = JOBQ_EXISTS;
    else
        return BILLOW_EINTERNAL;
    memcpy(job_id, r->element[1]->str, r->element[1]->len);
    job_id[r->element[1]->len] = '\0';
    return 0;
}

int jobq_enqueue_sync(redisContext *c, const envelope_t *env, const char *idem_scope,
                      const char *idem_key, const char *fingerprint, jobq_outcome_t *outcome,
                      char job_id[IDS_MAX])
{
    char *json = envelope_encode(env);
    jobq_cmd_t cmd;
    int rc =
        jobq_enqueue_cmd(&cmd, env, json, idem_scope, idem_key, fingerprint, timeutil_now_ms());
    if (rc != 0) {
        free(json);
        return rc;
    }
    redisReply *r = redisCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen);
    rc = r ? jobq_enqueue_reply(r, outcome, job_id) : BILLOW_EUNAVAILABLE;
    if (r)
        freeReplyObject(r);
    free(json);
    return rc;
}

void jobq_promote_cmd(jobq_cmd_t *cmd, const char *kind, int64_t now_ms, int limit)
{
    cmd->argc = 0;
    jobq_delayed_key(kind, cmd->keys[0]);
    jobq_stream_key(kind, cmd->keys[1]);
    snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%lld", (long long)now_ms);
    snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%d", limit);
    arg(cmd, "FCALL");
    arg(cmd, "billow_promote");
    arg(cmd, "2");
    arg(cmd, cmd->keys[0]);
    arg(cmd, cmd->keys[1]);
    arg(cmd, cmd->nums[0]);
    arg(cmd, cmd->nums[1]);
}

void jobq_replay_cmd(jobq_cmd_t *cmd, const char *job_id, const char *actor, int64_t now_ms)
{
    cmd->argc = 0;
    jobq_status_key(job_id, cmd->keys[0]);
    snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%lld", (long long)now_ms);
    arg(cmd, "FCALL");
    arg(cmd, "billow_replay");
    arg(cmd, "1");
    arg(cmd, cmd->keys[0]);
    arg(cmd, actor);
    arg(cmd, cmd->nums[0]);
}

const char *jobq_reply_field(const redisReply *r, const char *field)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, field) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_STRING ? r->element[i + 1]->str : NULL;
    return NULL;
}

/* A Unix-ms field as RFC 3339 text, or JSON null when absent. */
static json_t *time_field(const redisReply *r, const char *field)
{
    const char *v = jobq_reply_field(r, field);
    if (v == NULL || *v == '\0')
        return json_null();
    char buf[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339(strtoll(v, NULL, 10), buf);
    return json_string(buf);
}

/* A JSON-valued field parsed, or null when absent or unparsable. */
static json_t *json_field(const redisReply *r, const char *field)
{
    const char *v = jobq_reply_field(r, field);
    json_t *j = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

static json_t *string_field(const redisReply *r, const char *field)
{
    const char *v = jobq_reply_field(r, field);
    return v && *v ? json_string(v) : json_null();
}

json_t *jobq_status_json(const redisReply *r)
{
    const char *id = jobq_reply_field(r, "id");
    if (id == NULL)
        return NULL;
    const char *attempts = jobq_reply_field(r, "attempts");
    const char *replays = jobq_reply_field(r, "replays");
    return json_pack(
        "{s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", id, "object",
        "job", "type", string_field(r, "type"), "status", string_field(r, "status"), "tenant_id",
        string_field(r, "tenant_id"), "attempts",
        (json_int_t)(attempts ? strtoll(attempts, NULL, 10) : 0), "replays",
        (json_int_t)(replays ? strtoll(replays, NULL, 10) : 0), "result", json_field(r, "result"),
        "error", json_field(r, "error"), "request_id", string_field(r, "request_id"), "created_at",
        time_field(r, "enqueued_at"), "started_at", time_field(r, "started_at"), "finished_at",
        time_field(r, "finished_at"), "next_attempt_at", time_field(r, "next_attempt_at"),
        "replayed_by", string_field(r, "replayed_by"), "replayed_at", time_field(r, "replayed_at"));
}

size_t jobq_new_job_text(const envelope_t *env, char *out, size_t len)
{
    /* Every value here is an id, a routed job type or a time: ASCII without
     * quotes or backslashes, so the object is written without an encoder. */
    char created[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339(env->enqueued_at_ms, created);
    char tenant[IDS_MAX + 2];
    snprintf(tenant, sizeof(tenant), env->tenant_id[0] ? "\"%s\"" : "null", env->tenant_id);
    int n = snprintf(out, len,
                     "{\"id\":\"%s\",\"object\":\"job\",\"type\":\"%s\",\"status\":\"queued\","
                     "\"tenant_id\":%s,\"attempts\":0,\"replays\":0,\"result\":null,"
                     "\"error\":null,\"request_id\":\"%s\",\"created_at\":\"%s\","
                     "\"started_at\":null,\"finished_at\":null,\"next_attempt_at\":null,"
                     "\"replayed_by\":null,\"replayed_at\":null}",
                     env->id, env->type, tenant, env->trace, created);
    return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

json_t *jobq_new_job_json(const envelope_t *env)
{
    char text[JOBQ_NEW_JOB_MAX];
    size_t n = jobq_new_job_text(env, text, sizeof(text));
    return n ? json_loadb(text, n, 0, NULL) : NULL;
}
