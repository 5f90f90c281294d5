/* routes_invoices: a tenant's invoices.
 *
 * Invoices are made by the invoice worker (subscriptions' periods and
 * changes); staff read them and move them by hand: void, mark
 * uncollectible, or record a payment made outside Billow. Each move is a
 * job whose worker asks shared/invstate.c whether it is allowed.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "body.h"
#include "ids.h"
#include "invstate.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"

/* True when the {id} of the path is an invoice id; otherwise answers 404. */
static bool id_ok_or_respond(api_req_t *ar)
{
    if (ids_valid("in", ar->params[0]))
        return true;
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such invoice: '%s'.", ar->params[0]);
    return false;
}

void routes_invoices_get(api_req_t *ar)
{
    if (!id_ok_or_respond(ar))
        return;
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "invoice", "SELECT invoice_object(i)::text FROM invoices i WHERE i.id = $1", 1,
                 params);
}

void routes_invoices_list(api_req_t *ar)
{
    static const char *const allowed[] = {
        "limit",  "starting_after",   "customer",        "subscription",
        "status", "period_start_gte", "period_start_lt", NULL};
    char after[IDS_MAX], customer[IDS_MAX], sub[IDS_MAX], status[16] = "";
    char gte[TIMEUTIL_RFC3339_MAX], lt[TIMEUTIL_RFC3339_MAX];
    int limit;
    if (reads_page_params(ar, allowed, "in", &limit, after) != 0 ||
        reads_id_filter(ar, "customer", "cus", customer) != 0 ||
        reads_id_filter(ar, "subscription", "sub", sub) != 0 ||
        reads_time_filter(ar, "period_start_gte", gte) != 0 ||
        reads_time_filter(ar, "period_start_lt", lt) != 0)
        return;
    int rc = query_get(ar->http->query, "status", status, sizeof status);
    if (rc < 0 || (rc > 0 && invstate_parse(status) < 0)) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "status",
                      "status must be one of draft, open, paid, void, uncollectible.");
        return;
    }
    if (rc == 0)
        status[0] = '\0';
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[7] = {after, customer, sub, status, gte, lt, lim};
    reads_list(ar, "/v1/invoices", limit,
               "SELECT invoice_object(i, false)::text FROM invoices i"
               " WHERE ($1 = '' OR i.id < $1) AND ($2 = '' OR i.customer_id = $2)"
               " AND ($3 = '' OR i.subscription_id = $3) AND ($4 = '' OR i.status = $4)"
               " AND ($5 = '' OR i.period_start >= $5::timestamptz)"
               " AND ($6 = '' OR i.period_start < $6::timestamptz)"
               " ORDER BY i.id DESC LIMIT $7::int",
               7, params);
}

/* Submits one move of invoice {id} (no body members but those allowed). */
static void submit_move(api_req_t *ar, const char *type, const char *const *allowed)
{
    validate_error_t e;
    if (!id_ok_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, allowed, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    submit_t s = {.type = type,
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_object(),
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_invoices_void(api_req_t *ar)
{
    static const char *const none[] = {NULL};
    submit_move(ar, "invoice.void", none);
}

void routes_invoices_mark_uncollectible(api_req_t *ar)
{
    static const char *const none[] = {NULL};
    submit_move(ar, "invoice.mark_uncollectible", none);
}

void routes_invoices_pay(api_req_t *ar)
{
    static const char *const keys[] = {"paid_out_of_band", NULL};
    const json_t *oob = json_object_get(ar->body, "paid_out_of_band");
    if (ids_valid("in", ar->params[0]) && !json_is_true(oob)) {
        respond_error(ar, oob ? BILLOW_EPARAM_INVALID : BILLOW_EPARAM_MISSING, "paid_out_of_band",
                      "Send paid_out_of_band: true to record a payment made outside Billow; "
                      "card payments are charged by Billow itself.");
        return;
    }
    submit_move(ar, "invoice.pay", keys);
}
