# shellcheck shell=bash
# lib.sh: the steps ./scripts/up and ./scripts/test share.
#
# Sourced, never run. Every step is idempotent: packages are installed only
# when missing, the build is incremental, the servers are started only when
# not running, migrations are applied once each, and the demo tenant is
# created once. Ports and folders come from the environment so the test run
# can keep its own servers beside a running `up`.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
: "${BILLOW_DATA:=$ROOT/.data}"   # server data (git-ignored)
: "${BILLOW_RUN:=$ROOT/.run}"     # pid and log files (git-ignored)
: "${PG_PORT:=15432}"      # below the ephemeral range (32768-60999), so a
                          # burst of outgoing connections cannot hold it
: "${REDIS_PORT:=16379}"
: "${PORT:=8080}"
: "${BILLOW_BUILD:=$ROOT/build}"
: "${PLATFORM_ADMIN_TOKEN:=}"
export BILLOW_DATA BILLOW_RUN PG_PORT REDIS_PORT PORT BILLOW_BUILD

PG_BIN=/usr/lib/postgresql/15/bin
# DATABASE_URL and DATABASE_READ_URL, when not given, are the local
# Postgres's, with the roles' own passwords: pg_start sets them (pg_roles).
[ -n "${DATABASE_URL:-}" ] || BILLOW_OWN_DATABASE_URL=1
[ -n "${DATABASE_READ_URL:-}" ] || BILLOW_OWN_DATABASE_READ_URL=1
# REDIS_URL, when not given, is the local Redis's with its password:
# redis_start sets it.
[ -n "${REDIS_URL:-}" ] || BILLOW_OWN_REDIS_URL=1
# Stripe: with STRIPE_API_KEY set, Billow talks to STRIPE_API_BASE (Stripe
# itself by default). Without it, the Stripe fake (tests/fakes/stripe) runs
# as a Procfile process on STRIPE_FAKE_PORT, and the demo tenant is
# connected to it with a test key and webhook secret of its own.
STRIPE_FAKE_PORT=${STRIPE_FAKE_PORT:-$((PORT + 200))}
if [ -z "${STRIPE_API_KEY:-}" ]; then
  STRIPE_FAKE=1
  STRIPE_API_KEY=sk_test_billow_demo_stripe_fake
  STRIPE_WEBHOOK_SECRET=${STRIPE_WEBHOOK_SECRET:-whsec_billow_demo_stripe_fake}
  STRIPE_API_BASE=http://127.0.0.1:$STRIPE_FAKE_PORT
else
  STRIPE_FAKE=0
  STRIPE_API_BASE=${STRIPE_API_BASE:-https://api.stripe.com}
fi
export STRIPE_FAKE STRIPE_FAKE_PORT STRIPE_API_KEY STRIPE_API_BASE
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-}"

say() { printf '\033[1mbillow:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Debian packages Billow needs to build, run and test. Only missing ones are
# installed, so a second run installs nothing.
BILLOW_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl clang-format
  libuv1-dev libhiredis-dev libpq-dev libjansson-dev libcurl4-openssl-dev libssl-dev
  libxlsxwriter-dev libhpdf-dev libcriterion-dev libhttp-parser-dev
  postgresql-15 postgresql-client-15 redis-server redis-tools ruby-foreman
  python3-yaml procps
)

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Services must not start on install: Billow runs its own servers.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get could not install ${missing[*]}"
}

# Node.js and npm (for the API linter, the integration tests and the
# benchmark peer). A machine that already has both keeps its own.
ensure_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then return 0; fi
  ensure_packages nodejs npm
}

build() { # build [dir] [extra cmake args...]
  local dir=${1:-$BILLOW_BUILD}
  shift || true
  say "building in ${dir#"$ROOT"/}"
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)" -- --no-print-directory >/dev/null ||
    cmake --build "$dir" -j 1 # again, verbosely, so the error shows
}

