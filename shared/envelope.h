/* envelope: the JSON envelope every job travels in.
 *
 * {"id":"job_…","type":"customer.create","tenant_id":"ten_…","actor":"key_…",
 *  "payload":{…},"idempotency_key":"…"|null,"attempt":0,
 *  "enqueued_at":"2026-11-25T23:17:50.123Z","trace":"req_…","client":"203.0.113.7"}
 *
 * The envelope is what the stream entry carries and what the job status hash
 * keeps for replays. It never holds a secret: the front puts only hashes of
 * keys and tokens into a payload.
 */
#ifndef BILLOW_ENVELOPE_H
#define BILLOW_ENVELOPE_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "ids.h"

/* Longest job type ("customer.update"). */
#define ENVELOPE_TYPE_MAX 64
/* Longest client address kept (an IPv6 address in text is at most 45). */
#define ENVELOPE_CLIENT_MAX 64
/* Longest idempotency key a client may send (Stripe allows 255). */
#define ENVELOPE_IDEMPOTENCY_KEY_MAX 255

typedef struct {
    char id[IDS_MAX];                 /* "job_…". */
    char type[ENVELOPE_TYPE_MAX];     /* Job type; chooses the worker kind. */
    char tenant_id[IDS_MAX];          /* Owning tenant ("" for platform jobs). */
    char actor[IDS_MAX * 2];          /* Who asked: "key_…", "user_…" or "platform". */
    json_t *payload;                  /* Owned: a JSON object. */
    char *idempotency_key;            /* Owned, may be NULL. */
    int attempt;                      /* Failed attempts so far (0 on first delivery). */
    int64_t enqueued_at_ms;           /* When the front accepted it. */
    char trace[IDS_MAX];              /* Request id of the request that made it. */
    char client[ENVELOPE_CLIENT_MAX]; /* Address of the client that asked ("" when none:
                                         a scheduled job); optional on the wire. */
} envelope_t;

/* Sets every field of env to empty; payload becomes NULL. */
void envelope_init(envelope_t *env);
/* Frees what env owns and empties it. */
void envelope_dispose(envelope_t *env);
/* Encodes env as compact JSON (a NULL payload as {}). Caller frees with
 * free(). Returns NULL only if a string field is not valid UTF-8. */
char *envelope_encode(const envelope_t *env);
/* Decodes json into env (initialised by the callee). Returns 0, or
 * BILLOW_EINVALID_JSON / BILLOW_EPARAM_INVALID with env disposed. */
int envelope_decode(const char *json, size_t len, envelope_t *env) BILLOW_MUSTCHECK;

#endif
