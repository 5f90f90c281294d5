-- 002: access. The staff users who sign in to a tenant, their sessions and
-- second factor, invitation and password-reset tokens, the notifications
-- that carry those tokens to a person, API key expiry for rotation, and the
-- audit trail.
--
-- Same rules as the spine: tenant_id leads every primary key, every new
-- table has the tenant_isolation policy, billow_api reads and billow_worker
-- writes. Secrets are stored as hashes or sealed, never in clear. The three
-- look-ups that must happen before the tenant is known (a session token, a
-- login, an emailed token) are SECURITY DEFINER functions that answer one
-- narrow question each.
--
-- The audit trail is written by row triggers, not by the handlers: a change
-- to an audited table cannot forget its event, and a handler cannot write a
-- misleading one. The trigger learns who asked from app.job, which the
-- worker runtime sets per job. Nobody, the owner included, can change or
-- remove an event through SQL.

ALTER TABLE tenants ADD COLUMN require_totp boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION tenant_object(t tenants) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', t.id, 'object', 'tenant', 'name', t.name, 'slug', t.slug,
                            'livemode', t.livemode, 'require_totp', t.require_totp,
                            'created_at', api_time(t.created_at))
$$;

-- Rotation keeps the old key working until expires_at (the grace period);
-- created_by is the envelope actor that made the key.
ALTER TABLE api_keys
  ADD COLUMN expires_at timestamptz,
  ADD COLUMN created_by text,
  ADD CONSTRAINT api_keys_role CHECK (role IN ('owner', 'admin', 'billing', 'support', 'analyst'));

CREATE TABLE users (
  tenant_id            text NOT NULL REFERENCES tenants (id),
  id                   text NOT NULL CHECK (id ~ '^usr_[0-9A-HJKMNP-TV-Z]{26}$'),
  email                text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  role                 text NOT NULL CHECK (role IN ('owner', 'admin', 'billing', 'support', 'analyst')),
  status               text NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
  -- Encoded scrypt hash; NULL while invited. The shape check keeps a clear
  -- password from ever being stored here by mistake.
  password_hash        text CHECK (password_hash ~ '^\$scrypt\$'),
  -- Sessions older than this are dead (auth_session), whatever their state.
  password_changed_at  timestamptz,
  -- The TOTP secret, sealed with ENCRYPTION_KEY. Set but not enabled while
  -- an enrolment awaits its confirming code.
  totp_secret_sealed   text,
  totp_enabled         boolean NOT NULL DEFAULT false,
  -- The last 30-second step a code was accepted for: a code is good once.
  totp_last_step       bigint NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  last_sign_in_at      timestamptz,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT users_active_has_password
    CHECK (status <> 'active' OR (password_hash IS NOT NULL AND password_changed_at IS NOT NULL)),
  CONSTRAINT users_totp_has_secret CHECK (NOT totp_enabled OR totp_secret_sealed IS NOT NULL)
);
-- One account per address in a tenant, whatever its case; also login's path.
CREATE UNIQUE INDEX users_email ON users (tenant_id, lower(email));

-- One-time codes that stand in for a TOTP code; only their SHA-256 is kept.
CREATE TABLE recovery_codes (
  tenant_id   text NOT NULL,
  user_id     text NOT NULL,
  code_hash   text NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
  used_at     timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id, code_hash),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