# Postgres refuses to run as root; it runs as the postgres user. Its folder
# (PG_HOME: data/, sock/, postgres.log) is $BILLOW_DATA/pg when postgres can
# reach it; when it cannot (a checkout under a private home such as /root),
# PG_HOME is /var/lib/billow/<hash of $BILLOW_DATA> and $BILLOW_DATA/pg links
# there. Every path handed to postgres is the real one, never the link.
pg_paths() {
  mkdir -p "$BILLOW_DATA"
  if [ -L "$BILLOW_DATA/pg" ]; then
    PG_HOME=$(readlink "$BILLOW_DATA/pg")
  elif (cd / && runuser -u postgres -- test -x "$BILLOW_DATA") 2>/dev/null; then
    PG_HOME="$BILLOW_DATA/pg"
  else
    PG_HOME=/var/lib/billow/$(printf '%s' "$BILLOW_DATA" | sha256sum | cut -c1-12)
    mkdir -p "$PG_HOME"
    ln -sfn "$PG_HOME" "$BILLOW_DATA/pg"
  fi
  PG_DATA="$PG_HOME/data"
  PG_SOCK="$PG_HOME/sock"
}

# Runs a command as the postgres user from a folder it may enter.
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

pg_start() {
  pg_paths
  mkdir -p "$PG_HOME" "$PG_SOCK"
  chown postgres "$PG_HOME" "$PG_SOCK"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    say "initialising Postgres in ${PG_DATA#"$ROOT"/}"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=peer \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "starting Postgres on 127.0.0.1:$PG_PORT"
    # shared_buffers holds a renewal run's working set (invoices, lines,
    # audit rows of a 100,000 backlog) without evicting; max_wal_size keeps
    # a run's WAL from forcing checkpoints (and a storm of full-page
    # writes) in its middle. Measured in docs/performance.md (Renewals).
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 -l "$PG_HOME/postgres.log" \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_SOCK -c max_connections=300 -c shared_buffers=1GB -c max_wal_size=4GB" \
      start >/dev/null
  fi
  pg_roles
}

pg_stop() {
  pg_paths
  [ -f "$PG_DATA/PG_VERSION" ] || return 0
  if as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "stopping Postgres"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  fi
}

# psql as the superuser over the private socket.
pg_super() { PGOPTIONS='-c client_min_messages=warning' as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" "$@"; }

# A secret of the data folder, $BILLOW_DATA/$1 (0600, 48 hex digits), drawn
# the first time it is asked for.
drawn_secret() {
  local f="$BILLOW_DATA/$1"
  if [ ! -s "$f" ]; then
    mkdir -p "$BILLOW_DATA"
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
  fi
  cat "$f"
}

# The password of login role $1.
pg_role_password() { drawn_secret "pg_$1_password"; }

# The three roles: billow_owner owns the schema (migrations run as it),
# billow_api may only read, billow_worker reads and writes; neither of the
# last two owns a table or has BYPASSRLS, so row-level security binds them.
pg_roles() {
  pg_super -d postgres <<'SQL' >/dev/null
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'billow_owner') THEN
    CREATE ROLE billow_owner NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'billow_api') THEN
    CREATE ROLE billow_api LOGIN NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'billow_worker') THEN
    CREATE ROLE billow_worker LOGIN NOBYPASSRLS;
  END IF;
END $$;
SQL
  # Each login role's password is drawn once per data folder and kept in
  # $BILLOW_DATA/pg_<role>_password (0600); it is (re)set on the role at
  # every start, unless the environment gave that role's URL. Nothing
  # published opens the database: row-level security trusts whoever holds
  # a role to name its tenant, so the roles' passwords guard every tenant.
  # The statements go in on standard input, never on a command line.
  local api_pw worker_pw
  api_pw=$(pg_role_password billow_api)
  worker_pw=$(pg_role_password billow_worker)
  if [ "${BILLOW_OWN_DATABASE_READ_URL:-}" = 1 ]; then
    printf "ALTER ROLE billow_api PASSWORD '%s';\n" "$api_pw" | pg_super -d postgres >/dev/null
    export DATABASE_READ_URL="postgresql://billow_api:$api_pw@127.0.0.1:$PG_PORT/billow"
  fi
  if [ "${BILLOW_OWN_DATABASE_URL:-}" = 1 ]; then
    printf "ALTER ROLE billow_worker PASSWORD '%s';\n" "$worker_pw" | pg_super -d postgres >/dev/null
    export DATABASE_URL="postgresql://billow_worker:$worker_pw@127.0.0.1:$PG_PORT/billow"
  fi
  if [ "$(pg_super -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'billow'")" != 1 ]; then
    pg_super -d postgres -c "CREATE DATABASE billow OWNER billow_owner" >/dev/null
    pg_super -d billow -c "REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO billow_api, billow_worker; ALTER SCHEMA public OWNER TO billow_owner" >/dev/null
  fi
}

