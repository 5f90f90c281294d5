# shellcheck shell=bash
# common.sh: what scripts/bench/front and scripts/bench/drain share.
#
# Sourced, never run. The benchmarks keep their own servers beside a running
# ./scripts/up or ./scripts/test: their own ports, their own data and run
# folders (fresh each run, so one run's Redis AOF or table sizes do not slow
# the next), the release build in $ROOT/build. Every process a bench starts
# is recorded by pid and stopped by pid on exit, within bounded time.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
export BILLOW_DATA="$ROOT/.data/bench"
export BILLOW_RUN="$ROOT/.run/bench"
export PG_PORT=${BENCH_PG_PORT:-15434}
export REDIS_PORT=${BENCH_REDIS_PORT:-16381}
export PORT=${BENCH_PORT:-18090}
export BILLOW_BUILD="$ROOT/build"
# nginx's port is written in scripts/bench/nginx.conf. Both ports are read by
# the scripts that source this file.
# shellcheck disable=SC2034
NGINX_PORT=18091
# shellcheck disable=SC2034
PEER_PORT=${BENCH_PEER_PORT:-18092}
PEER_DIR="$BENCH_DIR/peers/fastify-bullmq"
export PLATFORM_ADMIN_TOKEN=${PLATFORM_ADMIN_TOKEN:-bench_platform_token_0000000000}
# The bench measures the product as it runs in production: LOG_LEVEL is
# cleared, so every process runs at the default (info: one access log line
# per request). scripts/bench/front sets warn itself for its comparison run.
unset LOG_LEVEL
# shellcheck source=../lib.sh
source "$ROOT/scripts/lib.sh"

# Packages the benches need beyond Billow's own.
BENCH_PACKAGES=(wrk nginx-light redis-tools)

# Pids of the processes this run started (besides Postgres and Redis, which
# lib.sh tracks itself), stopped by bench_cleanup.
BENCH_PIDS=()

now_ms() { date +%s%3N; }

# Stops one process by pid: SIGTERM (or the given signal), then SIGKILL after
# five seconds.
stop_pid() { # stop_pid PID [SIGNAL]
  local pid=$1 sig=${2:-TERM} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Stops everything the run started, newest first, then the servers.
bench_cleanup() {
  local i
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${BENCH_PIDS[i]}"
  done
  BENCH_PIDS=()
  stop_detached >/dev/null 2>&1 || true
  redis_stop >/dev/null 2>&1 || true
  pg_stop >/dev/null 2>&1 || true
}

# Installs, builds (BENCH_NO_BUILD=1: measures the binaries already in
# build/) and starts Postgres and Redis on fresh data, with the schema and
# the demo tenant; installs the peer with npm ci (unless BENCH_NO_PEER=1).
bench_prepare() {
  ensure_packages "${BILLOW_PACKAGES[@]}" "${BENCH_PACKAGES[@]}"
  ensure_node
  if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then build "$BILLOW_BUILD"; fi
  if [ ! -x "$BILLOW_BUILD/billow-api" ] || [ ! -x "$BILLOW_BUILD/billow-worker" ]; then
    die "the build made no billow-api or billow-worker"
  fi
  bench_cleanup
  if [ -L "$BILLOW_DATA/pg" ]; then rm -rf "$(readlink "$BILLOW_DATA/pg")"; fi
  rm -rf "$BILLOW_DATA" "$BILLOW_RUN"
  mkdir -p "$BILLOW_DATA" "$BILLOW_RUN"
  pg_start
  redis_start
  migrate
  ensure_encryption_key
  seed_demo
  if [ "${BENCH_NO_PEER:-0}" != 1 ]; then peer_install; fi
}

# npm ci of the peer, from its lockfile only. The lockfile must name no
# registry (its .npmrc omits "resolved"), so it installs from whatever
# registry the machine is configured for.
peer_install() {
  if grep -Eq '"resolved"|registry\.(npmjs|yarnpkg)' "$PEER_DIR/package-lock.json"; then
    die "$PEER_DIR/package-lock.json names a registry; regenerate it with the folder's .npmrc"
  fi
  say "installing the peer (npm ci)"
  (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

# Runs a command in the background, output to a log
# file, and records its pid.
bench_spawn() { # bench_spawn LOGFILE CMD...
  local log=$1
  shift
  "$@" >>"$log" 2>&1 </dev/null &
  BENCH_PIDS+=($!)
  # shellcheck disable=SC2034 # read by the caller
  LAST_PID=$!
}

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# "a/b" with two decimals, or "n/a".
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# PASS when a >= b (numbers), else MISS.
at_least() {
  awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? "PASS" : "MISS" }'
}

# The field NAME=value of a "KEY k=v k=v" line.
field() { # field LINE NAME
  printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# Machine facts for the report.
machine_facts() {
  printf 'machine: %s CPU(s), %s, %s MiB RAM, Debian %s\n' "$(nproc)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)" "$(cat /etc/debian_version)"
  printf 'load average before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# The machine's busy and total CPU time so far (clock ticks, all CPUs), as
# "busy total".
system_ticks() {
  awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# Percentage of the machine's CPU (all cores) busy between two system_ticks.
busy_pct() { # busy_pct "BUSY0 TOTAL0" "BUSY1 TOTAL1"
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    if (y[2] > x[2]) printf "%.0f", (y[1] - x[1]) * 100 / (y[2] - x[2]); else printf "0" }'
}

# CPU time (clock ticks) used so far by the Postgres server's processes
# (the postmaster's children: the backends and the background processes).
pg_ticks() {
  local pm pid sum=0
  pm=$(head -1 "$BILLOW_DATA/pg/data/postmaster.pid" 2>/dev/null) || { echo 0; return 0; }
  for pid in $(pgrep -P "$pm"); do
    sum=$((sum + $(cpu_ticks "$pid")))
  done
  echo "$sum"
}