CREATE TABLE sessions (
  tenant_id       text NOT NULL,
  id              text NOT NULL CHECK (id ~ '^ses_[0-9A-HJKMNP-TV-Z]{26}$'),
  user_id         text NOT NULL,
  -- SHA-256 (hex) of the bearer token; the token is shown once at login.
  token_hash      text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz,
  revoked_reason  text CHECK (revoked_reason IN ('logout', 'revoked', 'user_disabled',
                                                 'password_changed', 'role_changed')),
  client_addr     text NOT NULL,
  user_agent      text,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
  CONSTRAINT sessions_revoked_with_reason CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
-- A user's sessions, newest first (lists; revocation of all of them).
CREATE INDEX sessions_user ON sessions (tenant_id, user_id, id);

-- Invitation and password-reset tokens. The token itself travels only
-- sealed, inside its notification; here is its hash.
CREATE TABLE user_tokens (
  tenant_id   text NOT NULL,
  id          text NOT NULL CHECK (id ~ '^utk_[0-9A-HJKMNP-TV-Z]{26}$'),
  user_id     text NOT NULL,
  purpose     text NOT NULL CHECK (purpose IN ('invite', 'reset')),
  token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX user_tokens_user ON user_tokens (tenant_id, user_id);

-- Messages to a person, recorded in the job that causes them. A notifier
-- (a later issue) sends them; until then they wait here.
CREATE TABLE notifications (
  tenant_id   text NOT NULL REFERENCES tenants (id),
  id          text NOT NULL CHECK (id ~ '^ntf_[0-9A-HJKMNP-TV-Z]{26}$'),
  channel     text NOT NULL CHECK (channel = 'email'),
  template    text NOT NULL CHECK (template IN ('user.invitation', 'user.password_reset')),
  recipient   text NOT NULL,
  data        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
  status      text NOT NULL DEFAULT 'recorded' CHECK (status = 'recorded'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

-- The audit trail. Filled only by audit_row_change(); append-only.
CREATE TABLE audit_events (
  tenant_id    text NOT NULL,
  id           text NOT NULL CHECK (id ~ '^aud_[0-9A-HJKMNP-TV-Z]{26}$'),
  actor        text NOT NULL,
  actor_type   text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'platform', 'system')),
  action       text NOT NULL,
  operation    text NOT NULL CHECK (operation IN ('insert', 'update', 'delete')),
  target_type  text NOT NULL,
  target_id    text NOT NULL,
  request_id   text,
  job_id       text,
  client_addr  text,
  -- {column: {"before": x, "after": y}}; secrets read "[redacted]".
  changes      jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- Ids are time-ordered, so this key read backwards is the newest-first
  -- list of a tenant's events; no separate (tenant_id, id DESC) index.
  PRIMARY KEY (tenant_id, id)
);
-- The list's filters, each still newest first.
CREATE INDEX audit_events_actor ON audit_events (tenant_id, actor, id);
CREATE INDEX audit_events_target ON audit_events (tenant_id, target_id, id);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, id);

-- Row-level security: a row is visible and writable only inside its tenant.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users', 'recovery_codes', 'sessions', 'user_tokens', 'notifications',
                           'audit_events'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
                      USING (tenant_id = current_setting('app.tenant_id', true))
                      WITH CHECK (tenant_id = current_setting('app.tenant_id', true))$p$, t);
  END LOOP;
END $$;

