-- 003: the billing core. The catalog (products with their features, and
-- prices), billing details on customers, test clocks, subscriptions and
-- their items, invoices with their lines, pending invoice items (prorations
-- waiting for the next invoice), the customer credit balance and its
-- ledger, and gapless invoice numbering per tenant.
--
-- Money is bigint minor units with a lower-case ISO 4217 code beside it;
-- shared/money.c knows each currency's exponent. Nothing here computes an
-- amount: the invoice worker computes (shared/pricing.c, proration.c) and
-- writes; the CHECKs only keep impossible values out.
--
-- Same rules as before: tenant_id leads every key, every table has the
-- tenant_isolation policy, billow_api reads and billow_worker writes. The
-- renewal scheduler's scan is the one look-up across tenants, a SECURITY
-- DEFINER function that returns only what is due.

-- api_time() was declared IMMUTABLE, but to_char() is only STABLE, so the
-- planner could not inline it and every call (a dozen per object, every
-- row an audit trigger writes) was a function call of its own. STABLE is
-- its true volatility; the planner now inlines it. Measured on renewals:
-- about a fifth of Postgres's time per renewal.
CREATE OR REPLACE FUNCTION api_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

-- Invoice numbers are "<prefix>-<sequence>", the sequence gapless per
-- tenant (see invoice_sequences).
ALTER TABLE tenants ADD COLUMN invoice_prefix text NOT NULL DEFAULT 'INV'
  CHECK (invoice_prefix ~ '^[A-Z0-9]{1,12}$');

CREATE OR REPLACE FUNCTION tenant_object(t tenants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', t.id, 'object', 'tenant', 'name', t.name, 'slug', t.slug,
                            'livemode', t.livemode, 'require_totp', t.require_totp,
                            'invoice_prefix', t.invoice_prefix,
                            'created_at', api_time(t.created_at))
$$;

-- Metadata updates merge as Stripe's do: a key set to "" is deleted, any
-- other value is set, keys not named are kept. One definition for every
-- table with metadata.
CREATE FUNCTION metadata_merge(p_old jsonb, p_patch jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT (p_old || (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
                      FROM jsonb_each(p_patch) WHERE value <> '""'::jsonb))
         - ARRAY(SELECT key FROM jsonb_each(p_patch) WHERE value = '""'::jsonb)
$$;

CREATE TABLE products (
  tenant_id    text NOT NULL REFERENCES tenants (id),
  id           text NOT NULL CHECK (id ~ '^prod_[0-9A-HJKMNP-TV-Z]{26}$'),
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  description  text,
  -- Entitlements: feature key → true/false or a numeric limit ({"seats": 10}).
  features     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
  metadata     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  active       boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE prices (
  tenant_id          text NOT NULL REFERENCES tenants (id),
  id                 text NOT NULL CHECK (id ~ '^price_[0-9A-HJKMNP-TV-Z]{26}$'),
  product_id         text NOT NULL,
  currency           text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  billing_scheme     text NOT NULL CHECK (billing_scheme IN ('per_unit', 'tiered')),
  unit_amount        bigint CHECK (unit_amount >= 0),
  tiers_mode         text CHECK (tiers_mode IN ('graduated', 'volume')),
  tiers              jsonb CHECK (tiers IS NULL OR jsonb_typeof(tiers) = 'array'),
  interval           text NOT NULL CHECK (interval IN ('day', 'week', 'month', 'year')),
  interval_count     integer NOT NULL CHECK (interval_count BETWEEN 1 AND 1095),
  trial_period_days  integer CHECK (trial_period_days BETWEEN 1 AND 730),
  nickname           text,
  metadata           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  active             boolean NOT NULL DEFAULT true,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id),
  CHECK ((billing_scheme = 'per_unit' AND unit_amount IS NOT NULL AND tiers IS NULL)
      OR (billing_scheme = 'tiered' AND tiers IS NOT NULL AND tiers_mode IS NOT NULL
          AND unit_amount IS NULL))
);
CREATE INDEX prices_product ON prices (tenant_id, product_id, id);

-- What a price charges never changes after it is created (as with Stripe):
-- a new amount is a new price, so an invoice line's price always says what
-- was charged. Only nickname, metadata and active may change.
CREATE FUNCTION prices_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.product_id, NEW.currency, NEW.billing_scheme, NEW.unit_amount, NEW.tiers_mode, NEW.tiers,
      NEW.interval, NEW.interval_count, NEW.trial_period_days)
     IS DISTINCT FROM
     (OLD.product_id, OLD.currency, OLD.billing_scheme, OLD.unit_amount, OLD.tiers_mode, OLD.tiers,
      OLD.interval, OLD.interval_count, OLD.trial_period_days) THEN
    RAISE EXCEPTION 'a price''s amounts and interval cannot change; create a new price'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER immutable BEFORE UPDATE ON prices
  FOR EACH ROW EXECUTE FUNCTION prices_immutable();

