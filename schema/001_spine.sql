-- 001: the spine. Tenants, their secret API keys, customers, and the two
-- tables that make job effects happen once: processed_jobs and outbox.
--
-- Every tenant-owned table has tenant_id leading its primary key and row-level
-- security bound to current_setting('app.tenant_id'), which the api and the
-- workers set per query / per job. Their roles (billow_api, billow_worker) do
-- not own the tables and have no BYPASSRLS, so the policy always applies. The
-- few cross-tenant look-ups the system needs are SECURITY DEFINER functions
-- that return one narrow answer each.

CREATE TABLE tenants (
  id          text PRIMARY KEY CHECK (id ~ '^ten_[0-9A-HJKMNP-TV-Z]{26}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{1,38}[a-z0-9]$'),
  livemode    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  tenant_id    text NOT NULL REFERENCES tenants (id),
  id           text NOT NULL CHECK (id ~ '^key_[0-9A-HJKMNP-TV-Z]{26}$'),
  name         text NOT NULL DEFAULT 'default',
  -- SHA-256 (hex) of the secret; the secret itself is shown once and never stored.
  secret_hash  text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
  -- The first characters of the secret, so staff can tell keys apart.
  prefix       text NOT NULL,
  role         text NOT NULL DEFAULT 'admin',
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  PRIMARY KEY (tenant_id, id)
);
-- Look-up by secret crosses tenants by nature (the key names the tenant).
CREATE UNIQUE INDEX api_keys_secret_hash ON api_keys (secret_hash);

CREATE TABLE customers (
  tenant_id   text NOT NULL REFERENCES tenants (id),
  id          text NOT NULL CHECK (id ~ '^cus_[0-9A-HJKMNP-TV-Z]{26}$'),
  email       text,
  name        text,
  phone       text,
  metadata    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customers_email ON customers (tenant_id, lower(email));

-- One row per job whose effects are committed. A redelivered job finds its
-- row, republishes the stored result and does nothing else.
CREATE TABLE processed_jobs (
  tenant_id     text NOT NULL,
  job_id        text NOT NULL,
  type          text NOT NULL,
  result        jsonb NOT NULL,
  processed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, job_id)
);

-- Follow-up jobs, written in the transaction of the job that causes them and
-- relayed to Redis after commit; a crash in between delays them, never loses them.
CREATE TABLE outbox (
  tenant_id   text NOT NULL,
  job_id      text NOT NULL,
  envelope    jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, job_id)
);
CREATE INDEX outbox_created ON outbox (created_at);

-- Daily customer counts per tenant, kept by the metrics worker.
CREATE TABLE metrics_daily (
  tenant_id         text NOT NULL,
  day               date NOT NULL,
  customers_total   bigint NOT NULL,
  customers_active  bigint NOT NULL,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, day)
);

-- Row-level security: a row is visible and writable only inside its tenant.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
  USING (id = current_setting('app.tenant_id', true))
  WITH CHECK (id = current_setting('app.tenant_id', true));

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['api_keys', 'customers', 'processed_jobs', 'outbox', 'metrics_daily'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                      USING (tenant_id = current_setting('app.tenant_id', true))
                      WITH CHECK (tenant_id = current_setting('app.tenant_id', true))$p$, t);
  END LOOP;
END $$;

-- The api authenticates a secret key before it knows the tenant: this is
-- the one look-up it may make across tenants, by the key's hash only.
CREATE FUNCTION auth_api_key(p_secret_hash text)
RETURNS TABLE (tenant_id text, key_id text, role text, livemode boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT k.tenant_id, k.id, k.role, t.livemode
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
   WHERE k.secret_hash = p_secret_hash AND k.revoked_at IS NULL
$$;

-- The outbox sweeper finds tenants with follow-ups that were committed but
-- not relayed (their worker died in between). It learns tenant ids only.
CREATE FUNCTION outbox_pending_tenants(p_older_than interval)
RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT DISTINCT tenant_id FROM outbox WHERE created_at < now() - p_older_than
$$;

-- A tenant's slug or id to its id (for routes that name a tenant in the URL).
CREATE FUNCTION tenant_resolve(p_ref text)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT id FROM tenants WHERE id = p_ref OR slug = p_ref LIMIT 1
$$;

REVOKE ALL ON FUNCTION auth_api_key(text), outbox_pending_tenants(interval), tenant_resolve(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_api_key(text), tenant_resolve(text) TO billow_api;
GRANT EXECUTE ON FUNCTION outbox_pending_tenants(interval), tenant_resolve(text) TO billow_worker;

-- The api only reads; the workers write, but never delete what is a record.
GRANT SELECT ON tenants, api_keys, customers, processed_jobs, metrics_daily TO billow_api;
GRANT SELECT, INSERT, UPDATE ON tenants, api_keys, customers, metrics_daily TO billow_worker;
GRANT SELECT, INSERT ON processed_jobs TO billow_worker;
GRANT SELECT, INSERT, DELETE ON outbox TO billow_worker;

-- The API's JSON objects, built in one place so that what a worker returns
-- as a job's result and what the api reads back are the same bytes.
CREATE FUNCTION api_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;

CREATE FUNCTION customer_object(c customers) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'object', 'customer', 'email', c.email, 'name', c.name,
                            'phone', c.phone, 'metadata', c.metadata, 'status', c.status,
                            'created_at', api_time(c.created_at), 'updated_at', api_time(c.updated_at))
$$;

CREATE FUNCTION tenant_object(t tenants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', t.id, 'object', 'tenant', 'name', t.name, 'slug', t.slug,
                            'livemode', t.livemode, 'created_at', api_time(t.created_at))
$$;
