/* submit: turning a validated request into a job, and answering it.
 *
 * submit_job_or_respond() builds the envelope, enqueues it with the
 * request's Idempotency-Key through one atomic Redis function, and answers:
 * 202 with the job; or, with `Prefer: wait=N`, the job's outcome if it ends
 * within N seconds (created_status and the result, or the job's error); or
 * 409 when the Idempotency-Key was used for another request. A route may
 * name the job's id itself (submit_t.job_id) so that asking twice for one
 * fact makes one job.
 */
#ifndef BILLOW_SUBMIT_H
#define BILLOW_SUBMIT_H

#include <jansson.h>
#include <stdbool.h>

#include "respond.h"

/* Longest Idempotency-Key accepted (as Stripe). */
#define SUBMIT_IDEMPOTENCY_KEY_MAX 255

typedef struct {
    const char *type;      /* Job type ("customer.create"). */
    const char *tenant_id; /* The job's tenant. */
    json_t *payload;       /* Stolen; may be the request's own body. */
    /* Set as payload.id after the idempotency fingerprint is taken from the
     * request body (so a generated id does not change the fingerprint), or
     * NULL. Lets a route pass its body as the payload without copying it. */
    const char *object_id;
    int created_status; /* 201 for creations, 200 otherwise. */
    /* Merged into the answer (202 job object, or the finished result) when
     * the job was enqueued by this request (not an idempotent replay):
     * secrets shown once. Stolen; may be NULL. */
    json_t *reveal;
    /* The member of reveal merged into the finished result ("api_key"):
     * into the result's member of that name when it has one (a tenant and
     * its key), else into the result itself (the key alone); NULL merges
     * all of reveal into the result. */
    const char *reveal_at;
    /* The finished answer is reveal alone, not the job's result merged with
     * it (a TOTP enrolment answers with the secret, not the user). */
    bool reveal_only;
    /* Wait this long for the job even without a Prefer header (routes whose
     * answer is the outcome: sign-in, sign-out); 0 for none. The longer of
     * this and the header's wins. */
    int wait_s;
    /* When set (stolen), the request is answered with this body and
     * answer_status as soon as the job is enqueued, and learns nothing of
     * the job (a password reset must answer alike whether the email
     * exists). */
    json_t *answer;
    int answer_status;
    /* The job's id when the route derives it from the business fact the
     * job stands for (ids_derive: a Stripe event for a tenant), or NULL
     * for a new id. A request whose job the queue already holds enqueues
     * nothing and is answered as for that job: with `answer` when set
     * (its "duplicate" member, when it has one, becomes true; false
     * otherwise), else as an idempotent replay would be. A webhook
     * delivered again is thus the same job, once. */
    const char *job_id;
    /* The route ignores Idempotency-Key (sign-in and the other routes of
     * one's own account, which answer their outcome and are safe to
     * repeat; and password reset, whose answer must not differ between an
     * address with an account and one without). */
    bool no_idempotency;
} submit_t;

/* Enqueues and answers ar; frees ar. */
void submit_job_or_respond(api_req_t *ar, submit_t *s);
/* Parses a Prefer header for wait=N; returns N seconds (capped at max) or 0. */
int submit_parse_prefer_wait(const char *prefer, int max);
/* Checks an Idempotency-Key: 1..255 printable ASCII characters. */
int submit_check_idempotency_key(const char *key);

#endif
