/* routes: every route handler, by resource. Each is registered in router.c. */
#ifndef BILLOW_ROUTES_H
#define BILLOW_ROUTES_H

#include "respond.h"

/* routes_system.c */
void routes_healthz(api_req_t *ar);
void routes_readyz(api_req_t *ar);
void routes_metrics(api_req_t *ar);
void routes_openapi(api_req_t *ar);
void routes_docs(api_req_t *ar);

/* routes_tenants.c */
void routes_tenants_create(api_req_t *ar);

/* routes_customers.c */
void routes_customers_create(api_req_t *ar);
void routes_customers_get(api_req_t *ar);
void routes_customers_update(api_req_t *ar);
void routes_customers_list(api_req_t *ar);

void routes_customers_balance_transactions(api_req_t *ar);

/* routes_catalog.c: products and prices. */
void routes_products_create(api_req_t *ar);
void routes_products_list(api_req_t *ar);
void routes_products_get(api_req_t *ar);
void routes_products_update(api_req_t *ar);
void routes_prices_create(api_req_t *ar);
void routes_prices_list(api_req_t *ar);
void routes_prices_get(api_req_t *ar);
void routes_prices_update(api_req_t *ar);

/* routes_subscriptions.c */
void routes_subscriptions_create(api_req_t *ar);
void routes_subscriptions_list(api_req_t *ar);
void routes_subscriptions_get(api_req_t *ar);
void routes_subscriptions_update(api_req_t *ar);
void routes_subscriptions_cancel(api_req_t *ar);
void routes_subscriptions_pause(api_req_t *ar);
void routes_subscriptions_resume(api_req_t *ar);

/* routes_invoices.c */
void routes_invoices_list(api_req_t *ar);
void routes_invoices_get(api_req_t *ar);
void routes_invoices_void(api_req_t *ar);
void routes_invoices_mark_uncollectible(api_req_t *ar);
void routes_invoices_pay(api_req_t *ar);

/* routes_payments.c: one-off payments, refunds, an invoice's payment
 * attempts and a customer's setup intents. */
void routes_payments_create(api_req_t *ar);
void routes_payments_list(api_req_t *ar);
void routes_payments_get(api_req_t *ar);
void routes_payments_refunds_create(api_req_t *ar);
void routes_payments_refunds_list(api_req_t *ar);
void routes_invoices_payment_attempts(api_req_t *ar);
void routes_customers_setup_intents_create(api_req_t *ar);

/* routes_webhooks.c: deliveries from Stripe. */
void routes_webhooks_stripe(api_req_t *ar);

/* routes_test_clocks.c */
void routes_test_clocks_create(api_req_t *ar);
void routes_test_clocks_list(api_req_t *ar);
void routes_test_clocks_get(api_req_t *ar);
void routes_test_clocks_advance(api_req_t *ar);

/* routes_auth.c: sign-in, sessions, passwords, TOTP. */
void routes_auth_login(api_req_t *ar);
void routes_auth_logout(api_req_t *ar);
void routes_auth_session_get(api_req_t *ar);
void routes_auth_sessions_list(api_req_t *ar);
void routes_auth_sessions_delete(api_req_t *ar);
void routes_auth_password_change(api_req_t *ar);
void routes_auth_password_reset(api_req_t *ar);
void routes_auth_password_reset_confirm(api_req_t *ar);
void routes_auth_invitation_accept(api_req_t *ar);
void routes_auth_totp_enroll(api_req_t *ar);
void routes_auth_totp_confirm(api_req_t *ar);
void routes_auth_totp_disable(api_req_t *ar);

/* routes_users.c */
void routes_users_list(api_req_t *ar);
void routes_users_get(api_req_t *ar);
void routes_users_create(api_req_t *ar);
void routes_users_update(api_req_t *ar);

/* routes_api_keys.c */
void routes_api_keys_list(api_req_t *ar);
void routes_api_keys_create(api_req_t *ar);
void routes_api_keys_rotate(api_req_t *ar);
void routes_api_keys_revoke(api_req_t *ar);

/* routes_audit.c */
void routes_audit_list(api_req_t *ar);

/* routes_settings.c */
void routes_settings_security_get(api_req_t *ar);
void routes_settings_security_update(api_req_t *ar);
void routes_settings_billing_get(api_req_t *ar);
void routes_settings_billing_update(api_req_t *ar);
void routes_settings_stripe_get(api_req_t *ar);
void routes_settings_stripe_update(api_req_t *ar);
void routes_settings_dunning_get(api_req_t *ar);
void routes_settings_dunning_update(api_req_t *ar);

/* routes_jobs.c */
void routes_jobs_get(api_req_t *ar);
void routes_jobs_list(api_req_t *ar);
void routes_jobs_replay(api_req_t *ar);
void routes_jobs_replay_many(api_req_t *ar);

#endif
