-- 004: payments. Each tenant's own Stripe account (its secret key and
-- webhook signing secrets, sealed), the Stripe customer of each Billow
-- customer, every attempt to charge an invoice, the payments that came
-- of them, refunds and disputes, the Stripe events received (once each),
-- the newest state seen of each Stripe object, and the dunning policy.
--
-- Card data never reaches Billow: a payment method is Stripe's id (pm_…).
-- Secrets are sealed by the api before they ride in a job (shared/seal.c,
-- AES-256-GCM under ENCRYPTION_KEY); the database holds only sealed text
-- and a short hint for people ("sk_test_…4242").

-- A tenant's Stripe account. One row per tenant that connected one.
CREATE TABLE stripe_accounts (
  tenant_id            text PRIMARY KEY REFERENCES tenants (id),
  -- The audit trail names a row by its id: the account's is its tenant's
  -- (set by default from the tenant the writer acts for).
  id                   text NOT NULL DEFAULT current_setting('app.tenant_id', true),
  secret_key_sealed    text NOT NULL CHECK (secret_key_sealed LIKE 'v1.%'),
  secret_key_hint      text NOT NULL,
  livemode             boolean NOT NULL,
  -- [{"sealed": "v1.…", "hint": "whsec_…abcd", "added_at": "…"}], newest first;
  -- several while a secret is being rotated.
  webhook_secrets      jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(webhook_secrets) = 'array'),
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- What a tenant does when an automatic charge fails: retry on a schedule
-- (days after the first failure), and at the end cancel the subscription,
-- mark it unpaid or leave it past due; which messages the customer gets.
ALTER TABLE tenants ADD COLUMN dunning_policy jsonb NOT NULL DEFAULT
  '{"retry_days": [3, 5, 7], "end_action": "cancel",
    "notify": {"payment_failed": true, "action_required": true,
               "payment_method_required": true, "retries_exhausted": true,
               "payment_succeeded": true}}'::jsonb
  CHECK (jsonb_typeof(dunning_policy) = 'object');

ALTER TABLE customers ADD COLUMN stripe_customer_id text
  CHECK (stripe_customer_id ~ '^cus_[A-Za-z0-9]{1,250}$');
CREATE UNIQUE INDEX customers_stripe ON customers (tenant_id, stripe_customer_id)
  WHERE stripe_customer_id IS NOT NULL;

-- A Billow subscription may mirror one of the tenant's Stripe
-- subscriptions (a tenant moving over): its deleted/updated events then
-- reach the Billow subscription.
ALTER TABLE subscriptions ADD COLUMN stripe_subscription_id text
  CHECK (stripe_subscription_id ~ '^sub_[A-Za-z0-9]{1,250}$');
CREATE UNIQUE INDEX subscriptions_stripe ON subscriptions (tenant_id, stripe_subscription_id)
  WHERE stripe_subscription_id IS NOT NULL;

-- Collection state of an invoice: how many attempts were made, when the
-- next one is due (NULL: none scheduled), when the policy's end applies if
-- it is still unpaid, and the last error. one_off: made by POST
-- /v1/payments (charged once, no dunning).
ALTER TABLE invoices
  ADD COLUMN description text,
  ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
  ADD COLUMN attempt_count integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
  ADD COLUMN scheduled_retries integer NOT NULL DEFAULT 0 CHECK (scheduled_retries >= 0),
  ADD COLUMN first_failed_at timestamptz,
  ADD COLUMN next_payment_attempt timestamptz,
  ADD COLUMN dunning_ends_at timestamptz,
  ADD COLUMN payment_method_required boolean NOT NULL DEFAULT false,
  ADD COLUMN last_payment_error jsonb,
  ADD COLUMN stripe_invoice_id text CHECK (stripe_invoice_id ~ '^in_[A-Za-z0-9]{1,250}$');
CREATE INDEX invoices_retry_due ON invoices (next_payment_attempt)
  WHERE status = 'open' AND next_payment_attempt IS NOT NULL;