# Applies schema/NNN_*.sql in order, each once, each in its own transaction
# with its record in schema_migrations.
migrate() {
  pg_super -d billow -c "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()); ALTER TABLE schema_migrations OWNER TO billow_owner" >/dev/null
  local f v
  for f in "$ROOT"/schema/[0-9][0-9][0-9]_*.sql; do
    v=$(basename "$f" .sql)
    if [ -z "$(pg_super -d billow -tAc "SELECT 1 FROM schema_migrations WHERE version = '$v'")" ]; then
      say "migrating: $v"
      { echo "BEGIN; SET ROLE billow_owner;"; cat "$f"; echo "; INSERT INTO schema_migrations (version) VALUES ('$v'); COMMIT;"; } |
        pg_super -d billow >/dev/null
    fi
  done
}

redis_start() {
  mkdir -p "$BILLOW_DATA/redis" "$BILLOW_RUN"
  # Redis's files hold every job's envelope, and the logs name customers:
  # neither is for other local users.
  chmod 700 "$BILLOW_DATA/redis" "$BILLOW_RUN"
  # Whoever can write to Redis can enqueue jobs the workers trust, so the
  # local Redis asks for a password (the default user's, drawn once per
  # data folder). It goes in through a 0600 config file and standard input,
  # never a command line; redis-cli reads it from REDISCLI_AUTH.
  local pw
  pw=$(drawn_secret redis_password)
  export REDISCLI_AUTH=$pw
  if [ "${BILLOW_OWN_REDIS_URL:-}" = 1 ]; then
    export REDIS_URL="redis://:$pw@127.0.0.1:$REDIS_PORT/0"
  elif [[ $REDIS_URL =~ ^redis://(127\.0\.0\.1|localhost):$REDIS_PORT(/[0-9]*)?$ ]]; then
    # A URL given for this very Redis, without credentials: it gets them.
    export REDIS_URL="redis://:$pw@127.0.0.1:$REDIS_PORT${BASH_REMATCH[2]}"
  fi
  if [ "$(redis_cli ping 2>/dev/null)" = PONG ]; then
    # Started before it had a password: it gets one now.
    printf 'CONFIG SET requirepass %s\n' "$pw" | redis_cli >/dev/null 2>&1
    return 0
  fi
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  (umask 077 && printf 'requirepass %s\n' "$pw" >"$BILLOW_DATA/redis/redis.conf")
  # appendfsync always: a job the front accepted survives a crash of Redis.
  redis-server "$BILLOW_DATA/redis/redis.conf" --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir "$BILLOW_DATA/redis" --appendonly yes --appendfsync always --save '' --daemonize yes \
    --databases 48 --pidfile "$BILLOW_RUN/redis.pid" --logfile "$BILLOW_RUN/redis.log" \
    --protected-mode yes
  local i
  for i in $(seq 100); do
    [ "$(redis_cli ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  die "Redis did not start; see $BILLOW_RUN/redis.log"
}

# redis-cli against the local Redis, with its password when it has one.
redis_cli() {
  if [ -z "${REDISCLI_AUTH:-}" ] && [ -s "$BILLOW_DATA/redis_password" ]; then
    REDISCLI_AUTH=$(cat "$BILLOW_DATA/redis_password")
    export REDISCLI_AUTH
  fi
  redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

redis_stop() {
  if [ "$(redis_cli ping 2>/dev/null)" = PONG ]; then
    say "stopping Redis"
    redis_cli shutdown >/dev/null 2>&1 || true
  fi
}

# The demo tenant (slug demo, test mode) and its secret API key. The key is
# DEMO_API_KEY when set (20-100 URL-safe characters starting with sk_), else
# generated once and kept in $BILLOW_DATA/demo_api_key. Only its SHA-256
# enters the database.
DEMO_TENANT_ID=ten_0000000000000000000000DEM0
DEMO_KEY_ID=key_0000000000000000000000DEM0
seed_demo() {
  local key=${DEMO_API_KEY:-}
  if [ -z "$key" ]; then
    if [ -s "$BILLOW_DATA/demo_api_key" ]; then
      key=$(cat "$BILLOW_DATA/demo_api_key")
    else
      key="sk_test_$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
    fi
  fi
  [[ $key =~ ^sk_[A-Za-z0-9_-]{17,97}$ ]] || die "DEMO_API_KEY must be 20-100 URL-safe characters starting with sk_"
  (umask 077 && printf '%s\n' "$key" >"$BILLOW_DATA/demo_api_key")
  local hash
  hash=$(printf '%s' "$key" | sha256sum | cut -c1-64)
  pg_super -d billow -v hash="$hash" -v prefix="${key:0:12}" -v tid="$DEMO_TENANT_ID" -v kid="$DEMO_KEY_ID" <<'SQL' >/dev/null
INSERT INTO tenants (id, name, slug, livemode) VALUES (:'tid', 'Demo Company', 'demo', false)
  ON CONFLICT (id) DO NOTHING;
-- The demo key follows DEMO_API_KEY: a changed key replaces the old hash.
INSERT INTO api_keys (tenant_id, id, name, secret_hash, prefix, role)
  VALUES (:'tid', :'kid', 'demo', :'hash', :'prefix', 'owner')
  ON CONFLICT (tenant_id, id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, prefix = EXCLUDED.prefix, revoked_at = NULL;
-- A small catalog to subscribe customers to at once: Pro, $29 a month or
-- $290 a year, with a 14-day trial on the monthly price.
INSERT INTO products (tenant_id, id, name, description, features)
  VALUES (:'tid', 'prod_0000000000000000000000DEM0', 'Pro', 'The demo plan', '{"seats": 10, "sso": true}')
  ON CONFLICT (tenant_id, id) DO NOTHING;
INSERT INTO prices (tenant_id, id, product_id, currency, billing_scheme, unit_amount, interval, interval_count, trial_period_days, nickname)
  VALUES (:'tid', 'price_0000000000000000000000DEM0', 'prod_0000000000000000000000DEM0', 'usd', 'per_unit', 2900, 'month', 1, 14, 'Pro monthly'),
         (:'tid', 'price_0000000000000000000000DEM1', 'prod_0000000000000000000000DEM0', 'usd', 'per_unit', 29000, 'year', 1, NULL, 'Pro yearly')
  ON CONFLICT (tenant_id, id) DO NOTHING;
SQL
  DEMO_KEY=$key
  export DEMO_KEY
  seed_demo_owner
}

# The demo tenant's staff owner: DEMO_OWNER_EMAIL / DEMO_OWNER_PASSWORD when
# set, else owner@demo.example and a password generated once (kept in
# $BILLOW_DATA). The hash comes from billow-api itself (scrypt, the api's
# parameters) and is made again only when the password changes, so a second
# `up` neither rewrites the row nor ends the owner's sessions.
DEMO_OWNER_ID=usr_0000000000000000000000DEM0
seed_demo_owner() {
  local email=${DEMO_OWNER_EMAIL:-owner@demo.example}
  local password=${DEMO_OWNER_PASSWORD:-}
  if [ -z "$password" ]; then
    if [ -s "$BILLOW_DATA/demo_owner_password" ]; then
      password=$(cat "$BILLOW_DATA/demo_owner_password")
    else
      password="demo-$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"
    fi
  fi
  local hash=
  if [ -s "$BILLOW_DATA/demo_owner_hash" ] && [ "$(cat "$BILLOW_DATA/demo_owner_password" 2>/dev/null)" = "$password" ]; then
    hash=$(cat "$BILLOW_DATA/demo_owner_hash")
  else
    hash=$(printf '%s\n' "$password" | "$BILLOW_BUILD/billow-api" --hash-password) ||
      die "DEMO_OWNER_PASSWORD is not acceptable (see the message above)"
  fi
  (umask 077 && printf '%s\n' "$password" >"$BILLOW_DATA/demo_owner_password" && printf '%s\n' "$hash" >"$BILLOW_DATA/demo_owner_hash")
  pg_super -d billow -v tid="$DEMO_TENANT_ID" -v uid="$DEMO_OWNER_ID" -v email="$email" -v hash="$hash" <<'SQL' >/dev/null
INSERT INTO users (tenant_id, id, email, name, role, status, password_hash, password_changed_at)
  VALUES (:'tid', :'uid', :'email', 'Demo Owner', 'owner', 'active', :'hash', now())
  ON CONFLICT (tenant_id, id) DO UPDATE SET email = EXCLUDED.email, password_hash = EXCLUDED.password_hash,
    status = 'active', role = 'owner',
    password_changed_at = CASE WHEN users.password_hash IS DISTINCT FROM EXCLUDED.password_hash
                               THEN now() ELSE users.password_changed_at END
  WHERE users.email IS DISTINCT FROM EXCLUDED.email OR users.password_hash IS DISTINCT FROM EXCLUDED.password_hash
     OR users.status <> 'active' OR users.role <> 'owner';
SQL
  DEMO_OWNER_SIGNIN_EMAIL=$email
  DEMO_OWNER_SIGNIN_PASSWORD=$password
  export DEMO_OWNER_SIGNIN_EMAIL DEMO_OWNER_SIGNIN_PASSWORD
}

# ENCRYPTION_KEY (64 hex digits) seals TOTP secrets and emailed tokens. When
# unset, one is generated once and kept in $BILLOW_DATA/encryption_key:
# losing it makes enrolled authenticators unreadable, so back it up with the
# database.
ensure_encryption_key() {
  if [ -z "${ENCRYPTION_KEY:-}" ]; then
    mkdir -p "$BILLOW_DATA"
    if [ ! -s "$BILLOW_DATA/encryption_key" ]; then
      (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$BILLOW_DATA/encryption_key")
    fi
    ENCRYPTION_KEY=$(cat "$BILLOW_DATA/encryption_key")
  fi
  [[ $ENCRYPTION_KEY =~ ^[0-9a-fA-F]{64}$ ]] || die "ENCRYPTION_KEY must be 64 hex digits"
  export ENCRYPTION_KEY
}

# Connects the demo tenant to Stripe (the fake, or STRIPE_API_KEY's
# account) through the api, which seals the secrets: run once the api is
# ready. A webhook secret is set only when there is one.
seed_demo_stripe() {
  local body
  if [ -n "$STRIPE_WEBHOOK_SECRET" ]; then
    body=$(printf '{"secret_key":"%s","webhook_secrets":["%s"]}' "$STRIPE_API_KEY" "$STRIPE_WEBHOOK_SECRET")
  else
    body=$(printf '{"secret_key":"%s"}' "$STRIPE_API_KEY")
  fi
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/settings/stripe" \
    -H "Authorization: Bearer $DEMO_KEY" -H 'Content-Type: application/json' -H 'Prefer: wait=20' \
    -d "$body" || die "could not connect the demo tenant to Stripe (see $BILLOW_RUN/*.log)"
}

# Procfile entries as "name<TAB>command" lines.
procfile_entries() { sed -n 's/^\([a-z][a-z0-9_-]*\):[[:space:]]*\(.*\)$/\1\t\2/p' "$ROOT/Procfile"; }

# Starts every Procfile process in the background, pid in $BILLOW_RUN/<name>.pid.
start_detached() {
  mkdir -p "$BILLOW_RUN"
  chmod 700 "$BILLOW_RUN"
  local name cmd
  while IFS=$'\t' read -r name cmd; do
    if [ -f "$BILLOW_RUN/$name.pid" ] && kill -0 "$(cat "$BILLOW_RUN/$name.pid")" 2>/dev/null; then
      continue
    fi
    (cd "$ROOT" && exec setsid bash -c "exec $cmd" >>"$BILLOW_RUN/$name.log" 2>&1 </dev/null) &
    echo $! >"$BILLOW_RUN/$name.pid"
  done < <(procfile_entries)
}

# Stops what start_detached started, by pid (never by process name).
stop_detached() {
  local f pid i
  for f in "$BILLOW_RUN"/*.pid; do
    [ -e "$f" ] || continue
    [ "$(basename "$f")" = redis.pid ] && continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

wait_ready() { # wait_ready URL seconds
  local i
  for i in $(seq $(($2 * 10))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
