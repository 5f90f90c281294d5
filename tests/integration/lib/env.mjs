// env: what ./scripts/test exports for the integration tests, read once,
// and the per-file slot that keeps test files apart.
//
// Each test file takes a slot number 1..47. The slot gives the file its own
// api port (PORT + slot) and its own Redis database (/slot), which the file
// flushes at start, so the workers of one file never see another file's
// streams even though every file shares one Postgres and one Redis server.

import path from 'node:path';

function required(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    throw new Error(`${name} is not set: run the integration tests through ./scripts/test`);
  }
  return v;
}

export const ROOT = required('ROOT');
export const BILLOW_BUILD = required('BILLOW_BUILD');
export const BASE_PORT = Number(required('PORT'));
export const PG_PORT = required('PG_PORT');
export const REDIS_PORT = required('REDIS_PORT');
export const DATABASE_URL = required('DATABASE_URL');
export const DATABASE_READ_URL = required('DATABASE_READ_URL');
export const REDIS_URL = required('REDIS_URL');
export const DEMO_API_KEY = required('DEMO_API_KEY');
export const PLATFORM_ADMIN_TOKEN = required('PLATFORM_ADMIN_TOKEN');
export const BILLOW_PG_SOCK = required('BILLOW_PG_SOCK');
export const ENCRYPTION_KEY = required('ENCRYPTION_KEY');
export const DEMO_OWNER_EMAIL = required('DEMO_OWNER_EMAIL');
export const DEMO_OWNER_PASSWORD = required('DEMO_OWNER_PASSWORD');

// The demo tenant seeded by scripts/lib.sh (seed_demo).
export const DEMO_TENANT_ID = 'ten_0000000000000000000000DEM0';

// Where process logs go: scripts/test's BILLOW_RUN ($ROOT/.run/test).
export const LOG_DIR = process.env.BILLOW_RUN || path.join(ROOT, '.run', 'test');

// Highest Redis database number a file may take (scripts/lib.sh starts
// Redis with 48 databases; 0 is the developer's own `up`).
const MAX_SLOT = 47;

// The settings of one test file: its api port, Redis database and URL.
export function slot(n) {
  if (!Number.isInteger(n) || n < 1 || n > MAX_SLOT) {
    throw new Error(`slot must be an integer 1..${MAX_SLOT}, got ${n}`);
  }
  const url = new URL(REDIS_URL);
  url.pathname = `/${n}`;
  return {
    slot: n,
    port: BASE_PORT + n,
    redisDb: n,
    redisUrl: url.toString(),
  };
}