CREATE INDEX invoices_dunning_end ON invoices (dunning_ends_at)
  WHERE status = 'open' AND dunning_ends_at IS NOT NULL AND next_payment_attempt IS NULL;
CREATE UNIQUE INDEX invoices_stripe ON invoices (tenant_id, stripe_invoice_id)
  WHERE stripe_invoice_id IS NOT NULL;

-- Every attempt to collect an invoice: one row per (invoice, attempt),
-- written in the charger's transaction with Stripe's answer. The
-- idempotency key sent to Stripe is derived from the same pair, so a
-- charger that dies after Stripe answered asks again with the same key
-- and gets the same PaymentIntent, never a second charge.
CREATE TABLE payment_attempts (
  tenant_id              text NOT NULL REFERENCES tenants (id),
  id                     text NOT NULL CHECK (id ~ '^payatt_[0-9A-HJKMNP-TV-Z]{26}$'),
  invoice_id             text NOT NULL,
  attempt                integer NOT NULL CHECK (attempt >= 1),
  idempotency_key        text NOT NULL,
  amount                 bigint NOT NULL CHECK (amount > 0),
  currency               text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  payment_method         text,
  -- succeeded; failed (declined, or no payment method); requires_action
  -- (the customer must authenticate); processing (Stripe will tell).
  status                 text NOT NULL CHECK (status IN ('succeeded', 'failed', 'requires_action', 'processing')),
  failure_code           text,
  decline_code           text,
  failure_message        text,
  hard_decline           boolean NOT NULL DEFAULT false,
  stripe_payment_intent  text,
  stripe_charge          text,
  stripe_request_id      text,
  created_at             timestamptz NOT NULL,
  updated_at             timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, invoice_id, attempt),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX payment_attempts_intent ON payment_attempts (tenant_id, stripe_payment_intent);

-- Money received: one row per succeeded PaymentIntent.
CREATE TABLE payments (
  tenant_id              text NOT NULL REFERENCES tenants (id),
  id                     text NOT NULL CHECK (id ~ '^pay_[0-9A-HJKMNP-TV-Z]{26}$'),
  customer_id            text NOT NULL,
  invoice_id             text NOT NULL,
  attempt_id             text,
  amount                 bigint NOT NULL CHECK (amount > 0),
  amount_refunded        bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
  currency               text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  status                 text NOT NULL CHECK (status IN ('succeeded', 'partially_refunded', 'refunded')),
  disputed               boolean NOT NULL DEFAULT false,
  description            text,
  payment_method         text,
  stripe_payment_intent  text NOT NULL,
  stripe_charge          text,
  created_at             timestamptz NOT NULL,
  updated_at             timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, stripe_payment_intent),
  CHECK (amount_refunded <= amount),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX payments_customer ON payments (tenant_id, customer_id, id);
CREATE INDEX payments_invoice ON payments (tenant_id, invoice_id);
CREATE INDEX payments_charge ON payments (tenant_id, stripe_charge);

CREATE TABLE refunds (
  tenant_id        text NOT NULL REFERENCES tenants (id),
  id               text NOT NULL CHECK (id ~ '^refund_[0-9A-HJKMNP-TV-Z]{26}$'),
  payment_id       text NOT NULL,
  amount           bigint NOT NULL CHECK (amount > 0),
  currency         text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  reason           text CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer')),
  status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
  stripe_refund    text,
  metadata         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);
CREATE INDEX refunds_payment ON refunds (tenant_id, payment_id, id);
CREATE UNIQUE INDEX refunds_stripe ON refunds (tenant_id, stripe_refund) WHERE stripe_refund IS NOT NULL;

CREATE TABLE disputes (
  tenant_id        text NOT NULL REFERENCES tenants (id),
  stripe_dispute   text NOT NULL,
  payment_id       text,
  stripe_charge    text NOT NULL,
  amount           bigint NOT NULL,
  currency         text NOT NULL,
  reason           text,
  status           text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, stripe_dispute),
  FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);