-- An id as ids.c makes them: prefix, "_", then 26 Crockford base32
-- characters of 48 bits of Unix milliseconds and 80 random bits, written
-- five bits at a time from bigints (integer arithmetic: every audited row
-- makes one, so it is kept cheap). The clock is clock_timestamp(), not
-- now(), so the events of one long batch transaction still sort by when
-- they happened.
CREATE FUNCTION ulid_id(p_prefix text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  -- 80 random bits as two 40-bit halves; uniqueness, not secrecy, is
  -- what an event id needs, so random() serves.
  r1 bigint := floor(random() * 1099511627776)::bigint;
  r2 bigint := floor(random() * 1099511627776)::bigint;
  out text := '';
BEGIN
  FOR i IN 1..8 LOOP
    out := substr(alphabet, (r2 & 31)::integer + 1, 1) || out;
    r2 := r2 >> 5;
  END LOOP;
  FOR i IN 1..8 LOOP
    out := substr(alphabet, (r1 & 31)::integer + 1, 1) || out;
    r1 := r1 >> 5;
  END LOOP;
  FOR i IN 1..10 LOOP
    out := substr(alphabet, (ms & 31)::integer + 1, 1) || out;
    ms := ms >> 5;
  END LOOP;
  RETURN p_prefix || '_' || out;
END $$;

-- The audit trigger. Arguments: the target type ('customer'), the column
-- holding the tenant id ('tenant_id'; 'id' for tenants), then the columns
-- whose values are secrets, and the timestamptz columns with an '@' before
-- their names (named here rather than looked up in the catalog on every
-- row, which cost a third of the trigger). Every row has its own id in
-- column id.
--
-- changes holds the columns that differ (all non-null ones for an insert or
-- a delete), except the id, the tenant id and updated_at, which would only
-- repeat the event's own fields or change on every write. A secret's value
-- reads "[redacted]"; null stays null, so setting or clearing a secret still
-- shows. An update that changes nothing else writes no event. Times are in
-- the API's format.
--
-- It runs as the role making the change (billow_worker may insert events),
-- so the tenant_isolation policy checks the event belongs to the tenant of
-- the job. Without app.job (a migration, an operator at psql) the actor is
-- "system" and the action names the table's change.
CREATE FUNCTION audit_row_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
  target_type constant text := TG_ARGV[0];
  tenant_column constant text := TG_ARGV[1];
  secrets text[] := '{}';
  times text[] := '{}';
  arg text;
  old_row constant jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  new_row constant jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  any_row constant jsonb := coalesce(new_row, old_row);
  job jsonb := nullif(current_setting('app.job', true), '')::jsonb;
  actor text := coalesce(job ->> 'actor', 'system');
  changes jsonb := '{}';
  col text;
  before jsonb;
  after jsonb;
BEGIN
  FOREACH arg IN ARRAY TG_ARGV[2:] LOOP
    IF starts_with(arg, '@') THEN
      times := times || substr(arg, 2);
    ELSE
      secrets := secrets || arg;
    END IF;
  END LOOP;
  FOR col IN SELECT jsonb_object_keys(any_row) LOOP
    CONTINUE WHEN col IN ('id', 'updated_at', tenant_column);
    before := coalesce(old_row -> col, 'null');
    after := coalesce(new_row -> col, 'null');
    CONTINUE WHEN before = after;
    IF col = ANY (secrets) THEN
      before := CASE WHEN before = 'null' THEN before ELSE '"[redacted]"' END;
      after := CASE WHEN after = 'null' THEN after ELSE '"[redacted]"' END;
    ELSIF col = ANY (times) THEN
      before := CASE WHEN before = 'null' THEN before
                     ELSE to_jsonb(api_time((before #>> '{}')::timestamptz)) END;
      after := CASE WHEN after = 'null' THEN after
                    ELSE to_jsonb(api_time((after #>> '{}')::timestamptz)) END;
      -- A sub-second move (a second sign-in within the second) shows as
      -- nothing at the API's resolution.
      CONTINUE WHEN before = after;
    END IF;
    changes := changes || jsonb_build_object(col, jsonb_build_object('before', before, 'after', after));
  END LOOP;
  IF TG_OP = 'UPDATE' AND changes = '{}' THEN
    RETURN NULL;
  END IF;
  INSERT INTO audit_events (tenant_id, id, actor, actor_type, action, operation, target_type,
                            target_id, request_id, job_id, client_addr, changes, created_at)
  VALUES (any_row ->> tenant_column, ulid_id('aud'), actor,
          CASE WHEN starts_with(actor, 'usr_') THEN 'user'
               WHEN starts_with(actor, 'key_') THEN 'api_key'
               WHEN actor = 'platform' THEN 'platform'
               ELSE 'system' END,
          coalesce(job ->> 'type', target_type || '.' || lower(TG_OP)), lower(TG_OP), target_type,
          any_row ->> 'id', job ->> 'trace', job ->> 'id', job ->> 'client', changes,
          clock_timestamp());
  RETURN NULL;
END $$;

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('tenant', 'id', '@created_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('api_key', 'tenant_id', 'secret_hash',
                                                 '@created_at', '@revoked_at', '@expires_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('customer', 'tenant_id', '@created_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('user', 'tenant_id', 'password_hash',
                                                 'totp_secret_sealed', '@password_changed_at',
                                                 '@created_at', '@last_sign_in_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON sessions
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('session', 'tenant_id', 'token_hash',
                                                 '@created_at', '@expires_at', '@revoked_at');
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON user_tokens
  FOR EACH ROW EXECUTE FUNCTION audit_row_change('user_token', 'tenant_id', 'token_hash',
                                                 '@expires_at', '@used_at', '@created_at');

-- Grants alone would stop billow_api and billow_worker; these triggers stop
-- the owner (and a superuser's plain DML) too.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit events cannot be changed or removed (%)', lower(TG_OP)
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The api reads users, sessions and events. It never reads recovery codes,
-- tokens or notifications (which carry sealed tokens): it has no need, and
-- reaches tokens through user_token_lookup() only.
GRANT SELECT ON users, sessions, audit_events TO billow_api;
GRANT SELECT, INSERT, UPDATE ON users, sessions, user_tokens TO billow_worker;
-- Deleted when TOTP is disabled or re-confirmed: spent codes are no record.
GRANT SELECT, INSERT, UPDATE, DELETE ON recovery_codes TO billow_worker;
GRANT SELECT, INSERT ON notifications, audit_events TO billow_worker;

-- Look-ups before the tenant is known.

-- A key in its rotation grace period works until expires_at, which the
-- answer carries so the api's key cache ends an entry no later than that.
DROP FUNCTION auth_api_key(text);
CREATE FUNCTION auth_api_key(p_secret_hash text)
RETURNS TABLE (tenant_id text, key_id text, role text, livemode boolean, expires_ms bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT k.tenant_id, k.id, k.role, t.livemode,
         floor(extract(epoch FROM k.expires_at) * 1000)::bigint
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
   WHERE k.secret_hash = p_secret_hash AND k.revoked_at IS NULL
     AND (k.expires_at IS NULL OR k.expires_at > now())
$$;

-- A staff session by its token's hash: only an unrevoked session of an
-- active user that began after the user's last password change. Expiry is
-- left to the api, which also enforces the idle timeout by its own clock.
CREATE FUNCTION auth_session(p_token_hash text)
RETURNS TABLE (tenant_id text, session_id text, user_id text, role text, livemode boolean,
               expires_ms bigint, must_enroll_totp boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT s.tenant_id, s.id, s.user_id, u.role, t.livemode,
         floor(extract(epoch FROM s.expires_at) * 1000)::bigint,
         t.require_totp AND NOT u.totp_enabled
    FROM sessions s
    JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
    JOIN tenants t ON t.id = s.tenant_id
   WHERE s.token_hash = p_token_hash AND s.revoked_at IS NULL AND u.status = 'active'
     AND s.created_at >= u.password_changed_at
$$;

-- What login needs to check a password and a second factor, by the
-- tenant's id or slug and the address in any case. No row: no such tenant;
-- a row with a null user_id: the tenant, but no such user (the tenant id
-- still keys the failure counter, so naming the tenant by slug or by id
-- counts alike whether the address has an account or not). email_folded
-- is the address as accounts are matched (lower()), for the same counter.
CREATE FUNCTION login_user(p_tenant_ref text, p_email text)
RETURNS TABLE (tenant_id text, user_id text, status text, password_hash text,
               totp_enabled boolean, totp_secret_sealed text, totp_last_step bigint, role text,
               password_changed_ms bigint, email_folded text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT t.id, u.id, u.status, u.password_hash, coalesce(u.totp_enabled, false),
         u.totp_secret_sealed, coalesce(u.totp_last_step, 0), u.role,
         floor(extract(epoch FROM u.password_changed_at) * 1000)::bigint, lower(p_email)
    FROM tenants t LEFT JOIN users u ON u.tenant_id = t.id AND lower(u.email) = lower(p_email)
   WHERE t.id = p_tenant_ref OR t.slug = p_tenant_ref
   LIMIT 1
$$;

-- An invitation or reset token by its hash. The job that consumes it
-- checks again under lock; this answer only routes the request.
CREATE FUNCTION user_token_lookup(p_token_hash text)
RETURNS TABLE (tenant_id text, token_id text, user_id text, purpose text, expires_ms bigint,
               used boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT tenant_id, id, user_id, purpose, floor(extract(epoch FROM expires_at) * 1000)::bigint,
         used_at IS NOT NULL
    FROM user_tokens WHERE token_hash = p_token_hash
$$;

-- Whether a recovery code is one of the user's unspent ones, in the
-- caller's tenant: sign-in checks it before counting the attempt as a
-- success (the api cannot read recovery_codes; the job spends the code).
CREATE FUNCTION recovery_code_unused(p_user_id text, p_code_hash text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM recovery_codes
                  WHERE tenant_id = current_setting('app.tenant_id', true)
                    AND user_id = p_user_id AND code_hash = p_code_hash AND used_at IS NULL)
$$;

REVOKE ALL ON FUNCTION auth_api_key(text), auth_session(text), login_user(text, text),
  user_token_lookup(text), recovery_code_unused(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_api_key(text), auth_session(text), login_user(text, text),
  user_token_lookup(text), recovery_code_unused(text, text) TO billow_api;

-- The API's objects. No secret, hash or sealed value appears in any.

CREATE FUNCTION user_object(u users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', u.id, 'object', 'user', 'email', u.email, 'name', u.name,
                            'role', u.role, 'status', u.status, 'totp_enabled', u.totp_enabled,
                            'created_at', api_time(u.created_at),
                            'updated_at', api_time(u.updated_at),
                            'last_sign_in_at', api_time(u.last_sign_in_at))
$$;

CREATE FUNCTION session_object(s sessions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', s.id, 'object', 'session', 'user_id', s.user_id,
                            'created_at', api_time(s.created_at),
                            'expires_at', api_time(s.expires_at),
                            'revoked_at', api_time(s.revoked_at),
                            'revoked_reason', s.revoked_reason, 'client_addr', s.client_addr,
                            'user_agent', s.user_agent)
$$;

CREATE FUNCTION api_key_object(k api_keys) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', k.id, 'object', 'api_key', 'name', k.name, 'role', k.role,
                            'prefix', k.prefix, 'created_at', api_time(k.created_at),
                            'expires_at', api_time(k.expires_at),
                            'revoked_at', api_time(k.revoked_at), 'created_by', k.created_by)
$$;

CREATE FUNCTION audit_event_object(e audit_events) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', e.id, 'object', 'audit_event', 'action', e.action,
                            'operation', e.operation,
                            'actor', jsonb_build_object('type', e.actor_type, 'id', e.actor),
                            'target', jsonb_build_object('type', e.target_type, 'id', e.target_id),
                            'request_id', e.request_id, 'job_id', e.job_id,
                            'client_addr', e.client_addr, 'changes', e.changes,
                            'created_at', api_time(e.created_at))
$$;