-- A test clock: a frozen "now" for the customers created on it, moved
-- forward only by POST /v1/test_clocks/{id}/advance. status is 'advancing'
-- while the work the move made due is still being done, 'ready' after, and
-- 'internal_failure' when a period end under it failed for good (its job
-- is failed or dead), which would otherwise leave it advancing for ever.
CREATE TABLE test_clocks (
  tenant_id    text NOT NULL REFERENCES tenants (id),
  id           text NOT NULL CHECK (id ~ '^clock_[0-9A-HJKMNP-TV-Z]{26}$'),
  name         text,
  frozen_time  timestamptz NOT NULL,
  status       text NOT NULL DEFAULT 'ready'
               CHECK (status IN ('ready', 'advancing', 'internal_failure')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

-- Billing details. balance is the customer's credit balance in currency's
-- minor units, Stripe's sign: negative is credit the customer has, applied
-- to the next invoices; positive is owed and added to the next invoice.
ALTER TABLE customers
  DROP CONSTRAINT customers_status_check,
  ADD CONSTRAINT customers_status_check CHECK (status IN ('active', 'suspended', 'closed')),
  ADD COLUMN address jsonb CHECK (address IS NULL OR jsonb_typeof(address) = 'object'),
  ADD COLUMN currency text CHECK (currency ~ '^[a-z]{3}$'),
  ADD COLUMN tax_id text,
  ADD COLUMN default_payment_method text,
  ADD COLUMN balance bigint NOT NULL DEFAULT 0,
  ADD COLUMN test_clock_id text,
  ADD FOREIGN KEY (tenant_id, test_clock_id) REFERENCES test_clocks (tenant_id, id);
CREATE INDEX customers_test_clock ON customers (tenant_id, test_clock_id)
  WHERE test_clock_id IS NOT NULL;

CREATE OR REPLACE FUNCTION customer_object(c customers) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'object', 'customer', 'email', c.email, 'name', c.name,
                            'phone', c.phone, 'metadata', c.metadata, 'status', c.status,
                            'address', c.address, 'currency', c.currency, 'tax_id', c.tax_id,
                            'default_payment_method', c.default_payment_method,
                            'balance', c.balance, 'test_clock', c.test_clock_id,
                            'created_at', api_time(c.created_at), 'updated_at', api_time(c.updated_at))
$$;

CREATE TABLE subscriptions (
  tenant_id             text NOT NULL REFERENCES tenants (id),
  id                    text NOT NULL CHECK (id ~ '^sub_[0-9A-HJKMNP-TV-Z]{26}$'),
  customer_id           text NOT NULL,
  -- shared/substate.h names each status and every legal move between them.
  status                text NOT NULL CHECK (status IN ('incomplete', 'trialing', 'active',
                                                         'past_due', 'paused', 'canceled', 'unpaid')),
  currency              text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  -- The billing schedule (shared/calendar.h): periods are boundaries of
  -- (billing_cycle_anchor, interval × interval_count, anchor_day).
  interval              text NOT NULL CHECK (interval IN ('day', 'week', 'month', 'year')),
  interval_count        integer NOT NULL CHECK (interval_count BETWEEN 1 AND 1095),
  billing_cycle_anchor  timestamptz NOT NULL,
  anchor_day            integer NOT NULL DEFAULT 0 CHECK (anchor_day BETWEEN 0 AND 31),
  start_date            timestamptz NOT NULL,
  -- The period being served; both null while paused or after the end.
  current_period_start  timestamptz,
  current_period_end    timestamptz,
  trial_start           timestamptz,
  trial_end             timestamptz,
  cancel_at_period_end  boolean NOT NULL DEFAULT false,
  canceled_at           timestamptz,
  ended_at              timestamptz,
  paused_at             timestamptz,
  -- A change to apply at current_period_end: {"items": [...], "requested_at": ...}.
  pending_update        jsonb,
  -- Copied from the customer at creation (a customer's clock never changes).
  test_clock_id         text,
  latest_invoice_id     text,
  metadata              jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
  CHECK ((current_period_start IS NULL) = (current_period_end IS NULL)),
  CHECK (current_period_end IS NULL OR current_period_end > current_period_start)
);
CREATE INDEX subscriptions_customer ON subscriptions (tenant_id, customer_id, id);
-- The renewal scheduler's scan (across tenants, by design: see renewals_due).
CREATE INDEX subscriptions_due ON subscriptions (current_period_end, tenant_id, id)
  WHERE test_clock_id IS NULL AND current_period_end IS NOT NULL;
CREATE INDEX subscriptions_clock_due ON subscriptions (tenant_id, test_clock_id, current_period_end)
  WHERE test_clock_id IS NOT NULL AND current_period_end IS NOT NULL;

CREATE TABLE subscription_items (
  tenant_id        text NOT NULL REFERENCES tenants (id),
  id               text NOT NULL CHECK (id ~ '^si_[0-9A-HJKMNP-TV-Z]{26}$'),
  subscription_id  text NOT NULL,
  price_id         text NOT NULL,
  quantity         bigint NOT NULL CHECK (quantity BETWEEN 0 AND 1000000000),
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
  FOREIGN KEY (tenant_id, price_id) REFERENCES prices (tenant_id, id),
  UNIQUE (tenant_id, subscription_id, price_id)
);

-- The last invoice number each tenant used. A new number takes this row's
-- lock until its transaction ends, so numbers are gapless: a rolled-back
-- invoice gives its number back.
-- An invoice number: the prefix, a dash and the sequence, zero-padded to
-- six digits (INV-000042; the millionth and later are simply longer).
CREATE FUNCTION invoice_number(p_prefix text, p_seq bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_prefix || '-' || CASE WHEN p_seq < 1000000 THEN lpad(p_seq::text, 6, '0')
                                 ELSE p_seq::text END
$$;

CREATE TABLE invoice_sequences (
  tenant_id  text PRIMARY KEY REFERENCES tenants (id),
  last       bigint NOT NULL DEFAULT 0
);

CREATE TABLE invoices (
  tenant_id         text NOT NULL REFERENCES tenants (id),
  id                text NOT NULL CHECK (id ~ '^in_[0-9A-HJKMNP-TV-Z]{26}$'),
  customer_id       text NOT NULL,
  subscription_id   text,
  number            text,
  status            text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
  -- subscription_create, subscription_cycle, subscription_update, subscription_cancel, manual.
  billing_reason    text NOT NULL,
  currency          text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  period_start      timestamptz NOT NULL,
  period_end        timestamptz NOT NULL,
  subtotal          bigint NOT NULL,
  total             bigint NOT NULL,
  -- The customer balance before and after this invoice (Stripe's sign).
  starting_balance  bigint NOT NULL DEFAULT 0,
  ending_balance    bigint NOT NULL DEFAULT 0,
  amount_due        bigint NOT NULL CHECK (amount_due >= 0),
  amount_paid       bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
  amount_remaining  bigint NOT NULL CHECK (amount_remaining >= 0),
  -- The job that made the invoice: a proration invoice's business key.
  created_by_job    text NOT NULL,
  created_at        timestamptz NOT NULL,
  finalized_at      timestamptz,
  paid_at           timestamptz,
  voided_at         timestamptz,
  marked_uncollectible_at timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
  FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
  CHECK (amount_paid + amount_remaining = amount_due OR status IN ('void', 'uncollectible'))
);
-- One invoice per subscription period: the renewal and the first invoice
-- of a period are unique, whoever or however often asks for them.
CREATE UNIQUE INDEX invoices_period ON invoices (tenant_id, subscription_id, period_start)
  WHERE billing_reason IN ('subscription_create', 'subscription_cycle');
CREATE UNIQUE INDEX invoices_job ON invoices (tenant_id, created_by_job);
CREATE UNIQUE INDEX invoices_number ON invoices (tenant_id, number);
CREATE INDEX invoices_customer ON invoices (tenant_id, customer_id, id);
CREATE INDEX invoices_subscription ON invoices (tenant_id, subscription_id, id);
CREATE INDEX invoices_status ON invoices (tenant_id, status, id);

CREATE TABLE invoice_lines (
  tenant_id     text NOT NULL REFERENCES tenants (id),
  id            text NOT NULL CHECK (id ~ '^il_[0-9A-HJKMNP-TV-Z]{26}$'),
  invoice_id    text NOT NULL,
  -- subscription: a period's charge; proration: a charge or credit for part
  -- of a period (made at once, or pending until this invoice took it in);
  -- invoiceitem: a one-off charge (reserved for one-time payments).
  type          text NOT NULL CHECK (type IN ('subscription', 'proration', 'invoiceitem')),
  description   text NOT NULL,
  price_id      text,
  quantity      bigint,
  amount        bigint NOT NULL,
  proration     boolean NOT NULL DEFAULT false,
  period_start  timestamptz NOT NULL,
  period_end    timestamptz NOT NULL,
  position      integer NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id),
  UNIQUE (tenant_id, invoice_id, position)
);

-- Prorations waiting for the subscription's next invoice
-- (proration_behavior=create_prorations). invoice_id is set when an
-- invoice takes the item in, so no item is billed twice or forgotten.
CREATE TABLE invoice_items (
  tenant_id        text NOT NULL REFERENCES tenants (id),
  id               text NOT NULL CHECK (id ~ '^ii_[0-9A-HJKMNP-TV-Z]{26}$'),
  customer_id      text NOT NULL,
  subscription_id  text,
  invoice_id       text,
  currency         text NOT NULL,
  amount           bigint NOT NULL,
  description      text NOT NULL,
  price_id         text,
  quantity         bigint,
  proration        boolean NOT NULL DEFAULT true,
  period_start     timestamptz NOT NULL,
  period_end       timestamptz NOT NULL,
  created_at       timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX invoice_items_pending ON invoice_items (tenant_id, subscription_id)
  WHERE invoice_id IS NULL;

-- Every change of a customer's balance, with the balance after it: the
-- ledger explains the balance, and the two are written in one statement.
CREATE TABLE customer_balance_transactions (
  tenant_id       text NOT NULL REFERENCES tenants (id),
  id              text NOT NULL CHECK (id ~ '^cbtxn_[0-9A-HJKMNP-TV-Z]{26}$'),
  customer_id     text NOT NULL,
  -- applied_to_invoice, unapplied_from_invoice, credit_note (a credit
  -- from a downgrade or cancellation), adjustment.
  type            text NOT NULL,
  amount          bigint NOT NULL,
  currency        text NOT NULL,
  ending_balance  bigint NOT NULL,
  invoice_id      text,
  description     text,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX customer_balance_transactions_customer
  ON customer_balance_transactions (tenant_id, customer_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['products', 'prices', 'test_clocks', 'subscriptions',
                           'subscription_items', 'invoice_sequences', 'invoices', 'invoice_lines',
                           'invoice_items', 'customer_balance_transactions'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                      USING (tenant_id = current_setting('app.tenant_id', true))
                      WITH CHECK (tenant_id = current_setting('app.tenant_id', true))$p$, t);
  END LOOP;
END $$;

-- Changes are audited as for the spine's tables, with one exception: the
-- scheduled work Billow does by itself (renewals, period ends: jobs whose
-- actor is "system") writes no audit event for the subscriptions and
-- invoices it changes. Those rows are their own record (each invoice
-- names its period, reason and job; processed_jobs keeps every job), and
-- an event per row doubled the cost of a renewal. What staff, API keys and
-- the platform change is audited; so is anything done outside a job.
CREATE FUNCTION audit_by_a_person() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT (nullif(current_setting('app.job', true), '')::jsonb ->> 'actor') IS DISTINCT FROM 'system'
$$;

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON products
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('product', 'tenant_id', '@created_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON prices
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('price', 'tenant_id', '@created_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON test_clocks
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('test_clock', 'tenant_id', '@created_at',
                                                 '@frozen_time');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON subscriptions
  FOR EACH ROW WHEN (audit_by_a_person()) EXECUTE FUNCTION audit_row_change('subscription', 'tenant_id', '@created_at',
    '@billing_cycle_anchor', '@start_date', '@current_period_start', '@current_period_end',
    '@trial_start', '@trial_end', '@canceled_at', '@ended_at', '@paused_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON invoices
  FOR EACH ROW WHEN (audit_by_a_person()) EXECUTE FUNCTION audit_row_change('invoice', 'tenant_id', '@created_at',
    '@period_start', '@period_end', '@finalized_at', '@paid_at', '@voided_at',
    '@marked_uncollectible_at');

GRANT SELECT ON products, prices, test_clocks, subscriptions, subscription_items, invoices,
  invoice_lines, invoice_items, customer_balance_transactions, invoice_sequences TO billow_api;
GRANT SELECT, INSERT, UPDATE ON products, prices, test_clocks, subscriptions, invoices,
  invoice_items, invoice_sequences TO billow_worker;
-- Items are replaced when a subscription changes; lines and ledger entries
-- are records and are only ever added.
GRANT SELECT, INSERT, UPDATE, DELETE ON subscription_items TO billow_worker;
GRANT SELECT, INSERT ON invoice_lines, customer_balance_transactions TO billow_worker;

-- The renewal scheduler's scan: up to p_limit subscriptions (of any
-- tenant) whose period has ended by real time, in (period end, tenant, id)
-- order after the given position, so one pass walks the whole backlog in
-- steps even while earlier steps' jobs are still queued. Subscriptions on
-- a test clock follow their clock instead (test_clock_due).
CREATE FUNCTION renewals_due(p_after_end timestamptz, p_after_tenant text, p_after_id text,
                             p_limit integer)
RETURNS TABLE (tenant_id text, subscription_id text, period_end timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT s.tenant_id, s.id, s.current_period_end
    FROM subscriptions s
   WHERE s.test_clock_id IS NULL AND s.current_period_end IS NOT NULL
     AND s.current_period_end <= now()
     AND (s.current_period_end, s.tenant_id, s.id) > (p_after_end, p_after_tenant, p_after_id)
   ORDER BY s.current_period_end, s.tenant_id, s.id
   LIMIT p_limit
$$;

-- Test clocks with work to do: every clock that is advancing, and what is
-- due under it (subscriptions of its customers whose period ended by the
-- clock's time). A clock with nothing due is reported with a null
-- subscription, so the scheduler can mark it ready.
CREATE FUNCTION test_clock_due(p_limit integer)
RETURNS TABLE (tenant_id text, test_clock_id text, frozen_time timestamptz,
               subscription_id text, period_end timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT c.tenant_id, c.id, c.frozen_time, d.id, d.current_period_end
    FROM test_clocks c
    LEFT JOIN LATERAL (
      SELECT s.id, s.current_period_end FROM subscriptions s
       WHERE s.tenant_id = c.tenant_id AND s.test_clock_id = c.id
         AND s.current_period_end IS NOT NULL AND s.current_period_end <= c.frozen_time
       ORDER BY s.current_period_end LIMIT p_limit) d ON true
   WHERE c.status = 'advancing'
$$;

REVOKE ALL ON FUNCTION renewals_due(timestamptz, text, text, integer), test_clock_due(integer)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION renewals_due(timestamptz, text, text, integer), test_clock_due(integer)
  TO billow_worker;

-- The API's objects.

CREATE FUNCTION product_object(p products) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', p.id, 'object', 'product', 'name', p.name,
                            'description', p.description, 'features', p.features,
                            'metadata', p.metadata, 'active', p.active,
                            'created_at', api_time(p.created_at), 'updated_at', api_time(p.updated_at))
$$;

CREATE FUNCTION price_object(p prices) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', p.id, 'object', 'price', 'product', p.product_id,
                            'currency', p.currency, 'billing_scheme', p.billing_scheme,
                            'unit_amount', p.unit_amount, 'tiers_mode', p.tiers_mode,
                            'tiers', p.tiers,
                            'recurring', jsonb_build_object('interval', p.interval,
                                                            'interval_count', p.interval_count,
                                                            'trial_period_days', p.trial_period_days),
                            'nickname', p.nickname, 'metadata', p.metadata, 'active', p.active,
                            'created_at', api_time(p.created_at), 'updated_at', api_time(p.updated_at))
$$;

CREATE FUNCTION test_clock_object(c test_clocks) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'object', 'test_clock', 'name', c.name,
                            'frozen_time', api_time(c.frozen_time), 'status', c.status,
                            'created_at', api_time(c.created_at))
$$;

CREATE FUNCTION subscription_object(s subscriptions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', s.id, 'object', 'subscription', 'customer', s.customer_id, 'status', s.status,
    'currency', s.currency,
    'items', jsonb_build_object('object', 'list', 'data', coalesce((
      SELECT jsonb_agg(jsonb_build_object('id', i.id, 'object', 'subscription_item',
                                          'price', i.price_id, 'quantity', i.quantity)
                       ORDER BY i.id)
        FROM subscription_items i
       WHERE i.tenant_id = s.tenant_id AND i.subscription_id = s.id), '[]'::jsonb)),
    'plan', jsonb_build_object('interval', s.interval, 'interval_count', s.interval_count),
    'billing_cycle_anchor', api_time(s.billing_cycle_anchor),
    'billing_cycle_anchor_config', CASE WHEN s.anchor_day > 0
                                        THEN jsonb_build_object('day_of_month', s.anchor_day) END,
    'start_date', api_time(s.start_date),
    'current_period_start', api_time(s.current_period_start),
    'current_period_end', api_time(s.current_period_end),
    'trial_start', api_time(s.trial_start), 'trial_end', api_time(s.trial_end),
    'cancel_at_period_end', s.cancel_at_period_end, 'canceled_at', api_time(s.canceled_at),
    'ended_at', api_time(s.ended_at), 'paused_at', api_time(s.paused_at),
    'pending_update', s.pending_update, 'test_clock', s.test_clock_id,
    'latest_invoice', s.latest_invoice_id, 'metadata', s.metadata,
    'created_at', api_time(s.created_at), 'updated_at', api_time(s.updated_at))
$$;

CREATE FUNCTION invoice_line_object(l invoice_lines) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', l.id, 'object', 'line_item', 'type', l.type,
                            'description', l.description, 'price', l.price_id,
                            'quantity', l.quantity, 'amount', l.amount, 'proration', l.proration,
                            'period', jsonb_build_object('start', api_time(l.period_start),
                                                         'end', api_time(l.period_end)))
$$;

-- with_lines: the list shows invoices without their lines, the record with.
CREATE FUNCTION invoice_object(i invoices, with_lines boolean DEFAULT true) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', i.id, 'object', 'invoice', 'customer', i.customer_id, 'subscription', i.subscription_id,
    'number', i.number, 'status', i.status, 'billing_reason', i.billing_reason,
    'currency', i.currency, 'period_start', api_time(i.period_start),
    'period_end', api_time(i.period_end), 'subtotal', i.subtotal, 'total', i.total,
    'starting_balance', i.starting_balance, 'ending_balance', i.ending_balance,
    'amount_due', i.amount_due, 'amount_paid', i.amount_paid,
    'amount_remaining', i.amount_remaining,
    'lines', CASE WHEN with_lines THEN jsonb_build_object('object', 'list', 'data', coalesce((
      SELECT jsonb_agg(invoice_line_object(l) ORDER BY l.position)
        FROM invoice_lines l WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.id),
      '[]'::jsonb)) END,
    'created_at', api_time(i.created_at), 'finalized_at', api_time(i.finalized_at),
    'paid_at', api_time(i.paid_at), 'voided_at', api_time(i.voided_at),
    'marked_uncollectible_at', api_time(i.marked_uncollectible_at))
$$;

CREATE FUNCTION customer_balance_transaction_object(t customer_balance_transactions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', t.id, 'object', 'customer_balance_transaction',
                            'customer', t.customer_id, 'type', t.type, 'amount', t.amount,
                            'currency', t.currency, 'ending_balance', t.ending_balance,
                            'invoice', t.invoice_id, 'description', t.description,
                            'created_at', api_time(t.created_at))
$$;

-- A tenant's billing settings: the invoice number prefix and the number the
-- next invoice will get.
CREATE FUNCTION billing_settings_object(t tenants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('object', 'billing_settings', 'invoice_prefix', t.invoice_prefix,
                            'next_invoice_number', invoice_number(t.invoice_prefix, coalesce((
                              SELECT q.last FROM invoice_sequences q WHERE q.tenant_id = t.id), 0)
                              + 1))
$$;