-- Every Stripe event received, once (the business key of a delivery).
CREATE TABLE stripe_events (
  tenant_id     text NOT NULL REFERENCES tenants (id),
  id            text NOT NULL CHECK (id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
  type          text NOT NULL,
  object_id     text,
  created       timestamptz NOT NULL,
  -- applied: it moved Billow's state; stale: an older view of an object
  -- already seen newer; recorded: a type Billow does not act on, or an
  -- object it does not know.
  outcome       text NOT NULL CHECK (outcome IN ('applied', 'stale', 'recorded')),
  payload       jsonb NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

-- The newest state of each Stripe object that an event told of. Events
-- arrive in any order and more than once: an event is applied only if it
-- moves its object forward (a later event, or at the same second a status
-- further along), so any order of the same events ends in the same state.
CREATE TABLE stripe_objects (
  tenant_id      text NOT NULL REFERENCES tenants (id),
  id             text NOT NULL,
  object         text NOT NULL,
  status         text,
  rank           bigint NOT NULL,
  event_created  timestamptz NOT NULL,
  event_id       text NOT NULL,
  data           jsonb NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

ALTER TABLE notifications DROP CONSTRAINT notifications_template_check,
  ADD CONSTRAINT notifications_template_check CHECK (template IN (
    'user.invitation', 'user.password_reset', 'payment.failed', 'payment.action_required',
    'payment.method_required', 'payment.retries_exhausted', 'payment.succeeded'));

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['stripe_accounts', 'payment_attempts', 'payments', 'refunds',
                           'disputes', 'stripe_events', 'stripe_objects'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                      USING (tenant_id = current_setting('app.tenant_id', true))
                      WITH CHECK (tenant_id = current_setting('app.tenant_id', true))$p$, t);
  END LOOP;
END $$;

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON stripe_accounts
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('stripe_account', 'tenant_id', '@created_at',
                                                 'secret_key_sealed', 'webhook_secrets');
-- The invoices' new time columns show as API times in their audit events.
DROP TRIGGER audit ON invoices;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON invoices
  FOR EACH ROW WHEN (audit_by_a_person()) EXECUTE FUNCTION audit_row_change('invoice', 'tenant_id', '@created_at',
    '@period_start', '@period_end', '@finalized_at', '@paid_at', '@voided_at',
    '@marked_uncollectible_at', '@first_failed_at', '@next_payment_attempt', '@dunning_ends_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON refunds
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('refund', 'tenant_id', '@created_at');

-- The api reads payments, attempts, refunds and disputes for the API. It
-- does not read stripe_accounts: the settings' hints reach it through
-- stripe_settings_object(), and the webhook endpoint, which needs the
-- sealed webhook secrets before it knows the tenant, through
-- stripe_webhook_secrets().
GRANT SELECT ON payment_attempts, payments, refunds, disputes, stripe_events TO billow_api;
GRANT SELECT, INSERT, UPDATE ON stripe_accounts, payment_attempts, payments, refunds, disputes,
  stripe_objects TO billow_worker;
GRANT SELECT, INSERT ON stripe_events TO billow_worker;

-- The sealed webhook secrets of a tenant named by id or slug, for the
-- webhook endpoint (which has no credential but the signature). No row:
-- no such tenant; an empty array: no Stripe account connected.
CREATE FUNCTION stripe_webhook_secrets(p_ref text)
RETURNS TABLE (tenant_id text, secrets text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT t.id, coalesce((SELECT array_agg(s ->> 'sealed') FROM jsonb_array_elements(a.webhook_secrets) s),
                        '{}'::text[])
    FROM tenants t LEFT JOIN stripe_accounts a ON a.tenant_id = t.id
   WHERE t.id = p_ref OR t.slug = p_ref
   LIMIT 1
$$;
REVOKE ALL ON FUNCTION stripe_webhook_secrets(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stripe_webhook_secrets(text) TO billow_api;

-- Collection work that is due, across tenants (the dunning kind's tick):
-- invoices whose next attempt time has come (by the customer's test clock
-- when on one), and invoices past their dunning end with no attempt left.
CREATE FUNCTION dunning_due(p_limit integer)
RETURNS TABLE (tenant_id text, invoice_id text, what text, attempt integer, due_at bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  (SELECT i.tenant_id, i.id, 'retry', i.attempt_count + 1,
          floor(extract(epoch FROM i.next_payment_attempt))::bigint
     FROM invoices i
     JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
     LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id
    WHERE i.status = 'open' AND i.next_payment_attempt IS NOT NULL
      AND i.next_payment_attempt <= coalesce(tc.frozen_time, now())
    ORDER BY i.next_payment_attempt LIMIT p_limit)
  UNION ALL
  (SELECT i.tenant_id, i.id, 'end', i.attempt_count,
          floor(extract(epoch FROM i.dunning_ends_at))::bigint
     FROM invoices i
     JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
     LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id
    WHERE i.status = 'open' AND i.next_payment_attempt IS NULL AND i.dunning_ends_at IS NOT NULL
      AND i.dunning_ends_at <= coalesce(tc.frozen_time, now())
    ORDER BY i.dunning_ends_at LIMIT p_limit)
$$;
REVOKE ALL ON FUNCTION dunning_due(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dunning_due(integer) TO billow_worker;

-- A new default payment method: the customer's invoices waiting on one (or
-- on a retry) are tried again at once, by the customer's clock.
CREATE FUNCTION customer_payment_method_changed(p_customer text) RETURNS integer
LANGUAGE sql AS $$
  WITH moved AS (
    UPDATE invoices i SET next_payment_attempt = coalesce(tc.frozen_time, now()),
                          payment_method_required = false, updated_at = now()
      FROM customers c LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id
     WHERE c.tenant_id = i.tenant_id AND c.id = i.customer_id AND i.customer_id = p_customer
       AND i.status = 'open' AND i.attempt_count > 0 AND i.billing_reason <> 'manual'
     RETURNING 1)
  SELECT count(*)::integer FROM moved
$$;

-- Whether anything is still due under clock p_clock at its frozen time: a
-- period end, a payment retry, or a dunning end. A test clock is ready
-- only when none is, as Stripe's clocks wait for invoices to be attempted.
CREATE FUNCTION test_clock_busy(p_tenant text, p_clock text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM subscriptions s JOIN test_clocks tc
                   ON tc.tenant_id = s.tenant_id AND tc.id = s.test_clock_id
                  WHERE s.tenant_id = p_tenant AND s.test_clock_id = p_clock
                    AND s.current_period_end <= tc.frozen_time)
      OR EXISTS (SELECT 1 FROM invoices i
                   JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
                   JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id
                  WHERE i.tenant_id = p_tenant AND c.test_clock_id = p_clock AND i.status = 'open'
                    AND (i.next_payment_attempt <= tc.frozen_time
                         OR (i.next_payment_attempt IS NULL AND i.dunning_ends_at <= tc.frozen_time)))
$$;

-- The API's objects.

CREATE OR REPLACE FUNCTION customer_object(c customers) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'object', 'customer', 'email', c.email, 'name', c.name,
                            'phone', c.phone, 'metadata', c.metadata, 'status', c.status,
                            'address', c.address, 'currency', c.currency, 'tax_id', c.tax_id,
                            'default_payment_method', c.default_payment_method,
                            'balance', c.balance, 'test_clock', c.test_clock_id,
                            'stripe_customer', c.stripe_customer_id,
                            'created_at', api_time(c.created_at), 'updated_at', api_time(c.updated_at))
$$;

CREATE OR REPLACE FUNCTION invoice_object(i invoices, with_lines boolean DEFAULT true) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', i.id, 'object', 'invoice', 'customer', i.customer_id, 'subscription', i.subscription_id,
    'number', i.number, 'status', i.status, 'billing_reason', i.billing_reason,
    'description', i.description,
    'currency', i.currency, 'period_start', api_time(i.period_start),
    'period_end', api_time(i.period_end), 'subtotal', i.subtotal, 'total', i.total,
    'starting_balance', i.starting_balance, 'ending_balance', i.ending_balance,
    'amount_due', i.amount_due, 'amount_paid', i.amount_paid,
    'amount_remaining', i.amount_remaining, 'amount_refunded', i.amount_refunded,
    'attempt_count', i.attempt_count, 'next_payment_attempt', api_time(i.next_payment_attempt),
    'payment_method_required', i.payment_method_required,
    'last_payment_error', i.last_payment_error,
    'lines', CASE WHEN with_lines THEN jsonb_build_object('object', 'list', 'data', coalesce((
      SELECT jsonb_agg(invoice_line_object(l) ORDER BY l.position)
        FROM invoice_lines l WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.id),
      '[]'::jsonb)) END,
    'created_at', api_time(i.created_at), 'finalized_at', api_time(i.finalized_at),
    'paid_at', api_time(i.paid_at), 'voided_at', api_time(i.voided_at),
    'marked_uncollectible_at', api_time(i.marked_uncollectible_at))
$$;

CREATE FUNCTION payment_attempt_object(a payment_attempts) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', a.id, 'object', 'payment_attempt', 'invoice', a.invoice_id,
                            'attempt', a.attempt, 'amount', a.amount, 'currency', a.currency,
                            'payment_method', a.payment_method, 'status', a.status,
                            'failure_code', a.failure_code, 'decline_code', a.decline_code,
                            'failure_message', a.failure_message, 'hard_decline', a.hard_decline,
                            'stripe_payment_intent', a.stripe_payment_intent,
                            'stripe_charge', a.stripe_charge,
                            'created_at', api_time(a.created_at),
                            'updated_at', api_time(a.updated_at))
$$;

CREATE FUNCTION payment_object(p payments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', p.id, 'object', 'payment', 'customer', p.customer_id,
                            'invoice', p.invoice_id, 'amount', p.amount,
                            'amount_refunded', p.amount_refunded, 'currency', p.currency,
                            'status', p.status, 'disputed', p.disputed,
                            'description', p.description, 'payment_method', p.payment_method,
                            'stripe_payment_intent', p.stripe_payment_intent,
                            'stripe_charge', p.stripe_charge,
                            'created_at', api_time(p.created_at))
$$;

CREATE FUNCTION refund_object(r refunds) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', r.id, 'object', 'refund', 'payment', r.payment_id,
                            'amount', r.amount, 'currency', r.currency, 'reason', r.reason,
                            'status', r.status, 'stripe_refund', r.stripe_refund,
                            'metadata', r.metadata, 'created_at', api_time(r.created_at))
$$;

-- The Stripe settings as the API shows them: hints only, never a secret.
-- SECURITY DEFINER because billow_api cannot read stripe_accounts; it
-- answers only for the tenant the caller has set (app.tenant_id).
CREATE FUNCTION stripe_settings_object(p_tenant text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT jsonb_build_object('object', 'stripe_settings', 'connected', a.tenant_id IS NOT NULL,
                            'secret_key', a.secret_key_hint, 'livemode', a.livemode,
                            'webhook_secrets', coalesce((
                              SELECT jsonb_agg(jsonb_build_object('hint', s ->> 'hint',
                                                                  'added_at', s ->> 'added_at'))
                                FROM jsonb_array_elements(a.webhook_secrets) s), '[]'::jsonb),
                            'updated_at', api_time(a.updated_at))
    FROM (SELECT p_tenant AS id) t LEFT JOIN stripe_accounts a ON a.tenant_id = t.id
   WHERE p_tenant = current_setting('app.tenant_id', true)
$$;
REVOKE ALL ON FUNCTION stripe_settings_object(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stripe_settings_object(text) TO billow_api, billow_worker;

CREATE FUNCTION dunning_settings_object(t tenants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('object', 'dunning_settings') || t.dunning_policy
$$;
